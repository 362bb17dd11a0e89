"""Builds protobuf descriptors for Pydantic models and services at runtime, without protoc.

Each :class:`ProtoSchema` owns a private descriptor pool, so two apps (or two modules with
models of the same class name) never collide in protobuf's global default pool.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor_pool, duration_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
)
from google.protobuf.message import Message as ProtoMessage
from pydantic import BaseModel

from .pbconvert import PydanticProtoCodec
from .schema_split import file_stem, split_by_service
from .service import IdempotencyLevel, ServiceInfo
from .typemap import (
    EnumType,
    FieldNumber,
    FieldSpec,
    ModelType,
    ScalarType,
    TimeType,
    ValueType,
    enum_values,
    model_fields,
    proto_name,
)

__all__ = ["FieldNumber", "ProtoSchema"]

_F = FieldDescriptorProto
_SCALARS = {
    "int64": _F.TYPE_INT64,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_WELL_KNOWN: dict[str, tuple[str, FileDescriptor]] = {
    "timestamp": ("google.protobuf.Timestamp", timestamp_pb2.DESCRIPTOR),
    "duration": ("google.protobuf.Duration", duration_pb2.DESCRIPTOR),
}


def _qualify(package: str, name: str) -> str:
    return f"{package}.{name}" if package else name


def _own_doc(tp: type) -> str | None:
    # Only the class's own docstring: inspect.getdoc would inherit BaseModel's.
    doc = tp.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _map_entry_name(field: str) -> str:
    # protoc's rule, so descriptors match those compiled from the rendered .proto text.
    return "".join(p[:1].upper() + p[1:] for p in field.split("_")) + "Entry"


class _FileBuilder:
    """Fills one FileDescriptorProto with every type reachable from some roots."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.file = FileDescriptorProto(syntax="proto3")
        if package:  # left unset when empty, as protoc does
            self.file.package = package
        self.names: dict[str, type] = {}  # full name -> the Python type that claimed it
        self.type_names: dict[type, str] = {}
        self.imports: dict[str, FileDescriptor] = {}
        self.docs: dict[str, str] = {}

    def claim(self, name: str, owner: type) -> str:
        full = _qualify(self.package, name)
        other = self.names.setdefault(full, owner)
        if other is not owner:
            raise TypeError(
                f"two types map to the protobuf name {full!r}: "
                f"{_where(other)} and {_where(owner)}; rename one of them"
            )
        return full

    def message(self, tp: type) -> str:
        """The full name of a model or protobuf message type, adding it if needed."""
        if tp in self.type_names:
            return self.type_names[tp]
        if issubclass(tp, ProtoMessage):
            self._import(tp.DESCRIPTOR.file)
            full = str(tp.DESCRIPTOR.full_name)
        elif issubclass(tp, BaseModel):
            full = self._model(tp)
        else:
            raise TypeError(f"{tp!r} is not a pydantic model or protobuf message class")
        self.type_names[tp] = full
        return full

    def _model(self, model: type[BaseModel]) -> str:
        name = proto_name(model)
        full = self.claim(name, model)
        self.type_names[model] = full  # before the fields: models may refer to themselves
        message = self.file.message_type.add(name=name)
        self._doc(full, _own_doc(model))
        specs = model_fields(model)
        # Real oneofs first: protobuf wants proto3 `optional`'s synthetic ones after them all.
        for spec in specs:
            if spec.label == "oneof":
                message.oneof_decl.add(name=spec.name)
        for spec in specs:
            if spec.label == "oneof":
                self._oneof(message, full, spec)
            else:
                self._field(message, full, spec)
        return full

    def _oneof(self, message: DescriptorProto, owner: str, spec: FieldSpec) -> None:
        self._doc(f"{owner}.{spec.name}", spec.doc)
        index = [decl.name for decl in message.oneof_decl].index(spec.name)
        for member in spec.members:
            field = message.field.add(
                name=member.name, number=member.number, json_name=member.json_name
            )
            field.label = _F.LABEL_OPTIONAL
            field.type = _F.TYPE_MESSAGE
            field.type_name = "." + self.message(member.model)
            field.oneof_index = index

    def _field(self, message: DescriptorProto, owner: str, spec: FieldSpec) -> None:
        field = message.field.add(name=spec.name, number=spec.number, json_name=spec.json_name)
        self._doc(f"{owner}.{spec.name}", spec.doc)
        if spec.label == "map":
            assert spec.key is not None
            entry = message.nested_type.add(name=_map_entry_name(spec.name))
            entry.options.map_entry = True
            for number, name, value in ((1, "key", spec.key), (2, "value", spec.value)):
                entry_field = entry.field.add(name=name, number=number, json_name=name)
                entry_field.label = _F.LABEL_OPTIONAL
                self._set_type(entry_field, value)
            field.label = _F.LABEL_REPEATED
            field.type = _F.TYPE_MESSAGE
            field.type_name = f".{owner}.{entry.name}"
            return
        self._set_type(field, spec.value)
        field.label = _F.LABEL_REPEATED if spec.label == "repeated" else _F.LABEL_OPTIONAL
        if spec.label == "optional" and field.type != _F.TYPE_MESSAGE:
            # proto3 `optional`: presence through a synthetic oneof named `_<field>`.
            field.proto3_optional = True
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name=f"_{spec.name}")

    def _set_type(self, field: FieldDescriptorProto, value: ValueType) -> None:
        if isinstance(value, ScalarType):
            field.type = _SCALARS[value.kind]
        elif isinstance(value, EnumType):
            field.type = _F.TYPE_ENUM
            field.type_name = "." + self._enum(value.enum)
        elif isinstance(value, TimeType):
            full, file = _WELL_KNOWN[value.kind]
            self._import(file)
            field.type = _F.TYPE_MESSAGE
            field.type_name = "." + full
        else:
            field.type = _F.TYPE_MESSAGE
            target = value.model if isinstance(value, ModelType) else value.message
            field.type_name = "." + self.message(target)

    def _enum(self, cls: type[enum.Enum]) -> str:
        if cls in self.type_names:
            return self.type_names[cls]
        name = proto_name(cls)
        full = self.claim(name, cls)
        self.type_names[cls] = full
        proto = self.file.enum_type.add(name=name)
        self._doc(full, _own_doc(cls))
        for value_name, number, _member in enum_values(cls):
            proto.value.add(name=value_name, number=number)
        return full

    def _import(self, file: Any) -> None:
        # Any: the stubs type upb's and the pure-Python FileDescriptor separately.
        if file.name not in self.imports:
            self.imports[file.name] = file
            self.file.dependency.append(file.name)

    def _doc(self, full: str, doc: str | None) -> None:
        if doc:
            self.docs[full] = doc

    def add_service(self, service: ServiceInfo) -> None:
        declared = _declaring_file(service)
        if declared is not None:
            # Its message classes come from a file that declares this very service (protoc
            # output, or connectpy's own health and reflection): import it, don't redefine.
            self._import(declared)
            return
        self.claim(service.name, ServiceInfo)
        self._doc(_qualify(self.package, service.name), service.doc)
        proto = self.file.service.add(name=service.name)
        for method in service.methods:
            proto_method = proto.method.add(
                name=method.name,
                input_type="." + self.message(method.request_type),
                output_type="." + self.message(method.response_type),
            )
            # Set only when true, as protoc does, so descriptors compare equal.
            if method.stream_type.client_streams:
                proto_method.client_streaming = True
            if method.stream_type.server_streams:
                proto_method.server_streaming = True
            if method.idempotency is not IdempotencyLevel.IDEMPOTENCY_UNKNOWN:
                proto_method.options.idempotency_level = method.idempotency.value
            self._doc(f"{_qualify(self.package, service.name)}.{method.name}", method.doc)

    def finish(self, stem: str) -> FileDescriptorProto:
        base = self.package.replace(".", "/") + "/" if self.package else ""
        name = f"{base}{stem}.proto"
        while name in self.imports:  # never shadow a file we import
            name = name.removesuffix(".proto") + "_connectpy.proto"
        self.file.name = name
        return self.file


def _declaring_file(service: ServiceInfo) -> Any:
    """The file of the service's protobuf message classes, if it declares the service with
    the same methods and types; else None."""
    first = service.methods[0].request_type
    if not issubclass(first, ProtoMessage):
        return None
    file = first.DESCRIPTOR.file
    declared = file.services_by_name.get(service.name)
    if declared is None or declared.full_name != service.full_name:
        return None
    for method in service.methods:
        theirs = declared.methods_by_name.get(method.name)
        if theirs is None or not all(
            issubclass(tp, ProtoMessage) and tp.DESCRIPTOR.full_name == descriptor.full_name
            for tp, descriptor in (
                (method.request_type, theirs.input_type),
                (method.response_type, theirs.output_type),
            )
        ):
            return None
        streams = (theirs.client_streaming, theirs.server_streaming)
        if streams != (method.stream_type.client_streams, method.stream_type.server_streams):
            return None
    return file


def _where(tp: type) -> str:
    if tp is ServiceInfo:
        return "a service"
    return f"{tp.__module__}.{tp.__qualname__}"


def _add_to_pool(
    pool: descriptor_pool.DescriptorPool, file: FileDescriptor, added: set[str]
) -> None:
    """Add a generated file and, first, everything it imports."""
    if file.name in added:
        return
    for dependency in file.dependencies:
        _add_to_pool(pool, dependency, added)
    proto = FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)
    added.add(file.name)


class ProtoSchema:
    """Protobuf descriptors, message classes and binary codecs for models and services.

    Build it with :meth:`for_services` or :meth:`for_models`. There is one file descriptor
    per service, and per protobuf package one of the types its services share (listed
    first, as the others import it); a model reachable from services in two packages is
    defined in both (the binary encoding is the same).
    """

    def __init__(
        self,
        files: Sequence[FileDescriptorProto],
        imports: Iterable[FileDescriptor],
        type_names: dict[type, str],
        *,
        services: Sequence[ServiceInfo] = (),
        docs: dict[str, str] | None = None,
    ) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        added: set[str] = set()
        for imported in imports:
            _add_to_pool(self.pool, imported, added)
        for file in files:
            try:
                self.pool.Add(file)
            except Exception as exc:  # the pool's error names the offending symbol
                raise TypeError(f"cannot build protobuf file {file.name!r}: {exc}") from exc
        self.file_descriptors: tuple[FileDescriptorProto, ...] = tuple(files)
        self.services: tuple[ServiceInfo, ...] = tuple(services)
        self.docs: dict[str, str] = dict(docs or {})
        self._type_names = type_names
        self._codecs: dict[type, PydanticProtoCodec[Any]] = {}

    @classmethod
    def for_services(cls, services: Sequence[ServiceInfo]) -> ProtoSchema:
        """The schema of some services and every type their methods use.

        Raises:
            TypeError: a type cannot be mapped to protobuf, or two types share a name.
        """
        by_package: dict[str, list[ServiceInfo]] = {}
        for service in services:
            by_package.setdefault(service.package, []).append(service)
        builders: list[tuple[_FileBuilder, str]] = []
        for package, members in by_package.items():
            builder = _FileBuilder(package)
            for service in members:
                builder.add_service(service)
            builders.append((builder, file_stem(members[0].name)))
        return cls._from_builders(builders, services)

    @classmethod
    def for_models(cls, models: Sequence[type], *, package: str = "") -> ProtoSchema:
        """The schema of some models (and the types they use), without a service."""
        builder = _FileBuilder(package)
        for model in models:
            builder.message(model)
        stem = file_stem(proto_name(models[0])) if models else "models"
        return cls._from_builders([(builder, stem)], ())

    @classmethod
    def _from_builders(
        cls, builders: Sequence[tuple[_FileBuilder, str]], services: Sequence[ServiceInfo]
    ) -> ProtoSchema:
        type_names: dict[type, str] = {}
        imports: dict[str, FileDescriptor] = {}
        docs: dict[str, str] = {}
        files = []
        for builder, stem in builders:
            files.extend(split_by_service(builder.finish(stem), builder.imports))
            for tp, name in builder.type_names.items():
                type_names.setdefault(tp, name)
            imports.update(builder.imports)
            docs.update(builder.docs)
        return cls(files, imports.values(), type_names, services=services, docs=docs)

    @property
    def file_descriptor(self) -> FileDescriptorProto:
        """The first (usually the only) file descriptor."""
        return self.file_descriptors[0]

    def full_name(self, tp: type) -> str:
        """The protobuf full name of a model, enum or message class in this schema."""
        try:
            return self._type_names[tp]
        except KeyError:
            raise KeyError(f"{tp.__name__} is not part of this protobuf schema") from None

    def message_class(self, model: type) -> type[ProtoMessage]:
        """The concrete protobuf class of a model (a protobuf class is returned as is)."""
        if isinstance(model, type) and issubclass(model, ProtoMessage):
            return model
        descriptor = self.pool.FindMessageTypeByName(self.full_name(model))
        return message_factory.GetMessageClass(descriptor)

    def codec(self, model: type[BaseModel]) -> PydanticProtoCodec[Any]:
        """The binary codec of a model, compiled once and cached."""
        codec = self._codecs.get(model)
        if codec is None:
            if not issubclass(model, BaseModel):
                raise TypeError(f"{model.__name__}: codecs are for pydantic models only")
            codec = PydanticProtoCodec(model, self.message_class(model))
            self._codecs[model] = codec
        return codec
