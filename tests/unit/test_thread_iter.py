"""ThreadFeed: a sync iterator driven by one worker thread, read from the event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

from connectpy._server.thread_iter import ThreadFeed

pytestmark = pytest.mark.anyio


async def read_all(feed: ThreadFeed, pause: float = 0.0) -> list[object]:
    got: list[object] = []
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(feed.run)
        try:
            while (batch := await feed.next_batch()) is not None:
                got.extend(batch)
                if pause:
                    await anyio.sleep(pause)
        finally:
            feed.stop()
    return got


async def collect(feed: ThreadFeed, into: list[object]) -> None:
    while (batch := await feed.next_batch()) is not None:
        into.extend(batch)


async def test_every_item_in_order_and_in_batches() -> None:
    assert await read_all(ThreadFeed(iter(range(1000)))) == list(range(1000))


async def test_an_empty_iterator_ends_at_once() -> None:
    assert await read_all(ThreadFeed(iter([]))) == []


async def test_items_before_an_error_come_first_then_the_error() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("no more")

    feed = ThreadFeed(failing())
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(feed.run)
        got: list[object] = []
        with pytest.raises(LookupError, match="no more"):
            await collect(feed, got)
    assert got == [1, 2]


async def test_the_thread_never_runs_far_ahead_of_a_slow_reader() -> None:
    produced = 0
    ahead: list[int] = []
    consumed = 0

    def counting() -> Iterator[int]:
        nonlocal produced
        for n in range(300):
            produced += 1
            ahead.append(produced - consumed)
            yield n

    feed = ThreadFeed(counting())
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(feed.run)
        while (batch := await feed.next_batch()) is not None:
            consumed += len(batch)
            await anyio.sleep(0.001)
    assert consumed == 300
    assert max(ahead) <= 64 + 1


async def test_stopping_early_closes_the_generator_in_its_own_thread() -> None:
    closed_in: list[int] = []
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed_in.append(threading.get_ident())
            closed.set()

    feed = ThreadFeed(endless())
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(feed.run)
        batch = await feed.next_batch()
        assert batch
        feed.stop()
    assert await anyio.to_thread.run_sync(closed.wait, 5)
    assert closed_in[0] != threading.get_ident()


async def test_a_thread_stuck_in_the_iterator_does_not_hold_up_a_cancelled_reader() -> None:
    def stuck() -> Iterator[int]:
        yield 1
        time.sleep(2)
        yield 2

    feed = ThreadFeed(stuck())
    started = time.monotonic()
    with anyio.move_on_after(0.2):
        await read_all(feed)
    assert time.monotonic() - started < 1.0
