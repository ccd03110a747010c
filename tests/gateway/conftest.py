"""The gateway on free ports in front of real servers: the audit-service on a fresh
PostgreSQL database, a small real user-service, and the test-only EverythingService.
Tests talk to it over real HTTP with httpx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from audit_svc.app import AuditApp
from gateway import Listener, MeshConfig, Transcoding
from gateway.descriptors import Descriptors
from tests.gateway.harness import (
    Everything,
    EverythingFactory,
    Mesh,
    client,
    running_gateway,
)
from tests.gateway.servers import EVERYTHING, EverythingServer, UserServer, compile_test_protos
from tests.testkit import tls


@pytest.fixture
async def audit_app(audit_db: str) -> AsyncIterator[AuditApp]:
    """A real audit-service on a free port, over a fresh empty database, in dev mode
    (anonymous REST callers on loopback, as `make up`); tests/gateway/test_auth.py
    covers it without."""
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0", dev_mode=True)
    async with AuditApp(settings) as app:
        yield app


@pytest.fixture
async def mesh(audit_app: AuditApp) -> AsyncIterator[Mesh]:
    async with UserServer() as users:
        upstreams = f"audit=127.0.0.1:{audit_app.port},user=127.0.0.1:{users.port}"
        async with running_gateway(upstreams=upstreams) as gateway:
            async with client(gateway.ports["audit"]) as audit, client(gateway.ports["user"]) as u:
                yield Mesh(gateway, audit_app, users, audit, u)


@pytest.fixture(scope="session")
def test_descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_test_protos(tmp_path_factory.mktemp("gwtest"))


@pytest.fixture
async def everything_with(
    test_descriptor_set: Path,
) -> AsyncIterator[EverythingFactory]:
    """Starts the gateway in front of the EverythingService with given transcoding options."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**options: object) -> Everything:
            server = await stack.enter_async_context(
                EverythingServer(Descriptors.load(test_descriptor_set))
            )
            listener = Listener("everything", 0, f"127.0.0.1:{server.port}", (EVERYTHING,))
            mesh = MeshConfig((listener,), Transcoding(**options))  # type: ignore[arg-type]
            gateway = await stack.enter_async_context(
                running_gateway(mesh, descriptor_set=test_descriptor_set)
            )
            http = await stack.enter_async_context(client(gateway.ports["everything"]))
            return Everything(gateway, server, http)

        yield start


@pytest.fixture
async def everything(everything_with: EverythingFactory) -> Everything:
    return await everything_with()
