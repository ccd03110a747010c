"""One server as a child process: its own process group, a log file, a readiness
check, and a stop that escalates from the server's own shutdown signal to SIGKILL."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack import safety
from devstack.errors import DevstackError, ServiceStartError

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]
"""Returns once the server answers a real request; raises while it does not."""

POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one server: command, environment, readiness and shutdown."""

    name: str
    argv: tuple[str, ...]
    log_path: Path
    ready: ReadinessCheck
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    ready_timeout: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 15.0
    cleanup_paths: tuple[Path, ...] = ()


class StartCancelled(DevstackError):
    """Start-up was abandoned because another part of the stack failed."""


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid`, or None when no live process has it.

    Together with the pid it identifies a process across commands even if the pid
    is reused; a zombie counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, start time) of every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def family(pid: int) -> dict[int, int]:
    """pid -> start time of `pid`'s descendants and process-group members.

    Both, because some servers' children start their own sessions (PostgreSQL's do).
    """
    table = _proc_table()
    members = {p for p, (_, pgid, _) in table.items() if pgid == pid and p != pid}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _, _) in table.items() if ppid == parent]
        members.update(children)
        frontier.extend(children)
    members.discard(pid)
    return {p: table[p][2] for p in members}


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class ManagedProcess:
    """A server process started by `spawn`, or adopted from a state file by pid."""

    def __init__(
        self,
        spec_name: str,
        pid: int,
        *,
        stop_signal: signal.Signals,
        stop_timeout: float,
        popen: subprocess.Popen[bytes] | None = None,
        started_at: int | None = None,
        cleanup_paths: Iterable[Path] = (),
        log_path: Path | None = None,
    ) -> None:
        self.name = spec_name
        self.log_path = log_path
        self.pid = pid
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.started_at = started_at if started_at is not None else start_time(pid)
        self.cleanup_paths = tuple(cleanup_paths)
        self._popen = popen
        self._family: dict[int, int] = {}
        self._signalled = False

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"

    def alive(self) -> bool:
        """True while the process (the same one, not a reused pid) runs."""
        if self._popen is not None:
            return self._popen.poll() is None
        return self.started_at is not None and start_time(self.pid) == self.started_at

    def exit_code(self) -> int | None:
        """The exit status if it was our child and has exited."""
        return None if self._popen is None else self._popen.poll()

    def send_stop(self) -> None:
        """Ask the server to shut down with its own signal; it stops its children."""
        if self.alive():
            logger.info("stopping %s (pid %d) with %s", self.name, self.pid, self.stop_signal.name)
            self._family = family(self.pid)
            self._signalled = True
            try:
                os.kill(self.pid, self.stop_signal)
            except ProcessLookupError:
                pass

    def wait_exit(self, deadline: float) -> bool:
        """Wait until the process is gone or the monotonic deadline passes."""
        if self._popen is not None:
            try:
                self._popen.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                return False
            return True
        while self.alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL_INTERVAL, remaining))
        return True

    def kill(self) -> None:
        """SIGKILL the process group and reap the leader."""
        logger.warning("%s (pid %d) did not stop in time; sending SIGKILL", self.name, self.pid)
        _signal_group(self.pid, signal.SIGKILL)
        self.wait_exit(time.monotonic() + 5)

    def finish(self) -> None:
        """After the leader exited: kill what it left behind, remove leftover files."""
        if self._signalled:
            _signal_group(self.pid, signal.SIGKILL)
        for pid, started in self._family.items():
            if start_time(pid) == started:
                logger.warning("killing leftover process %d of %s", pid, self.name)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for path in self.cleanup_paths:
            path.unlink(missing_ok=True)
        safety.forget(self)

    def stop(self) -> None:
        """Stop this process: its stop signal, a timeout, then SIGKILL."""
        stop_all([self])

    def detach(self) -> None:
        """Leave the process running after this Python process exits."""
        safety.forget(self)
        if self._popen is not None:
            # Nothing will wait for it here: tell Popen so it does not warn at exit.
            self._popen.returncode = 0
            self._popen = None


def stop_all(processes: Iterable[ManagedProcess]) -> None:
    """Stop several processes in parallel: signal all, wait all, kill stragglers.

    Uses no threads, so it also works from atexit and signal handlers.
    """
    procs = list(processes)
    for proc in procs:
        proc.send_stop()
    deadline = time.monotonic() + max((p.stop_timeout for p in procs), default=0)
    for proc in procs:
        if not proc.wait_exit(deadline):
            proc.kill()
        proc.finish()


def spawn(spec: ProcessSpec) -> ManagedProcess:
    """Start the command in a new session (its own process group), logging to a file."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env} if spec.env else None
    with spec.log_path.open("ab") as log:
        log.write(f"--- devstack: starting {' '.join(spec.argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
            user=spec.user,
            group=pwd.getpwnam(spec.user).pw_gid if spec.user else None,
            extra_groups=[] if spec.user else None,
        )
    proc = ManagedProcess(
        spec.name,
        popen.pid,
        stop_signal=spec.stop_signal,
        stop_timeout=spec.stop_timeout,
        popen=popen,
        cleanup_paths=spec.cleanup_paths,
        log_path=spec.log_path,
    )
    safety.remember(proc)
    logger.info("started %s (pid %d), log %s", spec.name, popen.pid, spec.log_path)
    return proc


def wait_ready(
    proc: ManagedProcess, spec: ProcessSpec, cancel: threading.Event | None = None
) -> None:
    """Poll the readiness check until it passes; fail fast if the process exits."""
    deadline = time.monotonic() + spec.ready_timeout
    last_error: BaseException | None = None
    while True:
        code = proc.exit_code()
        if code is not None:
            reason = f"exited with status {code}"
            raise ServiceStartError(spec.name, reason, spec.log_path, log_tail(spec.log_path))
        if cancel is not None and cancel.is_set():
            raise StartCancelled(f"{spec.name}: start cancelled")
        try:
            spec.ready()
            return
        except Exception as error:  # any failure means "not ready yet"
            last_error = error
        if time.monotonic() > deadline:
            reason = (
                f"did not answer within {spec.ready_timeout:.0f} s (last error: {last_error!r})"
            )
            raise ServiceStartError(spec.name, reason, spec.log_path, log_tail(spec.log_path))
        time.sleep(POLL_INTERVAL)


def start_process(spec: ProcessSpec, cancel: threading.Event | None = None) -> ManagedProcess:
    """Spawn and wait until the server answers; on any failure, stop it again."""
    proc = spawn(spec)
    try:
        wait_ready(proc, spec, cancel)
    except BaseException:
        proc.stop()
        raise
    logger.info("%s is ready (pid %d)", spec.name, proc.pid)
    return proc
