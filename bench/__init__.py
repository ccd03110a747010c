"""Benchmarks: each starts its own real servers and prints its figures and command."""
