"""Runs a call through its interceptors: each one's code before its ``yield``, in order, then
the call, then each one's code after the ``yield``, in reverse order, with the call's error.

Interceptors are (sync or async) generator functions taking the call's :class:`Context`; the
shape is the one of ``contextlib.contextmanager``, so a ``try``/``except``/``finally`` around
the ``yield`` sees the call's outcome. They run between ``call.start()`` (the protocol headers
and the deadline are parsed and valid) and reading the request body, so a rejection costs no
read or decode; the body is drained unread when the status goes out.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import types
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._model.message import MessageCodec
from ..code import Code
from ..errors import ConnectError
from ..interceptors import Interceptor, Observer
from .dispatch import _GONE, Endpoint, Serve, _run_guarded
from .protocol.base import ServerCall
from .stream_writer import StreamWriter

__all__ = ["InterceptorChain", "chain_of"]

logger = logging.getLogger("connectpy")

if TYPE_CHECKING:  # the exact types are not subscriptable at run time
    _Entered = types.GeneratorType[Any, None, None] | types.AsyncGeneratorType[Any, None]
    """An interceptor that has run to its ``yield``."""

# How long an async interceptor of a cancelled call may take over its cleanup (see _abandon).
_CLOSE_SECONDS = 1.0


def chain_of(*layers: Sequence[Interceptor]) -> InterceptorChain | None:
    """The interceptors of ``layers`` (outermost first) as one chain, or ``None`` for none.

    Raises:
        TypeError: one of them is not a generator function (nor an object whose
            ``__call__`` is one).
    """
    interceptors = [interceptor for layer in layers for interceptor in layer]
    if not interceptors:
        return None
    for interceptor in interceptors:
        _check(interceptor)
    return InterceptorChain(interceptors)


def _check(interceptor: Interceptor) -> None:
    function = interceptor if inspect.isfunction(interceptor) else type(interceptor).__call__
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        return
    raise TypeError(
        f"interceptor {interceptor!r} must be a generator function that yields once "
        "(def or async def with a yield), or an object whose __call__ is one"
    )


class InterceptorChain:
    """The interceptors an endpoint's calls run through, outermost first."""

    __slots__ = ("_interceptors",)

    def __init__(self, interceptors: list[Interceptor]) -> None:
        self._interceptors = interceptors

    async def run(
        self,
        endpoint: Endpoint,
        call: ServerCall,
        serve: Serve,
        on_request: Callable[[], None] | None,
        writer: StreamWriter | None,
    ) -> Any:
        """Run the call through the interceptors; return what ``_run_guarded`` returns.

        A request whose protocol headers are invalid never reaches the interceptors.
        """
        refused = _start(call)
        if refused is not None:
            return refused
        entered: list[_Entered] = []
        observers: list[Observer] = []
        try:
            outcome = await self._enter(call, entered, observers)
            if outcome is None:
                target = _observed(endpoint, observers) if observers else endpoint
                outcome = await _run_guarded(target, call, serve, on_request, writer, started=True)
        except BaseException:
            await _abandon(entered)
            raise
        gone = outcome is _GONE
        error = ConnectError(Code.CANCELED, "the client went away") if gone else outcome
        for generator in reversed(entered):
            if isinstance(generator, types.GeneratorType):
                error = _exit(generator, error)
            else:
                error = await _exit_async(generator, error)
        return _GONE if gone else error

    async def _enter(
        self,
        call: ServerCall,
        entered: list[_Entered],
        observers: list[Observer],
    ) -> ConnectError | None:
        """Run each interceptor to its ``yield``; the error of the first to refuse, or None."""
        context = call.context
        for interceptor in self._interceptors:
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
                logger.exception("interceptor %r failed for %s", interceptor, _procedure(call))
                return ConnectError(Code.INTERNAL, "internal error")
            entered.append(generator)
            if observer is not None:
                observers.append(observer)
        return None


def _start(call: ServerCall) -> ConnectError | None:
    """Parse the protocol headers and the deadline, as ``_run_guarded`` would."""
    try:
        call.start()
    except ConnectError as exc:
        return exc
    except Exception:
        logger.exception("starting %s failed", _procedure(call))
        return ConnectError(Code.INTERNAL, "internal error")
    return None


def _exit(generator: Generator[Any, None, None], error: ConnectError | None) -> ConnectError | None:
    """Resume one interceptor after its ``yield`` with the call's outcome; the new outcome.

    An interceptor may replace the error by raising another ``ConnectError``. Catching the
    error without raising changes nothing: a failed call has no response to send instead.
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


async def _abandon(entered: list[_Entered]) -> None:
    """Tell the interceptors of a call cancelled from outside (its client went away, the
    server shuts down) with ``canceled`` at their ``yield``; what they raise changes nothing.

    An async one's awaits are shielded from the cancellation meanwhile, for a bounded time.
    """
    canceled = ConnectError(Code.CANCELED, "the call was cancelled")
    for generator in reversed(entered):
        if isinstance(generator, types.GeneratorType):
            _exit(generator, canceled)
        else:
            with anyio.move_on_after(_CLOSE_SECONDS, shield=True):
                await _exit_async(generator, canceled)


def _procedure(call: ServerCall) -> str:
    return call.context.method.procedure


def _observed(endpoint: Endpoint, observers: list[Observer]) -> Endpoint:
    """The endpoint for one call whose messages ``observers`` see as they are decoded and
    encoded (built per call: an observer is usually a closure over its interceptor's state)."""
    received = tuple(o.received for o in observers if o.received is not None)
    sent = tuple(o.sent for o in observers if o.sent is not None)
    request_codec, response_codec = endpoint.request_codec, endpoint.response_codec
    return dataclasses.replace(
        endpoint,
        request_codec=_ObservedCodec.wrap(request_codec, received) if received else request_codec,
        response_codec=_ObservedCodec.wrap(response_codec, sent) if sent else response_codec,
    )


MessageSeen = Callable[[Any, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class _ObservedCodec(MessageCodec[Any]):
    """A codec that shows every message it decodes or encodes to observers, with its size."""

    inner: MessageCodec[Any]
    observers: tuple[MessageSeen, ...]

    @classmethod
    def wrap(cls, inner: MessageCodec[Any], observers: tuple[MessageSeen, ...]) -> _ObservedCodec:
        return cls(
            inner.message_type, inner.full_name, inner.decoders, inner.encoders, inner, observers
        )

    def decode(self, codec: str, data: bytes) -> Any:
        message = self.inner.decode(codec, data)
        for observe in self.observers:
            observe(message, len(data))
        return message

    def encode(self, codec: str, value: Any) -> bytes:
        data = self.inner.encode(codec, value)
        for observe in self.observers:
            observe(value, len(data))
        return data

    def encoder(self, codec: str) -> Callable[[Any], bytes]:
        encode = self.inner.encoder(codec)
        observers = self.observers

        def encode_one(value: Any) -> bytes:
            data = encode(value)
            for observe in observers:
                observe(value, len(data))
            return data

        return encode_one
