"""The access policy of the audit-service, one TOML file loaded and validated at
start-up (`AUDIT_POLICY_FILE`, default `audit_svc/policy.toml`):

- `[[writers]]`: a SPIFFE id, the `service` values it may write and the event-type
  prefixes (`auth.`; `*` is any). An event outside them is rejected by index
  (`SERVICE_MISMATCH` / `EVENT_TYPE_MISMATCH`), the rest of the batch is kept.
  `backfill = true` lets it send events older than AUDIT_MAX_EVENT_AGE_DAYS (an
  importer of old logs); without it they are rejected (`EVENT_TIME_TOO_OLD`).
  `events_per_second` / `bytes_per_second` override the write quota of that writer
  (AUDIT_WRITE_QUOTA_*; 0 is no limit).
- `[[readers]]`: a SPIFFE id and the read roles it holds (`audit.reader`,
  `audit.pii_reader`, `audit.admin`).
- `relays`: SPIFFE ids that forward REST callers (the gateway): their certificate
  grants nothing by itself; the caller's bearer token decides.
- `[amqp_users]`: RabbitMQ user -> SPIFFE id. The broker checks each message's
  `user_id` property against the user of the publishing connection; a mapped user
  writes with that principal's grant, an unmapped one writes nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_svc.access.principal import ADMIN, PII_READER, READER, Kind, Principal
from audit_svc.model import FieldViolation

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "policy.toml"
ANY = "*"
ROLES = (READER, PII_READER, ADMIN)


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class WriterGrant:
    """What one principal may write."""

    services: frozenset[str]
    event_type_prefixes: tuple[str, ...]
    # May send event times older than the service's window (AUDIT_MAX_EVENT_AGE_DAYS).
    backfill: bool = False
    # The writer's own write quota (None: the service's AUDIT_WRITE_QUOTA_*; 0: none).
    events_per_second: float | None = None
    bytes_per_second: float | None = None

    def violation(self, service: str, event_type: str) -> tuple[str, FieldViolation] | None:
        """(reason, violation) when the event is outside this grant, else None."""
        if ANY not in self.services and service not in self.services:
            allowed = ", ".join(sorted(self.services))
            return "SERVICE_MISMATCH", FieldViolation(
                "service", f"this caller may write service {allowed}, not {service!r}"
            )
        if ANY not in self.event_type_prefixes and not event_type.startswith(
            self.event_type_prefixes
        ):
            allowed = ", ".join(self.event_type_prefixes)
            return "EVENT_TYPE_MISMATCH", FieldViolation(
                "event_type", f"this caller may write event types {allowed}"
            )
        return None


# What an anonymous caller may do in dev mode (loopback only): everything.
_DEV_WRITER = WriterGrant(frozenset({ANY}), (ANY,))


@dataclass(frozen=True, slots=True)
class Policy:
    """Writer grants and read roles by SPIFFE id, and the relays."""

    writers: Mapping[str, WriterGrant] = field(default_factory=dict)
    readers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    relays: frozenset[str] = frozenset()
    amqp_users: Mapping[str, str] = field(default_factory=dict)

    def writer_grant(self, principal: Principal) -> WriterGrant | None:
        """What `principal` may write; None when it may write nothing."""
        if principal.kind is Kind.ANONYMOUS:
            return _DEV_WRITER
        if principal.kind is Kind.SERVICE:
            return self.writers.get(principal.name)
        return None

    def service_roles(self, spiffe_id: str) -> frozenset[str]:
        """The read roles the policy grants a service."""
        return self.readers.get(spiffe_id, frozenset())

    def is_relay(self, spiffe_id: str) -> bool:
        return spiffe_id in self.relays

    def amqp_principal(self, user: str) -> Principal:
        """The principal of messages whose broker-checked `user_id` is `user`: the
        mapped SPIFFE id (with its grants), else `amqp:<user>`, which writes nothing."""
        if spiffe_id := self.amqp_users.get(user):
            return Principal(Kind.SERVICE, spiffe_id, self.service_roles(spiffe_id))
        return Principal(Kind.SERVICE, f"amqp:{user}")


def load_policy(path: Path | str = DEFAULT_PATH) -> Policy:
    """The policy in `path`; PolicyError listing every problem."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read the policy {path}: {exc}") from None
    problems: list[str] = []
    unknown = set(data) - {"writers", "readers", "relays", "amqp_users"}
    problems += [f"unknown key {key!r}" for key in sorted(unknown)]
    writers: dict[str, WriterGrant] = {}
    for i, entry in enumerate(_tables(data, "writers", problems)):
        where = f"writers[{i}]"
        principal = _spiffe(entry, where, problems)
        services = _strings(entry, "services", where, problems)
        prefixes = _strings(entry, "event_types", where, problems)
        backfill = entry.get("backfill", False)
        if not isinstance(backfill, bool):
            problems.append(f"{where}.backfill must be true or false")
        rates = [
            _rate(entry, k, where, problems) for k in ("events_per_second", "bytes_per_second")
        ]
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(entry) - _WRITER_KEYS)]
        if principal in writers:
            problems.append(f"{where}: {principal} is listed twice")
        writers[principal] = WriterGrant(
            frozenset(services), tuple(prefixes), backfill is True, *rates
        )
    readers: dict[str, frozenset[str]] = {}
    for i, entry in enumerate(_tables(data, "readers", problems)):
        where = f"readers[{i}]"
        principal = _spiffe(entry, where, problems)
        roles = _strings(entry, "roles", where, problems)
        problems += [f"{where}: unknown role {r!r}" for r in roles if r not in ROLES]
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(entry) - _READER_KEYS)]
        readers[principal] = frozenset(roles)
    relays = data.get("relays", [])
    if not isinstance(relays, list) or not all(
        isinstance(r, str) and r.startswith("spiffe://") for r in relays
    ):
        problems.append("relays must be a list of spiffe:// ids")
        relays = []
    amqp_users = data.get("amqp_users", {})
    if not isinstance(amqp_users, dict) or not all(
        isinstance(u, str) and u and isinstance(p, str) and p.startswith("spiffe://")
        for u, p in amqp_users.items()
    ):
        problems.append("amqp_users must map RabbitMQ user names to spiffe:// ids")
        amqp_users = {}
    if problems:
        raise PolicyError(f"invalid policy {path}:\n  " + "\n  ".join(problems))
    return Policy(writers, readers, frozenset(relays), amqp_users)


_WRITER_KEYS = frozenset(
    {"principal", "services", "event_types", "backfill", "events_per_second", "bytes_per_second"}
)
_READER_KEYS = frozenset({"principal", "roles"})


def _rate(entry: dict[str, Any], key: str, where: str, problems: list[str]) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.append(f"{where}.{key} must be a number >= 0 (0: no limit)")
        return None
    return float(value)


def _tables(data: dict[str, Any], key: str, problems: list[str]) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        problems.append(f"{key} must be an array of tables ([[{key}]])")
        return []
    return value


def _spiffe(entry: dict[str, Any], where: str, problems: list[str]) -> str:
    value = entry.get("principal")
    if not isinstance(value, str) or not value.startswith("spiffe://"):
        problems.append(f"{where}.principal must be a spiffe:// id")
        return ""
    return value


def _strings(entry: dict[str, Any], key: str, where: str, problems: list[str]) -> list[str]:
    value = entry.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}.{key} must be a non-empty list of strings")
        return []
    return list(value)
