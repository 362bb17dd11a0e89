"""The proto3 JSON mapping for Pydantic messages, compiled once per model at mount time.

JSON stays in pydantic-core both ways. At mount time the model's core schema is copied and
rewritten where Pydantic's JSON form differs from protobuf's: 64-bit integers are written as
strings, enums as their protobuf value names, durations as ``"1.500s"``, timestamps in UTC
with ``Z``, float NaN and infinities as ``"NaN"``/``"Infinity"``, a union of models under its
``oneof`` member's name (``"petDog": {...}``). Decoding gets hooks only where Pydantic cannot
read protobuf's form; a model without enums, durations, int ``Literal``s, strict ints, unions
of models, protobuf-class fields or lists with a non-empty default keeps its own validator, so
the common case costs nothing extra.

proto3 JSON encoders leave out fields that hold their zero value. Decoding therefore first
validates as is and only when every error is a missing field fills in the zero values
(:mod:`connectpy._model.jsonabsent`) and validates again: a client that sends every field pays
nothing for this.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import enum
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pydantic_core
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaSerializer, SchemaValidator
from pydantic_core import core_schema as cs

from .jsonabsent import empty_collections, filler, input_keys
from .typemap import FieldSpec, UnknownEnum, enum_values, model_fields

__all__ = ["JsonCodec", "duration_text", "json_codec"]

Schema = dict[str, Any]

_UTC = datetime.UTC
_MICROS = 1_000_000
_SER_CONFIG: cs.CoreConfig = {"ser_json_inf_nan": "strings"}  # "NaN", "Infinity", "-Infinity"
# Keys of a core schema that hold other schemas (serialization schemas are left alone).
_CHILDREN = (
    *("schema", "items_schema", "values_schema"),
    *("json_schema", "python_schema", "lax_schema", "strict_schema"),
)
_DURATION = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
_INT_TEXT = re.compile(r"^-?\d+$")


@dataclass(frozen=True, slots=True)
class JsonCodec:
    """A model's JSON encoder and decoder (``ValidationError`` on invalid input)."""

    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


def json_codec(model: type[BaseModel]) -> JsonCodec:
    """The proto3 JSON codec of a model whose fields :mod:`connectpy._model.typemap` can map."""
    rewriter = _Rewriter()
    schema = cast(cs.CoreSchema, rewriter.rewrite(cast(Schema, model.__pydantic_core_schema__)))
    # Without hooks the model's own validator reads protobuf's JSON already: keep it.
    validate_json: Callable[[bytes], Any] = model.__pydantic_validator__.validate_json
    with _unbuilt(rewriter.models):
        serializer = SchemaSerializer(schema, _SER_CONFIG)
        if rewriter.hooked:
            validate_json = SchemaValidator(schema).validate_json
    to_json, fill = serializer.to_json, filler(model)

    def encode(value: Any) -> bytes:
        # None fields are left out, as protobuf leaves out unset ones.
        return to_json(value, by_alias=True, exclude_none=True)

    def decode(data: bytes) -> Any:
        data = data or b"{}"  # an empty body is the empty message in every codec
        try:
            return validate_json(data)
        except ValidationError as exc:
            if not all(error["type"] == "missing" for error in exc.errors()):
                raise
        # Absent fields are the proto3 zero values: fill them in and try once more.
        filled = pydantic_core.from_json(data)
        fill(filled)
        return validate_json(pydantic_core.to_json(filled))

    return JsonCodec(encode, decode)


@contextlib.contextmanager
def _unbuilt(models: Iterable[type]) -> Iterator[None]:
    """Makes complete model classes read as incomplete while our schema is built.

    pydantic-core builds a ``model`` node of a complete class as that class's own validator
    or serializer (``__pydantic_validator__``), which would drop every rewritten node below
    it. Mount time only; the flag is restored at once.
    """
    flipped = [m for m in models if m.__dict__.get("__pydantic_complete__") is True]
    try:
        for model in flipped:
            type.__setattr__(model, "__pydantic_complete__", False)
        yield
    finally:
        for model in flipped:
            type.__setattr__(model, "__pydantic_complete__", True)


# --- values --------------------------------------------------------------------------------


def duration_text(value: datetime.timedelta) -> str:
    """A Duration's JSON form: seconds with 0, 3 or 6 fractional digits, ``"-1.500s"``."""
    micros = (value.days * 86400 + value.seconds) * _MICROS + value.microseconds
    seconds, rest = divmod(abs(micros), _MICROS)
    sign = "-" if micros < 0 else ""
    if not rest:
        return f"{sign}{seconds}s"
    fraction = f"{rest:06d}"
    return f"{sign}{seconds}.{fraction[:3] if rest % 1000 == 0 else fraction}s"


def _read_duration(value: Any) -> Any:
    # Anything else (ISO 8601, a number of seconds) is left to Pydantic, as before.
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return value
    sign, seconds, fraction = match.groups()
    micros = int(seconds) * _MICROS + int(((fraction or "") + "000000")[:6])  # ns truncated
    return datetime.timedelta(microseconds=-micros if sign else micros)


def _utc(value: datetime.datetime) -> datetime.datetime:
    # Naive means UTC, as in the binary codec; aware values are written Z-normalized.
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _read_int_text(value: Any) -> Any:
    # An int Literal is an int64 field, which proto3 JSON writes as a string.
    return int(value) if isinstance(value, str) and _INT_TEXT.match(value) else value


def _read_bytes(value: Any) -> Any:
    # Needed only below a oneof hook, where Pydantic validates Python values and would take a
    # str as UTF-8; accepts standard and URL-safe base64, padded or not, as the mapping says.
    if not isinstance(value, str):
        return value
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


class _Table(dict[Any, Any]):
    """A lookup that gives back what it does not know, for the validator to judge. Its bound
    ``__getitem__`` is a C function: no Python frame per enum value on a hit."""

    def __missing__(self, key: Any) -> Any:
        return key


class _EnumTable(dict[Any, Any]):
    """An enum's members by value name, number and Python value; on a miss (a Python frame
    only then), the enum's own lookup, else :class:`UnknownEnum` for the error message."""

    def __init__(self, cls: type[enum.Enum]) -> None:
        super().__init__()
        self.cls = cls

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, self.cls):
            return key
        if isinstance(key, str) and _INT_TEXT.match(key) and int(key) in self:
            return self[int(key)]  # a number in a string, which Pydantic read before
        try:
            return self.cls(key)  # the enum's _missing_, a case-insensitive lookup say
        except (ValueError, TypeError):
            pass
        if isinstance(key, int | float | str) and not isinstance(key, bool):
            return UnknownEnum(self.cls, key)
        return key  # a wrong type: the validator says so


def _enum_hooks(cls: type[enum.Enum]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(read, write): read accepts the value name, the number or (unless another member's
    name or number is spelled the same) the Python value; write gives the value name."""
    known = _EnumTable(cls)
    for member in cls:
        # An unhashable value can only be sent by name or number.
        with contextlib.suppress(TypeError):
            known[member.value] = member
    names = _Table()
    for name, number, maybe in enum_values(cls):
        if maybe is not None:
            known[name] = known[number] = maybe
            names[maybe] = name
    lookup = known.__getitem__

    def read(value: Any) -> Any:
        # true would be found as 1 and an array or object is unhashable: none is an enum value.
        if type(value) in _NOT_ENUM_VALUES:
            return UnknownEnum(cls, value)
        return lookup(value)

    return read, names.__getitem__


_NOT_ENUM_VALUES = frozenset({bool, list, dict})


def _proto_hooks(cls: type[ProtoMessage]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(read, write) for a protobuf class inside a model: protobuf's own JSON form."""

    def read(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return json_format.ParseDict(value, cls(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from None

    return read, json_format.MessageToDict


# --- the schema rewrite ----------------------------------------------------------------------


def _before(read: Callable[[Any], Any], node: Schema) -> Schema:
    wrapper = cast(Schema, cs.no_info_before_validator_function(read, cast(cs.CoreSchema, node)))
    if "ref" in node:  # references must reach the hook too
        wrapper["ref"] = node.pop("ref")
    return wrapper


def _plain(write: Callable[[Any], Any], returns: cs.CoreSchema | None = None) -> Any:
    return cs.plain_serializer_function_ser_schema(write, return_schema=returns, when_used="json")


class _Rewriter:
    """Copies a core schema with the proto3 JSON forms attached; never mutates the original.

    ``hooked`` says whether decoding needs the copy (a validation hook was added).
    """

    def __init__(self) -> None:
        self.hooked = False
        self.models: set[type] = set()
        self.strict = False
        """Whether the model being rewritten validates strictly (``ConfigDict(strict=True)``)."""

    def rewrite(self, node: Schema) -> Schema:
        if node.get("type") != "model":
            return self._rewrite(node)
        outer = self.strict
        self.strict = bool(node.get("config", {}).get("strict", False))
        try:
            return self._rewrite(node)
        finally:
            self.strict = outer

    def _rewrite(self, node: Schema) -> Schema:
        node = dict(node)
        for key in _CHILDREN:
            if isinstance(node.get(key), dict):
                node[key] = self.rewrite(node[key])
        if "fields" in node and isinstance(node["fields"], dict):
            node["fields"] = {k: self.rewrite(f) for k, f in node["fields"].items()}
        if "definitions" in node:
            node["definitions"] = [self.rewrite(d) for d in node["definitions"]]
        if "steps" in node:
            node["steps"] = [self.rewrite(s) for s in node["steps"]]
        if "choices" in node:
            node["choices"] = self._choices(node["choices"])
        return self._leaf(node)

    def _choices(self, choices: Any) -> Any:
        if isinstance(choices, dict):  # a tagged union
            return {tag: self.rewrite(c) for tag, c in choices.items()}
        return [
            (self.rewrite(c[0]), c[1]) if isinstance(c, tuple) else self.rewrite(c) for c in choices
        ]

    def _leaf(self, node: Schema) -> Schema:
        # A serializer the user attached (PlainSerializer, model_serializer) is kept.
        kind, ser = node["type"], node.setdefault
        if kind == "int":
            # int64: a decimal string, which JavaScript clients read without losing precision.
            ser("serialization", cs.to_string_ser_schema(when_used="json"))
            if node.get("strict", self.strict):  # lax validation reads the string form itself
                return self._hook(_read_int_text, node)
        elif kind == "literal" and all(type(v) is int for v in node["expected"]):
            ser("serialization", cs.to_string_ser_schema(when_used="json"))
            return self._hook(_read_int_text, node)
        elif kind == "enum":
            read, write = _enum_hooks(node["cls"])
            ser("serialization", _plain(write))
            return self._hook(read, node)
        elif kind == "timedelta":
            ser("serialization", _plain(duration_text))
            return self._hook(_read_duration, node)
        elif kind == "datetime":
            ser("serialization", _plain(_utc, cs.datetime_schema()))
        elif kind == "bytes":
            return _before(_read_bytes, node)  # not a hook of its own: see _read_bytes
        elif kind == "is-instance" and issubclass(node["cls"], ProtoMessage):
            read, write = _proto_hooks(node["cls"])
            ser("serialization", _plain(write))
            return self._hook(read, node)
        elif kind == "model":
            return self._model(node)
        return node

    def _model(self, node: Schema) -> Schema:
        model = node["cls"]
        self.models.add(model)
        node["config"] = {**node.get("config", {}), **_SER_CONFIG}
        reads = []
        oneofs = [s for s in model_fields(model) if s.label == "oneof"]
        if oneofs:
            writer = _oneof_writer(model, oneofs)
            node.setdefault(
                "serialization", cs.wrap_serializer_function_ser_schema(writer, when_used="json")
            )
            reads.append(_oneof_reader(model, oneofs))
        empties = empty_collections(model)
        if empties is not None:
            reads.append(empties)
        if not reads:
            return node
        return self._hook(reads[0] if len(reads) == 1 else _chain(reads), node)

    def _hook(self, read: Callable[[Any], Any], node: Schema) -> Schema:
        self.hooked = True
        return _before(read, node)


def _chain(reads: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        for one in reads:
            value = one(value)
        return value

    return read


# --- oneofs --------------------------------------------------------------------------------


def _oneof_writer(model: type[BaseModel], specs: list[FieldSpec]) -> Callable[..., Any]:
    """Moves each union field's object to its member's JSON name: ``"petDog": {...}``."""
    fields = []
    for spec in specs:
        info = model.model_fields[spec.name]
        key = info.serialization_alias or info.alias or spec.name
        fields.append((key, spec.name, {m.model: m.json_name for m in spec.members}))

    def write(value: Any, handler: Callable[[Any], Any]) -> Any:
        out = handler(value)
        for key, name, by_type in fields:
            if key not in out:
                continue
            member = getattr(value, name)
            found = by_type.get(type(member))
            if found is None:  # a subclass of a member
                found = next((n for t, n in by_type.items() if isinstance(member, t)), None)
            data = out.pop(key)
            if found is not None and data is not None:
                out[found] = data
        return out

    return write


def _oneof_reader(model: type[BaseModel], specs: list[FieldSpec]) -> Callable[[Any], Any]:
    """Reads ``"petDog": {...}`` (or ``"pet_dog"``) as a Dog, so Pydantic never guesses; the
    field's own name still reads as before."""
    fields = []
    for spec in specs:
        keys = input_keys(model, spec.name)
        members = [((m.json_name, m.name), m.model) for m in spec.members]
        fields.append((keys, members))

    def read(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] | None = None
        for keys, members in fields:
            found = [(k, m) for names, m in members for k in names if k in value]
            if not found:
                continue
            if len({m for _, m in found}) > 1:
                raise ValueError(f"several members of one oneof: {', '.join(k for k, _ in found)}")
            out = dict(value) if out is None else out
            for key in keys:
                out.pop(key, None)
            key, member = found[0]
            if value[key] is not None:  # null: the oneof is unset
                out[keys[0]] = _member(member, key, value[key])
        return value if out is None else out

    return read


_member_validators: dict[type[BaseModel], SchemaValidator] = {}


def _member(model: type[BaseModel], key: str, value: Any) -> Any:
    validator = _member_validators.get(model)
    if validator is None:  # built on first use: models may contain themselves
        rewriter = _Rewriter()
        schema = rewriter.rewrite(cast(Schema, model.__pydantic_core_schema__))
        with _unbuilt(rewriter.models):
            validator = SchemaValidator(cast(cs.CoreSchema, schema))
        _member_validators[model] = validator
    try:
        return validator.validate_python(value)
    except ValidationError as exc:
        raise _under(key, exc) from None


def _under(key: str, exc: ValidationError) -> ValidationError:
    """``exc`` with its locations under ``key``, so messages name ``petDog.name``."""
    details = []
    for error in exc.errors(include_url=False):
        detail: dict[str, Any] = {"type": error["type"], "loc": (key, *error["loc"])}
        detail["input"] = error["input"]
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data(exc.title, cast(Any, details))
    except (KeyError, TypeError, ValueError):  # a custom error type: keep it as it was
        return exc
