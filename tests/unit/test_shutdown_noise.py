"""What counts as Hypercorn's shutdown noise: cancellations, and its task group refusing new
tasks while it shuts down; never a real error, alone or in a group."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectpy._server.hypercorn import (
    absorb_shutdown_noise,
    is_shutdown_noise,
    quiet_shutdown_noise,
)

SHUTTING_DOWN = RuntimeError("TaskGroup <TaskGroup tasks=1 cancelling> is shutting down")


def test_cancellations_and_the_shutting_down_error_are_noise() -> None:
    assert is_shutdown_noise(asyncio.CancelledError())
    assert is_shutdown_noise(SHUTTING_DOWN)
    assert is_shutdown_noise(ExceptionGroup("x", [SHUTTING_DOWN]))
    assert is_shutdown_noise(BaseExceptionGroup("x", [asyncio.CancelledError(), SHUTTING_DOWN]))


def test_real_errors_are_not() -> None:
    assert not is_shutdown_noise(RuntimeError("something else"))
    assert not is_shutdown_noise(ValueError("bad"))
    assert not is_shutdown_noise(KeyboardInterrupt())
    assert not is_shutdown_noise(ExceptionGroup("x", [SHUTTING_DOWN, ValueError("bad")]))


def test_the_asyncio_log_filter_drops_only_noise() -> None:
    quiet_shutdown_noise()
    quiet_shutdown_noise()  # idempotent
    asyncio_logger = logging.getLogger("asyncio")
    assert len([f for f in asyncio_logger.filters if type(f).__name__ == "_ShutdownNoise"]) == 1

    def record(error: BaseException | None) -> logging.LogRecord:
        exc_info = (type(error), error, None) if error is not None else None
        return asyncio_logger.makeRecord("asyncio", logging.ERROR, "f", 1, "m", (), exc_info)

    assert not asyncio_logger.filter(record(asyncio.CancelledError()))
    assert asyncio_logger.filter(record(ValueError("bad")))
    assert asyncio_logger.filter(record(None))


def test_a_run_ending_in_noise_is_absorbed_and_reported_cut_off() -> None:
    with absorb_shutdown_noise() as shutdown:
        raise BaseExceptionGroup("serve", [asyncio.CancelledError(), SHUTTING_DOWN])
    assert shutdown.cut_off


def test_a_clean_run_is_not_cut_off() -> None:
    with absorb_shutdown_noise() as shutdown:
        pass
    assert not shutdown.cut_off


def test_a_real_error_in_the_run_propagates() -> None:
    with pytest.raises(ExceptionGroup), absorb_shutdown_noise():
        raise ExceptionGroup("serve", [SHUTTING_DOWN, ValueError("bad")])
