"""Audit drafts gathered on an event loop and handed to the writer thread a batch at a time.

Handing each draft to the writer's thread on its own woke that thread once per entry, and
each wake-up took the GIL from the busy event loop: about one forced context switch of the
loop's thread per request, which a host short of CPU makes expensive (docs/performance.md
§6). Here the loop gathers the drafts itself, as the writer thread did before: the first
draft that finds the writer idle starts a wait of ``max_wait_s``; when it ends (or
``max_batch`` drafts are waiting) the drafts go to the writer as one batch, one wake-up.
Drafts that arrive while a batch is being committed wait for it, then go together (group
commit). The writer settles the whole batch with one call back into the loop.

Each draft's caller waits at most ``timeout_s``: past it, its future fails with what
``expired()`` makes (the writer's "not confirmed in time"). One timer per group serves every
deadline, re-armed only when it fires, instead of a timeout scope around every ``await``
(asyncio.timeout cost ~4 µs per request on the event loop, docs/performance.md §6). A draft
whose caller gave up is skipped if it was not handed off yet, and written if it was.

Everything here runs on the loop's thread, except :meth:`LoopGroup.settle`'s caller, which
reaches it through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["LoopGroup"]

T = TypeVar("T")

Outcome = int | BaseException
"""What the writer made of one draft: its index, or why it was not written."""


class LoopGroup(Generic[T]):
    """The drafts of one event loop waiting to be handed to the writer thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int,
        max_wait_s: float,
        hand_off: Callable[[LoopGroup[T], list[T], list[asyncio.Future[int]]], None],
        on_idle: Callable[[LoopGroup[T]], None],
        timeout_s: float | None = None,
        expired: Callable[[], BaseException] = TimeoutError,
    ) -> None:
        self.loop = loop
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._hand_off = hand_off
        self._on_idle = on_idle
        self._waiting: list[tuple[T, asyncio.Future[int]]] = []
        self._in_flight = 0  # batches handed off and not yet settled
        self._timer: asyncio.TimerHandle | None = None
        self._timeout_s = timeout_s
        self._expired = expired
        # Every future not known to be settled, with its deadline, oldest first (the timeout is
        # the same for all, so deadlines come in order).
        self._deadlines: deque[tuple[float, asyncio.Future[int]]] = deque()
        self._deadline_timer: asyncio.TimerHandle | None = None

    def add(self, draft: T) -> asyncio.Future[int]:
        """Queue ``draft``; the future gives its index once it is durable."""
        future: asyncio.Future[int] = self.loop.create_future()
        self._waiting.append((draft, future))
        if self._timeout_s is not None:
            deadlines = self._deadlines
            while deadlines and deadlines[0][1].done():
                deadlines.popleft()
            deadlines.append((self.loop.time() + self._timeout_s, future))
            if self._deadline_timer is None:
                self._deadline_timer = self.loop.call_at(deadlines[0][0], self._on_deadline)
        if not self._in_flight:
            if len(self._waiting) >= self._max_batch:
                self.flush()
            elif self._timer is None:
                self._timer = self.loop.call_later(self._max_wait_s, self._on_timer)
        return future

    def flush(self, *, even_in_flight: bool = False) -> None:
        """Hand what is waiting to the writer now (unless a batch is in flight and not
        ``even_in_flight``: then it goes when that batch is settled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and (even_in_flight or not self._in_flight):
            taken = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            # A caller that gave up (timed out, cancelled) before its draft went is skipped:
            # its entry is not written. Once handed off, it is written either way.
            live = [(draft, future) for draft, future in taken if not future.done()]
            if not live:
                continue
            self._in_flight += 1
            self._hand_off(self, [d for d, _ in live], [f for _, f in live])
        if not self._waiting and not self._in_flight:
            self._idle()

    def settle(self, futures: Sequence[asyncio.Future[int]], outcomes: Sequence[Outcome]) -> None:
        """One handed-off batch's outcomes, in the order of its drafts (on the loop)."""
        self._in_flight -= 1
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue  # its caller gave up after the hand-off; the entry stands
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._in_flight:
            return
        if len(self._waiting) >= self._max_batch:
            self.flush()
        elif self._waiting:
            # As the writer thread gathered before: the drafts that waited for the commit,
            # and whatever arrives within max_wait_s more, make the next batch.
            if self._timer is None:
                self._timer = self.loop.call_later(self._max_wait_s, self._on_timer)
        else:
            self._idle()

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _on_deadline(self) -> None:
        """Fail every future past its deadline; re-arm for the next one still pending."""
        self._deadline_timer = None
        deadlines = self._deadlines
        now = self.loop.time()
        while deadlines:
            deadline, future = deadlines[0]
            if not future.done():
                if deadline > now:
                    self._deadline_timer = self.loop.call_at(deadline, self._on_deadline)
                    return
                future.set_exception(self._expired())
                # Retrieved here: a caller cancelled meanwhile must not log it as unhandled.
                future.exception()
            deadlines.popleft()

    def _idle(self) -> None:
        """Nothing waiting, nothing in flight: every future is settled."""
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self._deadlines.clear()
        self._on_idle(self)
