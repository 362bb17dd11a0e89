"""Renders a built file descriptor as ``.proto`` source text (proto3).

The descriptor stays the single source of truth; the services add what descriptors built
at runtime leave out (``google.api.http`` rules) and the docs map full names to comments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    MethodDescriptorProto,
    MethodOptions,
    ServiceDescriptorProto,
)

from .service import HttpRule, ServiceInfo
from .typemap import protoc_json_name

__all__ = ["render_files", "render_proto"]

_F = FieldDescriptorProto
_SCALAR_NAMES = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}
_HTTP_VERBS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH"})
_ANNOTATIONS = "google/api/annotations.proto"
_INDENT = "  "


def _quote(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char.isprintable():
            escaped.append(char)
        else:
            escaped.extend(f"\\x{byte:02x}" for byte in char.encode())
    return '"' + "".join(escaped) + '"'


def _http_option(rule: HttpRule) -> str:
    if rule.method in _HTTP_VERBS:
        pattern = f"{rule.method.lower()}: {_quote(rule.path)}"
    else:
        pattern = f"custom: {{ kind: {_quote(rule.method)} path: {_quote(rule.path)} }}"
    body = f" body: {_quote(rule.body)}" if rule.body else ""
    return f"option (google.api.http) = {{ {pattern}{body} }};"


class _Renderer:
    def __init__(self, file: FileDescriptorProto, docs: Mapping[str, str]) -> None:
        self.file = file
        self.package = file.package
        self.docs = docs
        self.lines: list[str] = []
        # Names a short reference could resolve to before reaching the intended type.
        self.top_names = {m.name for m in file.message_type} | {e.name for e in file.enum_type}
        self.top_names |= set(self.package.split("."))

    def emit(self, depth: int = 0, text: str = "") -> None:
        self.lines.append(_INDENT * depth + text if text else "")

    def comment(self, depth: int, full_name: str) -> None:
        doc = self.docs.get(full_name)
        for line in doc.splitlines() if doc else ():
            self.emit(depth, f"// {line}".rstrip())

    def qualify(self, name: str) -> str:
        return f"{self.package}.{name}" if self.package else name

    def ref(self, type_name: str, shadowing: Set[str]) -> str:
        """A readable reference to a fully-qualified type name, as short as is unambiguous.

        ``shadowing`` holds the names declared in the scope the reference is written in (a
        message's nested types, a service's methods): protoc looks a name up there first.
        """
        full = type_name.lstrip(".")
        prefix = f"{self.package}." if self.package else ""
        if full.startswith(prefix) and "." not in full[len(prefix) :]:
            short = full[len(prefix) :]
            return short if short not in shadowing else "." + full
        first = full.split(".")[0]
        return "." + full if first in self.top_names or first in shadowing else full

    def field_type(self, field: FieldDescriptorProto, scope: DescriptorProto) -> str:
        if field.type in (_F.TYPE_MESSAGE, _F.TYPE_ENUM, _F.TYPE_GROUP):
            nested = {t.name for t in scope.nested_type} | {e.name for e in scope.enum_type}
            return self.ref(field.type_name, nested)
        return _SCALAR_NAMES[field.type]


def _map_entry(field: FieldDescriptorProto, message: DescriptorProto) -> DescriptorProto | None:
    if field.label != _F.LABEL_REPEATED or field.type != _F.TYPE_MESSAGE:
        return None
    name = field.type_name.rpartition(".")[2]
    for nested in message.nested_type:
        if nested.name == name and nested.options.map_entry:
            return nested
    return None


def _render_field(
    r: _Renderer, depth: int, field: FieldDescriptorProto, message: DescriptorProto, full: str
) -> None:
    r.comment(depth, f"{full}.{field.name}")
    entry = _map_entry(field, message)
    if entry is not None:
        key, value = entry.field[0], entry.field[1]
        kind = f"map<{r.field_type(key, message)}, {r.field_type(value, message)}>"
    elif field.label == _F.LABEL_REPEATED:
        kind = "repeated " + r.field_type(field, message)
    else:
        optional = "optional " if field.proto3_optional else ""
        kind = optional + r.field_type(field, message)
    option = ""
    if field.HasField("json_name") and field.json_name != protoc_json_name(field.name):
        option = f" [json_name = {_quote(field.json_name)}]"
    r.emit(depth, f"{kind} {field.name} = {field.number}{option};")


def _real_oneof(field: FieldDescriptorProto) -> int | None:
    """The index of the (non-synthetic) oneof holding ``field``, if any."""
    if field.HasField("oneof_index") and not field.proto3_optional:
        return field.oneof_index
    return None


def _render_oneof(
    r: _Renderer, depth: int, index: int, message: DescriptorProto, full: str
) -> None:
    name = message.oneof_decl[index].name
    r.comment(depth, f"{full}.{name}")
    r.emit(depth, f"oneof {name} {{")
    for field in message.field:
        if _real_oneof(field) == index:
            _render_field(r, depth + 1, field, message, full)
    r.emit(depth, "}")


def _render_message(r: _Renderer, depth: int, message: DescriptorProto, full: str) -> None:
    r.comment(depth, full)
    r.emit(depth, f"message {message.name} {{")
    rendered: set[int] = set()
    for field in message.field:
        index = _real_oneof(field)
        if index is None:
            _render_field(r, depth + 1, field, message, full)
        elif index not in rendered:  # the whole oneof, where its first field is
            rendered.add(index)
            _render_oneof(r, depth + 1, index, message, full)
    for nested in message.nested_type:
        if not nested.options.map_entry:
            r.emit()
            _render_message(r, depth + 1, nested, f"{full}.{nested.name}")
    for nested_enum in message.enum_type:
        r.emit()
        _render_enum(r, depth + 1, nested_enum, f"{full}.{nested_enum.name}")
    r.emit(depth, "}")


def _render_enum(r: _Renderer, depth: int, enum: EnumDescriptorProto, full: str) -> None:
    r.comment(depth, full)
    r.emit(depth, f"enum {enum.name} {{")
    for value in enum.value:
        r.emit(depth + 1, f"{value.name} = {value.number};")
    r.emit(depth, "}")


def _render_method(
    r: _Renderer,
    method: MethodDescriptorProto,
    full: str,
    http: HttpRule | None,
    method_names: Set[str],
) -> None:
    r.comment(1, full)
    # protoc resolves the types of `rpc Count(Count)` in the service first, where `Count`
    # is the method itself: a type named like a method must be written in full.
    request = r.ref(method.input_type, method_names)
    response = r.ref(method.output_type, method_names)
    request = ("stream " if method.client_streaming else "") + request
    response = ("stream " if method.server_streaming else "") + response
    signature = f"rpc {method.name}({request}) returns ({response})"
    options = []
    if method.options.HasField("idempotency_level"):
        level = MethodOptions.IdempotencyLevel.Name(method.options.idempotency_level)
        options.append(f"option idempotency_level = {level};")
    if http is not None:
        options.append(_http_option(http))
    if not options:
        r.emit(1, signature + ";")
        return
    r.emit(1, signature + " {")
    for option in options:
        r.emit(2, option)
    r.emit(1, "}")


def _render_service(
    r: _Renderer, service: ServiceDescriptorProto, rules: Mapping[str, HttpRule]
) -> None:
    full = r.qualify(service.name)
    r.comment(0, full)
    r.emit(0, f"service {service.name} {{")
    method_names = {method.name for method in service.method}
    for method in service.method:
        method_full = f"{full}.{method.name}"
        _render_method(r, method, method_full, rules.get(method_full), method_names)
    r.emit(0, "}")


def render_proto(
    file: FileDescriptorProto,
    *,
    services: Sequence[ServiceInfo] = (),
    docs: Mapping[str, str] | None = None,
) -> str:
    """``file`` as ``.proto`` text, with the HTTP rules of ``services`` and ``docs``
    (full name of a service, method, message, field or enum -> comment) as comments."""
    r = _Renderer(file, docs or {})
    declared = {r.qualify(service.name) for service in file.service}
    rules = {
        f"{method.service}.{method.name}": method.http
        for service in services
        if service.full_name in declared  # only this file's: it imports annotations for them
        for method in service.methods
        if method.http is not None
    }
    r.emit(0, "// Generated by connectpy from Python type annotations.")
    r.emit(0, 'syntax = "proto3";')
    if file.package:
        r.emit()
        r.emit(0, f"package {file.package};")
    imports = set(file.dependency) | ({_ANNOTATIONS} if rules else set())
    if imports:
        r.emit()
    for name in sorted(imports):
        r.emit(0, f"import {_quote(name)};")
    for service in file.service:
        r.emit()
        _render_service(r, service, rules)
    for message in file.message_type:
        r.emit()
        _render_message(r, 0, message, r.qualify(message.name))
    for enum in file.enum_type:
        r.emit()
        _render_enum(r, 0, enum, r.qualify(enum.name))
    return "\n".join(r.lines) + "\n"


def render_files(
    files: Sequence[FileDescriptorProto],
    *,
    services: Sequence[ServiceInfo] = (),
    docs: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each file that declares something, by name, as ``.proto`` text; files that only
    import a service's own generated file (reflection, health) are left out."""
    return {
        file.name: render_proto(file, services=services, docs=docs)
        for file in files
        if file.message_type or file.enum_type or file.service
    }
