"""The service ``make soak`` loads (tests/soak/run.py): unary, server stream and bidi."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connectpy import ASGIApp, Message


class Ask(Message):
    n: int = 0
    text: str = ""


class Soak:
    async def echo(self, request: Ask) -> Ask:
        return request

    async def count(self, request: Ask) -> AsyncIterator[Ask]:
        for n in range(request.n):
            yield Ask(n=n, text=request.text)

    async def chat(self, requests: AsyncIterator[Ask]) -> AsyncIterator[Ask]:
        async for request in requests:
            yield request


app = ASGIApp(package="soak.v1")
app.mount(Soak())
