"""Streaming RPCs over Connect: server, client and bidirectional streams.

Run: ``python -m examples.streaming`` (serves on 127.0.0.1:8001 with HTTP/1.1 and h2c).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from connectpy import ASGIApp, Code, ConnectError, Context, Message


class CountRequest(Message):
    up_to: int
    delay_ms: int = 0


class Tick(Message):
    n: int


class Note(Message):
    text: str


class Summary(Message):
    count: int
    joined: str


class StreamService:
    async def count(self, request: CountRequest) -> AsyncIterator[Tick]:
        """Server streaming: one message per number, each flushed as it is produced."""
        if request.up_to > 1000:
            raise ConnectError(Code.INVALID_ARGUMENT, "up_to must be at most 1000")
        for n in range(1, request.up_to + 1):
            yield Tick(n=n)
            await anyio.sleep(request.delay_ms / 1000)

    async def count_later(self, request: CountRequest, context: Context) -> AsyncIterator[Tick]:
        """Server streaming that waits before each message: the headers go out at once, so the
        client knows the call was accepted before anything happens."""
        if request.up_to > 1000:
            raise ConnectError(Code.INVALID_ARGUMENT, "up_to must be at most 1000")
        context.response_headers["x-count-to"] = str(request.up_to)
        await context.send_headers()
        for n in range(1, request.up_to + 1):
            await anyio.sleep(request.delay_ms / 1000)
            yield Tick(n=n)

    async def collect(self, notes: AsyncIterator[Note]) -> Summary:
        """Client streaming: read every message, answer once."""
        texts = [note.text async for note in notes]
        return Summary(count=len(texts), joined=" ".join(texts))

    async def shout(self, notes: AsyncIterator[Note]) -> AsyncIterator[Note]:
        """Bidirectional: answer each message as it arrives (full duplex on HTTP/2)."""
        async for note in notes:
            yield Note(text=note.text.upper())


app = ASGIApp(package="streaming.v1")
app.mount(StreamService())


def main() -> None:
    from hypercorn.asyncio import serve

    from connectpy._server.hypercorn import hypercorn_config

    print("Serving streaming.v1.StreamService on http://127.0.0.1:8001 (HTTP/1.1 and h2c)")
    anyio.run(serve, app, hypercorn_config(bind=["127.0.0.1:8001"]))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
