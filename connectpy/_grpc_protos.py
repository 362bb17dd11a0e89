"""Descriptors of the gRPC services connectpy serves itself: server reflection and health.

They are built in code from the canonical definitions in grpc/grpc
(``src/proto/grpc/reflection/v1/reflection.proto``, ``.../v1alpha/reflection.proto`` and
``src/proto/grpc/health/v1/health.proto``), with the same file, package, message, field and
enum names and numbers, so every gRPC tool understands them. They live in a private pool:
connectpy needs neither grpcio-reflection nor grpcio-health-checking, and never clashes with
their generated modules when a process imports those too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FieldDescriptorProto, FileDescriptorProto
from google.protobuf.message import Message as ProtoMessage

__all__ = ["HEALTH", "REFLECTION_V1", "REFLECTION_V1ALPHA", "BuiltinProto"]

_F = FieldDescriptorProto
_SCALARS = {"string": _F.TYPE_STRING, "int32": _F.TYPE_INT32, "bytes": _F.TYPE_BYTES}

Field = tuple[str, int, str, str]
"""``(name, number, type, flags)``: type is a scalar, a message name or ``enum <name>``;
flags may hold ``repeated`` and ``oneof`` (the message's only oneof)."""


@dataclass(frozen=True, slots=True)
class BuiltinProto:
    """One built-in ``.proto`` file: its descriptor and a message class per message."""

    file: Any  # a FileDescriptor (the stubs type upb's and the pure-Python one apart)
    messages: Mapping[str, type[ProtoMessage]]


def _add_message(
    file: FileDescriptorProto, name: str, fields: Sequence[Field], oneof: str = ""
) -> None:
    message = file.message_type.add(name=name)
    if oneof:
        message.oneof_decl.add(name=oneof)
    for field_name, number, kind, flags in fields:
        field = message.field.add(name=field_name, number=number)
        field.label = _F.LABEL_REPEATED if "repeated" in flags else _F.LABEL_OPTIONAL
        if kind in _SCALARS:
            field.type = _SCALARS[kind]
        elif kind.startswith("enum "):
            field.type = _F.TYPE_ENUM
            field.type_name = f".{file.package}.{kind.removeprefix('enum ')}"
        else:
            field.type = _F.TYPE_MESSAGE
            field.type_name = f".{file.package}.{kind}"
        if "oneof" in flags:
            field.oneof_index = 0


def _reflection_file(version: str) -> FileDescriptorProto:
    file = FileDescriptorProto(
        name=f"grpc/reflection/{version}/reflection.proto",
        package=f"grpc.reflection.{version}",
        syntax="proto3",
    )
    _add_message(
        file,
        "ServerReflectionRequest",
        [
            ("host", 1, "string", ""),
            ("file_by_filename", 3, "string", "oneof"),
            ("file_containing_symbol", 4, "string", "oneof"),
            ("file_containing_extension", 5, "ExtensionRequest", "oneof"),
            ("all_extension_numbers_of_type", 6, "string", "oneof"),
            ("list_services", 7, "string", "oneof"),
        ],
        oneof="message_request",
    )
    _add_message(
        file,
        "ExtensionRequest",
        [("containing_type", 1, "string", ""), ("extension_number", 2, "int32", "")],
    )
    _add_message(
        file,
        "ServerReflectionResponse",
        [
            ("valid_host", 1, "string", ""),
            ("original_request", 2, "ServerReflectionRequest", ""),
            ("file_descriptor_response", 4, "FileDescriptorResponse", "oneof"),
            ("all_extension_numbers_response", 5, "ExtensionNumberResponse", "oneof"),
            ("list_services_response", 6, "ListServiceResponse", "oneof"),
            ("error_response", 7, "ErrorResponse", "oneof"),
        ],
        oneof="message_response",
    )
    _add_message(
        file, "FileDescriptorResponse", [("file_descriptor_proto", 1, "bytes", "repeated")]
    )
    _add_message(
        file,
        "ExtensionNumberResponse",
        [("base_type_name", 1, "string", ""), ("extension_number", 2, "int32", "repeated")],
    )
    _add_message(file, "ListServiceResponse", [("service", 1, "ServiceResponse", "repeated")])
    _add_message(file, "ServiceResponse", [("name", 1, "string", "")])
    _add_message(
        file, "ErrorResponse", [("error_code", 1, "int32", ""), ("error_message", 2, "string", "")]
    )
    service = file.service.add(name="ServerReflection")
    prefix = f".{file.package}."
    service.method.add(
        name="ServerReflectionInfo",
        input_type=prefix + "ServerReflectionRequest",
        output_type=prefix + "ServerReflectionResponse",
        client_streaming=True,
        server_streaming=True,
    )
    options = file.options
    options.go_package = f"google.golang.org/grpc/reflection/grpc_reflection_{version}"
    options.java_multiple_files = True
    options.java_package = f"io.grpc.reflection.{version}"
    options.java_outer_classname = "ServerReflectionProto"
    if version == "v1alpha":
        options.deprecated = True
    return file


def _health_file() -> FileDescriptorProto:
    file = FileDescriptorProto(
        name="grpc/health/v1/health.proto", package="grpc.health.v1", syntax="proto3"
    )
    _add_message(file, "HealthCheckRequest", [("service", 1, "string", "")])
    _add_message(
        file,
        "HealthCheckResponse",
        [("status", 1, "enum HealthCheckResponse.ServingStatus", "")],
    )
    status = file.message_type[1].enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        status.value.add(name=name, number=number)
    _add_message(file, "HealthListRequest", [])
    _add_message(
        file,
        "HealthListResponse",
        [("statuses", 1, "HealthListResponse.StatusesEntry", "repeated")],
    )
    entry = file.message_type[3].nested_type.add(name="StatusesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING)
    entry.field.add(
        name="value",
        number=2,
        label=_F.LABEL_OPTIONAL,
        type=_F.TYPE_MESSAGE,
        type_name=".grpc.health.v1.HealthCheckResponse",
    )
    service = file.service.add(name="Health")
    for name, request, response, streams in (
        ("Check", "HealthCheckRequest", "HealthCheckResponse", False),
        ("List", "HealthListRequest", "HealthListResponse", False),
        ("Watch", "HealthCheckRequest", "HealthCheckResponse", True),
    ):
        method = service.method.add(
            name=name,
            input_type=f".grpc.health.v1.{request}",
            output_type=f".grpc.health.v1.{response}",
        )
        if streams:  # set only when true, as protoc does
            method.server_streaming = True
    options = file.options
    options.java_package = "io.grpc.health.v1"
    options.java_outer_classname = "HealthProto"
    options.java_multiple_files = True
    options.go_package = "google.golang.org/grpc/health/grpc_health_v1"
    options.objc_class_prefix = "GrpcHealthV1"
    options.csharp_namespace = "Grpc.Health.V1"
    return file


_POOL = descriptor_pool.DescriptorPool()


def _load(proto: FileDescriptorProto) -> BuiltinProto:
    _POOL.Add(proto)
    file = _POOL.FindFileByName(proto.name)
    messages = {
        name: message_factory.GetMessageClass(descriptor)
        for name, descriptor in file.message_types_by_name.items()
    }
    return BuiltinProto(file, messages)


REFLECTION_V1 = _load(_reflection_file("v1"))
REFLECTION_V1ALPHA = _load(_reflection_file("v1alpha"))
HEALTH = _load(_health_file())
