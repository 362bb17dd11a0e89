"""Startup and shutdown code: the ASGI lifespan protocol of a standalone ``ASGIApp``, and the
same lifespan entered from FastAPI's when the app is mounted under it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from connectpy import ASGIApp, Message

pytestmark = pytest.mark.anyio


class Ping(Message):
    text: str


class Pool:
    """Stands in for a database pool: open only between startup and shutdown."""

    def __init__(self) -> None:
        self.open = False


class PoolService:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def ping(self, request: Ping) -> Ping:
        return Ping(text=f"{request.text}: pool {'open' if self.pool.open else 'closed'}")


def pooled_app(events: list[str]) -> tuple[ASGIApp, Pool]:
    pool = Pool()

    @asynccontextmanager
    async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
        assert isinstance(app, ASGIApp)
        events.append("rpc startup")
        pool.open = True
        yield
        pool.open = False
        events.append("rpc shutdown")

    app = ASGIApp(lifespan=lifespan)
    app.mount(PoolService(pool))
    return app, pool


async def ping(app: Any, path: str) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(path, json={"text": "hi"})
    text: str = response.json()["text"]
    return text


async def run_lifespan(app: Any, during: Any = None) -> list[dict[str, Any]]:
    """Drive ``app`` through startup and shutdown as a server does; ``during`` runs between."""
    sent: list[dict[str, Any]] = []
    started = anyio.Event()
    stop = anyio.Event()
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        if len(incoming) == 1:
            await stop.wait()
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"].startswith("lifespan.startup"):
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app, scope, receive, send)
            await started.wait()
            if during is not None and sent[-1]["type"] == "lifespan.startup.complete":
                await during()
            stop.set()
    return sent


async def test_a_standalone_app_runs_its_lifespan_around_the_serving() -> None:
    events: list[str] = []
    app, pool = pooled_app(events)

    async def call() -> None:
        events.append("serving")
        events.append(await ping(app, "/PoolService/Ping"))

    sent = await run_lifespan(app, call)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["rpc startup", "serving", "hi: pool open", "rpc shutdown"]
    assert not pool.open


async def test_an_app_without_a_lifespan_still_answers_the_protocol() -> None:
    sent = await run_lifespan(ASGIApp())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_failed_startup_is_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    @asynccontextmanager
    async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    with caplog.at_level(logging.ERROR, logger="connectpy"):
        sent = await run_lifespan(ASGIApp(lifespan=lifespan))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "database unreachable" in sent[0]["message"]
    assert len(sent) == 1
    assert "database unreachable" in caplog.text


async def test_a_failed_shutdown_is_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    @asynccontextmanager
    async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
        yield
        raise OSError("pool would not close")

    with caplog.at_level(logging.ERROR, logger="connectpy"):
        sent = await run_lifespan(ASGIApp(lifespan=lifespan))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "pool would not close" in caplog.text


async def test_mounted_under_fastapi_the_parents_lifespan_runs_ours() -> None:
    """Starlette never sends lifespan events to a mounted app: FastAPI's lifespan enters ours."""
    events: list[str] = []
    rpc, pool = pooled_app(events)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        events.append("api startup")
        async with rpc.lifespan_context():
            yield
        events.append("api shutdown")

    api = FastAPI(lifespan=lifespan)
    api.mount("/rpc", rpc)

    async def call() -> None:
        events.append(await ping(api, "/rpc/PoolService/Ping"))

    sent = await run_lifespan(api, call)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["api startup", "rpc startup", "hi: pool open", "rpc shutdown", "api shutdown"]
    assert not pool.open


async def test_mounted_without_the_parent_entering_it_our_lifespan_never_runs() -> None:
    """Why the step above is needed (Starlette's Mount forwards no lifespan events)."""
    events: list[str] = []
    rpc, _ = pooled_app(events)
    api = FastAPI()
    api.mount("/rpc", rpc)
    await run_lifespan(api)
    assert events == []
