"""REST transcoding's view of a request message, and building the request from a URL and body.

A :class:`MessageView` lists a message's fields with the JSON key its decoder reads (a
Pydantic model's alias or name, a protobuf field's name) and how URL text becomes that
field's JSON value. A :class:`Transcoder` is one HTTP rule resolved against such a view at
mount time; per request it merges the body, the path variables and the query parameters into
one JSON object, which the method's ordinary JSON codec then decodes and validates.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

from .._model.typemap import (
    EnumType,
    FieldSpec,
    ModelType,
    ScalarType,
    TimeType,
    enum_values,
    model_fields,
)
from ..code import Code
from ..errors import ConnectError

__all__ = ["FieldView", "MessageView", "Transcoder", "view_of"]

FieldKind = Literal["value", "message", "repeated", "map", "oneof"]
Parse = Callable[[str], Any]
"""URL text -> the field's JSON value; ValueError if the text does not fit."""


@dataclass(frozen=True, slots=True)
class FieldView:
    name: str
    """The protobuf field name."""
    key: str
    """The JSON key the request decoder reads."""
    kind: FieldKind
    parse: Parse | None = None
    """For ``value`` fields and repeated scalars: URL text to JSON value."""
    message: MessageView | None = None


class MessageView:
    """The fields of one message type, by protobuf name and by their other accepted names."""

    __slots__ = ("fields", "name", "names")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, FieldView] = {}
        self.names: dict[str, str] = {}

    def add(self, field: FieldView, *aliases: str | None) -> None:
        self.fields[field.name] = field
        for alias in aliases:
            if alias:
                self.names.setdefault(alias, field.name)

    def field(self, name: str) -> FieldView | None:
        return self.fields.get(self.names.get(name, name))

    def resolve(self, path: Sequence[str]) -> tuple[FieldView, ...]:
        """The fields along a dotted path.

        Raises:
            ValueError: a step names no field, or a non-message field has sub-fields.
        """
        fields: list[FieldView] = []
        current: MessageView | None = self
        for part in path:
            if current is None:
                raise ValueError(f"{fields[-1].name} is not a message field with sub-fields")
            field = current.field(part)
            if field is None:
                raise ValueError(f"{current.name} has no field {part!r}")
            fields.append(field)
            current = field.message
        return tuple(fields)


def _parse_int(text: str) -> int:
    return int(text, 10)


_BOOLS = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def _parse_bool(text: str) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not a boolean") from None


def _text(text: str) -> str:
    return text


def _enum_parser(cls: type[enum.Enum]) -> Parse:
    # Accept the protobuf value name or number, the member name or the value itself; send the
    # value name, which the JSON decoder reads without ambiguity (a value may look like a
    # number). Names and numbers win over member names and values that look the same.
    known: dict[str, str] = {}
    values = [v for v in enum_values(cls) if v[2] is not None]
    for proto, _number, member in values:
        assert member is not None
        known.update({member.name: proto, str(member.value): proto})
    for proto, number, _member in values:
        known.update({proto: proto, str(number): proto})
    return lambda text: known.get(text, text)


def view_of(message_type: type) -> MessageView:
    """The view of a Pydantic model or protobuf message class."""
    if issubclass(message_type, ProtoMessage):
        return _descriptor_view(message_type.DESCRIPTOR, {})
    if issubclass(message_type, BaseModel):
        return _model_view(message_type, {})
    raise TypeError(f"{message_type!r} is not a pydantic model or protobuf message class")


def _model_view(model: type[BaseModel], seen: dict[Any, MessageView]) -> MessageView:
    if model in seen:
        return seen[model]
    view = seen[model] = MessageView(model.__name__)
    by_alias = model.model_config.get("validate_by_alias", True)
    for spec in model_fields(model):
        info = model.model_fields[spec.name]
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        key = alias if alias and by_alias else spec.name
        kind, parse, child = _model_field(spec, seen)
        view.add(FieldView(spec.name, key, kind, parse, child), spec.json_name, alias)
    return view


def _model_field(
    spec: FieldSpec, seen: dict[Any, MessageView]
) -> tuple[FieldKind, Parse | None, MessageView | None]:
    value = spec.value
    repeated = spec.label == "repeated"
    if spec.label in ("oneof", "map"):
        return spec.label, None, None
    if isinstance(value, ModelType):
        return "repeated" if repeated else "message", None, _model_view(value.model, seen)
    if isinstance(value, ScalarType):
        # decimal, uuid and date travel as strings (value.text) the model parses itself
        parse = _SCALAR_PARSERS.get(value.kind, _text) if value.text is None else _text
    elif isinstance(value, EnumType):
        parse = _enum_parser(value.enum)
    elif isinstance(value, TimeType):  # RFC 3339 timestamps, ISO 8601 durations
        parse = _text
    else:  # a protobuf message inside a model has no URL form
        return "repeated" if repeated else "message", None, None
    return "repeated" if repeated else "value", parse, None


_SCALAR_PARSERS: dict[str, Parse] = {"int64": _parse_int, "double": float, "bool": _parse_bool}


_FD = FieldDescriptor
_INTS = {
    _FD.TYPE_INT32,
    _FD.TYPE_INT64,
    _FD.TYPE_UINT32,
    _FD.TYPE_UINT64,
    _FD.TYPE_SINT32,
    _FD.TYPE_SINT64,
    _FD.TYPE_FIXED32,
    _FD.TYPE_FIXED64,
    _FD.TYPE_SFIXED32,
    _FD.TYPE_SFIXED64,
}
# Well-known types whose JSON form is a string, or a wrapper around one scalar.
_TEXT_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


def _scalar_parser(field: Any) -> Parse:
    if field.type in _INTS:
        return _parse_int
    if field.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return float
    if field.type == _FD.TYPE_BOOL:
        return _parse_bool
    if field.type == _FD.TYPE_ENUM:
        return lambda text: int(text) if text.lstrip("-").isdigit() else text
    return _text  # string, and bytes (base64 text, as in the JSON mapping)


def _descriptor_view(descriptor: Any, seen: dict[Any, MessageView]) -> MessageView:
    if descriptor.full_name in seen:
        return seen[descriptor.full_name]
    view = seen[descriptor.full_name] = MessageView(descriptor.name)
    for field in descriptor.fields:
        view.add(_descriptor_field(field, seen), field.json_name)
    return view


def _is_repeated(field: Any) -> bool:
    # protobuf 7 removed `label`; `is_repeated` arrived in 5.29, after our oldest supported.
    is_repeated = getattr(field, "is_repeated", None)
    return bool(is_repeated) if is_repeated is not None else field.label == _FD.LABEL_REPEATED


def _descriptor_field(field: Any, seen: dict[Any, MessageView]) -> FieldView:
    repeated = _is_repeated(field)
    if field.type != _FD.TYPE_MESSAGE:
        kind: FieldKind = "repeated" if repeated else "value"
        return FieldView(field.name, field.name, kind, _scalar_parser(field))
    target = field.message_type
    if target.GetOptions().map_entry:
        return FieldView(field.name, field.name, "map")
    if target.full_name in _TEXT_MESSAGES:
        return FieldView(field.name, field.name, "repeated" if repeated else "value", _text)
    if target.full_name.startswith("google.protobuf.") and target.name.endswith("Value"):
        inner = target.fields_by_name.get("value")
        if inner is not None:  # wrappers: the JSON form is the wrapped scalar
            parse = _scalar_parser(inner)
            return FieldView(field.name, field.name, "repeated" if repeated else "value", parse)
    child = _descriptor_view(target, seen)
    return FieldView(field.name, field.name, "repeated" if repeated else "message", None, child)


def _invalid(message: str) -> ConnectError:
    return ConnectError(Code.INVALID_ARGUMENT, message)


def _assign(obj: dict[str, Any], fields: Sequence[FieldView], value: Any, append: bool) -> None:
    for field in fields[:-1]:
        nested = obj.setdefault(field.key, {})
        if not isinstance(nested, dict):
            raise _invalid(f"{field.name} must be a JSON object")
        obj = nested
    if append:
        obj.setdefault(fields[-1].key, []).append(value)
    else:
        obj[fields[-1].key] = value


def _parse(fields: Sequence[FieldView], text: str) -> Any:
    parse = fields[-1].parse
    assert parse is not None
    try:
        return parse(text)
    except ValueError:
        where = ".".join(f.name for f in fields)
        raise _invalid(f"invalid value for {where}: {text!r}") from None


@dataclass(frozen=True, slots=True)
class Transcoder:
    """One HTTP rule's mapping from URL and body to a request message."""

    view: MessageView
    variables: dict[str, tuple[FieldView, ...]]
    body: str
    body_field: FieldView | None
    bound: tuple[tuple[str, ...], ...]
    """Protobuf field paths set by the path or the body field: the query may not set them."""

    @classmethod
    def build(cls, message_type: type, variables: Iterable[str], body: str) -> Transcoder:
        """Resolve a rule's variables and body against the request type.

        Raises:
            ValueError: a variable or the body names no suitable field.
        """
        view = view_of(message_type)
        resolved: dict[str, tuple[FieldView, ...]] = {}
        for name in variables:
            fields = view.resolve(name.split("."))
            if fields[-1].kind != "value":
                raise ValueError(f"path variable {name!r} must be a singular scalar field")
            resolved[name] = fields
        bound = [tuple(f.name for f in fields) for fields in resolved.values()]
        body_field = None
        if body not in ("", "*"):
            body_field = view.field(body)
            if body_field is None or "." in body:
                raise ValueError(f"body {body!r} must be a top-level field of {view.name}")
            if (body_field.name,) in bound:
                raise ValueError(f"body field {body!r} is also a path variable")
            bound.append((body_field.name,))
        return cls(view, resolved, body, body_field, tuple(bound))

    def request(
        self, values: dict[str, str], query: Sequence[tuple[str, str]], body: bytes
    ) -> bytes:
        """The request message as JSON, from the path variables, query and body.

        Raises:
            ConnectError: ``invalid_argument`` for malformed JSON, a bad value, or an unknown
                or disallowed query parameter.
        """
        obj = self._from_body(body)
        for name, text in values.items():
            fields = self.variables[name]
            _assign(obj, fields, _parse(fields, text), append=False)
        self._apply_query(obj, query)
        return json.dumps(obj, separators=(",", ":")).encode()

    def _from_body(self, body: bytes) -> dict[str, Any]:
        if not self.body or not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise _invalid(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:  # nested deeper than the interpreter's stack allows
            raise _invalid("the request body is nested too deeply") from None
        if self.body_field is not None:
            return {self.body_field.key: parsed}
        if not isinstance(parsed, dict):
            raise _invalid("the request body must be a JSON object")
        return parsed

    def _apply_query(self, obj: dict[str, Any], query: Sequence[tuple[str, str]]) -> None:
        done: set[tuple[str, ...]] = set()
        for name, text in query:
            fields = self._query_field(name)
            path = tuple(f.name for f in fields)
            repeated = fields[-1].kind == "repeated"
            if path in done and not repeated:
                raise _invalid(f"query parameter {name!r} is repeated, but its field is not")
            done.add(path)
            _assign(obj, fields, _parse(fields, text), append=repeated)

    def _query_field(self, name: str) -> tuple[FieldView, ...]:
        if self.body == "*":
            raise _invalid(f"unknown query parameter {name!r}: this rule reads the body only")
        try:
            fields = self.view.resolve(name.split("."))
        except ValueError:
            raise _invalid(f"unknown query parameter {name!r}") from None
        path = tuple(f.name for f in fields)
        for taken in self.bound:
            if path[: len(taken)] == taken or taken[: len(path)] == path:
                raise _invalid(f"query parameter {name!r} sets a field the path or body sets")
        if fields[-1].parse is None:
            raise _invalid(f"query parameter {name!r} names a field the query cannot set")
        return fields
