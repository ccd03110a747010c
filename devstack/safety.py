"""Safety net: whatever this Python process started is stopped when it exits,
also on SIGTERM/SIGHUP, so an interrupted test run leaves no orphan servers."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.process import ManagedProcess

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_running: dict[int, ManagedProcess] = {}
_atexit_installed = False
_signals_installed = False
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def install() -> None:
    """Register the atexit hook, and the signal handlers when called in the main thread.

    Idempotent. Called on every spawn; the Stack also calls it from the main thread
    before starting servers in worker threads, so the signal handlers get installed.
    """
    global _atexit_installed, _signals_installed
    with _lock:
        if not _atexit_installed:
            _atexit_installed = True
            atexit.register(stop_remembered)
        if not _signals_installed and threading.current_thread() is threading.main_thread():
            _signals_installed = True
            for sig in _HANDLED_SIGNALS:
                # Never replace a handler someone else installed (pytest, an app server).
                if signal.getsignal(sig) is signal.SIG_DFL:
                    signal.signal(sig, _on_signal)


def remember(proc: ManagedProcess) -> None:
    """Stop `proc` at interpreter exit unless it is stopped or detached before."""
    install()
    with _lock:
        _running[id(proc)] = proc


def forget(proc: ManagedProcess) -> None:
    """`proc` was stopped or detached: no longer ours to stop at exit."""
    with _lock:
        _running.pop(id(proc), None)


def stop_remembered() -> None:
    """Stop every process still remembered (atexit and signal handlers call this)."""
    from devstack.process import stop_all

    with _lock:
        procs = list(_running.values())
    if procs:
        logger.warning("stopping %d leftover server(s) at exit: %s", len(procs), procs)
        stop_all(procs)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_remembered()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
