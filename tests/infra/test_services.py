"""The real servers answer real clients, and devstack starts and stops them cleanly."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aio_pika
import asyncpg
import pytest
import redis
import redis.asyncio
import urllib3
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig

from devstack import (
    InfluxInfo,
    MissingBinaryError,
    PortInUseError,
    PostgresInfo,
    ProcessSpec,
    RabbitInfo,
    RedisInfo,
    S3Info,
    ServiceStartError,
    Settings,
    SettingsError,
    Stack,
    create_database,
    family,
    free_ports,
    infra_components,
    start_postgres,
    start_service,
    start_time,
    wait_for_series,
)
from devstack.binaries import require_binary
from devstack.cli import components_of
from devstack.mesh import USER_ROLE, service_database
from devstack.postgres import create_role
from devstack.redis_server import redis_plan
from devstack.service import ServicePlan
from devstack.settings import PORT_VARIABLES
from meshkit import amqp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def minio_client(s3: S3Info) -> Iterator[Minio]:
    pool = urllib3.PoolManager()
    yield s3.client(pool)
    pool.clear()


def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def test_postgres_answers_sql_and_keeps_rows(postgres: PostgresInfo) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "audit"
        assert (await conn.fetchval("SHOW server_version")).startswith("15.")
        await conn.execute("CREATE TABLE infra_probe (id int PRIMARY KEY, note text)")
        await conn.executemany("INSERT INTO infra_probe VALUES ($1, $2)", [(1, "one"), (2, "two")])
        rows = await conn.fetch("SELECT id, note FROM infra_probe ORDER BY id")
        assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]
    finally:
        await conn.close()


async def test_create_database_is_idempotent_and_usable(postgres: PostgresInfo) -> None:
    first = create_database(postgres, "infra_extra")
    again = create_database(postgres, "infra_extra")
    assert first == again
    assert first.dsn == (
        f"postgresql://postgres:{postgres.password}@127.0.0.1:{postgres.port}/infra_extra"
    )
    conn = await asyncpg.connect(first.dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "infra_extra"
    finally:
        await conn.close()


async def test_tcp_logins_need_the_password_scram(postgres: PostgresInfo) -> None:
    """No password or a wrong one is refused over TCP; the server stores scram."""
    for wrong in ("", "auditmesh-dev-wrong"):
        with pytest.raises(
            (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)
        ):
            await asyncpg.connect(replace(postgres, password=wrong).dsn)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        hashed = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
        assert hashed.startswith("SCRAM-SHA-256$")
    finally:
        await conn.close()


async def test_a_service_role_owns_its_database(postgres: PostgresInfo) -> None:
    """...and is handed what the superuser made there before (an older make up's)."""
    old = create_database(postgres, "infra_owned")
    conn = await asyncpg.connect(old.dsn)
    try:
        await conn.execute("CREATE TABLE older (id serial PRIMARY KEY)")
    finally:
        await conn.close()
    role = create_role(postgres, "infra_svc", "auditmesh-dev-infra-svc")
    own = create_database(role, "infra_owned", owner="infra_svc")
    conn = await asyncpg.connect(own.dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == "infra_svc"
        await conn.execute("CREATE TABLE mine (id int)")  # the owner may create tables
        await conn.execute("INSERT INTO older DEFAULT VALUES")
        await conn.execute("ALTER TABLE older ADD COLUMN note text")
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(replace(own, password="auditmesh-dev-wrong").dsn)


async def test_the_user_service_role_cannot_read_files_such_as_the_audit_keys(
    postgres: PostgresInfo, tmp_path: Path
) -> None:
    # A superuser session reads any file the server's account can (pg_read_file, COPY
    # FROM): the services used to log in as one, next to the audit-service's keys.
    probe = Path(postgres.socket_dir).parent / "probe-key.pem"  # readable by the server
    probe.write_text("not a key\n")
    user = service_database(postgres, tmp_path / "user-service", "infra_users", USER_ROLE)
    admin = await asyncpg.connect(postgres.for_database("infra_users").dsn)
    conn = await asyncpg.connect(user.dsn)
    try:
        assert await admin.fetchval("SELECT pg_read_file($1)", str(probe)) == "not a key\n"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT pg_read_file($1)", str(probe))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"COPY (SELECT 1) TO '{tmp_path / 'out'}'")
        assert not await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1", USER_ROLE
        )
    finally:
        await conn.close()
        await admin.close()
        probe.unlink()


def test_redis_requires_its_password(redis_server: RedisInfo) -> None:
    assert redis_server.password
    with redis.Redis(host=redis_server.host, port=redis_server.port) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping() is True


async def test_redis_keeps_a_list(redis_server: RedisInfo) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        key = f"infra:{uuid.uuid4().hex}"
        await client.rpush(key, "a", "b", "c")
        assert await client.llen(key) == 3
        assert await client.lrange(key, 0, -1) == [b"a", b"b", b"c"]
    finally:
        await client.aclose()


async def test_influx_client_writes_points_that_read_back(influx: InfluxInfo) -> None:
    run = uuid.uuid4().hex
    at_ms = int(time.time() * 1000)
    point = {
        "measurement": "audit_events",
        "tags": {"event_type": "auth.login_success", "service": "user-service", "run": run},
        "fields": {"count": 7},
        "time": at_ms * 1_000_000,  # the client's default precision: nanoseconds
    }
    async with InfluxDBClientAsync(url=influx.url, token=influx.token, org=influx.org) as client:
        assert await client.write_api().write(bucket=influx.bucket, record=point)

    series = wait_for_series(influx, f'audit_events_count{{run="{run}"}}')

    assert len(series) == 1
    assert series[0].labels == {
        "__name__": "audit_events_count",
        "event_type": "auth.login_success",
        "service": "user-service",
        "run": run,
    }
    assert series[0].values == [7]
    assert series[0].timestamps_ms == [at_ms]


def test_s3_round_trips_an_object(minio_client: Minio) -> None:
    bucket = bucket_name()
    minio_client.make_bucket(bucket)
    body = b'{"event_type": "auth.login_success"}'
    minio_client.put_object(bucket, "events/1.json", io.BytesIO(body), len(body))

    response = minio_client.get_object(bucket, "events/1.json")
    try:
        assert response.read() == body
    finally:
        response.close()
        response.release_conn()
    assert bucket in [b.name for b in minio_client.list_buckets()]


def test_s3_object_lock_keeps_a_version_from_deletion(minio_client: Minio) -> None:
    bucket = bucket_name()
    minio_client.make_bucket(bucket, object_lock=True)
    minio_client.set_object_lock_config(bucket, ObjectLockConfig(COMPLIANCE, 1, DAYS))
    assert minio_client.get_bucket_versioning(bucket).status == "Enabled"

    body = b"checkpoint"
    written = minio_client.put_object(bucket, "checkpoint.json", io.BytesIO(body), len(body))
    assert written.version_id
    retention = minio_client.get_object_retention(bucket, "checkpoint.json")
    assert retention is not None and retention.mode == COMPLIANCE

    with pytest.raises(S3Error) as refused:
        minio_client.remove_object(bucket, "checkpoint.json", version_id=written.version_id)
    assert refused.value.code == "AccessDenied"


async def test_rabbitmq_listens_on_loopback_only_and_refuses_other_users(
    rabbitmq: RabbitInfo,
) -> None:
    # AMQP, epmd and Erlang distribution: no listener of the node on another address.
    ports = {rabbitmq.port, rabbitmq.epmd_port, rabbitmq.dist_port}
    listening = _listeners(ports)
    assert {port for port, _ in listening} == ports
    assert {address for _, address in listening} <= {"127.0.0.1", "::1"}
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await amqp.connect(f"amqp://guest:guest@127.0.0.1:{rabbitmq.port}/", 5)


def _listeners(ports: set[int]) -> set[tuple[int, str]]:
    """(port, address) of the TCP sockets listening on these ports (from /proc/net)."""
    found = set()
    for table, kind in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) in ports:
                raw = bytes.fromhex(address)
                # /proc/net prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((int(port, 16), socket.inet_ntop(kind, words)))
    return found


@pytest.mark.parametrize("name", ["postgres", "redis", "influx", "s3", "rabbitmq"])
def test_taken_fixed_port_names_the_port_and_the_variable(name: str, tmp_path: Path) -> None:
    variable = {
        "postgres": "MESH_POSTGRES_PORT",
        "redis": "MESH_REDIS_PORT",
        "influx": "MESH_INFLUX_PORT",
        "s3": "MESH_S3_PORT",
        "rabbitmq": "MESH_RABBITMQ_PORT",
    }[name]
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        settings = Settings.from_env({variable: str(port), "MESH_RUN_DIR": str(tmp_path)})
        components = [c for c in infra_components(settings) if c.name == name]

        with pytest.raises(PortInUseError) as taken:
            Stack(tmp_path, components).start()

    assert (taken.value.port, taken.value.env_var) == (port, variable)
    assert f"port {port} is already in use on 127.0.0.1" in str(taken.value)
    assert f"set {variable} to another port" in str(taken.value)
    assert not (tmp_path / name).exists(), "nothing was started"


def test_settings_list_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as invalid:
        Settings.from_env(
            {"MESH_POSTGRES_PORT": "abc", "MESH_REDIS_PORT": "70000", "MESH_INFLUX_PORT": "9000"}
        )
    problems = invalid.value.problems
    assert len(problems) == 3
    for variable in ("MESH_POSTGRES_PORT", "MESH_REDIS_PORT", "MESH_INFLUX_PORT"):
        assert any(variable in problem for problem in problems)


def test_missing_binary_names_the_package_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingBinaryError) as missing:
        require_binary("redis-server", "apt-get install redis-server", path=str(tmp_path))
    assert missing.value.binary == "redis-server"
    assert "apt-get install redis-server" in str(missing.value)
    assert "make setup" in str(missing.value)


def test_a_server_that_fails_to_start_shows_its_log(tmp_path: Path) -> None:
    good = redis_plan(tmp_path, free_ports(1)[0])
    spec = ProcessSpec(
        name="redis",
        argv=(*good.spec.argv, "--no-such-directive", "x"),
        log_path=good.spec.log_path,
        ready=good.spec.ready,
    )
    with pytest.raises(ServiceStartError) as failed:
        start_service(ServicePlan(spec=spec, info=good.info, prepare=good.prepare))
    assert failed.value.log_path == tmp_path.resolve() / "redis.log"
    assert "no-such-directive" in failed.value.log_tail


async def test_stopping_postgres_leaves_no_process_behind(tmp_path: Path) -> None:
    server = start_postgres(tmp_path / "pg", fsync=False)
    conn = await asyncpg.connect(server.info.dsn)  # so a backend process exists
    processes = {server.process.pid: start_time(server.process.pid), **family(server.process.pid)}
    assert len(processes) >= 5, "postmaster, its helpers and our backend"

    server.stop()
    conn.terminate()

    assert [pid for pid, started in processes.items() if start_time(pid) == started] == []


def test_stack_stops_everything_when_its_block_raises(tmp_path: Path) -> None:
    components = [c for c in infra_components() if c.name == "redis"]
    with pytest.raises(RuntimeError), Stack(tmp_path, components) as stack:
        pid = stack.services["redis"].process.pid
        raise RuntimeError("boom")
    assert start_time(pid) is None


def test_cli_up_is_detached_idempotent_and_down_stops_it(tmp_path: Path) -> None:
    ports = dict(zip(PORT_VARIABLES, free_ports(len(PORT_VARIABLES)), strict=True))
    env = {
        **os.environ,
        "MESH_RUN_DIR": str(tmp_path / "run"),
        **{variable: str(ports[name]) for name, (variable, _) in PORT_VARIABLES.items()},
    }

    def devstack(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        up = devstack("up")
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert f"postgres  postgresql://postgres@127.0.0.1:{ports['postgres']}/audit" in lines
        assert f"redis     redis://127.0.0.1:{ports['redis']}/0" in lines
        assert any(line.startswith(f"audit     127.0.0.1:{ports['audit']} ") for line in lines)

        assert f"prometheus http://127.0.0.1:{ports['prometheus']} " in up.stdout

        settings = Settings.from_env(env)
        state = settings.state_file
        assert state.exists()
        status = devstack("status")
        assert status.returncode == 0, status.stdout
        assert "supervisor running" in status.stdout
        pids = _pids(status.stdout)
        assert len(pids) == len(components_of(settings))
        assert all(start_time(pid) is not None for pid in pids.values())

        again = devstack("up")
        assert again.returncode == 0
        assert again.stdout.startswith("already up")

        # A service that dies is started again by the supervisor, on the same port.
        killed = pids["audit"]
        os.kill(killed, signal.SIGKILL)
        revived = _wait_for_status(devstack, lambda now: now.get("audit", killed) != killed)
        assert revived["user"] == pids["user"]
        log = (settings.run_dir / "supervisor" / "supervisor.log").read_text()
        assert f"audit (pid {killed}) died" in log

        # `restart NAME` stops one component and starts it again.
        restarted = devstack("restart")
        assert restarted.returncode == 2  # names no component
        restarted = devstack("restart", "user")
        assert restarted.returncode == 0, restarted.stderr
        after = _pids(devstack("status").stdout)
        assert after["user"] != pids["user"] and start_time(pids["user"]) is None
        pids = after
    finally:
        down = devstack("down")

    assert down.returncode == 0, down.stderr
    assert all(start_time(pid) is None for pid in pids.values())
    assert not state.exists()
    assert devstack("down").stdout.strip() == "nothing was running"
    assert devstack("status").returncode == 1


def _pids(status: str) -> dict[str, int]:
    """Component -> pid, from `devstack status` lines that end in [pid N]."""
    return {
        line.split()[0]: int(line.rsplit("pid ", 1)[1].rstrip("]"))
        for line in status.splitlines()
        if "[pid " in line
    }


def _wait_for_status(
    devstack: Callable[..., subprocess.CompletedProcess[str]],
    until: Callable[[dict[str, int]], bool],
    timeout: float = 60.0,
) -> dict[str, int]:
    """Poll `devstack status` until every component answers and `until(pids)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        status = devstack("status")
        pids = _pids(status.stdout)
        if status.returncode == 0 and until(pids):
            return pids
        if time.monotonic() > deadline:
            raise TimeoutError(f"status never got there:\n{status.stdout}")
        time.sleep(0.5)
