"""The authenticated caller of one call, as domain code sees it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Read roles: query, statistics, live tail; personal fields in clear text (else masked,
# audit_svc.read.disclosure); and integrity checks, erasure and legal holds.
READER = "audit.reader"
PII_READER = "audit.pii_reader"
ADMIN = "audit.admin"
IMPLIED = {ADMIN: frozenset({READER}), PII_READER: frozenset({READER})}


class Kind(enum.Enum):
    """How the caller was authenticated."""

    SERVICE = "service"  # a verified mTLS certificate (SPIFFE id)
    USER = "user"  # a bearer token of the user-service
    ANONYMOUS = "anonymous"  # dev mode only: a loopback caller without credentials


@dataclass(frozen=True, slots=True)
class Principal:
    """`name` is what the stored event records: a SPIFFE id, `user:<id>`, or
    `anonymous@<address> (dev mode)`. `roles` are the read roles it holds."""

    kind: Kind
    name: str
    roles: frozenset[str] = frozenset()

    def has(self, role: str) -> bool:
        """True when `role` is held directly or implied (admin implies reader)."""
        return role in self.roles or any(role in IMPLIED.get(r, ()) for r in self.roles)
