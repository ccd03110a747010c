"""The one way tests set up mutual TLS: a CA of the test session (devstack.certs, in a
temporary folder), a certificate per identity made on first use, settings overrides
that point a service at its files, and client channels that dial with an identity.

Servers under test run with `tls=required` like production; nothing is disabled.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import grpc

from audit_svc.settings import Settings as AuditSettings
from devstack.certs import ensure_certs, files_of, tls_settings
from meshkit.tls import TlsFiles, aio_channel, server_credentials
from tests.testkit.databases import as_writer

# The identity test clients write and read as (tests/audit_svc grant it everything).
TEST_CLIENT = "test-client"


@functools.cache
def folder() -> Path:
    """The session's CA and certificates, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="auditmesh-test-certs-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def files(identity: str = TEST_CLIENT) -> TlsFiles:
    """The CA, certificate and key of `identity` (spiffe://auditmesh.local/<identity>)."""
    return ensure_certs(folder(), [identity])[identity]


def settings_of(identity: str) -> dict[str, Any]:
    """Settings overrides (tls_ca_file, tls_cert_file, tls_key_file) of a service."""
    files(identity)
    return tls_settings(folder(), identity)


def channel(
    target: str, identity: str = TEST_CLIENT, certs: Path | str | None = None
) -> grpc.aio.Channel:
    """A channel to `target` over mutual TLS as `identity`; of the CA in `certs` (a
    devstack stack's certificates folder) when given, else of the test session's."""
    tls = files(identity) if certs is None else files_of(Path(certs), identity)
    return aio_channel(target, tls)


TEST_POLICY = Path(__file__).with_name("policy.toml")


@functools.cache
def privacy_key_file() -> str:
    """The session's privacy master key (a production-like one: no dev marker)."""
    from audit_svc.privacy.crypto import generate_key_file

    path = folder() / "privacy-master-key"
    generate_key_file(path, dev=False)
    return str(path)


def stored_user_id(user_id: str) -> str:
    """What the test audit-services store as `user_id` (its pseudonym under the
    session's privacy master key: audit_svc.privacy), for tests that read the table."""
    from audit_svc.privacy import open_keys

    return open_keys(privacy_key_file(), dev=False).subject(user_id)


def audit_settings(**values: Any) -> AuditSettings:
    """The audit-service's settings for a test: its own certificate of the session's
    CA, the test policy (tests/testkit/policy.toml), the session's privacy master key,
    no read audit, no write quota, plus `values`; a superuser database URL becomes
    audit_writer's (the runtime role `make up` runs it as: INSERT-only on audit_events)."""
    # Reads are not audited by default here: most tests count the events they wrote;
    # tests/gateway/test_auth.py and tests/audit_svc/test_readers.py turn it on. Most
    # tests write as one principal as fast as they can: the write quota is off unless
    # a test sets it (tests/audit_svc/test_abuse.py, tests/audit_client).
    base = {
        **settings_of("audit-service"),
        "policy_file": str(TEST_POLICY),
        "privacy_key_file": privacy_key_file(),
        "read_audit": False,
        "write_quota_events_per_second": 0,
        "write_quota_bytes_per_second": 0,
    }
    if "database_url" in values:
        values["database_url"] = as_writer(values["database_url"])
    return AuditSettings.from_env({}, **{**base, **values})


def server_credentials_of(identity: str) -> grpc.ServerCredentials:
    """Server credentials of `identity` (for test-only gRPC servers)."""
    return server_credentials(files(identity))


def grpcurl_flags(identity: str = TEST_CLIENT) -> list[str]:
    """grpcurl's -cacert, -cert and -key flags for `identity`."""
    f = files(identity)
    return ["-cacert", f.ca_file, "-cert", f.cert_file, "-key", f.key_file]


def env_of(prefix: str, identity: str) -> dict[str, str]:
    """`<prefix>TLS_CA_FILE`, `_CERT_FILE`, `_KEY_FILE` variables of `identity`."""
    return {f"{prefix}{name.upper()}": value for name, value in settings_of(identity).items()}
