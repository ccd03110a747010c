"""What gateway tests share: the gateway on free ports, HTTP clients, and the
handles the fixtures in conftest.py give to tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from audit_svc.app import AuditApp
from gateway import Gateway, MeshConfig, Settings, load_config
from tests.gateway.servers import EverythingServer, UserServer
from tests.testkit import tls

MAIN_DESCRIPTORS = Path(__file__).resolve().parents[2] / "gen" / "auditmesh.binpb"


def client(port: int) -> httpx.AsyncClient:
    """An HTTP client of one listener (no proxies from the environment)."""
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30)


@contextlib.asynccontextmanager
async def running_gateway(
    mesh: MeshConfig | None = None, descriptor_set: Path = MAIN_DESCRIPTORS, **settings: object
) -> AsyncIterator[Gateway]:
    """The gateway with every listener on a free port; `settings` as GATEWAY_* values."""
    base = mesh or load_config()
    ports = ",".join(f"{x.name}=0" for x in base.listeners)
    values = {
        "ports": ports,
        "descriptor_set": str(descriptor_set),
        **tls.settings_of("gateway"),
        **settings,
    }
    async with Gateway(Settings.from_env({}, **values), mesh) as gateway:
        yield gateway


@dataclass
class Mesh:
    """The gateway with the shipped listeners: audit (8002's) and user (8001's)."""

    gateway: Gateway
    app: AuditApp
    users: UserServer
    audit: httpx.AsyncClient
    user: httpx.AsyncClient


@dataclass
class Everything:
    """The gateway in front of the test-only EverythingService."""

    gateway: Gateway
    server: EverythingServer
    http: httpx.AsyncClient


EverythingFactory = Callable[..., Awaitable[Everything]]
