"""Supervision of a detached stack: a component that dies is started again, with
back-off, and each step is logged; `restart` stops and starts one on request.

`python -m devstack up` starts the supervisor (`python -m devstack supervise`) as one
more detached process, recorded in `.run/supervisor.json` (apart from the
components, so `up` never mistakes it for one); `down` stops it first. The
supervisor and `restart` take `.run/stack.lock` around each change of the state
file, so they never restart the same component twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack import state
from devstack.errors import DevstackError
from devstack.process import ManagedProcess, ProcessSpec, start_process, stop_all
from devstack.service import ServiceInfo
from devstack.settings import Settings
from devstack.stack import Component, Stack
from devstack.state import ProcessRecord

REPO_ROOT = str(Path(__file__).resolve().parent.parent)

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
# A process that ran this long before dying starts its back-off from the beginning.
STABLE_SECONDS = 60.0


@contextlib.contextmanager
def locked(settings: Settings) -> Iterator[None]:
    """Hold the stack's lock (one changer of the state file at a time)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with (settings.run_dir / "stack.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _infos(
    components: Sequence[Component], records: dict[str, ProcessRecord], but: str
) -> dict[str, ServiceInfo]:
    by_name = {c.name: c for c in components}
    return {
        name: by_name[name].restore(record.info)
        for name, record in records.items()
        if name != but and name in by_name
    }


def start_again(settings: Settings, components: Sequence[Component], name: str) -> ProcessRecord:
    """Stop component `name` if it still runs, start it again on its port (detached),
    and record it. Call with the lock held."""
    component = next((c for c in components if c.name == name), None)
    if component is None:
        known = ", ".join(c.name for c in components)
        raise DevstackError(f"no component {name!r} (the stack has {known})")
    records = state.load(settings.state_file)
    old = records.get(name)
    if old is not None:
        stop_all([old.process()])
    ready = _infos(components, records, but=name)
    stack = Stack(settings.run_dir, [component], detached=True, ready=ready).start()
    record = ProcessRecord.of(name, stack.services[name])
    records[name] = record
    state.save(settings.state_file, records)
    return record


def restart(settings: Settings, components: Sequence[Component], name: str) -> ProcessRecord:
    """`python -m devstack restart NAME`: stop and start one component of a running stack."""
    with locked(settings):
        if not state.load(settings.state_file):
            raise DevstackError(f"the stack is not running (no {settings.state_file})")
        return start_again(settings, components, name)


@dataclass
class _Backoff:
    attempts: int = 0
    not_before: float = 0.0
    started: float = 0.0


def _reap_children() -> None:
    """Collect the exit status of dead children (restarted components are ours), so
    a dead one does not linger as a zombie that looks alive."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def supervise(settings: Settings, components: Sequence[Component], stop: threading.Event) -> None:
    """Until `stop` is set: every CHECK_SECONDS, start again each recorded component
    whose process is gone, after 1, 2, 4 ... 60 s of back-off per component."""
    backoff: dict[str, _Backoff] = {}
    now = time.monotonic()
    while not stop.wait(CHECK_SECONDS):
        _reap_children()
        with locked(settings):
            records = state.load(settings.state_file)
            if not records:
                logger.info("the stack is gone (no %s); supervisor ends", settings.state_file)
                return
            for component in components:
                record = records.get(component.name)
                if record is None or record.process().alive():
                    continue
                b = backoff.setdefault(component.name, _Backoff(started=now))
                now = time.monotonic()
                if b.not_before == 0.0:  # just seen dead: schedule the restart
                    stable = now - b.started >= STABLE_SECONDS
                    b.attempts = 1 if stable else b.attempts + 1
                    delay = min(FIRST_DELAY_SECONDS * 2 ** (b.attempts - 1), MAX_DELAY_SECONDS)
                    b.not_before = now + delay
                    logger.warning(
                        "%s (pid %d) died; starting it again in %.0f s (attempt %d); log: %s",
                        component.name, record.pid, delay, b.attempts, record.log_path,
                    )  # fmt: skip
                if now < b.not_before:
                    continue
                b.not_before = 0.0
                try:
                    new = start_again(settings, components, component.name)
                except Exception as error:
                    logger.error("%s did not start again: %s", component.name, error)
                    b.started = time.monotonic()  # not stable: the next delay doubles
                    continue
                b.started = time.monotonic()
                logger.warning("%s runs again (pid %d)", component.name, new.pid)


def _pid_file(settings: Settings) -> Path:
    return settings.run_dir / "supervisor.json"


def running_supervisor(settings: Settings) -> ManagedProcess | None:
    """The supervisor of the stack in `settings.run_dir`, if it runs."""
    try:
        raw = json.loads(_pid_file(settings).read_text())
    except (OSError, ValueError):
        return None
    proc = ManagedProcess(
        "supervisor",
        int(raw["pid"]),
        stop_signal=signal.SIGTERM,
        stop_timeout=30.0,
        started_at=raw["started_at"],
    )
    return proc if proc.alive() else None


def start_supervisor(settings: Settings) -> ManagedProcess:
    """Start the detached supervisor unless one runs; record its pid."""
    found = running_supervisor(settings)
    if found is not None:
        return found
    log_path = settings.run_dir / "supervisor" / "supervisor.log"
    spec = ProcessSpec(
        name="supervisor",
        argv=(sys.executable, "-m", "devstack", "-v", "supervise"),
        log_path=log_path,
        ready=lambda: None,
        cwd=settings.run_dir,
        # devstack is a tool of the repository, not installed: its root goes on the path.
        env={
            "PYTHONPATH": os.pathsep.join(filter(None, (REPO_ROOT, os.environ.get("PYTHONPATH"))))
        },
        stop_timeout=30.0,
    )
    proc = start_process(spec)
    proc.detach()
    _pid_file(settings).write_text(json.dumps({"pid": proc.pid, "started_at": proc.started_at}))
    return proc


def stop_supervisor(settings: Settings) -> bool:
    """Stop the supervisor (before the components, so it restarts none); True if one ran."""
    found = running_supervisor(settings)
    if found is not None:
        stop_all([found])
    _pid_file(settings).unlink(missing_ok=True)
    return found is not None


def run_until_signal(settings: Settings, components: Sequence[Component]) -> int:
    """`python -m devstack supervise`: supervise until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logger.info("supervising %s in %s", ", ".join(c.name for c in components), settings.run_dir)
    supervise(settings, components, stop)
    return 0
