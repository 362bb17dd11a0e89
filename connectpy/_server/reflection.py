"""gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``) for an app's services.

Each answer carries serialized ``FileDescriptorProto``s from the app's protobuf schema: the
file that declares the symbol asked for, then every file it imports that this stream has not
been sent yet (as grpc-go does), so a client can build its pool from one answer.

Spec: https://github.com/grpc/grpc/blob/master/doc/server-reflection.md
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pool import DescriptorPool

from .._model.grpc_protos import REFLECTION_V1, REFLECTION_V1ALPHA, BuiltinProto, builtin_pool
from .._model.schema import ProtoSchema
from .._model.service import ServiceInfo
from ..code import Code

__all__ = ["ReflectionIndex", "ServerReflectionV1", "ServerReflectionV1Alpha"]

if TYPE_CHECKING:
    # The classes are built at runtime; handlers see them as Any, inspect_service as classes.
    V1Request: TypeAlias = Any
    V1Response: TypeAlias = Any
    V1AlphaRequest: TypeAlias = Any
    V1AlphaResponse: TypeAlias = Any
else:
    V1Request = REFLECTION_V1.messages["ServerReflectionRequest"]
    V1Response = REFLECTION_V1.messages["ServerReflectionResponse"]
    V1AlphaRequest = REFLECTION_V1ALPHA.messages["ServerReflectionRequest"]
    V1AlphaResponse = REFLECTION_V1ALPHA.messages["ServerReflectionResponse"]


class _NotFound(Exception):
    """Internal: the symbol, file or extension asked for does not exist."""


class ReflectionIndex:
    """Finds the descriptors of the services an app serves.

    The schema is built on first use and again whenever the list of services grew. Every
    service goes into one schema (a file per service, and per package one of the types its
    services share), so a model shared by two services is described once; if they cannot
    share one (two models of one name in one package), each service gets its own.
    """

    def __init__(self, services: Sequence[ServiceInfo]) -> None:
        self._services = services
        self._built_for = -1
        self._pools: list[DescriptorPool] = []

    def service_names(self) -> list[str]:
        return [service.full_name for service in self._services]

    def _current_pools(self) -> list[DescriptorPool]:
        services = self._services
        if len(services) != self._built_for:
            try:
                self._pools = [ProtoSchema.for_services(services).pool]
            except TypeError:
                self._pools = [ProtoSchema.for_services([s]).pool for s in services]
            self._built_for = len(services)
        return self._pools

    def _find(self, lookup: Callable[[DescriptorPool], Any]) -> Any:
        # After the app's own schema: the well-known types and google.rpc error details
        # whether a service uses them or not (clients decode error details with them), then
        # what generated modules this process imported (a handler's own detail messages).
        for pool in (*self._current_pools(), builtin_pool(), descriptor_pool.Default()):
            try:
                return lookup(pool)
            except KeyError:
                continue
        raise _NotFound

    def file_by_name(self, name: str) -> Any:
        return self._find(lambda pool: pool.FindFileByName(name))

    def file_containing_symbol(self, symbol: str) -> Any:
        def lookup(pool: DescriptorPool) -> Any:
            try:
                return pool.FindFileContainingSymbol(symbol)
            except KeyError:
                # upb's pool does not index methods: `<package>.<Service>.<Method>`.
                service_name, _, method = symbol.rpartition(".")
                service = pool.FindServiceByName(service_name)
                if method not in service.methods_by_name:
                    raise
                return service.file

        return self._find(lookup)

    def file_containing_extension(self, containing_type: str, number: int) -> Any:
        def lookup(pool: DescriptorPool) -> Any:
            message = pool.FindMessageTypeByName(containing_type)
            extension: Any = pool.FindExtensionByNumber(message, number)
            return extension.file

        return self._find(lookup)

    def extension_numbers(self, containing_type: str) -> list[int]:
        def lookup(pool: DescriptorPool) -> list[int]:
            message = pool.FindMessageTypeByName(containing_type)
            return sorted(ext.number for ext in pool.FindAllExtensions(message))

        result: list[int] = self._find(lookup)
        return result


def _with_dependencies(file: Any, sent: set[str]) -> list[bytes]:
    """``file`` (always) and, depth first, each file it imports not yet in ``sent``."""
    out = [file.serialized_pb]
    sent.add(file.name)
    pending = list(file.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.name not in sent:
            sent.add(dependency.name)
            out.append(dependency.serialized_pb)
            pending.extend(dependency.dependencies)
    return out


class _Answerer:
    """Answers one reflection stream's requests, in the message classes of one version."""

    def __init__(self, index: ReflectionIndex, proto: BuiltinProto) -> None:
        self.index = index
        self.messages = proto.messages
        self.sent: set[str] = set()

    def answer(self, request: Any) -> Any:
        response = self.messages["ServerReflectionResponse"](
            valid_host=request.host, original_request=request
        )
        kind = request.WhichOneof("message_request")
        try:
            self._fill(response, kind, request)
        except _NotFound:
            what = getattr(request, kind) if kind else ""
            self._error(response, Code.NOT_FOUND, f"{kind} {what!s} not found".strip())
        return response

    def _fill(self, response: Any, kind: str | None, request: Any) -> None:
        index = self.index
        if kind == "list_services":
            services = response.list_services_response.service
            for name in index.service_names():
                services.add(name=name)
        elif kind == "file_by_filename":
            self._files(response, index.file_by_name(request.file_by_filename))
        elif kind == "file_containing_symbol":
            self._files(response, index.file_containing_symbol(request.file_containing_symbol))
        elif kind == "file_containing_extension":
            wanted = request.file_containing_extension
            file = index.file_containing_extension(wanted.containing_type, wanted.extension_number)
            self._files(response, file)
        elif kind == "all_extension_numbers_of_type":
            name = request.all_extension_numbers_of_type
            answer = response.all_extension_numbers_response
            answer.base_type_name = name
            answer.extension_number.extend(index.extension_numbers(name))
        else:
            self._error(response, Code.INVALID_ARGUMENT, "the request sets no message_request")

    def _files(self, response: Any, file: Any) -> None:
        files = _with_dependencies(file, self.sent)
        response.file_descriptor_response.file_descriptor_proto.extend(files)

    @staticmethod
    def _error(response: Any, code: Code, message: str) -> None:
        response.error_response.error_code = code.number
        response.error_response.error_message = message


class _ServerReflection:
    def __init__(self, services: Sequence[ServiceInfo]) -> None:
        self._index = ReflectionIndex(services)

    async def _answer_all(
        self, requests: AsyncIterator[Any], proto: BuiltinProto
    ) -> AsyncGenerator[Any, None]:
        answerer = _Answerer(self._index, proto)
        async for request in requests:
            yield answerer.answer(request)


class ServerReflectionV1(_ServerReflection):
    """``grpc.reflection.v1.ServerReflection`` over ``services`` (a list that may grow)."""

    __connectpy_package__ = "grpc.reflection.v1"
    __connectpy_name__ = "ServerReflection"

    async def server_reflection_info(
        self, requests: AsyncIterator[V1Request]
    ) -> AsyncIterator[V1Response]:
        async with aclosing(self._answer_all(requests, REFLECTION_V1)) as responses:
            async for response in responses:
                yield response


class ServerReflectionV1Alpha(_ServerReflection):
    """``grpc.reflection.v1alpha.ServerReflection``: the same, for older clients (grpcurl,
    grpcio-reflection's ``ProtoReflectionDescriptorDatabase``)."""

    __connectpy_package__ = "grpc.reflection.v1alpha"
    __connectpy_name__ = "ServerReflection"

    async def server_reflection_info(
        self, requests: AsyncIterator[V1AlphaRequest]
    ) -> AsyncIterator[V1AlphaResponse]:
        async with aclosing(self._answer_all(requests, REFLECTION_V1ALPHA)) as responses:
            async for response in responses:
                yield response
