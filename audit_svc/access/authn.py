"""From what the transport verified about a call to the `Principal` of that call.

The order: a bearer token (a user of the user-service) wins; else the SPIFFE id of
the verified client certificate (a service), unless that service is a relay (the
gateway), whose own certificate grants nothing; else, only in dev mode and only for
a loopback caller, the anonymous principal; else UNAUTHENTICATED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from audit_svc.access.policy import Policy
from audit_svc.access.principal import ADMIN, PII_READER, READER, Kind, Principal
from audit_svc.errors import Unauthenticated

# Permissions of a user-service account that grant read roles here.
PERMISSION_ROLES = {"audit:read": READER, "audit:pii_read": PII_READER, "audit:admin": ADMIN}
DEV_MODE_BANNER = (
    "!!! DEV MODE (AUDIT_DEV_MODE=true): callers on loopback without credentials may read "
    "and write every audit event, as the anonymous principal, and see personal fields "
    "(username, IP address, user agent, personal details) in clear text. "
    "Never outside `make up`. !!!"
)
ANONYMOUS = Principal(
    Kind.ANONYMOUS, "anonymous@loopback (dev mode)", frozenset({ADMIN, PII_READER})
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the transport verified: the peer certificate's SPIFFE id (None when
    plaintext), the bearer token of the `authorization` metadata ('' if none), and
    whether the caller is on loopback (for a relayed call: the original caller)."""

    spiffe_id: str | None
    bearer: str
    loopback: bool


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified access token says."""

    user_id: str
    permissions: frozenset[str]


class TokenVerifier(Protocol):
    """Checks signature, expiry, audience and algorithm; raises Unauthenticated."""

    def verify(self, token: str) -> TokenClaims: ...


class Authenticator:
    """Turns verified credentials into a Principal (see the module docstring)."""

    def __init__(self, policy: Policy, tokens: TokenVerifier | None, *, dev_mode: bool) -> None:
        self.policy = policy
        self._tokens = tokens
        self.dev_mode = dev_mode

    def principal(self, creds: Credentials) -> Principal:
        if creds.bearer:
            if self._tokens is None:
                raise Unauthenticated(
                    "bearer tokens are not accepted here (AUDIT_TOKEN_PUBLIC_KEY_FILE is not set)",
                    reason="TOKENS_NOT_ACCEPTED",
                )
            claims = self._tokens.verify(creds.bearer)
            roles = frozenset(
                PERMISSION_ROLES[p] for p in claims.permissions if p in PERMISSION_ROLES
            )
            return Principal(Kind.USER, f"user:{claims.user_id}", roles)
        if creds.spiffe_id is not None and not self.policy.is_relay(creds.spiffe_id):
            return Principal(
                Kind.SERVICE, creds.spiffe_id, self.policy.service_roles(creds.spiffe_id)
            )
        if self.dev_mode and creds.loopback:
            return ANONYMOUS
        raise Unauthenticated(
            "no credentials: present a client certificate of the mesh, or a bearer token",
            reason="NO_CREDENTIALS",
        )

    def publisher(self, user_id: str) -> Principal:
        """The principal of a RabbitMQ message whose `user_id` property the broker
        checked against the publishing connection's user (Policy.amqp_principal).
        Without one: the anonymous principal in dev mode, else UNAUTHENTICATED."""
        if user_id:
            return self.policy.amqp_principal(user_id)
        if self.dev_mode:
            return ANONYMOUS
        raise Unauthenticated(
            "the message has no user_id property (set it to the publishing user)",
            reason="NO_PUBLISHER_IDENTITY",
        )
