"""The registry of export formats: name, media type, header and one line per event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from audit_svc.model import StoredEvent

# The version of these mappings, in every output (`auditmesh.<format>/<version>`).
FORMAT_VERSION = 1
# Compact UTF-8 JSON, the same bytes as json.dumps(separators=(",", ":"),
# ensure_ascii=False) for these documents, several times faster (BENCHMARKS.md).
dump_bytes = orjson.dumps


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def version_tag(name: str) -> str:
    """What a line carries to say its format and version, e.g. `auditmesh.ocsf/1`."""
    return f"auditmesh.{name}/{FORMAT_VERSION}"


@dataclass(frozen=True, slots=True)
class Format:
    """One output format: `line` is one event's UTF-8 bytes, without the newline."""

    name: str
    content_type: str
    extension: str
    line: Callable[[StoredEvent], bytes]
    header: str = ""  # written once before the first line (CSV's column names)
    json: bool = True  # each line is one JSON document (usable as a webhook body)


def json_line(doc: Callable[[StoredEvent], dict[str, Any]]) -> Callable[[StoredEvent], bytes]:
    def line(stored: StoredEvent) -> bytes:
        return dump_bytes(doc(stored))

    return line


def text_line(text: Callable[[StoredEvent], str]) -> Callable[[StoredEvent], bytes]:
    def line(stored: StoredEvent) -> bytes:
        return text(stored).encode()

    return line


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def by_name(name: str) -> Format | None:
    """The format called `name` (lower case), or None."""
    _load()
    return FORMATS.get(name)


def names() -> list[str]:
    _load()
    return sorted(FORMATS)


def _load() -> None:
    # The modules register themselves on import.
    from audit_svc.formats import cef, ecs, flat, ocsf  # noqa: F401
