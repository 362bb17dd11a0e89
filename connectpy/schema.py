"""Protobuf schemas for services written with Pydantic models."""

from __future__ import annotations

from ._proto_text import render_proto
from ._schema import ProtoSchema
from ._service import inspect_service
from ._typemap import FieldNumber

__all__ = ["FieldNumber", "generate_proto"]


def generate_proto(service: object, *, package: str | None = None, name: str | None = None) -> str:
    """The ``.proto`` source of a service (an instance) and every type its methods use.

    ``package`` and ``name`` override the service's protobuf package and name, as when
    mounting it. Docstrings become comments; ``Field(description=...)`` documents fields.

    Raises:
        TypeError: the service is not a valid RPC service, or a type has no protobuf form.
    """
    info = inspect_service(service, name=name, package=package)
    schema = ProtoSchema.for_services([info])
    return render_proto(schema.file_descriptor, services=[info], docs=schema.docs)
