"""`python -m devstack up|down|status|certs|restart COMPONENT`: the stack on its
documented ports, detached and supervised (a component that dies is started again),
with data under .run/ (kept across up/down)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from devstack import state, supervisor
from devstack.certs import create_ca, ensure_certs
from devstack.components import infra_components
from devstack.errors import DevstackError
from devstack.mesh import mesh_components
from devstack.process import stop_all
from devstack.prometheus import prometheus_component
from devstack.service import ServiceInfo
from devstack.settings import Settings
from devstack.stack import Component, Stack
from devstack.state import ProcessRecord

logger = logging.getLogger(__name__)


def _line(name: str, info: ServiceInfo) -> str:
    return f"{name:<9} {info.describe()}"


def _healthy(component: Component, record: ProcessRecord) -> ServiceInfo | None:
    """The component's info if its recorded process runs and answers, else None."""
    if not record.process().alive():
        return None
    info = component.restore(record.info)
    try:
        component.probe(info)
    except Exception as error:  # any failure means "not answering"
        logger.warning("%s (pid %d) runs but does not answer: %r", record.name, record.pid, error)
        return None
    return info


def components_of(settings: Settings) -> list[Component]:
    """Everything `make up` runs, in start order."""
    return infra_components(settings) + mesh_components(settings) + [prometheus_component(settings)]


def up(settings: Settings) -> int:
    """Start whatever is not already running and answering; record it; print endpoints."""
    with supervisor.locked(settings):
        return _up(settings)


def _up(settings: Settings) -> int:
    components = components_of(settings)
    records = state.load(settings.state_file)
    ready: dict[str, ServiceInfo] = {}
    kept: dict[str, ProcessRecord] = {}
    stale = []
    for component in components:
        record = records.pop(component.name, None)
        if record is None:
            continue
        info = _healthy(component, record)
        if info is None:
            stale.append(record.process())
        else:
            ready[component.name], kept[component.name] = info, record
    stale += [record.process() for record in records.values()]  # no longer part of the stack
    stop_all(stale)
    if kept:
        state.save(settings.state_file, kept)
    else:
        state.remove(settings.state_file)

    if len(kept) == len(components):
        print(f"already up (state in {settings.state_file}):")
    else:
        stack = Stack(settings.run_dir, components, detached=True, ready=ready)
        stack.start()
        for name, service in stack.services.items():
            kept[name] = ProcessRecord.of(name, service)
            ready[name] = service.info
        state.save(settings.state_file, kept)
    supervisor.start_supervisor(settings)
    for component in components:
        print(_line(component.name, ready[component.name]))
    print(
        f"supervised: a component that dies is started again "
        f"(log {settings.run_dir / 'supervisor' / 'supervisor.log'}); "
        "restart one with `python -m devstack restart NAME`"
    )
    print(f"data and logs in {settings.run_dir}; stop with `python -m devstack down`")
    return 0


def down(settings: Settings) -> int:
    """Stop the supervisor, then everything the state file lists; fine if nothing runs."""
    supervisor.stop_supervisor(settings)
    records = state.load(settings.state_file)
    processes = [record.process() for record in records.values()]
    running = [proc.name for proc in processes if proc.alive()]
    stop_all(processes)
    state.remove(settings.state_file)
    print(f"stopped {', '.join(running)}" if running else "nothing was running")
    return 0


def status(settings: Settings) -> int:
    """One line per component: up, not answering, or stopped. Exit 0 only if all up."""
    components = components_of(settings)
    records = state.load(settings.state_file)
    if not records:
        print(f"not running (no {settings.state_file})")
        return 1
    all_up = True
    for component in components:
        record = records.get(component.name)
        if record is None:
            print(f"{component.name:<9} not started")
            all_up = False
        elif (info := _healthy(component, record)) is not None:
            print(f"{_line(component.name, info)}  [pid {record.pid}]")
        else:
            verdict = "not answering" if record.process().alive() else "stopped"
            print(f"{component.name:<9} {verdict} (log: {record.log_path})")
            all_up = False
    watching = supervisor.running_supervisor(settings)
    print(f"supervisor {'running' if watching else 'not running'}")
    return 0 if all_up and watching else 1


def certs(settings: Settings, new_ca: bool = False) -> int:
    """Re-issue every identity of the mesh under its CA (a new CA with `new_ca`);
    running services read their files at start: restart them with `make down up`."""
    folder = settings.run_dir / "certs"
    if new_ca:
        create_ca(folder)
    issued = ensure_certs(folder, rotate=True)
    for name, files in issued.items():
        print(f"{name:<14} {files.cert_file}")
    print(f"CA {folder / 'ca.pem'}; restart the mesh to use them (make down up)")
    return 0


def restart(settings: Settings, name: str) -> int:
    """Stop one component and start it again on its port."""
    components = components_of(settings)
    record = supervisor.restart(settings, components, name)
    component = next(c for c in components if c.name == name)
    print(f"{_line(name, component.restore(record.info))}  [pid {record.pid}]")
    return 0


def supervise(settings: Settings) -> int:
    """Run the supervisor in the foreground (`up` starts it detached)."""
    return supervisor.run_until_signal(settings, components_of(settings))


def verify(settings: Settings, extra: Sequence[str] = ()) -> int:
    """`python -m audit_svc verify` with the settings `make up` gave the audit-service
    (its PostgreSQL and its checkpoint bucket), so truncation is caught."""
    from devstack.mesh import TOOL_ENV, read_tool_env

    env = read_tool_env(settings.run_dir / "audit" / TOOL_ENV)
    if not env:
        print(f"note: no {TOOL_ENV} of a running stack; using this shell's AUDIT_* settings",
              file=sys.stderr)  # fmt: skip
    argv = [sys.executable, "-m", "audit_svc", "verify", *extra]
    return subprocess.run(argv, env={**os.environ, **env}, check=False).returncode


COMMANDS = {
    "up": up,
    "down": down,
    "status": status,
    "certs": certs,
    "supervise": supervise,
    "verify": verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m devstack`."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=sorted([*COMMANDS, "restart"]))
    parser.add_argument("component", nargs="?", help="for restart: the component's name")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--new-ca", action="store_true", help="certs: replace the CA too")
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["verify"]:  # its own arguments go to `python -m audit_svc verify`
        return verify(Settings.from_env(), given[1:])
    args = parser.parse_args(given)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
        if args.command == "certs":
            return certs(settings, new_ca=args.new_ca)
        if args.command == "restart":
            if not args.component:
                parser.error("restart needs a component, e.g. `restart audit`")
            return restart(settings, args.component)
        return COMMANDS[args.command](settings)
    except DevstackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopped what this command had started", file=sys.stderr)
        return 130
