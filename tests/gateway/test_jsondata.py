"""The gateway's compiled message-to-JSON writer prints exactly what protobuf's
json_format prints (whole doubles as integers, as Envoy): the same keys in the same
order and the same values, over randomly filled messages of every field kind, under
every combination of print options, and it fails where json_format fails."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import (
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message,
    message_factory,
)

from audit.v2 import audit_service_pb2, event_pb2
from gateway.descriptors import Descriptors
from gateway.jsondata import DataWriter, whole_numbers
from tests.gateway.harness import MAIN_DESCRIPTORS

FD = descriptor.FieldDescriptor
OPTIONS = [
    {"names": names, "defaults": defaults, "ints": ints}
    for names in (True, False)
    for defaults in (False, True)
    for ints in (False, True)
]
DOUBLES = [0.0, -0.0, 1.0, -3.0, 1.5, 1e300, 2.0**53, 2.0**53 - 1, -(2.0**60), 1e-7, 0.1]
ODD_DOUBLES = [math.inf, -math.inf, math.nan]
STRINGS = ["", "a", "héllo wörld", 'quote " and \\ slash', "\x00\x1f ctrl", "emoji \U0001f600"]


def reference(msg: message.Message, pool: Any, o: dict[str, bool]) -> Any:
    """What the gateway printed before: json_format, then whole doubles as integers."""
    data = json_format.MessageToDict(
        msg,
        preserving_proto_field_name=o["names"],
        always_print_fields_with_no_presence=o["defaults"],
        use_integers_for_enums=o["ints"],
        descriptor_pool=pool,
    )
    return whole_numbers(data)


def writer(pool: Any, o: dict[str, bool]) -> DataWriter:
    return DataWriter(
        pool,
        preserve_proto_field_names=o["names"],
        always_print_fields_with_no_presence=o["defaults"],
        enums_as_ints=o["ints"],
    )


def text(data: Any) -> str:
    """Order-sensitive and NaN-safe comparison form."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class Filler:
    """Sets a random subset of a message's fields to random, often edgy, values."""

    def __init__(self, seed: int, odd_doubles: bool = True) -> None:
        self.rng = random.Random(seed)
        self.odd = odd_doubles

    def fill(self, msg: Any, depth: int = 0) -> Any:
        name = msg.DESCRIPTOR.full_name
        if name == "google.protobuf.Timestamp":
            msg.seconds = self.rng.randrange(-62135596800, 253402300799)
            msg.nanos = self.nanos()
        elif name == "google.protobuf.Duration":
            msg.seconds = self.rng.randrange(0, 10**6)
            msg.nanos = self.nanos()
            if self.rng.random() < 0.3:
                msg.seconds, msg.nanos = -msg.seconds, -msg.nanos
        elif name == "google.protobuf.FieldMask":
            msg.paths.extend(self.rng.sample(["a", "b.c", "d_e.f_g"], self.rng.randrange(4)))
        elif name == "google.protobuf.Struct":
            for i in range(self.rng.randrange(4)):
                msg[f"k{i}"] = self.json_value(depth)
        else:
            for field in msg.DESCRIPTOR.fields:
                if self.rng.random() < 0.6:
                    self.set_field(msg, field, depth)
        return msg

    def nanos(self) -> int:
        unit = self.rng.choice([0, 1_000_000, 1_000, 1])
        return self.rng.randrange(0, 1_000_000_000, unit) if unit else 0

    def json_value(self, depth: int) -> Any:
        kinds = ["str", "num", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
        kind = self.rng.choice(kinds)
        if kind == "str":
            return self.rng.choice(STRINGS)
        if kind == "num":
            return self.rng.choice(DOUBLES + [7, -2])
        if kind == "bool":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "list":
            return [self.json_value(depth + 1) for _ in range(self.rng.randrange(3))]
        return {f"n{i}": self.json_value(depth + 1) for i in range(self.rng.randrange(3))}

    def scalar(self, field: FD) -> Any:
        t, r = field.type, self.rng
        if t == FD.TYPE_STRING:
            return r.choice(STRINGS)
        if t == FD.TYPE_BYTES:
            return bytes(r.randrange(256) for _ in range(r.randrange(6)))
        if t == FD.TYPE_BOOL:
            return r.random() < 0.5
        if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            value = r.choice(DOUBLES + (ODD_DOUBLES if self.odd else []))
            return min(value, 3e38) if t == FD.TYPE_FLOAT and math.isfinite(value) else value
        if t == FD.TYPE_ENUM:
            assert field.enum_type is not None
            return r.choice([v.number for v in field.enum_type.values])
        if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
            return r.choice([0, 1, 2**32 - 1])
        if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
            return r.choice([0, 1, 2**53 + 1, 2**64 - 1])
        if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
            return r.choice([0, -1, 2**31 - 1, -(2**31)])
        return r.choice([0, -1, 2**53 + 1, 2**63 - 1, -(2**63)])

    def set_field(self, msg: Any, field: FD, depth: int) -> None:
        value_type = field.message_type
        if value_type is not None and value_type.GetOptions().map_entry:
            key_f, val_f = value_type.fields_by_name["key"], value_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            for _ in range(self.rng.randrange(4)):
                key = self.scalar(key_f)
                if val_f.message_type is None:
                    target[key] = self.scalar(val_f)
                elif depth < 3:
                    self.fill(target[key], depth + 1)
        elif field.is_repeated:
            target = getattr(msg, field.name)
            for _ in range(self.rng.randrange(4)):
                if value_type is None:
                    target.append(self.scalar(field))
                elif depth < 3:
                    self.fill(target.add(), depth + 1)
        elif value_type is not None:
            if depth < 3:
                getattr(msg, field.name).SetInParent()
                self.fill(getattr(msg, field.name), depth + 1)
        else:
            setattr(msg, field.name, self.scalar(field))


def compare(msg: message.Message, pool: Any) -> None:
    for o in OPTIONS:
        got = writer(pool, o).to_data(msg)
        assert text(got) == text(reference(msg, pool, o)), o


def kinds_pool() -> tuple[Any, Any]:
    """A proto2 file with what the test protos lack: closed enums, proto2 defaults,
    maps with int and bool keys, float, bytes and message maps, an extension, a oneof."""
    f = descriptor_pb2.FileDescriptorProto(name="kinds.proto", package="kinds", syntax="proto2")
    enum = f.enum_type.add(name="Closed")
    enum.value.add(name="CLOSED_A", number=1)
    enum.value.add(name="CLOSED_B", number=2)
    m = f.message_type.add(name="Kinds")
    m.extension_range.add(start=100, end=200)
    L, T = descriptor_pb2.FieldDescriptorProto, descriptor_pb2.FieldDescriptorProto
    fields = [
        ("opt_int", 1, T.TYPE_INT32, L.LABEL_OPTIONAL, "", "7"),
        ("opt_closed", 2, T.TYPE_ENUM, L.LABEL_OPTIONAL, ".kinds.Closed", ""),
        ("rep_float", 3, T.TYPE_FLOAT, L.LABEL_REPEATED, "", ""),
        ("rep_bytes", 4, T.TYPE_BYTES, L.LABEL_REPEATED, "", ""),
        ("opt_sint64", 5, T.TYPE_SINT64, L.LABEL_OPTIONAL, "", ""),
        ("opt_fixed32", 6, T.TYPE_FIXED32, L.LABEL_OPTIONAL, "", ""),
        ("child", 7, T.TYPE_MESSAGE, L.LABEL_OPTIONAL, ".kinds.Kinds", ""),
        ("choice_a", 8, T.TYPE_STRING, L.LABEL_OPTIONAL, "", ""),
        ("choice_b", 9, T.TYPE_DOUBLE, L.LABEL_OPTIONAL, "", ""),
    ]
    for name, number, kind, label, type_name, default in fields:
        field = m.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
        if default:
            field.default_value = default
        if name.startswith("choice"):
            field.oneof_index = 0
    m.oneof_decl.add(name="choice")
    for name, number, key_type, value_type in [
        ("by_int", 20, T.TYPE_INT64, T.TYPE_FLOAT),
        ("by_bool", 21, T.TYPE_BOOL, T.TYPE_BYTES),
        ("by_uint", 22, T.TYPE_UINT32, T.TYPE_MESSAGE),
    ]:
        entry = m.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key_type, label=L.LABEL_OPTIONAL)
        value = entry.field.add(name="value", number=2, type=value_type, label=L.LABEL_OPTIONAL)
        if value_type == T.TYPE_MESSAGE:
            value.type_name = ".kinds.Kinds"
        m.field.add(
            name=name,
            number=number,
            type=T.TYPE_MESSAGE,
            label=L.LABEL_REPEATED,
            type_name=f".kinds.Kinds.{entry.name}",
        )
    f.extension.add(
        name="ext_note",
        number=150,
        type=T.TYPE_STRING,
        label=L.LABEL_OPTIONAL,
        extendee=".kinds.Kinds",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindMessageTypeByName("kinds.Kinds")
    return pool, message_factory.GetMessageClass(desc)


@pytest.fixture(scope="module")
def test_pool(test_descriptor_set: Path) -> Any:
    return Descriptors.load(test_descriptor_set).pool


def test_everything_messages_print_as_json_format_prints_them(test_pool: Any) -> None:
    cls = message_factory.GetMessageClass(test_pool.FindMessageTypeByName("gwtest.v1.Everything"))
    compare(cls(), test_pool)
    for seed in range(150):
        compare(Filler(seed).fill(cls()), test_pool)


def test_proto2_kinds_print_as_json_format_prints_them() -> None:
    pool, cls = kinds_pool()
    ext = pool.FindExtensionByName("kinds.ext_note")
    compare(cls(), pool)
    for seed in range(150):
        msg = Filler(seed).fill(cls())
        if seed % 3 == 0:
            msg.Extensions[ext] = "extended"
        compare(msg, pool)


def test_audit_messages_from_the_descriptor_set() -> None:
    pool = Descriptors.load(MAIN_DESCRIPTORS).pool
    for name in ("QueryResponse", "HealthResponse", "IngestResponse", "GetStatisticsResponse"):
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"audit.v2.{name}"))
        for seed in range(40):
            compare(Filler(seed, odd_doubles=False).fill(cls()), pool)


def test_linked_audit_event_prints_as_json_format_prints_it() -> None:
    event = event_pb2.AuditEvent(event_id="e", event_type="auth.login_success", user_id="u")
    event.details.update({"mfa_used": True, "n": 3, "ratio": 0.5, "list": [1, "x", None]})
    event.event_time.GetCurrentTime()
    event.receipt.seq = 2**62
    page = audit_service_pb2.QueryResponse(events=[event] * 3, next_page_token="t")
    compare(page, descriptor_pool.Default())


def test_failures_are_json_formats_failures(test_pool: Any) -> None:
    """What json_format refuses, the writer refuses with the same error."""
    pool, cls = kinds_pool()
    closed = cls(opt_closed=1)
    closed.by_uint[1].opt_closed = 2
    compare(closed, pool)
    everything: Any = message_factory.GetMessageClass(
        test_pool.FindMessageTypeByName("gwtest.v1.Everything")
    )
    bad_ts, bad_struct = everything(), everything()
    bad_ts.timestamp.seconds = 253402300800 + 10  # after year 9999
    bad_struct.attributes["x"] = math.nan
    for bad in (bad_ts, bad_struct):
        for o in OPTIONS:
            with pytest.raises(Exception) as want:
                reference(bad, test_pool, o)
            with pytest.raises(type(want.value)) as got:
                writer(test_pool, o).to_data(bad)
            assert str(got.value) == str(want.value)
