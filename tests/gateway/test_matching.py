"""Path templates and route matching with Envoy's precedence, percent-decoding, and
the parsing of query strings and grpc-timeout headers."""

from __future__ import annotations

import pytest

from gateway.binding import parse_query
from gateway.matcher import DuplicateRouteError, PathMatcher, unescape
from gateway.template import TemplateError, Variable, parse
from gateway.upstream import parse_grpc_timeout


def matcher(*rules: tuple[str, str]) -> PathMatcher[str]:
    m: PathMatcher[str] = PathMatcher()
    for method, path in rules:
        m.add(method, parse(path), f"{method} {path}")
    return m


def test_templates_parse_like_envoys() -> None:
    t = parse("/v1/{name=projects/*/items/**}/meta:get")
    assert t.segments == ("v1", "projects", "*", "items", "**", "meta")
    assert t.verb == "get"
    assert t.variables == (Variable(("name",), 1, -2),)
    assert parse("/v1/{user.user_id}").variables == (Variable(("user", "user_id"), 1, 2),)
    assert parse("/").segments == ()


@pytest.mark.parametrize(
    "text",
    ["v1/x", "/v1/{x", "/v1/{a={b}}", "/v1/**/{x}", "/v1/**/*", "/v1//x", "/v1/{9x}", "/v1/x:"],
)
def test_invalid_templates_are_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        parse(text)


def test_literals_win_then_single_then_multi_segment_wildcards() -> None:
    m = matcher(
        ("GET", "/v2/events/{event_id}"),
        ("GET", "/v2/events/query"),
        ("GET", "/v2/{name=**}"),
        ("GET", "/v2/events/{event_id}/receipt"),
    )

    def route(path: str) -> str | None:
        found = m.lookup("GET", path)
        return found.route if found else None

    assert route("/v2/events/query") == "GET /v2/events/query"
    assert route("/v2/events/abc") == "GET /v2/events/{event_id}"
    assert route("/v2/events/query/receipt") == "GET /v2/events/{event_id}/receipt"
    assert route("/v2/events/abc/other") == "GET /v2/{name=**}"  # backtracks to **
    assert route("/v2/events/query/") == "GET /v2/events/query"  # trailing slash dropped
    assert route("/v3/events") is None


def test_custom_verbs_split_only_when_registered() -> None:
    m = matcher(("POST", "/v1/users/{id}:lock"), ("POST", "/v1/users/{id}"))
    locked = m.lookup("POST", "/v1/users/u1:lock")
    assert locked is not None and locked.route == "POST /v1/users/{id}:lock"
    assert locked.bindings == (("id", "u1"),)
    plain = m.lookup("POST", "/v1/users/u1:other")
    assert plain is not None and plain.bindings == (("id", "u1:other"),)
    assert m.lookup("GET", "/v1/users/u1:lock") is None
    assert m.methods_for("/v1/users/u1:lock") == ["POST"]


def test_variables_are_decoded_as_envoy_does() -> None:
    m = matcher(("GET", "/v1/{one}"), ("GET", "/v1/{one}/{many=**}"))
    single = m.lookup("GET", "/v1/a%2Fb%20c")
    assert single is not None and single.bindings == (("one", "a/b c"),)
    multi = m.lookup("GET", "/v1/x/a%2Fb/c%20d")
    assert multi is not None and multi.bindings == (("one", "x"), ("many", "a%2Fb/c d"))


def test_duplicate_rules_are_refused() -> None:
    with pytest.raises(DuplicateRouteError):
        matcher(("GET", "/v1/{a}"), ("GET", "/v1/{b}"))


def test_unescape() -> None:
    assert unescape("a%20b%zz%4") == "a b%zz%4"
    assert unescape("%2F%3A%41", keep_reserved=True) == "%2F%3AA"
    assert unescape("a+b") == "a+b"
    assert unescape("a+b", plus_is_space=True) == "a b"


def test_query_strings_split_as_envoy_does() -> None:
    assert parse_query("a&b=&=c&d=1%202+3&e%2Ef=x") == [("b", ""), ("d", "1 2+3"), ("e.f", "x")]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2S", 2.0), ("500m", 0.5), ("1H", 3600.0), ("250u", 0.00025), ("x", None), ("", None)],
)
def test_grpc_timeout_header(header: str, seconds: float | None) -> None:
    assert parse_grpc_timeout(header) == seconds
