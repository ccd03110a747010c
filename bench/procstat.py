"""What a benchmark reads about a server process from /proc (Linux): CPU time and peak
RSS, so each run can say where the machine's cores went and how large a server grew."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.process import family

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` (all its threads) so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid`, its live descendants, and the children it has already reaped
    (PostgreSQL's backends come and go; the postmaster reaps them)."""
    fields = _stat(pid)
    total = sum(int(f) for f in fields[11:15]) / _TICK
    for child in family(pid):
        try:
            total += cpu_seconds(child)
        except (OSError, ValueError):
            pass  # exited between the listing and the read
    return total


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise LookupError(f"no VmHWM for pid {pid}")


def postmaster_pid(pg_data_dir: Path) -> int:
    """The PostgreSQL server's pid, from `<data dir>/pgdata/postmaster.pid`."""
    return int((pg_data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
