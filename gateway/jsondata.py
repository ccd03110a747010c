"""Messages to JSON-ready data, fast: the output of protobuf's `json_format.MessageToDict`
with whole doubles as integers, from a converter compiled once per message type.

`json_format` decides each field's form anew on every value (a dozen checks and calls
per field); a page of 50 audit events took ~2 ms that way, the largest cost of a
REST call through the gateway. Here each message type gets a table from field number
to (JSON name, converter) the first time it is printed, and printing is a walk over
`ListFields()` with one call per value. Any converts through `json_format` (rare);
any error falls back to `json_format`, so failures (a closed enum's unknown number,
an out-of-range Timestamp, NaN in a Struct) raise exactly as it raises them.
"""

from __future__ import annotations

import base64
import datetime
import functools
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, descriptor_pool, json_format, message
from google.protobuf.internal import type_checkers

FD = descriptor.FieldDescriptor
Convert = Callable[[Any], Any]
MessageConvert = Callable[[message.Message], Any]

_EXACT_FLOAT_LIMIT = 2.0**53
_INT64 = {FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64}
_EPOCH = datetime.datetime(1970, 1, 1)
# json_format's own (private) printer: the reference for enum names, custom JSON names
# included. tests/gateway/test_jsondata.py compares the writer with json_format over
# every field kind, so a protobuf upgrade that changes it fails there.
_JsonFormatPrinter: Any = json_format._Printer  # type: ignore[attr-defined]
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01, 9999-12-31
_TEXT_TYPES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


class DataWriter:
    """JSON-ready data of messages, with one set of print options."""

    def __init__(
        self,
        pool: descriptor_pool.DescriptorPool,
        *,
        preserve_proto_field_names: bool,
        always_print_fields_with_no_presence: bool,
        enums_as_ints: bool,
    ) -> None:
        self._pool = pool
        self._names = preserve_proto_field_names
        self._defaults = always_print_fields_with_no_presence
        self._enums_as_ints = enums_as_ints
        self._plans: dict[str, MessageConvert] = {}
        self._reference = _JsonFormatPrinter(
            preserving_proto_field_name=preserve_proto_field_names,
            use_integers_for_enums=enums_as_ints,
            descriptor_pool=pool,
            always_print_fields_with_no_presence=always_print_fields_with_no_presence,
        )

    def to_data(self, msg: message.Message) -> Any:
        """What `json_format.MessageToDict` gives with these options, whole doubles as ints."""
        try:
            return self._plan(msg.DESCRIPTOR)(msg)  # type: ignore[arg-type]
        except Exception:
            return self._slow(msg)  # raises as json_format does, or agrees with it

    def _slow(self, msg: message.Message) -> Any:
        data = json_format.MessageToDict(
            msg,
            preserving_proto_field_name=self._names,
            always_print_fields_with_no_presence=self._defaults,
            use_integers_for_enums=self._enums_as_ints,
            descriptor_pool=self._pool,
        )
        return whole_numbers(data)

    def _plan(self, desc: descriptor.Descriptor) -> MessageConvert:
        plan = self._plans.get(desc.full_name)
        if plan is None:
            plan = self._plans[desc.full_name] = self._compile(desc)
        return plan

    def _compile(self, desc: descriptor.Descriptor) -> MessageConvert:
        name = desc.full_name
        if desc.file.name == "google/protobuf/wrappers.proto":
            inner = self._field(desc.fields_by_name["value"])
            return lambda msg: inner(msg.value)  # type: ignore[attr-defined]
        if name == "google.protobuf.Timestamp":
            return _timestamp
        if name in _TEXT_TYPES:
            return lambda msg: msg.ToJsonString()  # type: ignore[attr-defined]
        if name == "google.protobuf.Struct":
            return _struct
        if name == "google.protobuf.Value":
            return _value
        if name == "google.protobuf.ListValue":
            return _list_value
        if name == "google.protobuf.Any":
            return self._slow
        return self._regular(desc)

    def _regular(self, desc: descriptor.Descriptor) -> MessageConvert:
        # Keyed by the field descriptors ListFields() returns (the same objects while
        # `desc` lives); None means the value prints as it is (strings, bools, int32).
        table: dict[FD, tuple[str, Convert | None]] = {}
        for field in desc.fields:
            key = field.name if self._names else field.json_name
            convert = self._field(field)
            table[field] = (key, None if convert is _same else convert)
        defaults = self._default_fields(desc) if self._defaults else ()

        def other(field: FD) -> tuple[str, Convert | None]:
            if not field.is_extension:
                raise KeyError(field.full_name)  # not a field of this type: json_format decides
            return f"[{field.full_name}]", self._field(field)

        def walk(msg: message.Message) -> Any:
            js = {}
            for field, value in msg.ListFields():
                key, to_json = table.get(field) or other(field)
                js[key] = value if to_json is None else to_json(value)
            for key, make in defaults:
                if key not in js:
                    js[key] = make()
            return js

        return walk

    def _default_fields(self, desc: descriptor.Descriptor) -> list[tuple[str, Callable[[], Any]]]:
        """What always_print_fields_with_no_presence adds for fields left unset."""
        out: list[tuple[str, Callable[[], Any]]] = []
        for field in desc.fields:
            if field.has_presence:
                continue
            key = field.name if self._names else field.json_name
            if _is_map(field):
                out.append((key, dict))
            elif field.is_repeated:
                out.append((key, list))
            else:
                value = self._single(field)(field.default_value)
                out.append((key, functools.partial(_same, value)))
        return out

    def _field(self, field: FD) -> Convert:
        """The converter of a field's whole value: map, repeated or single."""
        if _is_map(field):
            single = self._single(_message_type(field).fields_by_name["value"])

            def as_map(value: Any) -> Any:
                return {_map_key(k): single(value[k]) for k in value}

            return as_map
        single = self._single(field)
        if field.is_repeated:
            if single is _same:
                return list
            return lambda value: [single(v) for v in value]
        return single

    def _single(self, field: FD) -> Convert:
        """The converter of one value of a field, as json_format's _FieldToJsonObject."""
        kind = field.cpp_type
        if kind == FD.CPPTYPE_MESSAGE:
            full_name = _message_type(field).full_name
            plans = self._plans
            compiled = self._plan

            def sub(value: Any) -> Any:
                plan = plans.get(full_name)
                return (plan or compiled(value.DESCRIPTOR))(value)

            return sub
        if kind == FD.CPPTYPE_ENUM:
            return self._enum(field)
        if kind == FD.CPPTYPE_STRING:
            return _base64 if field.type == FD.TYPE_BYTES else _same
        if kind in _INT64:
            return str
        if kind == FD.CPPTYPE_DOUBLE:
            return _double
        if kind == FD.CPPTYPE_FLOAT:
            return _float
        return _same  # bool, int32, uint32

    def _enum(self, field: FD) -> Convert:
        if self._enums_as_ints:
            return _same
        enum = field.enum_type
        assert enum is not None
        if enum.full_name == "google.protobuf.NullValue":
            return lambda value: None
        names = {v.number: self._reference._FieldToJsonObject(field, v.number) for v in enum.values}
        if enum.is_closed:
            return names.__getitem__  # KeyError: json_format raises for it
        return lambda value: names.get(value, value)


def whole_numbers(data: Any) -> Any:
    """Whole doubles as integers, as the C++ printer Envoy uses prints them."""
    if isinstance(data, float) and data.is_integer() and abs(data) < _EXACT_FLOAT_LIMIT:
        return int(data)
    if isinstance(data, dict):
        return {k: whole_numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [whole_numbers(v) for v in data]
    return data


def _message_type(field: FD) -> descriptor.Descriptor:
    assert field.message_type is not None, field.full_name
    return field.message_type


def _is_map(field: FD) -> bool:
    if field.cpp_type != FD.CPPTYPE_MESSAGE:
        return False
    entry = _message_type(field)
    return bool(entry.has_options and entry.GetOptions().map_entry)


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _same(value: Any) -> Any:
    return value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _whole(value: float) -> Any:
    if value.is_integer() and abs(value) < _EXACT_FLOAT_LIMIT:
        return int(value)
    return value


def _double(value: float) -> Any:
    if math.isfinite(value):
        return _whole(value)
    if math.isnan(value):
        return "NaN"
    return "-Infinity" if value < 0 else "Infinity"


def _float(value: float) -> Any:
    if math.isfinite(value):
        return _whole(type_checkers.ToShortestFloat(value))
    return _double(value)


def _timestamp(msg: Any) -> str:
    """Timestamp.ToJsonString without its float arithmetic; out of range raises (the
    caller falls back to json_format, which says what is wrong)."""
    seconds, nanos = msg.seconds, msg.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        raise ValueError("Timestamp out of range")
    text = (_EPOCH + datetime.timedelta(seconds=seconds)).isoformat()
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _struct(msg: Any) -> Any:
    fields = msg.fields
    return {key: _value(fields[key]) for key in fields}


def _list_value(msg: Any) -> Any:
    return [_value(v) for v in msg.values]


def _value(msg: Any) -> Any:
    which = msg.WhichOneof("kind")
    if which == "string_value":
        return msg.string_value
    if which == "number_value":
        number = msg.number_value
        if not math.isfinite(number):
            raise ValueError("a Struct value is not finite")  # json_format says which
        return _whole(number)
    if which == "bool_value":
        return msg.bool_value
    if which == "struct_value":
        return _struct(msg.struct_value)
    if which == "list_value":
        return _list_value(msg.list_value)
    return None  # unset or null_value
