"""Protobuf schemas for services written with Pydantic models."""

from __future__ import annotations

from ._model.proto_text import render_files, render_proto
from ._model.schema import ProtoSchema
from ._model.service import inspect_service
from ._model.typemap import FieldNumber

__all__ = ["FieldNumber", "generate_proto", "generate_proto_files"]


def generate_proto(service: object, *, package: str | None = None, name: str | None = None) -> str:
    """The ``.proto`` source of a service (an instance) and every type its methods use.

    ``package`` and ``name`` override the service's protobuf package and name, as when
    mounting it. Docstrings become comments; ``Field(description=...)`` documents fields.
    The file stands alone: for several services that share types, use
    :func:`generate_proto_files`.

    Raises:
        TypeError: the service is not a valid RPC service, or a type has no protobuf form.
    """
    info = inspect_service(service, name=name, package=package)
    schema = ProtoSchema.for_services([info])
    return render_proto(schema.file_descriptor, services=[info], docs=schema.docs)


def generate_proto_files(*services: object, package: str | None = None) -> dict[str, str]:
    """The ``.proto`` files of several services (instances), by file name, which compile
    together: one per service, and, where services of one package share types, a
    ``<package path>/shared.proto`` of those types that their files import.

    ``package`` overrides every service's protobuf package, as when mounting them.

    Raises:
        TypeError: a service is not a valid RPC service, a type has no protobuf form, or two
            types of one package share a name.
    """
    infos = [inspect_service(service, package=package) for service in services]
    schema = ProtoSchema.for_services(infos)
    return render_files(schema.file_descriptors, services=infos, docs=schema.docs)
