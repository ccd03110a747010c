"""Proto <-> domain: accounts as messages, and the caller as gRPC metadata shows it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from google.protobuf import duration_pb2, timestamp_pb2

from user.v1 import user_service_pb2 as pb
from user_svc.model import Caller, TokenPair, User
from user_svc.validation import CONTROL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# The gateway and Envoy carry the HTTP caller's User-Agent here (gRPC replaces
# `user-agent` metadata with its own).
FORWARDED_USER_AGENT = "grpcgateway-user-agent"
MAX_USER_AGENT = 1024


def user_pb(user: User) -> pb.User:
    create_time = timestamp_pb2.Timestamp()
    create_time.FromDatetime(user.create_time)
    update_time = timestamp_pb2.Timestamp()
    update_time.FromDatetime(user.update_time)
    return pb.User(
        user_id=user.user_id,
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        roles=user.roles,
        permissions=user.permissions,
        mfa_enabled=user.mfa_enabled,
        locked=user.locked,
        create_time=create_time,
        update_time=update_time,
    )


def expires_in(tokens: TokenPair) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=tokens.expires_in_seconds)


def caller(
    metadata: Iterable[tuple[str, str | bytes]] | None,
    peer: str,
    method: str,
    trusted: Sequence[Network],
    proxy_identity: bool,
) -> Caller:
    """Address, user agent and bearer token of a call.

    The address is the peer's, unless the peer is a trusted proxy: its address is in
    `trusted` and `proxy_identity` says its TLS identity is a proxy's (or the link is
    plaintext). Then it is the last hop of `x-forwarded-for`, the address the proxy saw;
    earlier hops are whatever the caller sent, and are never believed.
    """
    md: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            md.setdefault(key.lower(), value)
    authorization = md.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    agent = md.get(FORWARDED_USER_AGENT) or md.get("user-agent", "")
    forwarded = md.get("x-forwarded-for", "") if proxy_identity else ""
    return Caller(
        ip_address=client_address(peer, forwarded, trusted),
        user_agent=_escaped(agent[:MAX_USER_AGENT]),
        bearer_token=token.strip() if scheme.lower() == "bearer" else "",
        method=method,
    )


def _escaped(text: str) -> str:
    """`text` with control characters as `\\xNN` (metadata is not a field to refuse)."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The peer's address, or the last `forwarded_for` hop when the peer is trusted."""
    address = _peer_address(peer)
    if address is None:
        return ""
    if not forwarded_for or not _is_trusted(address, trusted):
        return str(address)
    hop = _parse(forwarded_for.rsplit(",", 1)[-1])
    return str(hop if hop is not None else address)


def _peer_address(peer: str) -> Address | None:
    """The address in a gRPC peer string: `ipv4:1.2.3.4:5`, `ipv6:[::1]:5`."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host = rest.rsplit(":", 1)[0] if kind == "ipv4" else rest.rpartition("]")[0].lstrip("[")
    return _parse(host)


def _parse(text: str) -> Address | None:
    text = text.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
