"""Privacy of personal data in audit events: which fields are personal (the policy),
per-subject data keys wrapped by a master key (crypto-shredding), searchable
pseudonyms, and erasure and legal holds. Domain code: storage through
`storage.protocols.PrivacyStore`; the read-side view is audit_svc.read.disclosure."""

from __future__ import annotations

import logging
from pathlib import Path

from audit_svc.privacy.crypto import Keys, MasterKeyError, generate_key_file, read_key_file
from audit_svc.privacy.keyring import KeyRing
from audit_svc.privacy.policy import (
    DEFAULT_PATH,
    PrivacyPolicy,
    PrivacyPolicyError,
    load_privacy_policy,
)
from audit_svc.privacy.sealer import Sealer

__all__ = [
    "DEFAULT_PATH",
    "KeyRing",
    "Keys",
    "MasterKeyError",
    "PrivacyPolicy",
    "PrivacyPolicyError",
    "Sealer",
    "load_privacy_policy",
    "open_keys",
]

log = logging.getLogger(__name__)


def open_keys(path: str, *, dev: bool) -> Keys:
    """The keys of the master key file `path`. Missing: made as a development key
    when `dev` (a warning), else MasterKeyError."""
    file = Path(path)
    if not file.exists():
        if not dev:
            raise MasterKeyError(
                f"no privacy master key at {path} (AUDIT_PRIVACY_KEY_FILE): make one with "
                "`head -c 32 /dev/urandom | base64 > FILE` and keep it safe; without it no "
                "personal field can be read"
            )
        generate_key_file(file, dev=True)
        log.warning("made a development privacy master key at %s", path)
    master, _ = read_key_file(file)
    return Keys.from_master(master)
