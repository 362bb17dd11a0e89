"""A service class from a protobuf ``ServiceDescriptor``, for a client that has only the
``.proto`` (through protoc's ``_pb2`` module, or descriptors read from a server's reflection).

The class is built the way a caller would write it by hand: one method per RPC, named in
snake_case, annotated with the protobuf message classes, so :class:`~connectpy.client.Client`
and :class:`~connectpy.client.SyncClient` read it like any other service class. mypy cannot
see methods made at run time: the class is typed ``type[Any]``, and so is the client.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor

from .._model.service import IdempotencyLevel, rpc

__all__ = ["service_from_descriptor", "snake_case"]

# A word starts at a capital after a lower-case letter or digit ("getBook", "v2Get"), or at
# the last capital of a run followed by a lower-case letter ("HTTPRule" -> "HTTP", "Rule").
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """The Python method name for an RPC name: ``GetBook`` -> ``get_book``,
    ``ListHTTPRules`` -> ``list_http_rules``; a Python keyword gets a trailing underscore
    (``Import`` -> ``import_``)."""
    snake = _WORD_START.sub("_", name).lower()
    return snake + "_" if keyword.iskeyword(snake) else snake


def service_from_descriptor(descriptor: ServiceDescriptor) -> type[Any]:
    """A service class for ``Client(...)`` or ``SyncClient(...)`` from a protobuf service
    descriptor, e.g. ``book_pb2.DESCRIPTOR.services_by_name["BookService"]``.

    Requests and responses are the protobuf message classes of the descriptor's pool (the
    ``_pb2`` module's classes when it is imported). Methods are the RPC names in snake_case;
    the wire names, the package and ``idempotency_level`` come from the descriptor.

    Raises:
        TypeError: two RPC names map to the same snake_case name.
    """
    namespace: dict[str, Any] = {
        "__connectpy_name__": descriptor.name,
        "__connectpy_package__": descriptor.file.package,
        "__doc__": f"{descriptor.full_name}, from its protobuf descriptor.",
        "__module__": __name__,
    }
    for method in descriptor.methods:
        attribute = snake_case(method.name)
        if attribute in namespace:
            raise TypeError(
                f"{descriptor.full_name}: two RPCs map to the Python name {attribute!r}"
            )
        namespace[attribute] = _method(attribute, method)
    return type(descriptor.name, (), namespace)


def _method(attribute: str, method: MethodDescriptor) -> Callable[..., Any]:
    request: Any = _message_class(method.input_type)
    response: Any = _message_class(method.output_type)
    if method.client_streaming:
        request = AsyncIterator[request]
    if method.server_streaming:
        response = AsyncIterator[response]

    # The body never runs: the client replaces every method with one that calls the server.
    def call(self: object, request: Any) -> Any:
        raise NotImplementedError

    call.__name__ = call.__qualname__ = attribute
    call.__annotations__ = {"request": request, "return": response}
    level = IdempotencyLevel(method.GetOptions().idempotency_level)
    return rpc(name=method.name, idempotency=level)(call)


def _message_class(descriptor: Descriptor) -> type[Any]:
    # The class protoc's module registered for the descriptor, or one made from it (for
    # descriptors with no generated code, such as a reflection answer's).
    return message_factory.GetMessageClass(descriptor)
