"""The durable outbox: retries with backoff, restarts, a crash mid-push, giving up (issue 15)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entry import AuditKind, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.db import session_scope
from gateway.deliveries.outbox import OutboxPusher, PushJob, PushOutcome, PushResult
from gateway.deliveries.repository import DeliveryRepository, NewDelivery, new_delivery_id

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


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


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def _delivery(factory: sessionmaker[Session]) -> str:
    content = b'{"record":{"case_id":"C1"}}'
    new = NewDelivery(
        id=new_delivery_id(),
        kind="arrest_request",
        from_agency="GA640104",
        to_agency="JC640104",
        case_number="A6401040000002021030042",
        purpose="ARREST_REVIEW",
        client_id="police",
        operator_id="op",
        content=content,
        content_sha256=hashlib.sha256(content).hexdigest(),
        created_at=T0,
        due_at=None,
    )
    with session_scope(factory) as session:
        DeliveryRepository(session).create(new, key=new.id, request_sha256="0" * 64, audit_index=0)
    return new.id


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
