"""google.api.http path templates, parsed as grpc-httpjson-transcoding (Envoy) does.

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`{var}` means `{var=*}`; only literals may follow `**`; variables do not nest.
"""

from __future__ import annotations

from dataclasses import dataclass

SINGLE = "*"
MULTI = "**"


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A field bound to the path segments [start, end).

    `end` is negative when the variable contains `**`: it then counts from the end
    of the request path, -1 being just past the last segment.
    """

    field_path: tuple[str, ...]
    start: int
    end: int

    @property
    def name(self) -> str:
        return ".".join(self.field_path)

    def span(self, length: int) -> tuple[int, int]:
        """Absolute [start, end) within a request path of `length` segments."""
        return self.start, self.end if self.end >= 0 else length + self.end + 1


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """The segments to match (literals, `*`, `**`), the custom verb and the variables."""

    source: str
    segments: tuple[str, ...]
    verb: str
    variables: tuple[Variable, ...]

    def variable_pattern(self, var: Variable) -> str:
        """The segments a variable matches, e.g. `projects/*`, for docs."""
        end = var.end if var.end >= 0 else len(self.segments) + var.end + 1
        return "/".join(self.segments[var.start : end])


def parse(text: str) -> PathTemplate:
    """Parse a template; `TemplateError` names what is wrong."""
    if text == "/":
        return PathTemplate(text, (), "", ())
    return _Parser(text).run()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[str] = []
        self.variables: list[Variable] = []
        self.in_variable = False
        self.multi_in_variable = False

    def fail(self, why: str) -> TemplateError:
        return TemplateError(f"path template {self.text!r}: {why} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def consume(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def run(self) -> PathTemplate:
        if not self.consume("/"):
            raise self.fail("must start with '/'")
        self.parse_segments()
        verb = ""
        if self.consume(":"):
            verb = self.literal()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        seen_multi = False
        for segment in self.segments:
            if seen_multi and segment in (SINGLE, MULTI):
                raise self.fail("only literal segments may follow '**'")
            seen_multi = seen_multi or segment == MULTI
        count = len(self.segments)
        variables = tuple(
            Variable(v.field_path, v.start, v.end - count - 1) if self._has_multi(v) else v
            for v in self.variables
        )
        return PathTemplate(self.text, tuple(self.segments), verb, variables)

    def _has_multi(self, var: Variable) -> bool:
        return MULTI in self.segments[var.start : var.end]

    def parse_segments(self) -> None:
        self.segment()
        while self.consume("/"):
            self.segment()

    def segment(self) -> None:
        if self.consume("*"):
            self.segments.append(MULTI if self.consume("*") else SINGLE)
        elif self.consume("{"):
            self.variable()
        else:
            self.segments.append(self.literal())

    def variable(self) -> None:
        if self.in_variable:
            raise self.fail("variables cannot nest")
        self.in_variable = True
        start = len(self.segments)
        path = [self.identifier()]
        while self.consume("."):
            path.append(self.identifier())
        if self.consume("="):
            self.parse_segments()
        else:
            self.segments.append(SINGLE)
        if not self.consume("}"):
            raise self.fail("expected '}'")
        self.in_variable = False
        self.variables.append(Variable(tuple(path), start, len(self.segments)))

    def identifier(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ".}=/{:*":
            self.pos += 1
        name = self.text[start : self.pos]
        if not name.isidentifier():
            raise self.fail(f"{name!r} is not a field name")
        return name

    def literal(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "/:{}":
            self.pos += 1
        if self.pos == start:
            raise self.fail("empty segment")
        return self.text[start : self.pos]
