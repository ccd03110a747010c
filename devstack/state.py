"""The state file of a detached stack (`.run/stack.json`): which process runs each
component and where it listens, so `down` and `status` work from another command."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.process import ManagedProcess
from devstack.service import RunningService, info_to_dict

logger = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """One detached component: its process identity and its info fields."""

    name: str
    pid: int
    started_at: int | None
    stop_signal: str
    stop_timeout: float
    log_path: str
    cleanup_paths: tuple[str, ...]
    info: Mapping[str, Any]

    @classmethod
    def of(cls, name: str, service: RunningService[Any]) -> ProcessRecord:
        """The record of a service started by this command."""
        proc = service.process
        return cls(
            name=name,
            pid=proc.pid,
            started_at=proc.started_at,
            stop_signal=proc.stop_signal.name,
            stop_timeout=proc.stop_timeout,
            log_path=str(proc.log_path or ""),
            cleanup_paths=tuple(str(p) for p in proc.cleanup_paths),
            info=info_to_dict(service.info),
        )

    def process(self) -> ManagedProcess:
        """The recorded process, adopted: alive() and stop() check it is the same one."""
        return ManagedProcess(
            self.name,
            self.pid,
            stop_signal=signal.Signals[self.stop_signal],
            stop_timeout=self.stop_timeout,
            started_at=self.started_at,
            cleanup_paths=[Path(p) for p in self.cleanup_paths],
            log_path=Path(self.log_path) if self.log_path else None,
        )

    def to_json(self) -> dict[str, Any]:
        """Fields for the JSON file."""
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            "log_path": self.log_path,
            "cleanup_paths": list(self.cleanup_paths),
            "info": dict(self.info),
        }

    @classmethod
    def from_json(cls, name: str, raw: Mapping[str, Any]) -> ProcessRecord:
        """Parse what `to_json` wrote."""
        return cls(
            name=name,
            pid=int(raw["pid"]),
            started_at=raw["started_at"],
            stop_signal=str(raw["stop_signal"]),
            stop_timeout=float(raw["stop_timeout"]),
            log_path=str(raw.get("log_path", "")),
            cleanup_paths=tuple(raw.get("cleanup_paths", ())),
            info=dict(raw["info"]),
        )


def load(path: Path) -> dict[str, ProcessRecord]:
    """Records by component name; empty when there is no (readable) state file."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable state file %s: %s", path, error)
        return {}
    if raw.get("version") != VERSION:
        logger.warning("ignoring state file %s of another version", path)
        return {}
    return {name: ProcessRecord.from_json(name, rec) for name, rec in raw["components"].items()}


def save(path: Path, records: Mapping[str, ProcessRecord]) -> None:
    """Write the records atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "version": VERSION,
        "components": {name: rec.to_json() for name, rec in records.items()},
    }
    tmp = path.with_suffix(".json.tmp")
    # It holds the dev S3 secret key: readable by us only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Delete the state file if there is one."""
    path.unlink(missing_ok=True)
