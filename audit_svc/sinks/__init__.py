"""Sinks that follow the events table from their own cursors, off the ingest path:
InfluxDB counts, signed checkpoints in an object-locked bucket, and the archive."""

from audit_svc.integrity.signer import Signer, SigningKeyError, Verifier, load_signer
from audit_svc.sinks.archive import (
    ArchiveError,
    Archiver,
    release_restored,
    restore,
    verify_archive,
)
from audit_svc.sinks.checkpoints import BadCheckpoint, Checkpoint, Checkpointer, load_checkpoints
from audit_svc.sinks.influx import InfluxSink
from audit_svc.sinks.objects import ObjectStore
from audit_svc.sinks.runner import SinkRunner
from audit_svc.sinks.service import Sinks, SinkState, bucket_checkpoints, object_store

__all__ = [
    "ArchiveError",
    "Archiver",
    "BadCheckpoint",
    "Checkpoint",
    "Checkpointer",
    "InfluxSink",
    "ObjectStore",
    "SinkRunner",
    "SinkState",
    "Signer",
    "SigningKeyError",
    "Sinks",
    "Verifier",
    "bucket_checkpoints",
    "load_checkpoints",
    "load_signer",
    "object_store",
    "release_restored",
    "restore",
    "verify_archive",
]
