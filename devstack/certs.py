"""The local mesh's identities: a development CA and one X509-SVID-style certificate
per service (its only URI SAN `spiffe://auditmesh.local/<service>`), EC P-256 keys,
PEM files under `.run/certs/` (gitignored, key files mode 0600).

`python -m devstack certs` re-issues every service certificate under the same CA
(rotation); `--new-ca` replaces the CA too. `make up` creates what is missing and
re-issues a certificate that expires within a week.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshkit.tls import TRUST_DOMAIN, TlsFiles

# Every identity `make up` issues: the services, the gateway, devstack's own probes,
# and one for an operator's grpcurl.
MESH_IDENTITIES = ("audit-service", "user-service", "gateway", "devstack", "operator")
SERVICE_DAYS = 90
CA_DAYS = 3650
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, as objects and as the file of its certificate."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(folder: Path, name: str = "auditmesh development CA") -> Authority:
    """A new self-signed CA in `folder` (ca.pem, ca-key.pem), replacing any there."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(folder / "ca-key.pem", _key_pem(key), private=True)
    _write(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key, folder / "ca.pem")


def load_ca(folder: Path) -> Authority | None:
    """The CA kept in `folder`, or None if there is none."""
    cert_file, key_file = folder / "ca.pem", folder / "ca-key.pem"
    if not (cert_file.is_file() and key_file.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Authority(cert, key, cert_file)


def issue(
    ca: Authority,
    folder: Path,
    service: str,
    *,
    valid_days: float = SERVICE_DAYS,
    not_before: dt.datetime | None = None,
    uris: Iterable[str] | None = None,
) -> TlsFiles:
    """`<service>.pem` and `<service>-key.pem` in `folder`, signed by `ca`: the URI SAN
    `spiffe://auditmesh.local/<service>` (or `uris`, for tests of bad certificates),
    and DNS `<service>`, `localhost`, IP 127.0.0.1 so loopback dials verify."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(u)
        for u in (uris if uris is not None else [f"spiffe://{TRUST_DOMAIN}/{service}"])
    ]
    names += [
        x509.DNSName(service),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{service}.pem", folder / f"{service}-key.pem"
    _write(key_file, _key_pem(key), private=True)
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(str(ca.cert_file), str(cert_file), str(key_file))


def files_of(folder: Path, service: str) -> TlsFiles:
    """Where the files of `service` are kept in `folder` (whether or not they exist)."""
    return TlsFiles(
        str(folder / "ca.pem"), str(folder / f"{service}.pem"), str(folder / f"{service}-key.pem")
    )


def _fresh(files: TlsFiles) -> bool:
    path = Path(files.cert_file)
    if not path.is_file() or not Path(files.key_file).is_file():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc - RENEW_BEFORE > _now()


def ensure_certs(
    folder: Path, identities: Iterable[str] = MESH_IDENTITIES, *, rotate: bool = False
) -> dict[str, TlsFiles]:
    """The files of each identity: the CA made if missing, a certificate issued if
    missing, expiring within a week, or `rotate` is set."""
    ca = load_ca(folder) or create_ca(folder)
    out = {}
    for service in identities:
        files = files_of(folder, service)
        out[service] = files if _fresh(files) and not rotate else issue(ca, folder, service)
    return out


def tls_settings(folder: Path, service: str) -> dict[str, str]:
    """The tls_ca_file, tls_cert_file, tls_key_file settings of `service`'s files."""
    f = files_of(folder, service)
    return {"tls_ca_file": f.ca_file, "tls_cert_file": f.cert_file, "tls_key_file": f.key_file}
