"""RabbitMQ from Debian's rabbitmq-server, a node of its own: its folder (mnesia, logs,
config, Erlang cookie), AMQP on 127.0.0.1:`port`, and its own epmd and distribution
port on loopback, so several nodes (parallel test runs, `make up`) never meet on
epmd's 4369. No plugins (the management UI is not needed). Start-up takes a few
seconds: tests start one node per session.

Users and permissions come from a definitions file loaded at every boot: the
audit-service (the consumer: declares and reads the `audit.ingest*` queues) and each
publisher (writes to the ingest exchanges, not to the dead-letter ones; reads and
declares nothing). Each has a random development password, kept 0600 in the data
folder. No `guest` user exists.

epmd runs in the foreground beside the broker, in its process group, and the start
script stops it after the broker (a daemonised epmd would outlive the stack).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shlex
import signal
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from devstack import binaries
from devstack.ports import LOOPBACK, free_port, free_ports
from devstack.process import ProcessSpec
from devstack.secrets import dev_password
from devstack.service import RunningService, ServicePlan, start_service
from meshkit import amqp

CONSUMER = "audit-service"
PUBLISHERS = ("user-service",)
# The consumer's queues and exchanges, and what a publisher may write to.
CONSUMER_PATTERN = r"^audit\.ingest"
PUBLISH_PATTERN = r"^audit\.ingest(?!.*\.dead$)"
NODE = "rabbit@localhost"


@dataclass(frozen=True)
class RabbitInfo:
    """How AMQP clients reach the node: one user (and password) per service."""

    host: str
    port: int
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    epmd_port: int = 0
    dist_port: int = 0

    @property
    def url(self) -> str:
        """The consumer's URL (the audit-service's AUDIT_AMQP_URL)."""
        return self.url_for(CONSUMER)

    def url_for(self, user: str) -> str:
        """amqp://<user>:<password>@host:port/ of one of the node's users."""
        password = quote(self.passwords[user], safe="")
        return f"amqp://{quote(user, safe='')}:{password}@{self.host}:{self.port}/"

    def describe(self) -> str:
        """One line for humans: where it listens, and the users (passwords in the folder)."""
        return f"amqp://{self.host}:{self.port}/ (users {', '.join(sorted(self.passwords))})"


def probe(info: RabbitInfo) -> None:
    """Return once the consumer can log in over AMQP; raise otherwise."""

    async def login() -> None:
        connection = await amqp.connect(info.url, 2)
        await connection.close()

    # A plain connect first: aio-pika logs an error for every refused attempt.
    socket.create_connection((info.host, info.port), timeout=2).close()
    asyncio.run(login())


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(passwords: Mapping[str, str]) -> dict[str, object]:
    """The node's users and permissions (RabbitMQ definitions JSON)."""
    users = [
        {
            "name": name,
            "password_hash": password_hash(password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],  # never `impersonator`: the broker checks every user_id
        }
        for name, password in passwords.items()
    ]

    def grant(user: str) -> dict[str, str]:
        if user == CONSUMER:
            return dict(configure=CONSUMER_PATTERN, write=CONSUMER_PATTERN, read=CONSUMER_PATTERN)
        return dict(configure="^$", write=PUBLISH_PATTERN, read="^$")

    return {
        "users": users,
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": u, "vhost": "/", **grant(u)} for u in passwords],
    }


def rabbitmq_plan(
    data_dir: Path, port: int, *, publishers: Iterable[str] = PUBLISHERS
) -> ServicePlan[RabbitInfo]:
    """Plan a RabbitMQ node on 127.0.0.1:`port` with the consumer and `publishers`."""
    data_dir = data_dir.resolve()
    users = (CONSUMER, *publishers)
    passwords = {u: dev_password(data_dir / "passwords" / u) for u in users}
    epmd_port, dist_port = free_ports(2)
    info = RabbitInfo(LOOPBACK, port, passwords, epmd_port, dist_port)
    config = data_dir / "rabbitmq.conf"
    defs = data_dir / "definitions.json"
    env = {
        "HOME": str(data_dir),  # the Erlang cookie
        "RABBITMQ_NODENAME": NODE,
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(data_dir / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(data_dir / "plugins-expand"),
        "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": LOOPBACK,
        # Distribution on loopback too; schedulers sleep when idle (a shared machine).
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD": "none",
    }

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"listeners.tcp.default = {LOOPBACK}:{port}\n"
            "loopback_users = none\n"
            f"load_definitions = {defs}\n"
            "log.file = false\n"
            "log.console = true\n"
            "log.console.level = info\n"
        )
        fd = os.open(defs, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(definitions(passwords), out)
        (data_dir / "advanced.config").write_text("[].\n")
        (data_dir / "rabbitmq-env.conf").write_text("")
        (data_dir / "enabled_plugins").write_text("[].\n")

    epmd = shlex.quote(str(binaries.epmd()))
    server = shlex.quote(str(binaries.rabbitmq_server()))
    # epmd first, in the foreground of this process group; the broker once it answers.
    # On SIGTERM the broker stops first (it deregisters from epmd), then epmd.
    script = (
        f"{epmd} -port {epmd_port} -address {LOOPBACK} & epmd=$!\n"
        f"until {epmd} -port {epmd_port} -names >/dev/null 2>&1; do sleep 0.05; done\n"
        f"{server} & server=$!\n"
        "trap 'kill -TERM $server 2>/dev/null' TERM INT\n"
        "wait $server; wait $server; status=$?\n"
        "kill $epmd 2>/dev/null; wait $epmd\n"
        "exit $status\n"
    )
    spec = ProcessSpec(
        name="rabbitmq",
        argv=("/bin/sh", "-c", script),
        log_path=data_dir / "rabbitmq.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        env=env,
        ready_timeout=60.0,
        stop_signal=signal.SIGTERM,
        stop_timeout=20.0,
    )
    return ServicePlan(spec=spec, info=info, prepare=prepare)


def start_rabbitmq(
    data_dir: Path, port: int | None = None, *, publishers: Iterable[str] = PUBLISHERS
) -> RunningService[RabbitInfo]:
    """Start a RabbitMQ node on `port` (a free one if None) with these publishers."""
    plan = rabbitmq_plan(data_dir, free_port() if port is None else port, publishers=publishers)
    return start_service(plan)
