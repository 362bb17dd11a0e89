"""Sans-IO ``google.api.http`` path templates: parsed once at mount time, matched per request.

Grammar (``google/api/http.proto``)::

    Template  = "/" Segments [ Verb ] ;
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

A request path is matched on its raw, percent-encoded segments, so an encoded ``/`` (``%2F``)
never splits a segment; matched segments are decoded afterwards. A variable spanning several
segments keeps ``%2F`` encoded, as the spec says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar
from urllib.parse import unquote

__all__ = [
    "HttpRoute",
    "Matched",
    "NotAllowed",
    "PathTemplate",
    "RouteTable",
    "parse_template",
    "split_path",
]

T = TypeVar("T")
SegmentKind = Literal["literal", "*", "**"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLASH = re.compile("%2[Ff]")
_RANK = {"literal": 0, "*": 1, "**": 2}


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    text: str = ""
    """A literal segment's decoded text."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{field.path=...}`` capture over ``segments[start:end]`` (``end`` None: to the end)."""

    field_path: tuple[str, ...]
    start: int
    end: int | None

    @property
    def name(self) -> str:
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed path template; :meth:`match` runs per request, without allocating much."""

    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str = ""

    @property
    def shape(self) -> tuple[object, ...]:
        """Equal for two templates that match exactly the same paths."""
        return tuple((s.kind, s.text) for s in self.segments), self.verb

    @property
    def precedence(self) -> tuple[bool, tuple[int, ...]]:
        """Sorts the more specific template first: a verb, then literals before ``*``, ``**``."""
        return not self.verb, tuple(_RANK[s.kind] for s in self.segments)

    def match(self, raw: Sequence[str]) -> dict[str, str] | None:
        """The variables' decoded values if the raw segments match, else None."""
        if self.verb:
            suffix = ":" + self.verb
            if not raw or not raw[-1].endswith(suffix):
                return None
            raw = [*raw[:-1], raw[-1][: -len(suffix)]]
        rest = self.segments[-1].kind == "**"
        if len(raw) < len(self.segments) - 1 if rest else len(raw) != len(self.segments):
            return None
        for segment, text in zip(self.segments, raw, strict=False):
            if segment.kind == "literal" and unquote(text) != segment.text:
                return None
            if segment.kind == "*" and not text:
                return None
        return {variable.name: _value(variable, raw) for variable in self.variables}


def _value(variable: Variable, raw: Sequence[str]) -> str:
    if variable.end is not None and variable.end - variable.start == 1:
        return unquote(raw[variable.start])
    parts = raw[variable.start : variable.end]
    return "/".join("%2F".join(unquote(p) for p in _SLASH.split(part)) for part in parts)


def split_path(path: str) -> list[str]:
    """The segments of an absolute path (``"/v1/books/1"`` -> ``["v1", "books", "1"]``)."""
    return path[1:].split("/")


def parse_template(source: str) -> PathTemplate:
    """Parse a path template.

    Raises:
        ValueError: the template is malformed; the message says where.
    """
    if not source.startswith("/"):
        raise ValueError(f"path template {source!r} must start with '/'")
    body, verb = _split_verb(source[1:])
    if verb is not None and (not verb or any(c in verb for c in "{}*")):
        raise ValueError(f"path template {source!r} has an invalid verb {verb!r}")
    segments: list[Segment] = []
    variables: list[Variable] = []
    for token in _split_top_level(source, body):
        if token.startswith("{"):
            variables.append(_variable(source, token, segments))
        else:
            segments.append(_segment(source, token))
    _check(source, segments, variables)
    return PathTemplate(source, tuple(segments), tuple(variables), verb or "")


def _split_verb(body: str) -> tuple[str, str | None]:
    depth, slash, colon = 0, -1, -1
    for index, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0 and char == "/":
            slash = index
        elif depth == 0 and char == ":":
            colon = index
    if colon > slash:
        return body[:colon], body[colon + 1 :]
    return body, None


def _split_top_level(source: str, body: str) -> list[str]:
    tokens, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if depth not in (0, 1):
            raise ValueError(f"path template {source!r} has unbalanced or nested braces")
        if char == "/" and depth == 0:
            tokens.append(body[start:index])
            start = index + 1
    if depth:
        raise ValueError(f"path template {source!r} has an unclosed '{{'")
    tokens.append(body[start:])
    return tokens


def _segment(source: str, token: str) -> Segment:
    if token == "*":
        return Segment("*")
    if token == "**":
        return Segment("**")
    if not token or any(c in token for c in "{}*"):
        raise ValueError(f"path template {source!r} has an invalid segment {token!r}")
    return Segment("literal", unquote(token))


def _variable(source: str, token: str, segments: list[Segment]) -> Variable:
    if not token.endswith("}"):
        raise ValueError(f"path template {source!r}: {token!r} must be a whole segment")
    field, _, pattern = token[1:-1].partition("=")
    path = tuple(field.split("."))
    if not all(_IDENT.match(part) for part in path):
        raise ValueError(f"path template {source!r}: {field!r} is not a field path")
    start = len(segments)
    for part in (pattern or "*").split("/"):
        segments.append(_segment(source, part))
    end = None if segments[-1].kind == "**" else len(segments)
    return Variable(path, start, end)


def _check(source: str, segments: list[Segment], variables: list[Variable]) -> None:
    kinds = [segment.kind for segment in segments]
    if "**" in kinds[:-1]:
        raise ValueError(f"path template {source!r}: '**' must be the last segment")
    names = [variable.name for variable in variables]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"path template {source!r} binds {name!r} twice")


@dataclass(frozen=True, slots=True)
class HttpRoute(Generic[T]):
    """One HTTP rule: ``method`` plus ``template`` lead to ``target``; ``owner`` names the
    RPC it belongs to, for error messages."""

    method: str
    template: PathTemplate
    target: T
    owner: str

    def __str__(self) -> str:
        return f"{self.owner} ({self.method} {self.template.source})"


@dataclass(frozen=True, slots=True)
class Matched(Generic[T]):
    route: HttpRoute[T]
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class NotAllowed:
    """The path matched some rule, but none for the request's HTTP method."""

    allowed: tuple[str, ...]


class RouteTable(Generic[T]):
    """HTTP rules, kept most specific first, so a literal segment beats a variable."""

    def __init__(self) -> None:
        self._routes: list[HttpRoute[T]] = []

    def __bool__(self) -> bool:
        return bool(self._routes)

    def add(self, routes: Sequence[HttpRoute[T]]) -> None:
        """Add ``routes``, all or none.

        Raises:
            ValueError: two rules (added now or before) have one method and match the same
                paths.
        """
        taken: dict[tuple[object, ...], HttpRoute[T]] = {}
        for route in [*self._routes, *routes]:
            other = taken.setdefault((route.method, route.template.shape), route)
            if other is not route:
                raise ValueError(f"HTTP rule {route} conflicts with {other}: same paths")
        self._routes = sorted([*self._routes, *routes], key=lambda r: r.template.precedence)

    def match(self, method: str, raw: Sequence[str]) -> Matched[T] | NotAllowed | None:
        """The route for ``method`` on the raw path segments; ``NotAllowed`` if only other
        methods have one; None if no rule matches the path."""
        allowed: list[str] = []
        for route in self._routes:
            values = route.template.match(raw)
            if values is None:
                continue
            if route.method == method:
                return Matched(route, values)
            allowed.append(route.method)
        return NotAllowed(tuple(sorted(set(allowed)))) if allowed else None
