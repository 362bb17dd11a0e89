"""Maps Pydantic model fields to protobuf field shapes.

Shared by the descriptor builder (:mod:`connectpy._model.schema`) and the binary codec
(:mod:`connectpy._model.pbconvert`), so both always agree on names, numbers and types.
"""

from __future__ import annotations

import collections.abc
import datetime
import decimal
import enum
import functools
import re
import types
import typing
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = [
    "EnumType",
    "FieldNumber",
    "FieldSpec",
    "ModelType",
    "OneofMember",
    "ProtoType",
    "ScalarType",
    "TimeType",
    "UnknownEnum",
    "ValueType",
    "enum_values",
    "model_fields",
    "proto_name",
    "protoc_json_name",
    "type_repr",
]


@dataclass(frozen=True, slots=True)
class FieldNumber:
    """Pins a field's protobuf number: ``id: Annotated[int, FieldNumber(7)]``.

    Unpinned fields count on from the previous field's number (the first field is 1), like
    C enum values, so pinning a field also moves the ones declared after it. Pin numbers
    to keep the wire format stable when fields are removed or reordered. The marker must
    sit at the top level of the annotation (``Annotated[int | None, FieldNumber(3)]``).
    """

    number: int


ScalarKind = Literal["int64", "double", "bool", "string", "bytes"]
TextForm = Literal["decimal", "uuid", "date"]


@dataclass(frozen=True, slots=True)
class ScalarType:
    kind: ScalarKind
    text: TextForm | None = None
    """Set for Python values that travel as their ``str()`` form in a ``string`` field."""


@dataclass(frozen=True, slots=True)
class EnumType:
    enum: type[enum.Enum]


@dataclass(frozen=True, slots=True)
class ModelType:
    model: type[BaseModel]


@dataclass(frozen=True, slots=True)
class ProtoType:
    message: type[ProtoMessage]


@dataclass(frozen=True, slots=True)
class TimeType:
    kind: Literal["timestamp", "duration"]


ValueType: TypeAlias = ScalarType | EnumType | ModelType | ProtoType | TimeType
Label = Literal["singular", "optional", "repeated", "map", "oneof"]


@dataclass(frozen=True, slots=True)
class OneofMember:
    """One model of a union field: a message field of the field's ``oneof``."""

    name: str
    json_name: str
    number: int
    model: type[BaseModel]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One model field as a protobuf field.

    ``label`` is ``optional`` for ``X | None`` (a proto3 ``optional`` scalar or enum, or a
    message field, which has presence anyway), and for a scalar or enum field whose default
    is not the protobuf zero value (``ok: bool = True``): without presence a client could not
    send ``false``, which proto3 leaves out, and an absent field would read as the zero value
    in binary but as the default in JSON. ``value`` is the element type of a repeated field
    and the value type of a map, whose key type is ``key``.

    A union of models (``Cat | Dog``, optionally ``| None``) has the label ``oneof``: a
    ``oneof`` named after the field holds one message field per model (``members``, named
    ``<field>_<model>``), and
    ``value`` is the first member's type. ``nullable`` says whether ``None`` is allowed, which
    is what an unset oneof decodes to.
    """

    name: str
    json_name: str
    number: int
    label: Label
    value: ValueType
    key: ScalarType | None
    required: bool
    doc: str | None
    members: tuple[OneofMember, ...] = ()
    nullable: bool = False


class _Unmappable(Exception):
    """Internal: a type has no protobuf form; the message (if any) says why."""


_INT64 = ScalarType("int64")
_STRING = ScalarType("string")
_BOOL = ScalarType("bool")

# Order matters: bool before int, datetime before date (each subclasses the next).
_SIMPLE: tuple[tuple[type, ValueType], ...] = (
    (bool, _BOOL),
    (int, _INT64),
    (float, ScalarType("double")),
    (str, _STRING),
    (bytes, ScalarType("bytes")),
    (datetime.datetime, TimeType("timestamp")),
    (datetime.timedelta, TimeType("duration")),
    (datetime.date, ScalarType("string", "date")),
    (decimal.Decimal, ScalarType("string", "decimal")),
    (uuid.UUID, ScalarType("string", "uuid")),
)
_LIST_ORIGINS = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAP_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_MAP_KEYS: tuple[tuple[type, ScalarType], ...] = ((bool, _BOOL), (int, _INT64), (str, _STRING))

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_FIELD_NUMBER = 2**29 - 1
_RESERVED_NUMBERS = range(19000, 20000)
_INT32 = range(-(2**31), 2**31)


def _strip(tp: Any) -> Any:
    """Drop wrappers that do not change the wire type: ``Annotated``, ``NewType``, aliases."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif type(tp).__name__ == "TypeAliasType":  # `type X = ...` (Python 3.12+)
            tp = tp.__value__
        else:
            return tp


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is typing.Union or origin is types.UnionType


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_shape(annotation: Any) -> tuple[Label, ValueType, ScalarType | None]:
    tp = _strip(annotation)
    label: Label = "singular"
    if _is_union(tp):
        args = typing.get_args(tp)
        present = [_strip(a) for a in args if a is not type(None)]
        if len(present) > 1 and all(_is_model(a) for a in present):
            return "oneof", ModelType(present[0]), None
        if len(present) != 1 or len(present) == len(args):
            raise _Unmappable()
        tp, label = present[0], "optional"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _LIST_ORIGINS or tp in _MAP_ORIGINS or tp is tuple:
        raise _Unmappable("a collection needs its element types")
    if origin in _LIST_ORIGINS or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        # `list[X] | None` is still repeated: None is sent as an empty list.
        return "repeated", _element(args[0], "repeated fields"), None
    if origin in _MAP_ORIGINS:
        return "map", _element(args[1], "map values"), _map_key(args[0])
    return label, _value(tp), None


def _element(tp: Any, where: str) -> ValueType:
    tp = _strip(tp)
    if _is_union(tp):
        raise _Unmappable(f"{where} cannot hold None or a union")
    origin = typing.get_origin(tp)
    if origin in _LIST_ORIGINS or origin in _MAP_ORIGINS or origin is tuple:
        raise _Unmappable(f"{where} cannot be collections; wrap the inner one in a model")
    return _value(tp)


def _map_key(tp: Any) -> ScalarType:
    tp = _strip(tp)
    if isinstance(tp, type) and not issubclass(tp, enum.Enum):
        for py, scalar in _MAP_KEYS:
            if issubclass(tp, py):
                return scalar
    raise _Unmappable("map keys must be str, int or bool")


def _value(tp: Any) -> ValueType:
    if typing.get_origin(tp) is Literal:
        return _literal(typing.get_args(tp))
    if not isinstance(tp, type) or typing.get_origin(tp) is not None:
        raise _Unmappable()
    if issubclass(tp, enum.Enum):
        if issubclass(tp, enum.Flag):
            raise _Unmappable("flag enums have no protobuf form")
        return EnumType(tp)
    for py, value in _SIMPLE:
        if issubclass(tp, py):
            return value
    if issubclass(tp, BaseModel):
        return ModelType(tp)
    if issubclass(tp, ProtoMessage):
        return ProtoType(tp)
    raise _Unmappable()


def _literal(values: tuple[Any, ...]) -> ScalarType:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return _STRING
    if kinds == {int}:
        return _INT64
    if kinds == {bool}:
        return _BOOL
    raise _Unmappable("a Literal must hold only str, only int or only bool values")


def type_repr(tp: Any) -> str:
    """A short form of an annotation for error messages: ``set[str]``, ``int | None``."""
    if tp is type(None):
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return type_repr(args[0])
    if _is_union(tp):
        return " | ".join(type_repr(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or repr(origin)
        return f"{name}[{', '.join(type_repr(a) for a in args)}]" if args else name
    if tp is Ellipsis:
        return "..."
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).removeprefix("typing.")


def proto_name(tp: type) -> str:
    """The protobuf name of a model or enum: its ``__name__`` without generic brackets."""
    name = re.sub(r"[^A-Za-z0-9_]", "", tp.__name__)
    if not _IDENT.match(name):
        raise TypeError(f"{tp.__name__}: cannot form a protobuf name from it")
    return name


def protoc_json_name(name: str) -> str:
    """The JSON name protoc derives from a field name: ``user_id`` -> ``userId``."""
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _upper_snake(name: str) -> str:
    return _snake(name).upper()


@functools.cache
def enum_values(cls: type[enum.Enum]) -> tuple[tuple[str, int, enum.Enum | None], ...]:
    """The protobuf values of an enum as ``(name, number, member)``, the zero value first.

    Value names are the member names in UPPER_SNAKE_CASE, prefixed with the enum's name
    (``Color.red`` -> ``COLOR_RED``) unless already so prefixed, because protobuf scopes
    enum values to the package, not to the enum. Integer enums (``IntEnum``) keep their
    numbers; other enums number their members in declaration order from 0, so the first
    member is the default, as in protobuf. proto3 needs a zero value: an integer enum
    without one gets ``<ENUM>_UNSPECIFIED = 0``, which has no Python member (decoding it
    into a non-optional field fails validation).
    """
    prefix = _upper_snake(proto_name(cls))
    members = list(cls)
    numbers = [m.value if issubclass(cls, int) else i for i, m in enumerate(members)]
    values: list[tuple[str, int, enum.Enum | None]] = []
    for member, number in zip(members, numbers, strict=True):
        name = member.name.upper()
        name = name if name.startswith(f"{prefix}_") else f"{prefix}_{name}"
        if not _IDENT.match(name) or number not in _INT32:
            raise TypeError(f"{cls.__name__}.{member.name}: cannot map it to a protobuf value")
        values.append((name, number, member))
    if 0 not in numbers:
        taken = {v[0] for v in values}
        zero = f"{prefix}_UNSPECIFIED"
        while zero in taken:
            zero += "_"
        values.insert(0, (zero, 0, None))
    names = [v[0] for v in values]
    if len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: two members map to the same protobuf value name")
    return tuple(sorted(values, key=lambda v: v[1] != 0))


@dataclass(frozen=True, slots=True)
class UnknownEnum:
    """A value received for an enum field that names none of its members: a number a client
    on a newer schema sends, a misspelled name, or the ``<ENUM>_UNSPECIFIED`` zero an
    ``IntEnum`` without a member 0 gets. The codecs hand it to the validator, which rejects
    it, so the error can name the wire values rather than the Python ones."""

    enum: type[enum.Enum]
    received: object  # a number or a name; or, from JSON, a boolean, array or object

    def describe(self) -> str:
        values = enum_values(self.enum)
        known = [f"{name} ({number})" for name, number, member in values if member is not None]
        expected = ", ".join(known[:-1]) + " or " + known[-1] if len(known) > 1 else known[0]
        zero_name, _, zero_member = values[0]
        if zero_member is None and self.received in (0, zero_name):
            return f"{zero_name} (0) is not allowed; expected {expected}"
        kind = _JSON_KINDS.get(type(self.received))
        if kind is not None:
            return f"expected a {proto_name(self.enum)} value name or number, got {kind}"
        shown = f'"{self.received}"' if isinstance(self.received, str) else self.received
        return f"unknown {proto_name(self.enum)} value {shown}; expected {expected}"


# What JSON sent, where an enum wants a value name or a number.
_JSON_KINDS: dict[type, str] = {bool: "a boolean", list: "an array", dict: "an object"}


def _ensure_complete(model: type[BaseModel]) -> None:
    if model.__pydantic_complete__:
        return
    try:
        model.model_rebuild(raise_errors=True)
    except Exception as exc:
        raise TypeError(f"{model.__name__}: cannot resolve its field types: {exc}") from exc


def _pinned(info: FieldInfo) -> int | None:
    numbers = [m.number for m in info.metadata if isinstance(m, FieldNumber)]
    return numbers[-1] if numbers else None


def _json_name(name: str, info: FieldInfo) -> str:
    # The alias is the name the JSON codec uses, so the proto JSON name must match it.
    alias = info.serialization_alias or info.alias
    return alias if isinstance(alias, str) and alias else protoc_json_name(name)


def _doc(info: FieldInfo) -> str | None:
    return info.description or None


@functools.cache
def model_fields(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The protobuf fields of a model, in declaration order.

    Raises:
        TypeError: a field's type has no protobuf form, or field numbers clash.
    """
    _ensure_complete(model)
    specs: list[FieldSpec] = []
    used: dict[int, str] = {}
    next_number = 1
    for name, info in model.model_fields.items():
        where = f"{model.__name__}.{name}"
        if not _IDENT.match(name):
            raise TypeError(f"{where}: not a valid protobuf field name")
        try:
            label, value, key = _field_shape(info.annotation)
        except _Unmappable as exc:
            why = f" ({exc})" if str(exc) else ""
            shown = type_repr(info.annotation)
            raise TypeError(f"{where}: cannot map {shown} to protobuf{why}") from None
        if label == "singular" and not info.is_required() and not _zero_default(info, value):
            label = "optional"
        pinned = _pinned(info)
        number = next_number if pinned is None else pinned
        members = _oneof_members(name, info.annotation, number) if label == "oneof" else ()
        numbers = [(m.number, f"{name} ({m.name})") for m in members] or [(number, name)]
        for taken, holder in numbers:
            _check_number(where, taken, used.get(taken), model)
            used[taken] = holder
        next_number = (members[-1].number if members else number) + 1
        specs.append(
            FieldSpec(
                name=name,
                json_name=_json_name(name, info),
                number=number,
                label=label,
                value=value,
                key=key,
                required=info.is_required(),
                doc=_doc(info),
                members=members,
                nullable=_allows_none(info.annotation),
            )
        )
    _check_member_names(model, specs)
    return tuple(specs)


_EMPTY_FACTORIES: tuple[Any, ...] = (list, dict, tuple, str, bytes, int, float, bool)


def _zero_default(info: FieldInfo, value: ValueType) -> bool:
    """Whether a field with a default does without proto3 ``optional``: its default is the
    value protobuf reads an absent scalar or enum as, or the field has presence anyway.

    A default factory is never called here (it may have effects, or give a new value each
    time, like ``uuid4``): only the types' own constructors count as zero.
    """
    if isinstance(value, EnumType):
        zero = enum_values(value.enum)[0][2]
        return info.default_factory is None and zero is not None and info.default == zero
    if not isinstance(value, ScalarType):
        return True  # messages, timestamps and durations have presence
    if info.default_factory is not None:
        return info.default_factory in _EMPTY_FACTORIES and value.text is None
    default = info.default
    if value.text is not None:  # "" is never the str() of a Decimal, UUID or date
        return False
    return type(default) in _EMPTY_FACTORIES and not default


def _allows_none(annotation: Any) -> bool:
    tp = _strip(annotation)
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _oneof_members(field: str, annotation: Any, first: int) -> tuple[OneofMember, ...]:
    """One message field per model of a union, numbered on from ``first``:
    ``pet: Cat | Dog`` -> ``oneof pet { Cat pet_cat = n; Dog pet_dog = n + 1; }``.

    The field's name prefixes the model's, so two unions of the same models never clash and
    adding one never renames another's fields.
    """
    models = [_strip(a) for a in typing.get_args(_strip(annotation)) if a is not type(None)]
    members = []
    for offset, member in enumerate(models):
        name = f"{field}_{_snake(proto_name(member))}"
        members.append(OneofMember(name, protoc_json_name(name), first + offset, member))
    return tuple(members)


def _check_member_names(model: type[BaseModel], specs: list[FieldSpec]) -> None:
    # A oneof's name and its fields share the message's namespace with every other field.
    owners: dict[str, str] = {}
    for spec in specs:
        names = [spec.name, *(m.name for m in spec.members)]
        for name in names:
            other = owners.setdefault(name, spec.name)
            if other != spec.name or names.count(name) > 1:
                raise TypeError(
                    f"{model.__name__}.{spec.name}: the oneof {spec.name!r} would hold a field "
                    f"{name!r} (one per model: <field>_<model>), which clashes with "
                    f"{model.__name__}.{other}; rename the field or the model"
                )


def _check_number(where: str, number: int, holder: str | None, model: type) -> None:
    if holder is not None:
        raise TypeError(
            f"{where}: field number {number} is already used by {model.__name__}.{holder}"
        )
    if not 1 <= number <= _MAX_FIELD_NUMBER or number in _RESERVED_NUMBERS:
        raise TypeError(f"{where}: {number} is not a valid protobuf field number")
