"""Client interceptors: a bearer token on every outgoing call, and a log line per call.

Run: ``python -m examples.client_interceptors``. It calls ``examples.interceptors``'s service
in memory (no socket): the server's ``require_token`` interceptor lets the calls through
because the client's ``bearer_token`` interceptor added the header. docs/interceptors.md,
"The same shape on a client", explains each part.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol

import anyio

from connectpy import ConnectError
from connectpy.client import Client, ClientContext, asgi_transport
from connectpy.interceptors import Observer
from examples.interceptors import Greeting, GreetRequest, make_server

logger = logging.getLogger("examples.client_interceptors")


class Greeter(Protocol):
    """What the client needs of the service: its methods' signatures, no server code."""

    async def greet(self, request: GreetRequest) -> Greeting: ...
    def greet_many(self, request: GreetRequest) -> AsyncIterator[Greeting]: ...


def bearer_token(token: str) -> Callable[[ClientContext], Iterator[None]]:
    """An interceptor that adds ``authorization: Bearer <token>`` before anything is sent."""

    def add_token(context: ClientContext) -> Iterator[None]:
        context.request_headers["authorization"] = f"Bearer {token}"
        yield

    return add_token


def log_client_calls(context: ClientContext) -> Iterator[Observer]:
    """One log line per call: the procedure, its outcome and the messages each way."""
    counts = {"sent": 0, "received": 0}

    def sent(message: object, size: int) -> None:
        counts["sent"] += 1

    def received(message: object, size: int) -> None:
        counts["received"] += 1

    procedure = context.method.procedure
    try:
        yield Observer(sent=sent, received=received)
    except ConnectError as error:
        logger.warning("%s failed: %s", procedure, error.code.value)
        raise
    logger.info("%s ok: %d out, %d in", procedure, counts["sent"], counts["received"])


async def call_greeter(token: str) -> list[str]:
    """Calls Greet and GreetMany with ``token``; returns the texts the server sent."""
    app = make_server(0).app
    texts: list[str] = []
    async with Client(
        Greeter,
        "http://greeter",
        package="greet.v1",
        name="GreetService",
        transport=asgi_transport(app),
        interceptors=[log_client_calls, bearer_token(token)],
    ) as greeter:
        texts.append((await greeter.greet(GreetRequest(name="Bob"))).text)
        async for greeting in greeter.greet_many(GreetRequest(name="Bob")):
            texts.append(greeting.text)
    return texts


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for text in anyio.run(call_greeter, "alice-token"):
        print(text)


if __name__ == "__main__":
    main()
