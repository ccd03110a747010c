"""What the transport verified about a call, handed to the domain's Authenticator:
the SPIFFE id of the peer certificate (meshkit.tls), the bearer token, and whether
the caller is on loopback. The only place the audit-service reads credentials."""

from __future__ import annotations

import ipaddress

import grpc

from audit_svc.access import Principal
from audit_svc.access.authn import Authenticator, Credentials
from audit_svc.errors import Unauthenticated
from meshkit.tls import IdentityError, peer_identity


def credentials(context: grpc.aio.ServicerContext) -> Credentials:
    """The call's credentials; UNAUTHENTICATED for a certificate that is no identity
    or an `authorization` metadata that is not `Bearer <token>`."""
    try:
        spiffe = peer_identity(context.auth_context())
    except IdentityError as exc:
        raise Unauthenticated(str(exc), reason="BAD_CERTIFICATE_IDENTITY") from None
    bearer = ""
    forwarded = ""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    "authorization must be `Bearer <token>`", reason="MALFORMED_AUTHORIZATION"
                )
            bearer = token.strip()
        elif key == "x-forwarded-for":
            forwarded = str(value)
    # A relay (the gateway) appends the address of the caller it serves: that one counts.
    last_hop = forwarded.rsplit(",", 1)[-1].strip() if forwarded else ""
    loopback = _is_loopback_peer(context.peer() or "") and (not last_hop or _loopback(last_hop))
    return Credentials(None if spiffe is None else str(spiffe), bearer, loopback)


def principal_of(authenticator: Authenticator, context: grpc.aio.ServicerContext) -> Principal:
    """The principal of the call (see audit_svc.access.authn)."""
    return authenticator.principal(credentials(context))


def _is_loopback_peer(peer: str) -> bool:
    # grpc peers: "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path".
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return _loopback(rest.rpartition(":")[0])
    if kind == "ipv6":
        return _loopback(rest.rpartition(":")[0].strip("[]"))
    return kind == "unix"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
