"""The interceptor runner both sides share: each interceptor's code before its ``yield``, in
order, then the call, then each one's code after the ``yield``, in reverse order, with the
call's error.

Interceptors are (sync or async) generator functions taking the call's context (the server's
:class:`~connectpy.Context` or the client's :class:`~connectpy.client.ClientContext`); the
shape is the one of ``contextlib.contextmanager``, so a ``try``/``except``/``finally`` around
the ``yield`` sees the call's outcome. Where the call runs between :func:`enter` and
:func:`leave` is each side's business (:mod:`connectpy._server.interceptors` on the server,
:mod:`connectpy.client._hooks` on the client).
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .code import Code
from .errors import ConnectError
from .interceptors import Observer

__all__ = ["Entered", "abandon", "check_interceptor", "enter", "leave"]

logger = logging.getLogger("connectpy")

if TYPE_CHECKING:  # the exact types are not subscriptable at run time
    Entered = types.GeneratorType[Any, None, None] | types.AsyncGeneratorType[Any, None]
    """An interceptor that has run to its ``yield``."""
else:
    Entered = object

AnyInterceptor = Callable[[Any], Any]

# How long an async interceptor of a cancelled call may take over its cleanup (see abandon).
_CLOSE_SECONDS = 1.0


def check_interceptor(interceptor: AnyInterceptor) -> None:
    """Raises ``TypeError`` unless ``interceptor`` is a generator function (or an object whose
    ``__call__`` is one)."""
    function = interceptor if inspect.isfunction(interceptor) else type(interceptor).__call__
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        return
    raise TypeError(
        f"interceptor {interceptor!r} must be a generator function that yields once "
        "(def or async def with a yield), or an object whose __call__ is one"
    )


async def enter(
    interceptors: Sequence[AnyInterceptor],
    context: Any,
    procedure: str,
    entered: list[Entered],
    observers: list[Observer],
) -> ConnectError | None:
    """Run each interceptor to its ``yield``; the error of the first to refuse, or None.

    ``entered`` and ``observers`` collect the interceptors that reached their ``yield`` and
    what they yielded: each of those must be resumed by :func:`leave` or :func:`abandon`.
    """
    for interceptor in interceptors:
        try:
            generator = interceptor(context)
            # Exact types, not the ABCs: an ABC check costs several times more per call.
            if isinstance(generator, types.GeneratorType):
                observer = next(generator)
            elif isinstance(generator, types.AsyncGeneratorType):
                observer = await generator.__anext__()
            else:
                return _failed(interceptor, "returned no generator")
        except ConnectError as exc:
            return exc
        except (StopIteration, StopAsyncIteration):
            return _failed(interceptor, "returned without yielding")
        except Exception:
            logger.exception("interceptor %r failed for %s", interceptor, procedure)
            return ConnectError(Code.INTERNAL, "internal error")
        entered.append(generator)
        if observer is not None:
            observers.append(observer)
    return None


async def leave(entered: list[Entered], error: ConnectError | None) -> ConnectError | None:
    """Resume the entered interceptors, the last first, with the call's outcome; the outcome
    they leave (each may replace the error by raising another ``ConnectError``)."""
    for generator in reversed(entered):
        if isinstance(generator, types.GeneratorType):
            error = _exit(generator, error)
        else:
            error = await _exit_async(generator, error)
    return error


def _exit(generator: Generator[Any, None, None], error: ConnectError | None) -> ConnectError | None:
    """Resume one interceptor after its ``yield`` with the call's outcome; the new outcome.

    Catching the error without raising changes nothing: a failed call has no response to
    give instead.
    """
    try:
        if error is None:
            if next(generator, _DONE) is _DONE:  # no StopIteration raised: the common case
                return None
        else:
            generator.throw(error)
    except StopIteration:
        return error
    except Exception as exc:
        return _raised(generator, exc)
    generator.close()
    return _failed(generator, "yielded more than once")


async def _exit_async(
    generator: AsyncGenerator[Any, None], error: ConnectError | None
) -> ConnectError | None:
    """:func:`_exit` for an async interceptor."""
    try:
        await (generator.__anext__() if error is None else generator.athrow(error))
    except StopAsyncIteration:
        return error
    except Exception as exc:
        return _raised(generator, exc)
    await generator.aclose()
    return _failed(generator, "yielded more than once")


_DONE: Any = object()


def _raised(generator: object, exc: Exception) -> ConnectError:
    """The outcome when an interceptor raised after its ``yield`` (called while handling it)."""
    if isinstance(exc, ConnectError):
        return exc
    logger.exception("interceptor %r failed after its call", generator)
    return ConnectError(Code.INTERNAL, "internal error")


def _failed(interceptor: object, what: str) -> ConnectError:
    logger.error("interceptor %r %s: it must yield exactly once", interceptor, what)
    return ConnectError(Code.INTERNAL, "internal error")


async def abandon(entered: list[Entered], message: str = "the call was cancelled") -> None:
    """Tell the interceptors of a call cancelled from outside with ``canceled`` at their
    ``yield``; what they raise changes nothing.

    An async one's awaits are shielded from the cancellation meanwhile, for a bounded time.
    """
    canceled = ConnectError(Code.CANCELED, message)
    for generator in reversed(entered):
        if isinstance(generator, types.GeneratorType):
            _exit(generator, canceled)
        else:
            with anyio.move_on_after(_CLOSE_SECONDS, shield=True):
                await _exit_async(generator, canceled)


def abandon_now(
    entered: list[Entered], message: str, spawn: Callable[[Callable[[], Any]], object]
) -> None:
    """:func:`abandon` where nothing can be awaited (a dropped stream): sync interceptors
    at once, or, when any is async, all of them in order in a task ``spawn`` starts."""
    if all(isinstance(generator, types.GeneratorType) for generator in entered):
        canceled = ConnectError(Code.CANCELED, message)
        for generator in reversed(entered):
            _exit(generator, canceled)  # type: ignore[arg-type]
        return

    async def run() -> None:
        await abandon(entered, message)

    spawn(run)
