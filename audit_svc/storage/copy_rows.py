"""audit_events rows in PostgreSQL's binary COPY format, written by the group commit.

The ingest path's COPY is its largest cost after the checks: asyncpg encodes each value
of each record through its codecs (two tz-aware datetimes compared against infinity and
converted, a text[] probed through the collections ABCs, jsonb and inet in Python). Here
each row is written straight to bytes in EVENT_COLUMNS order, and the values events
repeat (event types, services, users, tags, the batch's receive time) are encoded once.
Format: https://www.postgresql.org/docs/15/sql-copy.html (Binary Format).
"""

from __future__ import annotations

import ipaddress
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from audit_svc.storage.postgres import EVENT_COLUMNS

# The file header (signature, flags, no extension) and trailer.
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
FIELD_COUNT = struct.pack("!h", len(EVENT_COLUMNS))
NULL = b"\xff\xff\xff\xff"
TEXT_OID = 25

_length = struct.Struct("!i").pack
_int8 = struct.Struct("!iq").pack  # the length 8, then the value
_HASH = _length(32)
_UUID = _length(16)
_INET = {4: _length(8) + bytes((2, 32, 0, 4)), 6: _length(20) + bytes((3, 128, 0, 16))}
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_KEPT = 16384  # bound on each cache of encoded values
_LONGEST_KEPT = 512  # bytes: longer values are encoded each time


class _Encoded(dict[Any, bytes]):
    """Encoded values by value, made on first use (a dict lookup afterwards)."""

    def __init__(self, encode: Any) -> None:
        super().__init__()
        self._encode = encode

    def __missing__(self, value: Any) -> bytes:
        field: bytes = self._encode(value)
        if len(field) <= _LONGEST_KEPT:
            if len(self) >= _KEPT:
                self.clear()
            self[value] = field
        return field


def _text(value: str) -> bytes:
    data = value.encode()
    return _length(len(data)) + data


def _text_array(tags: tuple[str, ...]) -> bytes:
    if not tags:
        body = struct.pack("!iiI", 0, 0, TEXT_OID)
    else:
        body = struct.pack("!iiIii", 1, 0, TEXT_OID, len(tags), 1)
        body += b"".join(_text(tag) for tag in tags)
    return _length(len(body)) + body


TEXTS = _Encoded(_text)
TAGS = _Encoded(_text_array)


def chain_field(chain_id: str) -> bytes:
    """The chain_id column (the same for every row of a group)."""
    return TEXTS[chain_id]


def row(chain: bytes, seq: int, prev: bytes, digest: bytes, values: tuple[Any, ...]) -> bytes:
    """One row: the chain place, then `values` (`model.ROW_FIELDS`, as `Ready.row`)."""
    (event_id, event_type, user_id, username, ip, user_agent, service, action, result,
     details, tags, classification, event_time, receive_time, principal, username_token,
     ip_token, ip_sealed) = values  # fmt: skip
    texts = TEXTS
    data = details.encode()
    return b"".join(
        (
            FIELD_COUNT, chain, _int8(8, seq), _HASH, prev, _HASH, digest,
            _UUID, bytes.fromhex(event_id.replace("-", "")),
            texts[event_type], texts[user_id], texts[username],
            NULL if ip is None else _inet(ip),
            texts[user_agent], texts[service], texts[action], texts[result],
            _length(len(data) + 1), b"\x01", data,  # jsonb: version 1, then the text
            TAGS[tuple(tags)], texts[classification],
            _event_time(event_time), _receive_time(receive_time), texts[principal],
            _bytea(username_token), _bytea(ip_token), texts[ip_sealed],
        )
    )  # fmt: skip


def _bytea(value: bytes | None) -> bytes:
    return NULL if value is None else _length(len(value)) + value


def _inet(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    return _INET[address.version] + address.packed


class _Timestamptz:
    """timestamptz: microseconds since 2000-01-01 UTC. The last one is kept: a batch
    shares its receive time, and a server-stamped event time is the same object."""

    __slots__ = ("_time", "_field")

    def __init__(self) -> None:
        self._time: datetime | None = None
        self._field = b""

    def __call__(self, t: datetime) -> bytes:
        if t is not self._time:
            self._time, self._field = t, _int8(8, (t - _PG_EPOCH) // _MICROSECOND)
        return self._field


_event_time, _receive_time = _Timestamptz(), _Timestamptz()
