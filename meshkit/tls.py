"""Mutual TLS for every gRPC link of the mesh, and the caller's SPIFFE identity.

Each service holds an X.509 certificate whose only URI SAN is its SPIFFE id
(`spiffe://auditmesh.local/<service>`, as an X509-SVID has it), issued by the mesh's
CA. Servers require and verify client certificates; clients dial with their own. The
identity of a caller comes from the certificate the TLS handshake verified
(`context.auth_context()`), never from a header or a field.

`tls=plaintext` is an explicit opt-out (benchmarks, a mesh behind its own secure
transport); it logs a loud warning at start-up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

log = logging.getLogger(__name__)

TRUST_DOMAIN = "auditmesh.local"
REQUIRED = "required"
PLAINTEXT = "plaintext"
MODES = (REQUIRED, PLAINTEXT)


class IdentityError(ValueError):
    """The peer's certificate does not carry exactly one SPIFFE id of our trust domain."""


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """`spiffe://<trust_domain>/<path>`; `name` is the path (the service's name)."""

    trust_domain: str
    name: str

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}/{self.name}"

    @classmethod
    def parse(cls, uri: str, trust_domain: str = TRUST_DOMAIN) -> SpiffeId:
        """The id of a URI SAN; IdentityError for another scheme or trust domain."""
        scheme, sep, rest = uri.partition("://")
        domain, _, path = rest.partition("/")
        if scheme != "spiffe" or not sep or not path or "?" in path or "#" in path:
            raise IdentityError(f"not a SPIFFE id: {uri!r}")
        if domain != trust_domain:
            raise IdentityError(f"{uri!r} is not of trust domain {trust_domain}")
        return cls(domain, path)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of one service: the CA bundle it trusts, its certificate and key."""

    ca_file: str
    cert_file: str
    key_file: str

    def read(self) -> tuple[bytes, bytes, bytes]:
        return tuple(Path(p).read_bytes() for p in (self.ca_file, self.cert_file, self.key_file))  # type: ignore[return-value]


def tls_problems(prefix: str, mode: str, files: TlsFiles, name: str = "TLS") -> list[str]:
    """Settings problems of one `<prefix><name>` mode and its three files."""
    if mode not in MODES:
        return [f"{prefix}{name} must be {REQUIRED} or {PLAINTEXT}, got {mode!r}"]
    if mode == PLAINTEXT:
        return []
    out = []
    for field, path in (("CA_FILE", files.ca_file), ("CERT_FILE", files.cert_file),
                        ("KEY_FILE", files.key_file)):  # fmt: skip
        if not path:
            out.append(f"{prefix}{name}_{field} must be set when {prefix}{name}={REQUIRED}")
        elif not Path(path).is_file():
            out.append(f"{prefix}{name}_{field}={path!r} is not a readable file")
    return out


def warn_plaintext(what: str, variable: str) -> None:
    """The start-up warning of a link that runs without TLS."""
    log.warning(
        "!!! %s runs WITHOUT TLS (%s=plaintext): callers are not authenticated and "
        "traffic is readable by anyone on the path. Never do this outside a benchmark. !!!",
        what,
        variable,
    )


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS that requires a client certificate signed by the CA of `files`."""
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """TLS that verifies the server against the CA and presents our own certificate."""
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def aio_channel(
    target: str, files: TlsFiles | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A grpc.aio channel: mutual TLS with `files`, plaintext when None."""
    if files is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, channel_credentials(files), options=list(options))


def peer_identity(auth_context: Mapping[str, Sequence[bytes]]) -> SpiffeId | None:
    """The SPIFFE id in the peer certificate that the handshake verified; None on a
    plaintext connection. IdentityError when it has no URI SAN, several, or one that
    is not a SPIFFE id of our trust domain."""
    pems = auth_context.get("x509_pem_cert")
    if not pems:
        return None
    return _identity_of(bytes(pems[0]))


@functools.lru_cache(maxsize=256)
def _identity_of(pem: bytes) -> SpiffeId:
    # Parsed once per distinct certificate: a stream of calls costs one dict lookup.
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise IdentityError("the certificate has no subject alternative name") from None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise IdentityError(f"the certificate has {len(uris)} URI SANs, not exactly one")
    return SpiffeId.parse(uris[0])
