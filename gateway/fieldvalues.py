"""Text from a URL (path variable or query parameter) into a message field.

Scalars parse as in proto3 JSON (numbers, `true`/`false`, base64 bytes), enums by
name or number, and the well-known types from their JSON string form: Timestamp
(RFC 3339), Duration (`1.5s`), FieldMask (`a,b.c`) and the wrappers. Repeated
fields take one value per occurrence (`?tag=a&tag=b`). Other messages cannot be set
from text: their fields can (`nested.name=x`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor, message

FD = descriptor.FieldDescriptor
_INT_RANGES: dict[int, tuple[int, int]] = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = {FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
_STRING_TYPES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_INTEGER = re.compile(r"[+-]?\d+")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def settable_from_text(field: descriptor.FieldDescriptor) -> bool:
    """True when a URL value can set this field (a scalar, enum or string-like WKT)."""
    if field.message_type is None:
        return True
    if field.message_type.GetOptions().map_entry:
        return False
    name = field.message_type.full_name
    return name in _WRAPPERS or name in _STRING_TYPES


def assign(
    target: message.Message, field: descriptor.FieldDescriptor, values: Sequence[str]
) -> None:
    """Set `field` of `target` from URL text; ValueError says what is wrong.

    A singular field takes the last value; a repeated field takes them all.
    """
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        raise ValueError("is a map; maps cannot be set from the URL")
    if field.message_type is not None and not settable_from_text(field):
        raise ValueError(
            f"is a message ({field.message_type.full_name}); set its fields instead, "
            f"such as {field.name}.{_first_field(field.message_type)}="
        )
    if field.is_repeated:
        container: Any = getattr(target, field.name)
        del container[:]
        for text in values:
            if field.message_type is not None:
                _fill_message(container.add(), text)
            else:
                container.append(scalar(field, text))
        return
    text = values[-1]
    if field.message_type is not None:
        sub = getattr(target, field.name)
        sub.SetInParent()
        _fill_message(sub, text)
    else:
        setattr(target, field.name, scalar(field, text))


def scalar(field: descriptor.FieldDescriptor, text: str) -> Any:
    """The Python value of a scalar or enum field from its text."""
    kind = field.type
    if kind == FD.TYPE_STRING:
        return text
    if kind == FD.TYPE_BOOL:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    if kind in _INT_RANGES:
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"{text!r} is not an integer")
        low, high = _INT_RANGES[kind]
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"{text} is out of range [{low}, {high}]")
        return number
    if kind in _FLOATS:
        try:
            real = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if kind == FD.TYPE_FLOAT and math.isfinite(real) and abs(real) > 3.4028235e38:
            raise ValueError(f"{text} is out of range for a float")
        return real
    if kind == FD.TYPE_BYTES:
        return _base64(text)
    if kind == FD.TYPE_ENUM and field.enum_type is not None:
        return _enum(field.enum_type, text)
    raise ValueError(f"fields of type {kind} cannot be set from the URL")


def _enum(enum: descriptor.EnumDescriptor, text: str) -> int:
    value = enum.values_by_name.get(text)
    if value is not None:
        return int(value.number)
    if _INTEGER.fullmatch(text):
        return int(text)
    names = ", ".join(v.name for v in enum.values)
    raise ValueError(f"{text!r} is not a value of {enum.full_name} ({names})")


def _base64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r} is not base64") from None


def _fill_message(msg: Any, text: str) -> None:
    name = msg.DESCRIPTOR.full_name
    if name in _WRAPPERS:
        msg.value = scalar(msg.DESCRIPTOR.fields_by_name["value"], text)
    elif name == "google.protobuf.FieldMask":
        msg.paths[:] = [_snake(p.strip()) for p in text.split(",") if p.strip()]
    else:  # Timestamp, Duration
        try:
            msg.FromJsonString(text)
        except ValueError as exc:
            kind = name.rsplit(".", 1)[1]
            raise ValueError(f"{text!r} is not a valid {kind}: {exc}") from None


def _snake(path: str) -> str:
    """FieldMask paths may be written in JSON (camelCase) or proto (snake_case) form."""
    return path if "_" in path else _CAMEL.sub("_", path).lower()


def _first_field(msg: descriptor.Descriptor) -> str:
    return msg.fields[0].name if msg.fields else "field"
