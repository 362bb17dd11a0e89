"""Descriptors of the gRPC services connectpy serves itself (server reflection and health)
and of the ``google.rpc`` messages its errors carry (``Status``, the standard error details).

They are built in code from the canonical definitions in grpc/grpc
(``src/proto/grpc/reflection/v1/reflection.proto``, ``.../v1alpha/reflection.proto`` and
``src/proto/grpc/health/v1/health.proto``) and googleapis (``google/rpc/status.proto`` and
``google/rpc/error_details.proto``), with the same file, package, message, field and enum names
and numbers, so every gRPC tool understands them. They live in a private pool: connectpy needs
neither grpcio-reflection, grpcio-health-checking nor googleapis-common-protos, and never
clashes with their generated modules when a process imports those too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    message_factory,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
)
from google.protobuf.message import Message as ProtoMessage

__all__ = [
    "HEALTH",
    "REFLECTION_V1",
    "REFLECTION_V1ALPHA",
    "RPC_ERROR_DETAILS",
    "RPC_STATUS",
    "WELL_KNOWN_TYPES",
    "BuiltinProto",
    "builtin_pool",
]

_F = FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "bytes": _F.TYPE_BYTES,
}

Field = tuple[str, int, str, str]
"""``(name, number, type, flags)``: type is a scalar, ``map<key, value>``, a message name
(relative to the file's package, or absolute with a leading dot) or ``enum <name>``; flags may
hold ``repeated``, ``oneof`` (the message's only oneof) and ``optional`` (proto3)."""


@dataclass(frozen=True, slots=True)
class BuiltinProto:
    """One built-in ``.proto`` file: its descriptor and a message class per message."""

    file: Any  # a FileDescriptor (the stubs type upb's and the pure-Python one apart)
    messages: Mapping[str, type[ProtoMessage]]


def _set_type(field: FieldDescriptorProto, kind: str, package: str) -> None:
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
        return
    field.type = _F.TYPE_ENUM if kind.startswith("enum ") else _F.TYPE_MESSAGE
    name = kind.removeprefix("enum ")
    field.type_name = name if name.startswith(".") else f".{package}.{name}"


def _add_message(
    file: FileDescriptorProto,
    name: str,
    fields: Sequence[Field],
    oneof: str = "",
    *,
    parent: DescriptorProto | None = None,
) -> DescriptorProto:
    """A message added to ``parent`` (by default, the file); ``name`` is its full name
    within the package (``Outer.Inner`` for a nested message)."""
    message = (parent.nested_type if parent else file.message_type).add(
        name=name.rpartition(".")[2]
    )
    if oneof:
        message.oneof_decl.add(name=oneof)
    for field_name, number, kind, flags in fields:
        field = message.field.add(name=field_name, number=number)
        field.label = _F.LABEL_REPEATED if "repeated" in flags else _F.LABEL_OPTIONAL
        if kind.startswith("map<"):
            # protoc's form of a map: a repeated nested entry message `<FieldName>Entry`.
            key, value = kind.removeprefix("map<").removesuffix(">").split(", ")
            entry_name = "".join(part.title() for part in field_name.split("_")) + "Entry"
            entry = _add_message(
                file,
                f"{name}.{entry_name}",
                [("key", 1, key, ""), ("value", 2, value, "")],
                parent=message,
            )
            entry.options.map_entry = True
            field.label = _F.LABEL_REPEATED
            kind = f"{name}.{entry_name}"
        _set_type(field, kind, file.package)
        if "oneof" in flags:
            field.oneof_index = 0
        if "optional" in flags:
            field.proto3_optional = True
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name=f"_{field_name}")
    return message


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
    check_response = _add_message(
        file,
        "HealthCheckResponse",
        [("status", 1, "enum HealthCheckResponse.ServingStatus", "")],
    )
    status = check_response.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        status.value.add(name=name, number=number)
    _add_message(file, "HealthListRequest", [])
    _add_message(
        file,
        "HealthListResponse",
        [("statuses", 1, "map<string, HealthCheckResponse>", "")],
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


def _rpc_options(file: FileDescriptorProto, outer_class: str, go_package: str) -> None:
    options = file.options
    options.java_package = "com.google.rpc"
    options.java_outer_classname = outer_class
    options.java_multiple_files = True
    options.go_package = go_package
    options.objc_class_prefix = "RPC"


def _status_file() -> FileDescriptorProto:
    file = FileDescriptorProto(
        name="google/rpc/status.proto",
        package="google.rpc",
        dependency=["google/protobuf/any.proto"],
        syntax="proto3",
    )
    _add_message(
        file,
        "Status",
        [
            ("code", 1, "int32", ""),
            ("message", 2, "string", ""),
            ("details", 3, ".google.protobuf.Any", "repeated"),
        ],
    )
    _rpc_options(file, "StatusProto", "google.golang.org/genproto/googleapis/rpc/status;status")
    return file


def _error_details_file() -> FileDescriptorProto:
    """The standard error details, which handlers send in ``ConnectError(details=...)``."""
    file = FileDescriptorProto(
        name="google/rpc/error_details.proto",
        package="google.rpc",
        dependency=["google/protobuf/duration.proto"],
        syntax="proto3",
    )
    text = "string"
    add = partial(_add_message, file)
    add(
        "ErrorInfo",
        [
            ("reason", 1, text, ""),
            ("domain", 2, text, ""),
            ("metadata", 3, "map<string, string>", ""),
        ],
    )
    add("RetryInfo", [("retry_delay", 1, ".google.protobuf.Duration", "")])
    add("DebugInfo", [("stack_entries", 1, text, "repeated"), ("detail", 2, text, "")])
    quota = add("QuotaFailure", [("violations", 1, "QuotaFailure.Violation", "repeated")])
    violation = [
        ("subject", 1, text, ""),
        ("description", 2, text, ""),
        ("api_service", 3, text, ""),
        ("quota_metric", 4, text, ""),
        ("quota_id", 5, text, ""),
        ("quota_dimensions", 6, "map<string, string>", ""),
        ("quota_value", 7, "int64", ""),
        ("future_quota_value", 8, "int64", "optional"),
    ]
    add("QuotaFailure.Violation", violation, parent=quota)
    precondition = add(
        "PreconditionFailure", [("violations", 1, "PreconditionFailure.Violation", "repeated")]
    )
    add(
        "PreconditionFailure.Violation",
        [("type", 1, text, ""), ("subject", 2, text, ""), ("description", 3, text, "")],
        parent=precondition,
    )
    bad_request = add(
        "BadRequest", [("field_violations", 1, "BadRequest.FieldViolation", "repeated")]
    )
    field_violation = [
        ("field", 1, text, ""),
        ("description", 2, text, ""),
        ("reason", 3, text, ""),
        ("localized_message", 4, "LocalizedMessage", ""),
    ]
    add("BadRequest.FieldViolation", field_violation, parent=bad_request)
    add("RequestInfo", [("request_id", 1, text, ""), ("serving_data", 2, text, "")])
    add(
        "ResourceInfo",
        [
            ("resource_type", 1, text, ""),
            ("resource_name", 2, text, ""),
            ("owner", 3, text, ""),
            ("description", 4, text, ""),
        ],
    )
    help_message = add("Help", [("links", 1, "Help.Link", "repeated")])
    add("Help.Link", [("description", 1, text, ""), ("url", 2, text, "")], parent=help_message)
    add("LocalizedMessage", [("locale", 1, text, ""), ("message", 2, text, "")])
    _rpc_options(
        file, "ErrorDetailsProto", "google.golang.org/genproto/googleapis/rpc/errdetails;errdetails"
    )
    return file


_POOL = descriptor_pool.DescriptorPool()
"""Every built-in file, and the well-known types (``google/protobuf/*.proto``) from the
protobuf package, so that reflection can serve whatever a client may need to decode."""

WELL_KNOWN_TYPES = (  # in dependency order: type imports any and source_context, api type
    any_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
    type_pb2,
    api_pb2,
)
for _module in WELL_KNOWN_TYPES:
    _POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)


def _load(proto: FileDescriptorProto) -> BuiltinProto:
    _POOL.Add(proto)
    file = _POOL.FindFileByName(proto.name)
    messages = {
        name: message_factory.GetMessageClass(descriptor)
        for name, descriptor in file.message_types_by_name.items()
    }
    return BuiltinProto(file, messages)


def builtin_pool() -> descriptor_pool.DescriptorPool:
    """The private pool of the built-in files and the well-known types."""
    return _POOL


REFLECTION_V1 = _load(_reflection_file("v1"))
REFLECTION_V1ALPHA = _load(_reflection_file("v1alpha"))
HEALTH = _load(_health_file())
RPC_STATUS = _load(_status_file())
RPC_ERROR_DETAILS = _load(_error_details_file())
