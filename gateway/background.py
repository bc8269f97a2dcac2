"""Blocking work of the app's background loops, in threads that shutdown waits for.

Cancelling an asyncio task that awaits a thread (Starlette's ``run_in_threadpool``) returns
at once, but the thread runs on. A policy follower or checkpointer caught mid-query at
shutdown then holds a database connection while the engine is disposed: the connection goes
back to a pool nobody closes, and is garbage-collected open (psycopg warns). So the loops run
their blocking steps through :func:`in_thread`, and the app's lifespan, after cancelling the
loops, waits for what is still running (:meth:`BackgroundThreads.drain`) before it disposes of
the engine.

The tracker is found through a context variable that the lifespan sets before it creates the
loops' tasks (a task copies the context it is created in); called anywhere else,
:func:`in_thread` is Starlette's thread pool as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

__all__ = ["BackgroundThreads", "in_thread", "tracked_threads"]

P = ParamSpec("P")
T = TypeVar("T")


class BackgroundThreads:
    """The app's background threads still running; one per app (per event loop)."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future[Any]] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self, func: Callable[[], T]) -> T:
        future = asyncio.get_running_loop().run_in_executor(None, func)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        # Shielded: a cancelled caller stops waiting, the future stays tracked until done.
        return await asyncio.shield(future)

    async def drain(self, within_seconds: float) -> bool:
        """Wait up to ``within_seconds`` for every running thread; False if some still run."""
        if not self._running:
            return True
        _, pending = await asyncio.wait(set(self._running), timeout=within_seconds)
        return not pending


tracked_threads: contextvars.ContextVar[BackgroundThreads | None] = contextvars.ContextVar(
    "tracked_threads", default=None
)


async def in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a thread the app's shutdown waits for (module docstring)."""
    call = functools.partial(func, *args, **kwargs)
    threads = tracked_threads.get()
    if threads is None:
        return await run_in_threadpool(call)
    return await threads.run(call)
