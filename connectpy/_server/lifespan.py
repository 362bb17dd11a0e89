"""The ASGI lifespan protocol: run the app's startup and shutdown code around the serving.

Spec: https://asgi.readthedocs.io/en/latest/specs/lifespan.html
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from .asgi import Receive, Send

__all__ = ["Lifespan", "no_lifespan", "serve_lifespan"]

logger = logging.getLogger("connectpy")

Lifespan = Callable[[Any], AbstractAsyncContextManager[object]]
"""Called with the app; what it returns is entered before the first request, exited after
the last (an ``@asynccontextmanager`` function, as Starlette's ``lifespan`` takes)."""


@asynccontextmanager
async def no_lifespan(app: object) -> AsyncIterator[None]:
    yield


async def serve_lifespan(
    context: AbstractAsyncContextManager[object], receive: Receive, send: Send
) -> None:
    """Enter ``context`` on ``lifespan.startup`` and exit it on ``lifespan.shutdown``.

    A failure is logged with its traceback and reported to the server, which then refuses
    to serve (startup) or reports it as it stops (shutdown).
    """
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    try:
        await context.__aenter__()
    except Exception as exc:
        logger.exception("the lifespan's startup failed")
        await send({"type": "lifespan.startup.failed", "message": repr(exc)})
        return
    try:
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
    except BaseException as exc:  # the server gave up on the lifespan (cancelled it)
        await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    try:
        await context.__aexit__(None, None, None)
    except Exception as exc:
        logger.exception("the lifespan's shutdown failed")
        await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})
