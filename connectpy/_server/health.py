"""The gRPC health service (``grpc.health.v1.Health``) and the statuses it reports.

Spec: https://github.com/grpc/grpc/blob/master/doc/health-checking.md
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.from_thread
import anyio.lowlevel

from .._model.grpc_protos import HEALTH
from .._model.service import rpc
from ..code import Code
from ..errors import ConnectError

__all__ = ["Health", "HealthService", "ServingStatus"]

if TYPE_CHECKING:
    # The classes are built at runtime; handlers see them as Any, inspect_service as classes.
    HealthCheckRequest: TypeAlias = Any
    HealthCheckResponse: TypeAlias = Any
    HealthListRequest: TypeAlias = Any
    HealthListResponse: TypeAlias = Any
else:
    HealthCheckRequest = HEALTH.messages["HealthCheckRequest"]
    HealthCheckResponse = HEALTH.messages["HealthCheckResponse"]
    HealthListRequest = HEALTH.messages["HealthListRequest"]
    HealthListResponse = HEALTH.messages["HealthListResponse"]


class ServingStatus(enum.IntEnum):
    """``grpc.health.v1.HealthCheckResponse.ServingStatus``."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3
    """Sent by ``Watch`` only, for a service the server does not know."""


@dataclass(eq=False, slots=True)
class _Waiter:
    event: anyio.Event
    thread: int
    token: anyio.lowlevel.EventLoopToken

    def wake(self) -> None:
        if threading.get_ident() == self.thread:
            self.event.set()
            return
        # Another thread: anyio events must be set from their own loop (if it still runs).
        with contextlib.suppress(anyio.RunFinishedError):
            anyio.from_thread.run_sync(self.event.set, token=self.token)


class Health:
    """The serving statuses ``grpc.health.v1.Health`` reports, per service name.

    The server as a whole is the empty name ``""``. A service mounted on the app reports
    ``SERVING`` until :meth:`set` says otherwise; an unknown name is ``NOT_FOUND`` for
    ``Check`` and ``SERVICE_UNKNOWN`` for ``Watch``. :meth:`set` may be called from any
    thread; ``Watch`` streams see each change.

    Args:
        known: the names of the services that exist (an app passes its mounted services).
    """

    def __init__(self, known: Callable[[], Iterable[str]] = tuple) -> None:
        self._known = known
        self._statuses: dict[str, ServingStatus] = {}
        self._waiters: set[_Waiter] = set()
        self._lock = threading.Lock()

    def set(self, service: str, status: ServingStatus) -> None:
        """Report ``status`` for ``service`` (``""``: the whole server)."""
        with self._lock:
            self._statuses[service] = ServingStatus(status)
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.wake()

    def get(self, service: str) -> ServingStatus | None:
        """The status of ``service``, or ``None`` for a service the server does not know."""
        status = self._statuses.get(service)
        if status is not None:
            return status
        if service == "" or service in self._known():
            return ServingStatus.SERVING
        return None

    def statuses(self) -> dict[str, ServingStatus]:
        """Every known service's status, the server's (``""``) included."""
        names = {"", *self._known(), *self._statuses}
        statuses = {name: self.get(name) for name in sorted(names)}
        return {name: status for name, status in statuses.items() if status is not None}

    def shutdown(self) -> None:
        """Report ``NOT_SERVING`` for everything, as gRPC servers do when shutting down."""
        for name in self.statuses():
            self.set(name, ServingStatus.NOT_SERVING)

    async def changes(self, service: str) -> AsyncGenerator[ServingStatus, None]:
        """The current status of ``service`` (``SERVICE_UNKNOWN`` if unknown), then each new
        one; runs until cancelled."""
        last: ServingStatus | None = None
        while True:
            waiter = _Waiter(anyio.Event(), threading.get_ident(), anyio.lowlevel.current_token())
            with self._lock:
                self._waiters.add(waiter)
            try:
                status = self.get(service) or ServingStatus.SERVICE_UNKNOWN
                if status is not last:
                    last = status
                    yield status
                await waiter.event.wait()
            finally:
                with self._lock:
                    self._waiters.discard(waiter)


class HealthService:
    """``grpc.health.v1.Health``, reporting the statuses of a :class:`Health`."""

    __connectpy_package__ = "grpc.health.v1"
    __connectpy_name__ = "Health"

    def __init__(self, health: Health) -> None:
        self._health = health

    async def check(self, request: HealthCheckRequest) -> HealthCheckResponse:
        status = self._health.get(request.service)
        if status is None:
            raise ConnectError(Code.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=status)

    @rpc(name="List")
    async def list_statuses(self, request: HealthListRequest) -> HealthListResponse:
        response = HealthListResponse()
        for name, status in self._health.statuses().items():
            response.statuses[name].status = status
        return response

    async def watch(self, request: HealthCheckRequest) -> AsyncIterator[HealthCheckResponse]:
        # aclosing: when the call ends, close the inner generator now, not in the GC.
        async with aclosing(self._health.changes(request.service)) as changes:
            async for status in changes:
                yield HealthCheckResponse(status=status)
