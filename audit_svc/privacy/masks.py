"""What an `audit.reader` sees of a personal value, by its mask."""

from __future__ import annotations

import ipaddress
from typing import Any

from audit_svc.privacy.policy import Mask

REDACTED = "[redacted]"


def mask(kind: Mask, value: Any) -> Any:
    """`value` (clear text, or a details value) as a reader may see it."""
    if value is None or value == "":
        return value
    if kind is Mask.NAME and isinstance(value, str):
        return name(value)
    if kind is Mask.EMAIL and isinstance(value, str):
        local, at, domain = value.rpartition("@")
        return name(local) + at + domain if at else name(value)
    if kind is Mask.NETWORK:
        return network(value)
    return REDACTED


def name(value: str) -> str:
    """johndoe -> j***e; three characters or fewer -> ***."""
    return value[0] + "***" + value[-1] if len(value) > 3 else "***"


def network(value: Any) -> str:
    """An address as its network: IPv4 /24, IPv6 /48; anything else [redacted]."""
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return REDACTED
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network((address, bits), strict=False))
