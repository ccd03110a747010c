"""The canonical bytes of the hash chain are a stored contract: every hash already in
a database was made from them. `canonical_bytes` writes them field by field for speed;
here the contract is written the way it is defined, with `json.dumps`, and both must
give the same bytes for every kind of value an event can hold."""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from audit_svc.access.policy import ANY, WriterGrant
from audit_svc.ingest.validation import INPUTS, Rules, admit
from audit_svc.integrity.chain import canonical_bytes, details_json
from audit_svc.model import Event, EventInput, ready_event

GRANT = WriterGrant(frozenset({ANY}), (ANY,))


def contract(event: Event, chain_id: str, seq: int) -> bytes:
    """The definition (audit_svc.integrity.chain's docstring), as first shipped."""

    def floats(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def time(t: datetime) -> str:
        return t.astimezone(UTC).isoformat(timespec="microseconds")

    doc = {
        "v": 1,
        "chain_id": chain_id,
        "seq": seq,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "user_id": event.user_id,
        "username": event.username,
        "ip_address": "" if event.ip_address is None else str(event.ip_address),
        "user_agent": event.user_agent,
        "service": event.service,
        "action": event.action,
        "result": event.result,
        "details": floats(event.details),
        "compliance_tags": list(event.compliance_tags),
        "data_classification": event.data_classification,
        "event_time": time(event.event_time),
        "receive_time": time(event.receive_time),
    }
    if event.principal:  # recorded since revision 0006; absent before, as first shipped
        doc["principal"] = event.principal
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


TEXTS = ["", "plain", 'quo"te', "back\\slash", "tab\tnew\nline", "\x01\x1f\x7f", "é日本語", "🙂",
         "\u2028\u2029", "</script>", "\ud7ff\ue000"]  # fmt: skip


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice(TEXTS) + str(rng.random())
    if kind == 1:
        return rng.choice([True, False, None])
    if kind == 2:
        return rng.choice([0, 1, -7, 2**53, 10**20])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e-300, 1e300, 0.1, 123456789.125])
    if kind == 4:
        return rng.choice(TEXTS)
    if kind in (5, 6):
        return {rng.choice(TEXTS) + str(i): random_value(rng, depth + 1) for i in range(3)}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def random_event(rng: random.Random) -> Event:
    t = datetime(2026, 11, 27, 8, 36, 27, rng.randrange(1_000_000), tzinfo=UTC)
    zone = timezone(timedelta(hours=rng.choice([0, 5, -3])))
    return Event(
        event_id=uuid.UUID(int=rng.getrandbits(128)),
        event_type=rng.choice(["auth.login_success", "a.b_c"]),
        user_id=rng.choice(TEXTS),
        username=rng.choice(TEXTS),
        ip_address=rng.choice(
            [None, ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("2001:db8::1")]
        ),
        user_agent=rng.choice(TEXTS),
        service="user-service",
        action="login",
        result=rng.choice(["success", "failure"]),
        details={f"k{i}{rng.choice(TEXTS)}": random_value(rng) for i in range(rng.randrange(5))},
        compliance_tags=tuple(rng.choice(TEXTS[1:]) for _ in range(rng.randrange(4))),
        data_classification="internal",
        event_time=t.astimezone(zone),
        receive_time=t + timedelta(microseconds=rng.randrange(10**7)),
        principal=rng.choice(["", "spiffe://auditmesh.local/user-service", *TEXTS]),
    )


def test_canonical_bytes_match_the_contract_for_varied_events() -> None:
    rng = random.Random(20261127)
    for n in range(2000):
        event = random_event(rng)
        chain = rng.choice(["chain-1", "ünïcode", 'q"uote'])
        assert canonical_bytes(event, chain, n) == contract(event, chain, n), event


def test_validated_events_carry_the_same_details_text() -> None:
    # Validation computes the details text once for the chain and for jsonb.
    rng = random.Random(7)
    now = datetime.now(UTC)
    for _ in range(500):
        details = {f"k{i}": random_value(rng) for i in range(rng.randrange(4))}
        raw = EventInput(
            event_type="auth.login_success",
            service="user-service",
            action="login",
            result="success",
            data_classification="internal",
            details=details,
        )
        rules = Rules(now, timedelta(minutes=5), None, GRANT, "c", "")
        (ready,) = admit([raw], INPUTS, rules).ready
        event = ready_event(ready)
        assert event.details_json == details_json(details) == ready.row[9]
        assert canonical_bytes(event, "c", 1) == contract(event, "c", 1)


def test_a_known_event_hashes_as_it_always_has() -> None:
    # Pinned bytes: a change here means stored chains no longer verify.
    event = Event(
        event_id=uuid.UUID("0192f1a2-0000-7000-8000-000000000001"),
        event_type="auth.login_success",
        user_id="user123",
        username="johndoe",
        ip_address=ipaddress.ip_address("192.168.1.100"),
        user_agent="Mozilla/5.0...",
        service="user-service",
        action="login_success",
        result="success",
        details={"mfa_used": False, "session_id": "sess_123", "n": 1},
        compliance_tags=("SOX", "GDPR"),
        data_classification="internal",
        event_time=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        receive_time=datetime(2026, 11, 27, 8, 0, 0, 5, tzinfo=UTC),
    )
    assert canonical_bytes(event, "chain-1", 42) == (
        b'{"action":"login_success","chain_id":"chain-1","compliance_tags":["SOX","GDPR"],'
        b'"data_classification":"internal","details":{"mfa_used":false,"n":1.0,'
        b'"session_id":"sess_123"},"event_id":"0192f1a2-0000-7000-8000-000000000001",'
        b'"event_time":"2026-11-27T08:00:00.000000+00:00","event_type":"auth.login_success",'
        b'"ip_address":"192.168.1.100","receive_time":"2026-11-27T08:00:00.000005+00:00",'
        b'"result":"success","seq":42,"service":"user-service","user_agent":"Mozilla/5.0...",'
        b'"user_id":"user123","username":"johndoe","v":1}'
    )
