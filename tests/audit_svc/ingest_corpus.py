"""A fixed corpus of ingest batches, valid and invalid events mixed, as the transport
receives them (`AuditEvent` messages): the ingest pass must give the same canonical
bytes, hashes and rejections (index, reason, field, description) for it as the path it
replaced did (tests/audit_svc/test_ingest_pass.py pins what that path gave)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.v2 import event_pb2
from devstack.events import wire_events

# The receive time every batch of the corpus is given, and the checks' limits.
NOW = datetime(2026, 12, 3, 7, 0, 0, 123456, tzinfo=UTC)
MAX_SKEW = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
CHAIN = "chain-ü1"
PRINCIPAL = "spiffe://auditmesh.local/user-service"
GRANT_SERVICES = frozenset({"user-service", "billing"})
GRANT_PREFIXES = ("auth.", "user.", "mfa.", "permission.", "security.", "a.")

TEXTS = ["", "plain", 'quo"te', "back\\slash", "tab\tnew\nline", "\x01\x1f\x7f", "é日本語", "🙂",
         "\u2028\u2029", "</script>"]  # fmt: skip
IDS = ["", "0192f1a2-0000-7000-8000-000000000001", "0192F1A2-0000-7000-8000-0000000000AB",
       "{0192f1a2-0000-7000-8000-000000000002}", "urn:uuid:0192f1a2-0000-7000-8000-000000000003",
       "0192f1a200007000800000000000000f", "not-a-uuid",
       "0192f1a2-0000-7000-8000-00000000000"]  # fmt: skip
IPS = ["", "10.1.2.3", "2001:db8::1", "::ffff:10.0.0.1", "2001:DB8:0:0::2", "fe80::1%eth0",
       "999.1.1.1", "10.1.2", " 10.1.2.3"]  # fmt: skip


def _value(rng: random.Random, bad: bool, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(TEXTS) + str(rng.random())
    if kind == 1:
        return rng.choice([True, False, None])
    if kind == 2:
        return rng.choice([0, 1, -7, 2**53, 1e20])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e-300, 1e300, 0.1, 123456789.125])
    if kind == 4:
        return rng.choice(TEXTS)
    if kind == 5:
        return rng.choice(["nul\x00here", float("nan"), float("inf"), "ok"]) if bad else 1
    if kind in (6, 7):
        return {rng.choice(TEXTS) + str(i): _value(rng, bad, depth + 1) for i in range(3)}
    return [_value(rng, bad, depth + 1) for _ in range(rng.randrange(4))]


def _odd_event(rng: random.Random, i: int) -> event_pb2.AuditEvent:
    """An event with unusual but valid values, or (one in three) some invalid ones."""
    bad = rng.random() < 0.33

    def pick(good: list[str], wrong: list[str]) -> str:
        return rng.choice(wrong) if bad and rng.random() < 0.3 else rng.choice(good)

    event = event_pb2.AuditEvent(
        event_id=pick([f"0192f1a2-0000-7000-8000-{i:012x}", *IDS[:6]], IDS[6:]),
        event_type=pick(
            ["auth.login_success", "a.b_c", "billing.charge", "x.y"],
            ["Auth.Login", "auth", "", "auth.login\x00", "a." + "b" * 130],
        ),
        user_id=pick(TEXTS, ["u" * 257, "n\x00"]),
        username=pick(TEXTS, ["v" * 257]),
        ip_address=pick(IPS[:5], IPS[5:]),
        user_agent=pick(TEXTS, ["a" * 1025]),
        service=pick(["user-service", "billing", "other"], ["User", "", "a b", "s\x00"]),
        action=pick(["login", "log.in-2"], ["", "Log", "x" * 129]),
        result=pick(["success", "failure", "denied", "error"], ["", "ok"]),
        compliance_tags=[
            pick(TEXTS[1:], ["", "t" * 65, "n\x00"])
            for _ in range(rng.choice([0, 1, 2, 3, 33 if bad else 4]))
        ],  # fmt: skip
        data_classification=pick(["public", "internal", "confidential", "restricted"], [""]),
    )
    if rng.random() < 0.9:
        details = {f"k{j}{rng.choice(TEXTS)}": _value(rng, bad) for j in range(rng.randrange(5))}
        if bad and rng.random() < 0.1:
            details["big"] = "x" * 17000
        if bad and rng.random() < 0.1:
            deep: Any = "leaf"
            for _ in range(40):
                deep = {"d": deep}
            details["deep"] = deep
        event.details.update(details)
    when = rng.randrange(6 if bad else 3)
    if when == 1:
        event.event_time.FromDatetime(NOW - timedelta(seconds=rng.randrange(10**6)))
    elif when == 2:
        event.event_time.FromDatetime(NOW + timedelta(minutes=rng.choice([1, 6, 60])))
    elif when == 3:
        event.event_time.FromDatetime(NOW - timedelta(days=rng.choice([6, 8, 400])))
    elif when == 4:
        event.event_time.seconds = rng.choice([-62135596801, 253402300800, 10**12])
        event.event_time.nanos = rng.choice([0, 5])
    elif when == 5:
        event.event_time.seconds = int(NOW.timestamp())
        event.event_time.nanos = rng.choice([-1, 10**9, 999_999_999])
    return event


def corpus_batches() -> list[list[event_pb2.AuditEvent]]:
    """Batches of 1 to 300 events: benchmark-shaped ones, then varied and invalid ones.
    Events without an event_time or event_id are stamped by the service (its clock and
    UUIDv7): the comparison covers those with their stamps taken out."""
    rng = random.Random(20261203)
    plain = wire_events(600, new_id=lambda: rng.randrange(2**128))
    for i, event in enumerate(plain):
        event.event_id = f"{int(event.event_id) % 2**128:032x}"
        event.event_id = "-".join(
            (event.event_id[:8], event.event_id[8:12], "7" + event.event_id[13:16],
             "8" + event.event_id[17:20], event.event_id[20:])
        )  # fmt: skip
        event.event_time.FromDatetime(NOW - timedelta(seconds=i))
    odd = [_odd_event(rng, i) for i in range(1500)]
    everything = plain + odd
    batches, start = [], 0
    while start < len(everything):
        size = rng.choice([1, 7, 50, 300])
        batches.append(everything[start : start + size])
        start += size
    return batches
