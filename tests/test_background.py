"""Shutdown waits for the background loops' database steps (gateway/background.py).

Found as a flaky CI error: a policy follower's refresh, in a thread when the app stopped, held
a connection while the engine was disposed; the connection was later garbage-collected open
and psycopg's ResourceWarning failed whatever test was running then.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway.audit.checkpointer import Checkpointer
from gateway.background import BackgroundThreads, in_thread, tracked_threads
from tests.conftest import started_gateway


def test_a_cancelled_caller_leaves_the_thread_tracked_until_it_ends() -> None:
    finished: list[float] = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    async def main() -> tuple[int, bool, int]:
        threads = BackgroundThreads()
        tracked_threads.set(threads)

        async def loop() -> None:
            await in_thread(slow)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        running = threads.running  # the caller is gone; the thread is not
        drained = await threads.drain(within_seconds=5)
        return running, drained, threads.running

    running, drained, after = asyncio.run(main())
    assert (running, drained, after) == (1, True, 0)
    assert len(finished) == 1


def test_drain_says_when_a_thread_outlives_it() -> None:
    release = threading.Event()

    async def main() -> bool:
        threads = BackgroundThreads()
        task = asyncio.create_task(threads.run(release.wait))
        await asyncio.sleep(0.05)
        drained = await threads.drain(within_seconds=0.1)
        release.set()
        await task
        return drained

    assert asyncio.run(main()) is False


def test_shutdown_disposes_of_the_engine_only_after_a_checkpoint_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    started = threading.Event()
    original_checkpoint = Checkpointer.checkpoint_now
    original_dispose = Engine.dispose
    calls = 0

    def slow_checkpoint(self: Checkpointer) -> int | None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the one at start
            return original_checkpoint(self)
        events.append("checkpoint started")
        started.set()
        time.sleep(0.5)
        result = original_checkpoint(self)
        events.append("checkpoint ended")
        return result

    def dispose(self: Engine, close: bool = True) -> None:
        events.append("engine disposed")
        original_dispose(self, close)

    monkeypatch.setattr(Checkpointer, "checkpoint_now", slow_checkpoint)
    monkeypatch.setattr(Engine, "dispose", dispose)
    with started_gateway(tmp_path, checkpoint_interval_seconds=0.05):
        assert started.wait(10)
    after = events[events.index("checkpoint started") :]  # migrations dispose engines before
    assert after[:3] == ["checkpoint started", "checkpoint ended", "engine disposed"]
