"""A Stack starts a set of components (servers now, the mesh's own services later)
in dependency order, independent ones concurrently, and stops them all together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack import safety
from devstack.errors import DevstackError, PortInUseError, StackStartError
from devstack.ports import ensure_port_free, free_ports
from devstack.process import StartCancelled, stop_all
from devstack.service import RunningService, ServiceInfo, ServicePlan, start_service

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentContext:
    """What a component's plan gets: its folder, its port, its dependencies' infos."""

    data_dir: Path
    port: int
    infos: Mapping[str, ServiceInfo]
    # The mesh's certificates (devstack.certs); None: `certs/` beside data_dir.
    certs_dir: Path | None = None


def restore_as(cls: type[Any]) -> Callable[[Mapping[str, Any]], Any]:
    """A `Component.restore` for an info dataclass: rebuild it from its fields."""

    def restore(fields: Mapping[str, Any]) -> Any:
        return cls(**fields)

    return restore


@dataclass(frozen=True)
class Component:
    """One piece of the stack: how to plan it, probe it, and restore its info."""

    name: str
    label: str
    """Human name for messages, e.g. "PostgreSQL"."""
    plan: Callable[[ComponentContext], ServicePlan[Any]]
    probe: Callable[[Any], None]
    """Given the component's info: returns if it answers, raises if not."""
    restore: Callable[[Mapping[str, Any]], ServiceInfo]
    """Rebuilds the info from its state-file dict."""
    port: int | None = None
    """Fixed port, or None for a free one."""
    port_env: str | None = None
    """The variable that changes the fixed port, named when it is taken."""
    after: tuple[str, ...] = ()
    """Components that must answer before this one starts."""


@dataclass
class Stack:
    """Start `components` with data under `root`; a context manager that stops them.

    `ready` holds infos of components already running elsewhere (e.g. found healthy
    by `up`), so dependants can start without restarting them. With `detached`,
    processes keep running after this Python process exits.
    """

    root: Path
    components: Sequence[Component]
    detached: bool = False
    ready: Mapping[str, ServiceInfo] = field(default_factory=dict)
    services: dict[str, RunningService[Any]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def info(self, name: str) -> ServiceInfo:
        """The info of a started (or already running) component."""
        if name in self.services:
            info: ServiceInfo = self.services[name].info
            return info
        return self.ready[name]

    def start(self) -> Stack:
        """Start every component; on any failure (or Ctrl-C) stop what started and raise."""
        safety.install()
        pending = {c.name: c for c in self.components if c.name not in self.ready}
        known = set(pending) | set(self.ready)
        for component in pending.values():
            missing = [dep for dep in component.after if dep not in known]
            if missing:
                raise DevstackError(f"{component.name} needs {missing}, not part of the stack")
        ports = self._ports(pending.values())
        cancel = threading.Event()
        try:
            with ThreadPoolExecutor(max_workers=max(len(pending), 1)) as pool:
                try:
                    while pending:
                        wave = [c for c in pending.values() if self._deps_met(c)]
                        if not wave:
                            raise DevstackError(f"dependency cycle among {sorted(pending)}")
                        self._run_wave(pool, wave, ports, cancel)
                        for component in wave:
                            del pending[component.name]
                except BaseException:
                    cancel.set()  # workers still waiting for readiness give up
                    raise
        except BaseException:
            self.stop()
            raise
        if self.detached:
            for service in self.services.values():
                service.process.detach()
        return self

    def _deps_met(self, component: Component) -> bool:
        return all(dep in self.services or dep in self.ready for dep in component.after)

    @staticmethod
    def _ports(components: Iterable[Component]) -> dict[str, int]:
        """Every component's port, before anything starts: fixed ones checked (all
        taken ones reported together), the others free ones."""
        wanted = list(components)
        taken: list[BaseException] = []
        ports: dict[str, int] = {}
        for component in wanted:
            if component.port is not None:
                try:
                    ensure_port_free(component.port, component.label, component.port_env)
                except PortInUseError as error:
                    taken.append(error)
                ports[component.name] = component.port
        if len(taken) == 1:
            raise taken[0]
        if taken:
            raise StackStartError(taken)
        free = [c.name for c in wanted if c.port is None]
        ports.update(zip(free, free_ports(len(free)), strict=True))
        return ports

    def _run_wave(
        self,
        pool: ThreadPoolExecutor,
        wave: Sequence[Component],
        ports: Mapping[str, int],
        cancel: threading.Event,
    ) -> None:
        futures = [pool.submit(self._start_one, c, ports[c.name], cancel) for c in wave]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(future.exception() for future in done):
            cancel.set()
        wait(futures)
        errors = [
            error
            for future in futures
            if (error := future.exception()) is not None and not isinstance(error, StartCancelled)
        ]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise StackStartError(errors)

    def _start_one(self, component: Component, port: int, cancel: threading.Event) -> None:
        if cancel.is_set():
            raise StartCancelled(component.name)
        infos = {dep: self.info(dep) for dep in component.after}
        context = ComponentContext(self.root / component.name, port, infos)
        service = start_service(component.plan(context), cancel)
        with self._lock:
            self.services[component.name] = service

    def stop(self) -> None:
        """Stop every component this stack started, in parallel."""
        with self._lock:
            services = list(self.services.values())
            self.services.clear()
        stop_all(service.process for service in services)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
