"""What a SIEM does with our output, for the tests: parse CEF lines and RFC 5424
frames, and check OCSF documents against the OCSF 1.5.0 schema (the pydantic models
of the PyPI package ocsf-emitter, generated from the schema)."""

from __future__ import annotations

import re
from typing import Any

from ocsf_emitter._models import (
    AccountChange,
    ApiActivity,
    Authentication,
    DetectionFinding,
    UserAccess,
)
from ocsf_emitter.validate import validate as ocsf_validate

OCSF_MODELS: dict[int, Any] = {
    2004: DetectionFinding,
    3001: AccountChange,
    3002: Authentication,
    3005: UserAccess,
    6003: ApiActivity,
}


def check_ocsf(doc: dict[str, Any]) -> None:
    """Raise unless `doc` is a valid OCSF 1.5.0 event of its class (schema types,
    required attributes, enums, type_uid = class_uid * 100 + activity_id)."""
    model = OCSF_MODELS[doc["class_uid"]].model_validate(doc)
    ocsf_validate(model)


def split_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """The 7 unescaped header fields and the unescaped extension of a CEF line."""
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while len(fields) < 7:
        c = line[i]
        if c == "\\":
            current.append(line[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    return fields, parse_extension(line[i:])


_KEY = re.compile(r"(?:^| )([A-Za-z0-9_]+)=")


def parse_extension(text: str) -> dict[str, str]:
    """CEF extension pairs: a key is a word followed by an unescaped `=`."""
    starts = []
    for m in _KEY.finditer(text):
        backslashes = len(text[: m.end() - 1]) - len(text[: m.end() - 1].rstrip("\\"))
        if backslashes % 2 == 0:
            starts.append(m)
    out = {}
    for m, nxt in zip(starts, [*starts[1:], None], strict=True):
        raw = text[m.end() : nxt.start() if nxt else len(text)]
        out[m.group(1)] = _unescape(raw)
    return out


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"n": "\n", "r": "\r"}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def octet_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 octet-counted frames (`LEN SP MSG`) in `data`, and the rest."""
    frames = []
    while b" " in data:
        length, _, rest = data.partition(b" ")
        n = int(length)
        if len(rest) < n:
            break
        frames.append(rest[:n])
        data = rest[n:]
    return frames, data
