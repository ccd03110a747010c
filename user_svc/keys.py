"""The service's secret keys: from the settings, or (development only) generated on
first start and kept in the users database, with a loud warning at every start."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from user_svc.settings import Settings
from user_svc.storage.protocols import UserStore
from user_svc.tokens import public_key_pem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Keys:
    """Signing key of access tokens (and page tokens); sealing keys of TOTP secrets and
    of the mail outbox."""

    jwt_signing: bytes = field(repr=False)
    mfa_encryption: bytes = field(repr=False)
    mail_encryption: bytes = field(repr=False)


async def load_keys(store: UserStore, settings: Settings) -> Keys:
    """The configured keys; a missing one is the database's development key."""
    found: dict[str, bytes] = {}
    for name in ("jwt_signing_key", "mfa_encryption_key", "mail_encryption_key"):
        configured: str = getattr(settings, name)
        if configured:
            found[name] = configured.encode()
            continue
        async with store.transaction() as db:
            key, created = await db.dev_key(name, secrets.token_bytes(32))
        log.warning(
            "USER_%s is not set: using a DEVELOPMENT key %s in the users database "
            "(table dev_keys). Anyone who can read that database can %s. Set USER_%s "
            "(at least 32 random characters) and USER_REQUIRE_KEYS=true in production.",
            name.upper(),
            "generated now and kept" if created else "generated on first start, kept",
            _EXPOSES[name],
            name.upper(),
        )
        found[name] = key
    return Keys(
        jwt_signing=found["jwt_signing_key"],
        mfa_encryption=found["mfa_encryption_key"],
        mail_encryption=found["mail_encryption_key"],
    )


_EXPOSES = {
    "jwt_signing_key": "forge access tokens",
    "mfa_encryption_key": "read TOTP secrets",
    "mail_encryption_key": "read reset tokens in the mail outbox",
}


def write_public_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Publish the tokens' public key (PEM) for verifiers, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(public_key_pem(key))
    os.replace(tmp, path)
    log.info("access tokens' public key written to %s", path)
