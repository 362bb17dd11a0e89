"""Splits a package's file descriptor into one file per service, plus one of shared types.

A package whose services share types cannot be published one file per service with every
type in each (protoc rejects the second definition), so: each service's file holds the
service and the types only it uses, and a ``shared.proto`` next to them holds the types two
or more services use, which the service files import. Type references are fully qualified
and the package is unchanged, so moving a top-level message or enum between files of the
package changes no reference: only the imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FileDescriptorProto,
    ServiceDescriptorProto,
)

__all__ = ["file_stem", "split_by_service"]

SHARED_STEM = "shared"


def file_stem(name: str) -> str:
    """A service's or model's name as the stem of its file: ``BookService`` -> ``book_service``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _references(message: DescriptorProto) -> Iterator[str]:
    """The full names (no leading dot) of the types a message's fields, nested ones too, use."""
    for field in message.field:
        if field.type_name:
            yield field.type_name.lstrip(".")
    for nested in message.nested_type:
        yield from _references(nested)


def _method_types(service: ServiceDescriptorProto) -> Iterator[str]:
    for method in service.method:
        yield method.input_type.lstrip(".")
        yield method.output_type.lstrip(".")


class _Package:
    """The top-level types of one file, and the imported files that define the others."""

    def __init__(self, file: FileDescriptorProto, imports: Mapping[str, Any]) -> None:
        self.prefix = f"{file.package}." if file.package else ""
        self.messages = {m.name: m for m in file.message_type}
        self.local = set(self.messages) | {e.name for e in file.enum_type}
        self.defined_in: dict[str, str] = {}  # imported top-level full name -> its file
        for imported in imports.values():
            for name in (*imported.message_types_by_name, *imported.enum_types_by_name):
                prefix = f"{imported.package}." if imported.package else ""
                self.defined_in[prefix + name] = imported.name

    def local_name(self, full: str) -> str | None:
        """The top-level type of this file that ``full`` is or is nested in, if any."""
        if not full.startswith(self.prefix):
            return None
        top = full[len(self.prefix) :].split(".")[0]
        return top if top in self.local else None

    def imported_file(self, full: str) -> str | None:
        parts = full.split(".")
        for end in range(len(parts), 0, -1):  # a nested type: its top-level type's file
            found = self.defined_in.get(".".join(parts[:end]))
            if found is not None:
                return found
        return None

    def reachable(self, roots: Iterable[str]) -> set[str]:
        """The top-level local types the roots use, directly or through other types."""
        seen: set[str] = set()
        pending = [name for name in map(self.local_name, roots) if name]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            message = self.messages.get(name)
            if message is not None:
                pending.extend(n for n in map(self.local_name, _references(message)) if n)
        return seen


def split_by_service(
    file: FileDescriptorProto, imports: Mapping[str, Any]
) -> list[FileDescriptorProto]:
    """``file`` as one file per service and, if they share any, a shared file first (the
    others import it); ``file`` itself when it declares fewer than two services.

    ``imports`` maps the names of the files ``file`` imports to their ``FileDescriptor``.
    """
    if len(file.service) < 2:
        return [file]
    package = _Package(file, imports)
    used = [package.reachable(_method_types(service)) for service in file.service]
    shared = {name for name in package.local if sum(name in types for types in used) > 1}
    base = file.name.rpartition("/")[0]
    base = base + "/" if base else ""
    taken = set(imports) | {file.name}
    names = [file.name]
    for service in file.service[1:]:
        names.append(_free_name(f"{base}{file_stem(service.name)}.proto", taken))
        taken.add(names[-1])
    shared_name = _free_name(f"{base}{SHARED_STEM}.proto", taken)
    outputs: list[FileDescriptorProto] = []
    if shared:
        outputs.append(_part(file, shared_name, shared, ()))
    for name, service, types in zip(names, file.service, used, strict=True):
        outputs.append(_part(file, name, types - shared, (service,)))
    for output in outputs:
        _set_dependencies(output, package, {shared_name} if shared else set())
    # Imports no type needs (the file of a service declared elsewhere) stay with the first.
    needed = {name for output in outputs for name in output.dependency}
    first = outputs[1] if shared else outputs[0]
    first.dependency.extend(name for name in file.dependency if name not in needed)
    return outputs


def _free_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name = name.removesuffix(".proto") + "_connectpy.proto"
    return name


def _part(
    file: FileDescriptorProto,
    name: str,
    types: set[str],
    services: Iterable[ServiceDescriptorProto],
) -> FileDescriptorProto:
    part = FileDescriptorProto(name=name, syntax=file.syntax)
    if file.HasField("package"):
        part.package = file.package
    part.options.CopyFrom(file.options)
    if not part.options.ListFields():
        part.ClearField("options")
    part.message_type.extend(m for m in file.message_type if m.name in types)
    part.enum_type.extend(e for e in file.enum_type if e.name in types)
    part.service.extend(services)
    return part


def _set_dependencies(part: FileDescriptorProto, package: _Package, shared: set[str]) -> None:
    """Import exactly the files that define the types ``part`` uses but does not define."""
    own = {m.name for m in part.message_type} | {e.name for e in part.enum_type}
    used = [name for message in part.message_type for name in _references(message)]
    for service in part.service:
        used.extend(_method_types(service))
    needed: list[str] = []
    for full in used:
        local = package.local_name(full)
        if local is not None:
            found = None if local in own else next(iter(shared), None)
        else:
            found = package.imported_file(full)
        if found is not None and found not in needed:
            needed.append(found)
    part.dependency.extend(needed)
