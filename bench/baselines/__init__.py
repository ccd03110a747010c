"""Baselines for bench.ingest: what a service would do without auditmesh."""
