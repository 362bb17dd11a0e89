"""Converts Pydantic model instances to and from protobuf binary, on every binary RPC.

Per model, the field handling is compiled once into tuples of names and small closures;
a call then only walks those tuples. Encoding fills a fresh protobuf message in place
(``setattr`` and sub-message access are faster in upb than building keyword arguments);
decoding reads the parsed message into a dict and validates it with the model's
validator in one pass, so constraints and custom validators still run.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

from .typemap import (
    EnumType,
    FieldSpec,
    ModelType,
    OneofMember,
    ProtoType,
    ScalarType,
    TimeType,
    UnknownEnum,
    ValueType,
    enum_values,
    model_fields,
)

__all__ = ["PydanticProtoCodec"]

M = TypeVar("M", bound=BaseModel)
Fill = Callable[[Any, Any], None]
"""Writes a Python value into a (sub-)message."""
Read = Callable[[Any], Any]
"""Reads a (sub-)message, or a scalar, into its Python value."""
Descriptor = Any
"""A message descriptor: the stubs type upb's and the pure-Python ones separately."""

_OMIT: Any = object()  # a decoder's answer for "leave this key out; the model has a default"
_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)
_MICROS = 1_000_000


def _fill_timestamp(sub: Any, value: datetime.datetime) -> None:
    # Naive datetimes are taken as UTC, as protobuf's Timestamp.FromDatetime does.
    delta = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
    sub.seconds = delta.days * 86400 + delta.seconds
    sub.nanos = delta.microseconds * 1000


def _read_timestamp(sub: Any) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(0, sub.seconds, sub.nanos // 1000)
    except OverflowError:
        raise DecodeError(f"timestamp out of range: {sub.seconds}s") from None


def _fill_duration(sub: Any, value: datetime.timedelta) -> None:
    # Duration wants seconds and nanos of the same sign, truncated toward zero.
    micros = (value.days * 86400 + value.seconds) * _MICROS + value.microseconds
    seconds, rest = divmod(abs(micros), _MICROS)
    sign = -1 if micros < 0 else 1
    sub.seconds = sign * seconds
    sub.nanos = sign * rest * 1000


def _read_duration(sub: Any) -> datetime.timedelta:
    nanos = sub.nanos
    micros = nanos // 1000 if nanos >= 0 else -(-nanos // 1000)
    try:
        return datetime.timedelta(0, sub.seconds, micros)
    except OverflowError:
        raise DecodeError(f"duration out of range: {sub.seconds}s") from None


def _parser(parse: Callable[[str], Any], *errors: type[Exception]) -> Read:
    # An unparsable string goes to the validator as is, which reports it properly.
    def read(text: str) -> Any:
        try:
            return parse(text)
        except errors:
            return text

    return read


_TEXT_READERS: dict[str, Read] = {
    "decimal": _parser(decimal.Decimal, decimal.InvalidOperation),
    "uuid": _parser(uuid.UUID, ValueError),
    "date": _parser(datetime.date.fromisoformat, ValueError),
}


class _Members(dict[int, Any]):
    """An enum's members by number. A number it lacks (a client on a newer schema, or the
    ``_UNSPECIFIED`` zero of an ``IntEnum`` without 0) becomes an :class:`UnknownEnum`,
    which the validator rejects and the error message describes in protobuf's terms."""

    def __init__(self, cls: type[enum.Enum]) -> None:
        super().__init__()
        self.cls = cls

    def __missing__(self, number: int) -> UnknownEnum:
        return UnknownEnum(self.cls, number)


class _ModelConverter:
    """Fills a protobuf message from a model instance and reads one back into a dict."""

    __slots__ = ("gets", "plain_in", "plain_out", "puts")

    def __init__(self) -> None:
        self.plain_in: tuple[str, ...] = ()  # copied as is, both ways
        self.plain_out: tuple[str, ...] = ()
        self.puts: tuple[tuple[str, Fill], ...] = ()
        self.gets: tuple[tuple[str, Read], ...] = ()

    def fill(self, message: Any, obj: Any) -> None:
        values = obj.__dict__
        for name in self.plain_in:
            value = values.get(name)
            if value is not None:
                setattr(message, name, value)
        for name, put in self.puts:
            value = values.get(name)
            if value is not None:
                put(message, value)

    def read(self, message: Any) -> dict[str, Any]:
        out = {name: getattr(message, name) for name in self.plain_out}
        for name, get in self.gets:
            value = get(message)
            if value is not _OMIT:
                out[name] = value
        return out


class _Compiler:
    """Builds converters for a model and every model it uses, sharing them by message type,
    so recursive models end up with converters that point at each other."""

    def __init__(self) -> None:
        self.done: dict[tuple[type, str], _ModelConverter] = {}

    def model(self, model: type[BaseModel], descriptor: Descriptor) -> _ModelConverter:
        key = (model, descriptor.full_name)
        if key in self.done:
            return self.done[key]
        converter = self.done[key] = _ModelConverter()
        plain_in: list[str] = []
        plain_out: list[str] = []
        puts: list[tuple[str, Fill]] = []
        gets: list[tuple[str, Read]] = []
        for spec in model_fields(model):
            if spec.label == "oneof":
                put, get = self._oneof_conv(model, descriptor, spec)
                puts.append((spec.name, put))
                gets.append((spec.name, get))
                continue
            field = _field_of(model, descriptor, spec)
            conv = self._scalar_conv(spec.value)
            if conv is not None:
                write, read = conv
                if write is None and spec.label in ("singular", "optional"):
                    plain_in.append(spec.name)
                else:
                    puts.append((spec.name, _scalar_put(spec, write)))
                if read is None and spec.label == "singular":
                    plain_out.append(spec.name)
                else:
                    gets.append((spec.name, _scalar_get(spec, read)))
            else:
                fill, read_message = self._message_conv(spec.value, field)
                puts.append((spec.name, _message_put(spec, fill)))
                gets.append((spec.name, _message_get(spec, read_message)))
        converter.plain_in, converter.plain_out = tuple(plain_in), tuple(plain_out)
        converter.puts, converter.gets = tuple(puts), tuple(gets)
        return converter

    def _oneof_conv(
        self, model: type[BaseModel], descriptor: Descriptor, spec: FieldSpec
    ) -> tuple[Fill, Read]:
        """(fill, read) for a union of models: the member set on the wire is the model."""
        by_type: dict[type, tuple[str, Fill]] = {}
        reads: dict[str, Read] = {}
        for member in spec.members:
            field = _field_of(model, descriptor, member)
            converter = self.model(member.model, field.message_type)
            by_type[member.model] = (member.name, converter.fill)
            # An instance, not a dict: a dict would leave pydantic to guess the union member.
            reads[member.name] = _instance_reader(member.model, converter.read)
        return _oneof_put(spec.name, by_type), _oneof_get(spec, reads)

    @staticmethod
    def _scalar_conv(value: ValueType) -> tuple[Read | None, Read | None] | None:
        """(to proto, from proto) for values stored as protobuf scalars; None = as is."""
        if isinstance(value, ScalarType):
            if value.text is None:
                return None, None
            return str, _TEXT_READERS[value.text]
        if isinstance(value, EnumType):
            values = enum_values(value.enum)
            members = _Members(value.enum)
            members.update((n, member) for _, n, member in values if member is not None)
            if issubclass(value.enum, int):  # int enums travel as their own numbers
                return None, members.__getitem__
            numbers = {member: number for _, number, member in values if member is not None}
            return numbers.__getitem__, members.__getitem__
        return None

    def _message_conv(self, value: ValueType, field: FieldDescriptor) -> tuple[Fill, Read]:
        """(fill a sub-message, read a sub-message) for values stored as messages."""
        if isinstance(value, TimeType):
            if value.kind == "timestamp":
                return _fill_timestamp, _read_timestamp
            return _fill_duration, _read_duration
        target: Descriptor = field.message_type
        if target.GetOptions().map_entry:
            target = target.fields_by_name["value"].message_type
        if isinstance(value, ModelType):
            converter = self.model(value.model, target)
            return converter.fill, converter.read
        assert isinstance(value, ProtoType)
        return _proto_conv(value.message)


def _proto_conv(user_class: type[ProtoMessage]) -> tuple[Fill, Read]:
    # The schema's class for this type lives in another pool than the user's class, so
    # the two cannot be assigned to each other: go through the (identical) binary form.
    def fill(sub: Any, value: ProtoMessage) -> None:
        sub.MergeFromString(value.SerializeToString())

    def read(sub: Any) -> ProtoMessage:
        return user_class.FromString(sub.SerializeToString())

    return fill, read


def _field_of(
    model: type, descriptor: Descriptor, spec: FieldSpec | OneofMember
) -> FieldDescriptor:
    field: FieldDescriptor | None = descriptor.fields_by_name.get(spec.name)
    if field is None or field.number != spec.number:
        raise TypeError(
            f"{descriptor.full_name} does not match {model.__name__}: "
            f"no field {spec.name} = {spec.number}"
        )
    return field


def _scalar_put(spec: FieldSpec, write: Read | None) -> Fill:
    name, to = spec.name, write or (lambda v: v)
    if spec.label == "repeated":
        if write is None:
            return lambda m, v: getattr(m, name).extend(v)
        return lambda m, v: getattr(m, name).extend([to(x) for x in v])
    if spec.label == "map":
        if write is None:
            return lambda m, v: getattr(m, name).update(v)
        return lambda m, v: getattr(m, name).update({k: to(x) for k, x in v.items()})
    return lambda m, v: setattr(m, name, to(v))


def _scalar_get(spec: FieldSpec, read: Read | None) -> Read:
    name, of = spec.name, read or (lambda v: v)
    if spec.label == "repeated":
        if read is None:
            return lambda m: getattr(m, name)[:]  # slicing upb's container gives a list, fast
        return lambda m: [of(x) for x in getattr(m, name)]
    if spec.label == "map":
        if read is None:
            return lambda m: dict(getattr(m, name))
        return lambda m: {k: of(x) for k, x in getattr(m, name).items()}
    if spec.label == "optional":
        absent = _absent(spec)
        return lambda m: of(getattr(m, name)) if m.HasField(name) else absent
    return lambda m: of(getattr(m, name))


def _message_put(spec: FieldSpec, fill: Fill) -> Fill:
    name = spec.name
    if spec.label == "repeated":

        def put_repeated(m: Any, v: Any) -> None:
            container = getattr(m, name)
            for x in v:
                fill(container.add(), x)

        return put_repeated
    if spec.label == "map":

        def put_map(m: Any, v: Any) -> None:
            container = getattr(m, name)
            for k, x in v.items():
                fill(container[k], x)

        return put_map

    def put(m: Any, v: Any) -> None:
        sub = getattr(m, name)
        fill(sub, v)
        sub.SetInParent()  # an all-default value must still be present

    return put


def _message_get(spec: FieldSpec, read: Read) -> Read:
    name = spec.name
    if spec.label == "repeated":
        return lambda m: [read(x) for x in getattr(m, name)]
    if spec.label == "map":
        return lambda m: {k: read(x) for k, x in getattr(m, name).items()}
    if spec.label == "optional" or not spec.required:
        # Absent, the model's own default beats an all-zero message.
        absent = _absent(spec)
        return lambda m: read(getattr(m, name)) if m.HasField(name) else absent
    # Absent and required: the protobuf zero value, an all-default message.
    return lambda m: read(getattr(m, name))


def _absent(spec: FieldSpec) -> Any:
    """What a field with presence reads as when it is not on the wire: the model's default,
    as in JSON, or else ``None`` if the field allows it (else the validator reports it)."""
    return None if spec.required and spec.nullable else _OMIT


def _instance_reader(model: type[BaseModel], read: Read) -> Read:
    validate = model.__pydantic_validator__.validate_python
    return lambda sub: validate(read(sub), by_alias=False, by_name=True)


def _oneof_put(name: str, by_type: dict[type, tuple[str, Fill]]) -> Fill:
    def put(m: Any, v: Any) -> None:
        found = by_type.get(type(v))
        if found is None:  # a subclass of a member
            found = next((f for t, f in by_type.items() if isinstance(v, t)), None)
        if found is None:
            expected = " | ".join(t.__name__ for t in by_type)
            raise TypeError(f"{name}: expected {expected}, got {type(v).__name__}")
        member, fill = found
        sub = getattr(m, member)
        fill(sub, v)
        sub.SetInParent()

    return put


def _oneof_get(spec: FieldSpec, reads: dict[str, Read]) -> Read:
    oneof = spec.name
    absent = _absent(spec)

    def get(m: Any) -> Any:
        which = m.WhichOneof(oneof)
        return absent if which is None else reads[which](getattr(m, which))

    return get


class PydanticProtoCodec(Generic[M]):
    """Encodes instances of a Pydantic model as a protobuf message, and decodes them.

    ``message_class`` must have the fields :mod:`connectpy._model.schema` derives from the
    model (same names and numbers); nested models are handled through its descriptor.
    Decoding follows proto3: a field without presence absent on the wire is its zero value
    (``""``, ``0``, ``False``, ``[]``, ``{}``); a field with presence (``optional``, a
    message, a oneof) absent on the wire takes the model field's default, or is ``None``
    (``X | None``) or an all-default message when it has none, just as in JSON; timestamps
    decode as UTC-aware datetimes.
    """

    __slots__ = ("_converter", "_validate", "full_name", "message_class", "model")

    def __init__(self, model: type[M], message_class: type[ProtoMessage]) -> None:
        self.model = model
        self.message_class = message_class
        self.full_name: str = message_class.DESCRIPTOR.full_name
        self._converter = _Compiler().model(model, message_class.DESCRIPTOR)
        self._validate = model.__pydantic_validator__.validate_python

    def encode(self, value: M) -> bytes:
        """The binary protobuf encoding of ``value``."""
        message = self.message_class()
        self._converter.fill(message, value)
        return message.SerializeToString()

    def decode(self, data: bytes) -> M:
        """Parse binary protobuf into a validated model instance.

        Raises:
            google.protobuf.message.DecodeError: ``data`` is not a valid encoding.
            pydantic.ValidationError: the values fail the model's validation.
        """
        message = self.message_class.FromString(data)
        result: M = self._validate(self._converter.read(message), by_alias=False, by_name=True)
        return result

    def to_message(self, value: M) -> ProtoMessage:
        """``value`` as an instance of :attr:`message_class` (e.g. for error details)."""
        message = self.message_class()
        self._converter.fill(message, value)
        return message
