"""Mutual TLS on the audit-service: only a certificate of the mesh's CA, valid now,
gets through the handshake; the identity is the one SPIFFE URI SAN it carries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from devstack.certs import create_ca, issue, load_ca
from meshkit.tls import IdentityError, SpiffeId, TlsFiles, peer_identity
from tests.testkit import tls


async def call_health(port: int, credentials: grpc.ChannelCredentials) -> None:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        await pb_grpc.AuditServiceStub(channel).Health(pb.HealthRequest(), timeout=5)


def creds(files: TlsFiles, *, with_cert: bool = True) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    if not with_cert:
        return grpc.ssl_channel_credentials(ca)
    return grpc.ssl_channel_credentials(ca, key, cert)


async def test_a_mesh_certificate_gets_through(app: AuditApp) -> None:
    await call_health(app.port, creds(tls.files()))


async def test_a_client_without_a_certificate_is_refused_at_the_handshake(app: AuditApp) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_health(app.port, creds(tls.files(), with_cert=False))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_of_another_ca_is_refused(app: AuditApp, tmp_path: Path) -> None:
    other = issue(create_ca(tmp_path, "someone else's CA"), tmp_path, "user-service")
    mixed = TlsFiles(tls.files().ca_file, other.cert_file, other.key_file)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_health(app.port, creds(mixed))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_expired_certificate_is_refused(app: AuditApp, tmp_path: Path) -> None:
    ca = load_ca(tls.folder())
    assert ca is not None
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = issue(ca, tmp_path, "user-service", not_before=start, valid_days=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_health(app.port, creds(expired))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def pem_of(tmp_path: Path, uris: list[str]) -> bytes:
    ca = load_ca(tls.folder())
    assert ca is not None
    return Path(issue(ca, tmp_path, "odd", uris=uris).cert_file).read_bytes()


def test_the_identity_is_the_one_spiffe_uri_san(tmp_path: Path) -> None:
    pem = pem_of(tmp_path, ["spiffe://auditmesh.local/billing-service"])
    assert peer_identity({"x509_pem_cert": [pem]}) == SpiffeId("auditmesh.local", "billing-service")
    assert peer_identity({}) is None  # plaintext: no identity


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["spiffe://auditmesh.local/a", "spiffe://auditmesh.local/b"],
        ["spiffe://elsewhere.example/user-service"],
        ["https://auditmesh.local/user-service"],
    ],
)
def test_no_several_or_foreign_uri_sans_are_no_identity(tmp_path: Path, uris: list[str]) -> None:
    with pytest.raises(IdentityError):
        peer_identity({"x509_pem_cert": [pem_of(tmp_path, uris)]})
