"""PostgreSQL 15 from the Debian binaries: initdb once, then the postmaster as a
supervised child, run as the `postgres` user (the server refuses to run as root).

The postmaster is started directly rather than by `pg_ctl start`, which would
daemonise it out of our process supervision; stopping sends SIGINT, the "fast"
shutdown `pg_ctl stop -m fast` sends. `pg_ctl -D <data>/pgdata status` still works.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg

from devstack import binaries
from devstack._aio import run_coroutine
from devstack.errors import DevstackError, ServiceStartError
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.service import RunningService, ServicePlan, start_service
from devstack.settings import DEFAULT_PG_BINDIR

logger = logging.getLogger(__name__)

OS_USER = "postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "audit"
_SOCKET_PATH_MAX = 107
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PostgresInfo:
    """How clients reach the server; `dsn` names one database on it."""

    host: str
    port: int
    database: str
    socket_dir: str
    user: str = SUPERUSER

    @property
    def dsn(self) -> str:
        """A libpq/asyncpg URL, e.g. postgresql://postgres@127.0.0.1:5434/audit."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """Same as `dsn`."""
        return self.dsn

    def for_database(self, name: str) -> PostgresInfo:
        """The same server, another database on it."""
        return replace(self, database=name)

    def describe(self) -> str:
        """One line for humans."""
        return self.dsn


def probe(info: PostgresInfo) -> None:
    """Return once `SELECT 1` succeeds over TCP; raise otherwise."""
    run_coroutine(lambda: _select_one(info.for_database("postgres")))


async def _select_one(info: PostgresInfo) -> None:
    conn = await asyncpg.connect(info.dsn, timeout=2)
    try:
        if await conn.fetchval("SELECT 1") != 1:
            raise DevstackError("SELECT 1 did not return 1")
    finally:
        await conn.close()


def create_database(server: PostgresInfo, name: str) -> PostgresInfo:
    """Create database `name` unless it exists; return the info that points at it."""
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    run_coroutine(lambda: _create_database(server.for_database("postgres"), name))
    return server.for_database(name)


async def _create_database(admin: PostgresInfo, name: str) -> None:
    conn = await asyncpg.connect(admin.dsn, timeout=5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                logger.info("created database %s", name)
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def _run_as() -> pwd.struct_passwd | None:
    """The OS account the server runs as: `postgres` when we are root, else ourselves."""
    return pwd.getpwnam(OS_USER) if os.geteuid() == 0 else None


def _make_reachable(path: Path) -> None:
    """Let other users traverse (not list) `path` and its parents, as postgres must."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("allowing traversal of %s for the postgres user (o+x)", folder)
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _owned_dir(path: Path, account: pwd.struct_passwd | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)


def _initdb(bindir: Path, pgdata: Path, log_path: Path, fsync: bool) -> None:
    account = _run_as()
    argv = [
        str(binaries.postgres_tool(bindir, "initdb")),
        "-D", str(pgdata),
        "-U", SUPERUSER,
        "--auth=trust",
        "-E", "UTF8",
        "--locale=C",
    ]  # fmt: skip
    if not fsync:
        argv.append("--no-sync")
    logger.info("initdb %s", pgdata)
    result = subprocess.run(
        argv,
        cwd=pgdata.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=300,
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    with log_path.open("a") as log:
        log.write(f"--- devstack: {' '.join(argv)}\n{output}")
    if result.returncode != 0:
        reason = f"initdb exited with status {result.returncode}"
        raise ServiceStartError("postgres", reason, log_path, output[-4000:])


def postgres_plan(
    data_dir: Path,
    port: int,
    *,
    fsync: bool = True,
    database: str = DEFAULT_DATABASE,
    bindir: Path = DEFAULT_PG_BINDIR,
    options: Mapping[str, str] | None = None,
) -> ServicePlan[PostgresInfo]:
    """Plan a server with data in `data_dir`/pgdata; initdb runs only the first time.

    `fsync=False` trades crash safety for speed: for tests only.
    """
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pgdata"
    socket_dir = data_dir / "socket"
    log_path = data_dir / "postgres.log"
    socket_path = socket_dir / f".s.PGSQL.{port}"
    if len(str(socket_path)) > _SOCKET_PATH_MAX:
        raise DevstackError(f"socket path {socket_path} is too long; use a shorter data folder")
    info = PostgresInfo(LOOPBACK, port, database, str(socket_dir))
    account = _run_as()

    argv = [
        str(bindir / "postgres"),
        "-D", str(pgdata),
        "-p", str(port),
        "-k", str(socket_dir),
        "-c", f"listen_addresses={LOOPBACK}",
    ]  # fmt: skip
    if not fsync:
        argv += ["-c", "fsync=off"]
    for name, value in (options or {}).items():
        argv += ["-c", f"{name}={value}"]

    def prepare() -> None:
        binaries.postgres_tool(bindir, "postgres")
        data_dir.mkdir(parents=True, exist_ok=True)
        if account is not None:
            _make_reachable(data_dir)
        _owned_dir(socket_dir, account, 0o755)
        if not (pgdata / "PG_VERSION").exists():
            # initdb into a scratch folder and rename: an interrupted initdb never
            # leaves a half-made pgdata that would look initialised next time.
            scratch = data_dir / "pgdata.initdb"
            shutil.rmtree(scratch, ignore_errors=True)
            _owned_dir(scratch, account, 0o700)
            _initdb(bindir, scratch, log_path, fsync)
            shutil.rmtree(pgdata, ignore_errors=True)
            scratch.rename(pgdata)

    def after_start() -> None:
        create_database(info, database)

    spec = ProcessSpec(
        name="postgres",
        argv=tuple(argv),
        log_path=log_path,
        ready=lambda: probe(info),
        cwd=data_dir,
        user=OS_USER if account is not None else None,
        stop_signal=signal.SIGINT,  # "fast" shutdown, what `pg_ctl stop -m fast` sends
        stop_timeout=30.0,
    )
    return ServicePlan(
        spec=spec,
        info=info,
        prepare=prepare,
        after_start=after_start,
    )


def start_postgres(
    data_dir: Path,
    port: int | None = None,
    *,
    fsync: bool = True,
    database: str = DEFAULT_DATABASE,
    bindir: Path = DEFAULT_PG_BINDIR,
    options: Mapping[str, str] | None = None,
) -> RunningService[PostgresInfo]:
    """Start PostgreSQL on `port` (a free one if None) and create `database`;
    `options` are extra server settings (`-c name=value`)."""
    chosen = free_port() if port is None else port
    plan = postgres_plan(
        data_dir, chosen, fsync=fsync, database=database, bindir=bindir, options=options
    )
    return start_service(plan)
