"""A service = a process spec plus what clients need to reach it (its info)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from devstack.process import ManagedProcess, ProcessSpec, StartCancelled, start_process

logger = logging.getLogger(__name__)


class ServiceInfo(Protocol):
    """What every service's frozen info object offers."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...

    def describe(self) -> str:
        """One line for humans: where it listens and how to reach it."""
        ...


InfoT = TypeVar("InfoT", bound=ServiceInfo)
InfoT_co = TypeVar("InfoT_co", bound=ServiceInfo, covariant=True)


def info_to_dict(info: ServiceInfo) -> dict[str, Any]:
    """Plain JSON-able fields of an info dataclass, for the state file."""
    if not dataclasses.is_dataclass(info) or isinstance(info, type):
        raise TypeError(f"{info!r} is not a dataclass instance")
    return dataclasses.asdict(info)


@dataclass(frozen=True)
class ServicePlan(Generic[InfoT]):
    """Everything needed to start one service; nothing has run yet."""

    spec: ProcessSpec
    info: InfoT
    prepare: Callable[[], None] | None = None
    """Runs before the process starts (create folders, initdb)."""
    after_start: Callable[[], None] | None = None
    """Runs once the process answers (create the application database)."""


class RunningService(Generic[InfoT_co]):
    """A started service: its info and its process. A context manager that stops it."""

    def __init__(self, info: InfoT_co, process: ManagedProcess) -> None:
        self.info = info
        self.process = process

    def __repr__(self) -> str:
        return f"RunningService({self.info!r}, pid={self.process.pid})"

    def stop(self) -> None:
        """Stop the server and any process it left behind."""
        self.process.stop()

    def __enter__(self) -> RunningService[InfoT_co]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_service(
    plan: ServicePlan[InfoT], cancel: threading.Event | None = None
) -> RunningService[InfoT]:
    """Prepare, spawn, wait until it really answers, run the after-start step."""
    if plan.prepare is not None:
        plan.prepare()
    if cancel is not None and cancel.is_set():
        raise StartCancelled(f"{plan.spec.name}: start cancelled")
    process = start_process(plan.spec, cancel)
    try:
        if plan.after_start is not None:
            plan.after_start()
    except BaseException:
        process.stop()
        raise
    return RunningService(plan.info, process)
