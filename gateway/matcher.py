"""Request path -> route, with the precedence of Envoy's path matcher.

A trie of template segments, searched depth first with backtracking: at each
segment a literal child is tried first, then `*` (and `{var}`), then `**`. So
`/api/v2/events/query` goes to the `query` literal even though
`/api/v2/events/{event_id}` also matches. A `**` node swallows segments until the
literal suffix after it matches. A custom verb (`:lock`) is split off the last
segment only when some template registered that verb; the HTTP method and the verb
together select among the routes of a node. Variable values are percent-decoded:
fully for a single segment, and all but reserved characters across several
segments (Envoy's default `ALL_CHARACTERS_EXCEPT_RESERVED`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.template import MULTI, SINGLE, PathTemplate

T = TypeVar("T")
ANY_METHOD = "*"
# RFC 6570 reserved characters: kept percent-encoded in multi-segment variables.
RESERVED = frozenset("!#$&'()*+,/:;=?@[]")
_HEX = frozenset("0123456789abcdefABCDEF")


class DuplicateRouteError(ValueError):
    """Two rules claim the same method, path and verb."""


@dataclass
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    routes: dict[str, tuple[PathTemplate, T]] = field(default_factory=dict)
    multi: bool = False


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    """The route found and the decoded value of each path variable."""

    route: T
    template: PathTemplate
    bindings: tuple[tuple[str, str], ...]


class PathMatcher(Generic[T]):
    """Routes by (HTTP method, path template); `lookup` finds one for a request."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._verbs: set[str] = set()

    def add(self, method: str, template: PathTemplate, route: T) -> None:
        """Register a route; `method` is upper-case, or `*` for any."""
        node = self._root
        for segment in template.segments:
            node = node.children.setdefault(segment, _Node())
            node.multi = node.multi or segment == MULTI
        key = method + (":" + template.verb if template.verb else "")
        if key in node.routes:
            other = node.routes[key][0].source
            raise DuplicateRouteError(f"{method} {template.source} duplicates {other}")
        node.routes[key] = (template, route)
        if template.verb:
            self._verbs.add(template.verb)

    def lookup(self, method: str, path: str) -> Match[T] | None:
        """The route of a request path (without the query string), or None."""
        parts, verb = self._split(path)
        suffix = ":" + verb if verb else ""
        found = _search(self._root, parts, 0, method + suffix) or _search(
            self._root, parts, 0, ANY_METHOD + suffix
        )
        if found is None:
            return None
        template, route = found
        return Match(route, template, tuple(_bind(template, parts)))

    def methods_for(self, path: str) -> list[str]:
        """HTTP methods that have a route for this path (for error messages)."""
        parts, verb = self._split(path)
        suffix = ":" + verb if verb else ""
        methods = []
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if _search(self._root, parts, 0, method + suffix):
                methods.append(method)
        return methods

    def _split(self, path: str) -> tuple[list[str], str]:
        verb = ""
        colon, slash = path.rfind(":"), path.rfind("/")
        if colon > slash and path[colon + 1 :] in self._verbs:
            path, verb = path[:colon], path[colon + 1 :]
        parts = path[1:].split("/") if path.startswith("/") else path.split("/")
        while parts and not parts[-1]:
            parts.pop()
        return parts, verb


def _search(node: _Node[T], parts: list[str], i: int, key: str) -> tuple[PathTemplate, T] | None:
    if i == len(parts):
        if key in node.routes:
            return node.routes[key]
        tail = node.children.get(MULTI)  # `/a/**` also matches `/a`
        return tail.routes.get(key) if tail is not None else None
    literal = node.children.get(parts[i])
    if literal is not None and (found := _search(literal, parts, i + 1, key)):
        return found
    if node.multi:
        # Inside `**`: consume this segment and try the literal suffix again.
        return _search(node, parts, i + 1, key)
    for wildcard in (SINGLE, MULTI):
        child = node.children.get(wildcard)
        if child is not None and (found := _search(child, parts, i + 1, key)):
            return found
    return None


def _bind(template: PathTemplate, parts: list[str]) -> Iterator[tuple[str, str]]:
    for var in template.variables:
        start, end = var.span(len(parts))
        multi = end - start > 1 or var.end < 0
        value = "/".join(unescape(p, keep_reserved=multi) for p in parts[start:end])
        yield var.name, value


def unescape(text: str, *, keep_reserved: bool = False, plus_is_space: bool = False) -> str:
    """Percent-decode as Envoy does: invalid escapes stay as they are; with
    `keep_reserved`, escapes of reserved characters stay encoded."""
    if "%" not in text and not plus_is_space:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and _hex(raw[i + 1]) and _hex(raw[i + 2]):
            decoded = int(raw[i + 1 : i + 3], 16)
            if not (keep_reserved and chr(decoded) in RESERVED):
                out.append(decoded)
                i += 3
                continue
        out.append(0x20 if plus_is_space and raw[i] == 0x2B else raw[i])
        i += 1
    return out.decode("utf-8", errors="replace")


def _hex(byte: int) -> bool:
    return chr(byte) in _HEX
