"""PostgreSQL 15 from the Debian binaries: initdb once, then the postmaster as a
supervised child, run as the `postgres` user (the server refuses to run as root).

The postmaster is started directly rather than by `pg_ctl start`, which would
daemonise it out of our process supervision; stopping sends SIGINT, the "fast"
shutdown `pg_ctl stop -m fast` sends. `pg_ctl -D <data>/pgdata status` still works.

Logins over TCP use scram-sha-256 (pg_hba.conf, rewritten at every start): the
`postgres` superuser has a random development password kept 0600 in the data folder
(`superuser-password`), and each service its own role (`create_role`). Devstack's own
admin work also goes over the unix socket, in a folder only the server's account (and
root) may enter, where local logins are trusted.
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from devstack import binaries
from devstack._aio import run_coroutine
from devstack.errors import DevstackError, ServiceStartError
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.secrets import dev_password
from devstack.service import RunningService, ServicePlan, start_service
from devstack.settings import DEFAULT_PG_BINDIR

logger = logging.getLogger(__name__)

OS_USER = "postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "audit"
_SOCKET_PATH_MAX = 107
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9_.~-]{8,200}$")
PASSWORD_FILE = "superuser-password"
HBA = """# Written by devstack at every start (devstack/postgres.py).
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


@dataclass(frozen=True)
class PostgresInfo:
    """How clients reach the server; `dsn` names one database on it."""

    host: str
    port: int
    database: str
    socket_dir: str
    user: str = SUPERUSER
    password: str = field(default="", repr=False)

    @property
    def dsn(self) -> str:
        """A libpq/asyncpg URL, e.g. postgresql://postgres:<password>@127.0.0.1:5434/audit."""
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """Same as `dsn`."""
        return self.dsn

    def for_database(self, name: str) -> PostgresInfo:
        """The same server, another database on it."""
        return replace(self, database=name)

    def as_role(self, user: str, password: str) -> PostgresInfo:
        """The same server and database, logging in as another role."""
        return replace(self, user=user, password=password)

    def describe(self) -> str:
        """One line for humans: the URL without its password (in superuser-password)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def probe(info: PostgresInfo) -> None:
    """Return once `SELECT 1` succeeds over the unix socket; raise otherwise."""
    run_coroutine(lambda: _select_one(info))


async def _admin_connect(info: PostgresInfo, timeout: float) -> asyncpg.Connection:
    """The superuser over the unix socket (trusted there), database `postgres`."""
    return await asyncpg.connect(
        host=info.socket_dir, port=info.port, user=SUPERUSER, database="postgres", timeout=timeout
    )


async def _select_one(info: PostgresInfo) -> None:
    conn = await _admin_connect(info, 2)
    try:
        if await conn.fetchval("SELECT 1") != 1:
            raise DevstackError("SELECT 1 did not return 1")
    finally:
        await conn.close()


def create_database(server: PostgresInfo, name: str, owner: str = "") -> PostgresInfo:
    """Create database `name` unless it exists (owned by role `owner` if given: it
    and what is in its public schema); return the info that points at it."""
    for what in (name, owner or SUPERUSER):
        if not _DATABASE_NAME.match(what):
            raise ValueError(f"name {what!r} must match {_DATABASE_NAME.pattern}")
    run_coroutine(lambda: _create_database(server, name, owner))
    return server.for_database(name)


async def _create_database(server: PostgresInfo, name: str, owner: str) -> None:
    conn = await _admin_connect(server, 5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                logger.info("created database %s", name)
            except asyncpg.DuplicateDatabaseError:
                pass
        if owner:
            await conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{owner}"')
    finally:
        await conn.close()
    if owner:
        await _own_public_schema(server, name, owner)


async def _own_public_schema(server: PostgresInfo, name: str, owner: str) -> None:
    """Hand what the superuser made in `name`'s public schema (an older `make up`'s
    migrations) to `owner`, so its migrations and queries keep working."""
    conn = await asyncpg.connect(
        host=server.socket_dir, port=server.port, user=SUPERUSER, database=name, timeout=5
    )
    try:
        rows = await conn.fetch(
            "SELECT c.relname, c.relkind::text AS relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
            " AND pg_get_userbyid(c.relowner) <> $1",
            owner,
        )
        kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
        for row in rows:
            if row["relkind"] == "S" and await conn.fetchval(
                "SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
                " WHERE s.relname = $1 AND d.deptype IN ('a', 'i')",
                row["relname"],
            ):
                continue  # owned by its table: moves with it
            await conn.execute(
                f'ALTER {kinds[row["relkind"]]} public."{row["relname"]}" OWNER TO "{owner}"'
            )
        functions = await conn.fetch(
            "SELECT p.oid::regprocedure::text AS sig FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> $1",
            owner,
        )
        for row in functions:
            await conn.execute(f'ALTER ROUTINE {row["sig"]} OWNER TO "{owner}"')
    finally:
        await conn.close()


def create_role(server: PostgresInfo, role: str, password: str) -> PostgresInfo:
    """Create login role `role` unless it exists, and (re)set its password (scram);
    return the info that logs in as it."""
    if not _DATABASE_NAME.match(role):
        raise ValueError(f"role name {role!r} must match {_DATABASE_NAME.pattern}")
    if not _PASSWORD.match(password):
        raise ValueError("a role's password must be 8-200 URL-safe characters")
    run_coroutine(lambda: _create_role(server, role, password))
    return server.as_role(role, password)


async def _create_role(server: PostgresInfo, role: str, password: str) -> None:
    conn = await _admin_connect(server, 5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            try:
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
                logger.info("created role %s", role)
            except asyncpg.DuplicateObjectError:
                pass
        # The password matches _PASSWORD: no quote can end the literal.
        # LOGIN too: a migration may have made the role NOLOGIN (audit_writer).
        await conn.execute(f"ALTER ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    finally:
        await conn.close()


def server_role_password(server: PostgresInfo, role: str) -> str:
    """The development password of a role shared by every database of the server (it
    is one role per server), kept 0600 in the server's folder and made the first time."""
    return dev_password(Path(server.socket_dir).parent / f"{role}-password")


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
    account = _run_as()
    password = dev_password(data_dir / PASSWORD_FILE)
    info = PostgresInfo(LOOPBACK, port, database, str(socket_dir), password=password)

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
        # Local logins are trusted: only the server's account (and root) may enter.
        _owned_dir(socket_dir, account, 0o700)
        if not (pgdata / "PG_VERSION").exists():
            # initdb into a scratch folder and rename: an interrupted initdb never
            # leaves a half-made pgdata that would look initialised next time.
            scratch = data_dir / "pgdata.initdb"
            shutil.rmtree(scratch, ignore_errors=True)
            _owned_dir(scratch, account, 0o700)
            _initdb(bindir, scratch, log_path, fsync)
            shutil.rmtree(pgdata, ignore_errors=True)
            scratch.rename(pgdata)
        # Open and rewrite in place: the file keeps its owner (the server's account).
        with (pgdata / "pg_hba.conf").open("w") as hba:
            hba.write(HBA)

    def after_start() -> None:
        create_role(info, SUPERUSER, password)
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
