"""PostgreSQL connection pool, driver-error translation, and row <-> domain mapping."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeAlias

import asyncpg

from audit_svc.errors import DuplicateEventId, StorageError, Unavailable
from audit_svc.integrity.chain import details_json
from audit_svc.model import ROW_FIELDS, Event, JsonText, Receipt, StoredEvent
from meshkit import pg

log = logging.getLogger(__name__)

# Columns of audit_events in the order `event_row` and the ingest path's COPY write
# them: an event's place in its chain, then what `Ready.row` holds.
EVENT_COLUMNS = ("chain_id", "seq", "prev_hash", "hash", *ROW_FIELDS)
# Where the pseudonym of each personal filter is stored (audit_svc.privacy).
PSEUDONYM_COLUMNS = {"user_id": "user_id", "username": "username_token", "ip_address": "ip_token"}
SELECT_EVENT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_events"


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python objects both ways (binary, so COPY can write it); the hash is
    # computed over the same values.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    # asyncpg's own inet encoder turns an address object into text and parses it
    # again (ipaddress.ip_address(obj)); this writes the packed bytes directly.
    await conn.set_type_codec(
        "inet", encoder=_inet_encode, decoder=_inet_decode, schema="pg_catalog", format="binary"
    )


def _jsonb_encode(value: Any) -> bytes:
    # jsonb's binary form: a version byte (1), then the JSON text.
    if isinstance(value, JsonText):
        return b"\x01" + value.encode()
    return b"\x01" + json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _jsonb_decode(data: bytes) -> Any:
    return _decode_json(data[1:].decode())  # json.loads(bytes) first sniffs the encoding


_decode_json = json.JSONDecoder().decode


# inet's binary form: family (2 = IPv4, 3 = IPv6), prefix bits, is-cidr flag, address
# length, then the address bytes.
_INET_HEADER = {4: bytes((2, 32, 0, 4)), 6: bytes((3, 128, 0, 16))}
_IPV4 = ipaddress.IPv4Address


def _inet_encode(value: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bytes:
    address = ipaddress.ip_address(value) if isinstance(value, str) else value
    return _INET_HEADER[address.version] + address.packed


def _inet_decode(data: bytes) -> Any:
    if data[:2] == b"\x02\x20":  # an IPv4 address (/32): the common case, built from its int
        return _IPV4(int.from_bytes(data[4:8]))
    address = ipaddress.ip_address(data[4:])
    if data[1] != address.max_prefixlen:  # a network written by someone else
        return ipaddress.ip_interface((address, data[1]))
    return address


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak jsonb as Python objects."""
    return await pg.create_pool(
        dsn,
        Unavailable,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        # Filters such as `LIKE $1 || '%'` need the value to pick the right index.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query, a round trip on
    every call: pooled sessions never SET (only SET LOCAL), LISTEN or take advisory
    locks (the chain's lock has its own connection). The pool still rolls back a
    transaction left open."""


# A pool, or one connection (such as a transaction's); every adapter takes either.
Database: TypeAlias = asyncpg.Pool | asyncpg.Connection
EVENT_ID_KEY = "audit_events_event_id_key"


@contextlib.contextmanager
def map_db_errors() -> Iterator[None]:
    """The storage boundary: driver errors become the domain's. Network and server
    availability failures are `Unavailable`; a stored event id refused by its unique
    index is `DuplicateEventId`; any other database error is `StorageError`."""
    try:
        with pg.map_db_errors(Unavailable):
            yield
    except asyncpg.exceptions.UniqueViolationError as exc:
        if exc.constraint_name == EVENT_ID_KEY:
            raise DuplicateEventId(
                "an event id is already stored", metadata={"constraint": EVENT_ID_KEY}
            ) from exc
        raise StorageError(f"{type(exc).__name__}: {exc}") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StorageError(f"{type(exc).__name__}: {exc}") from exc


def connection(pool: asyncpg.Pool) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    """A pooled connection, with driver errors mapped."""
    return pg.connection(pool, map_db_errors)


@contextlib.asynccontextmanager
async def acquire(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a pool, or the connection itself; driver errors mapped."""
    if isinstance(db, asyncpg.Pool):
        async with connection(db) as conn:
            yield conn
    else:
        with map_db_errors():
            yield db


def event_row(event: Event, receipt: Receipt) -> tuple[Any, ...]:
    """The audit_events row of an event, in EVENT_COLUMNS order. A sealed address
    (text, audit_svc.privacy) goes to `ip_sealed`, the inet column stays NULL."""
    ip = event.ip_address
    sealed = isinstance(ip, str)
    return (
        receipt.chain_id,
        receipt.seq,
        receipt.prev_hash,
        receipt.hash,
        event.event_id,
        event.event_type,
        event.user_id,
        event.username,
        None if sealed else ip,
        event.user_agent,
        event.service,
        event.action,
        event.result,
        JsonText(event.details_json or details_json(event.details)),
        list(event.compliance_tags),
        event.data_classification,
        event.event_time,
        event.receive_time,
        event.principal,
        event.username_token,
        event.ip_token,
        ip if sealed else "",
    )


def stored_event(row: asyncpg.Record) -> StoredEvent:
    """The domain view of an audit_events row selected with SELECT_EVENT."""
    event = Event(
        event_id=row["event_id"],
        event_type=row["event_type"],
        user_id=row["user_id"],
        username=row["username"],
        ip_address=row.get("ip_sealed") or row["ip_address"],
        user_agent=row["user_agent"],
        service=row["service"],
        action=row["action"],
        result=row["result"],
        details=row["details"],
        compliance_tags=tuple(row["compliance_tags"]),
        data_classification=row["data_classification"],
        event_time=row["event_time"],
        receive_time=row["receive_time"],
        principal=row["principal"],
        username_token=_bytes(row.get("username_token")),
        ip_token=_bytes(row.get("ip_token")),
    )
    receipt = Receipt(
        chain_id=row["chain_id"],
        seq=row["seq"],
        hash=bytes(row["hash"]),
        prev_hash=bytes(row["prev_hash"]),
    )
    return StoredEvent(event, receipt)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
