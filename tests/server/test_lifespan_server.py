"""``AsyncIOServer(lifespan=...)`` on a real Hypercorn: startup before the first call is
answered, shutdown after the server stops, and a failed startup that stops ``run``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from hypercorn.utils import LifespanFailureError

from connectpy import ASGIApp, AsyncIOServer, Message

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # AsyncIOServer runs Hypercorn's asyncio worker


class Ping(Message):
    text: str


class EventService:
    """Records each call in the list the lifespan records its startup and shutdown in."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def ping(self, request: Ping) -> Ping:
        self.events.append(f"call {request.text}")
        return request


async def test_the_server_runs_the_lifespan_around_its_calls() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
        await anyio.sleep(0.2)  # a slow startup: calls wait for it
        events.append("startup")
        yield
        events.append("shutdown")

    server = AsyncIOServer("127.0.0.1", 0, lifespan=lifespan)
    async with anyio.create_task_group() as tasks:
        port = await tasks.start(server.run, EventService(events))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            response = await client.post("/EventService/Ping", json={"text": "x"})
        assert response.status_code == 200
        server.shutdown()
    assert events == ["startup", "call x", "shutdown"]


async def test_a_failed_startup_stops_the_server() -> None:
    @asynccontextmanager
    async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    server = AsyncIOServer("127.0.0.1", 0, lifespan=lifespan)
    with anyio.fail_after(10), pytest.raises(LifespanFailureError, match="database unreachable"):
        await server.run()


def test_lifespan_goes_to_the_app_passed_in() -> None:
    with pytest.raises(ValueError, match="app passed"):
        AsyncIOServer(app=ASGIApp(), lifespan=lambda app: None)  # type: ignore[arg-type,return-value]
