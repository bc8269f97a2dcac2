"""The durable outbox: retries with backoff, restarts, a crash mid-push, giving up (issue 15)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entry import AuditKind, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.background import BackgroundThreads, tracked_threads
from gateway.db import session_scope
from gateway.deliveries.outbox import OutboxPusher, PushJob, PushOutcome, PushResult
from gateway.deliveries.repository import DeliveryRepository
from tests.deliveries.push_helpers import Clock, store_delivery


class Killed(BaseException):
    """The pusher process dies (kill -9) in the middle of a push."""


@dataclass
class Recipient:
    """A recipient agency system that keeps what it receives, once per idempotency key."""

    down: bool = False
    refuse: bool = False
    die_after_receiving: bool = False
    received: dict[str, bytes] = field(default_factory=dict)
    calls: int = 0

    async def push(self, job: PushJob) -> PushResult:
        self.calls += 1
        if self.down:
            return PushResult(PushOutcome.RETRY, 503, "service unavailable")
        if self.refuse:
            return PushResult(PushOutcome.REFUSED, 422, "the record was refused")
        self.received.setdefault(job.idempotency_key, job.content)
        if self.die_after_receiving:
            raise Killed
        return PushResult(PushOutcome.DELIVERED, 201)


@dataclass
class Audit:
    entries: list[EntryDraft] = field(default_factory=list)
    unavailable: bool = False

    async def append(self, draft: EntryDraft) -> int:
        if self.unavailable:
            raise AuditUnavailable("down")
        self.entries.append(draft)
        return len(self.entries) - 1


def _delivery(factory: sessionmaker[Session]) -> str:
    return store_delivery(
        factory,
        "arrest_request",
        "public_security",
        "procuratorate",
        {"case_id": "C1"},
        purpose="ARREST_REVIEW",
    )


def _pusher(
    factory: sessionmaker[Session], recipient: Recipient, audit: Audit, clock: Clock, **kw: object
) -> OutboxPusher:
    return OutboxPusher(
        factory,
        recipient.push,
        audit.append,
        clock=clock,
        lease=timedelta(seconds=60),
        resource_of=lambda kind: "case",
        **kw,  # type: ignore[arg-type]
    )


def _state(factory: sessionmaker[Session], delivery_id: str) -> tuple[str, list[str], str]:
    with session_scope(factory) as session:
        repo = DeliveryRepository(session)
        delivery, outbox = repo.get(delivery_id), repo.outbox(delivery_id)
        assert delivery is not None
        assert outbox is not None
        return delivery.status, [e.type for e in repo.events(delivery_id)], outbox.state


async def test_a_recipient_down_then_back_across_a_restart(
    delivery_db: sessionmaker[Session],
) -> None:
    delivery_id = _delivery(delivery_db)
    recipient, audit, clock = Recipient(down=True), Audit(), Clock()
    first = _pusher(delivery_db, recipient, audit, clock)
    assert await first.run_once() == 0
    assert _state(delivery_db, delivery_id) == (
        "pending",
        ["created", "push_attempt", "push_failed"],
        "pending",
    )
    clock.now += timedelta(seconds=1)
    assert await first.run_once() == 0  # backoff: 2 s after the first attempt
    assert recipient.calls == 1
    recipient.down = False
    clock.now += timedelta(seconds=1)
    restarted = _pusher(delivery_db, recipient, audit, clock)  # a new process, same database
    assert await restarted.run_once() == 1
    assert _state(delivery_db, delivery_id) == (
        "delivered",
        ["created", "push_attempt", "push_failed", "push_attempt", "delivered"],
        "done",
    )
    assert list(recipient.received) == [delivery_id]
    assert [d.action["event"] for d in audit.entries if d.action] == [
        "push_attempt",
        "push_failed",
        "push_attempt",
        "delivered",
    ]
    assert {d.kind for d in audit.entries} == {AuditKind.DELIVERY}
    assert all(d.record_ids == [delivery_id] for d in audit.entries)
    with session_scope(delivery_db) as session:
        indexes = [e.audit_index for e in DeliveryRepository(session).events(delivery_id)]
    assert indexes == [0, 0, 1, 2, 3]  # every event names its audit entry
    assert await restarted.run_once() == 0  # nothing is pushed twice


async def test_killed_during_a_push_it_is_pushed_again_and_received_once(
    delivery_db: sessionmaker[Session],
) -> None:
    delivery_id = _delivery(delivery_db)
    recipient, audit, clock = Recipient(die_after_receiving=True), Audit(), Clock()
    with pytest.raises(Killed):
        await _pusher(delivery_db, recipient, audit, clock).run_once()
    recipient.die_after_receiving = False
    clock.now += timedelta(seconds=30)
    assert await _pusher(delivery_db, recipient, audit, clock).run_once() == 0  # leased
    clock.now += timedelta(seconds=31)
    assert await _pusher(delivery_db, recipient, audit, clock).run_once() == 1
    assert recipient.calls == 2
    assert len(recipient.received) == 1
    assert _state(delivery_db, delivery_id)[0] == "delivered"


async def test_gives_up_after_max_attempts_and_on_a_refusal(
    delivery_db: sessionmaker[Session],
) -> None:
    delivery_id = _delivery(delivery_db)
    recipient, audit, clock = Recipient(down=True), Audit(), Clock()
    pusher = _pusher(delivery_db, recipient, audit, clock, max_attempts=3)
    assert [pusher.backoff(n).total_seconds() for n in (1, 2, 3, 20)] == [2, 4, 8, 600]
    for _ in range(5):
        await pusher.run_once()
        clock.now += timedelta(minutes=10)
    status, events, state = _state(delivery_db, delivery_id)
    assert (status, state, recipient.calls) == ("failed", "dead", 3)
    assert events[-1] == "failed"
    refused = _delivery(delivery_db)
    recipient.down, recipient.refuse = False, True
    await pusher.run_once()
    assert _state(delivery_db, refused)[0::2] == ("failed", "dead")


async def test_nothing_is_pushed_when_the_audit_log_cannot_record_it(
    delivery_db: sessionmaker[Session],
) -> None:
    delivery_id = _delivery(delivery_db)
    recipient, audit, clock = Recipient(), Audit(unavailable=True), Clock()
    pusher = _pusher(delivery_db, recipient, audit, clock)
    assert await pusher.run_once() == 0
    assert recipient.calls == 0
    assert _state(delivery_db, delivery_id) == ("pending", ["created"], "pending")
    audit.unavailable = False
    clock.now += timedelta(seconds=2)
    assert await pusher.run_once() == 1
    assert recipient.received


async def test_an_answer_that_came_first_stays(delivery_db: sessionmaker[Session]) -> None:
    delivery_id = _delivery(delivery_db)
    with session_scope(delivery_db) as session:
        delivery = DeliveryRepository(session).get(delivery_id)
        assert delivery is not None
        delivery.status = "accepted"
    recipient, audit, clock = Recipient(), Audit(), Clock()
    assert await _pusher(delivery_db, recipient, audit, clock).run_once() == 1
    status, events, state = _state(delivery_db, delivery_id)
    assert (status, state, events[-1]) == ("accepted", "done", "delivered")


@contextlib.asynccontextmanager
async def _running(pusher: OutboxPusher, interval: float) -> AsyncIterator[asyncio.Task[None]]:
    """The pusher's loop as the app's lifespan runs it: cancelled at the end, and its
    database steps (threads) waited for before the database goes away."""
    threads = BackgroundThreads()
    token = tracked_threads.set(threads)
    task = asyncio.create_task(pusher.run(interval))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await threads.drain(within_seconds=10)
        tracked_threads.reset(token)


async def _until(done: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 100)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


async def test_the_background_loop_drains_full_batches_and_wakes_at_once(
    delivery_db: sessionmaker[Session],
) -> None:
    ids = [_delivery(delivery_db) for _ in range(5)]
    recipient, audit = Recipient(), Audit()
    # Pushes counted from the first call: a poll interval far longer than the test.
    pusher = OutboxPusher(delivery_db, recipient.push, audit.append, batch=2)
    async with _running(pusher, interval=60) as task:
        await _until(lambda: len(recipient.received) == 5)  # passes of 2, 2, 1: no waiting
        assert sorted(recipient.received) == sorted(ids)
        await asyncio.sleep(0.05)
        late = _delivery(delivery_db)
        pusher.wake()  # as the delivery service does after a 201
        await _until(lambda: late in recipient.received)
    assert task.cancelled()


async def test_a_failing_pass_does_not_stop_the_loop(
    delivery_db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient, audit = Recipient(), Audit()
    pusher = OutboxPusher(delivery_db, recipient.push, audit.append)
    real = pusher.run_once
    failures = [RuntimeError("the database is down")]

    async def flaky() -> int:
        if failures:
            raise failures.pop()
        return await real()

    monkeypatch.setattr(pusher, "run_once", flaky)
    delivery_id = _delivery(delivery_db)
    async with _running(pusher, interval=0.01):
        await _until(lambda: delivery_id in recipient.received)


async def test_a_pass_waiting_for_the_database_leaves_the_event_loop_free(
    delivery_db: sessionmaker[Session],
) -> None:
    """The claim waits for the database (here: another transaction holds SQLite's write lock,
    or the table on PostgreSQL) in a thread; on the event loop it stalled every request. On
    SQLite it waits at all, rather than failing at once, because it takes the lock first."""
    delivery_id = _delivery(delivery_db)
    recipient, audit = Recipient(), Audit()
    pusher = OutboxPusher(delivery_db, recipient.push, audit.append)
    engine = delivery_db.kw["bind"]
    blocker = engine.connect()
    transaction = blocker.begin()
    if engine.dialect.name == "postgresql":  # the claim skips locked rows: lock the table
        blocker.execute(text("LOCK TABLE delivery_outbox IN ACCESS EXCLUSIVE MODE"))
    else:  # SQLite's write lock
        blocker.execute(text("UPDATE delivery_outbox SET attempts = attempts"))
    ticks = 0
    ten_ticks = asyncio.Event()

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 10:
                ten_ticks.set()

    # Should the claim block the event loop, nothing on the loop could release the lock: a
    # timer does, so that the test fails (no ticks) instead of hanging.
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            transaction.rollback()

    safety = threading.Timer(5.0, release)
    safety.start()
    ticker = asyncio.create_task(ticking())
    threads = BackgroundThreads()
    token = tracked_threads.set(threads)
    try:
        passing = asyncio.create_task(pusher.run_once())
        # The loop runs on while the claim waits: ten ticks, well before the safety timer.
        # (Not "ten ticks in 0.4 s": a busy machine's pauses, e.g. a full garbage
        # collection, failed that; a blocked loop cannot tick at all until the timer.)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ten_ticks.wait(), 4.0)
        assert ticks >= 10
        assert not passing.done()  # … and the claim is still waiting for the database
        released.set()
        transaction.commit()
        assert await asyncio.wait_for(passing, 10) == 1
    finally:
        safety.cancel()
        if transaction.is_active:
            transaction.rollback()
        blocker.close()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await threads.drain(within_seconds=10)
        tracked_threads.reset(token)
    assert list(recipient.received) == [delivery_id]
