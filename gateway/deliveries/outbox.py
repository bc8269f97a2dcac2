"""The outbox pusher: deliveries go to the recipient agency's system after they are committed.

Contracts of :class:`OutboxPusher`:

* :meth:`OutboxPusher.run_once` leases the due outbox rows (see the repository) and pushes each
  one. Before a push it writes the ``push_attempt`` audit entry: if the audit log cannot record
  it, nothing is pushed (fail closed) and the row is retried later. After the push it writes the
  outcome's entry and event: ``delivered`` (the status moves ``pending`` -> ``delivered``; an
  answer that came first stays), or ``push_failed`` and a retry at ``now + backoff``, or, after
  ``max_attempts`` or a permanent refusal, ``failed`` (status ``failed``, row ``dead``).
* Every push carries the delivery id as its idempotency key: a push repeated after a crash (the
  lease ran out with the outcome unrecorded) is recognised by the recipient, so nothing is
  lost and nothing is received twice.
* Backoff: ``base * 2^(attempts-1)``, at most ``cap``. The database holds the state, so a
  restarted pusher continues where the last one stopped.
* :meth:`OutboxPusher.run` is the background task of the app: a pass of ``run_once`` every
  ``interval``, or at once after :meth:`OutboxPusher.wake` (a delivery was just created); a
  pass that fails (the database is down) is logged and tried again at the next one.
* The pusher itself never decides what may be sent: it pushes only deliveries that were created
  through the delivery route, which passed the policy decision point.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.background import in_thread
from gateway.db import session_scope, utcnow
from gateway.deliveries.models import Delivery
from gateway.deliveries.repository import DeliveryRepository

__all__ = ["OutboxPusher", "PushJob", "PushOutcome", "PushResult", "delivery_draft"]

log = structlog.get_logger(__name__)


class PushOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the recipient's system was down, timed out or failed: try again
    REFUSED = "refused"  # the recipient's system refused it for good (a 4xx)


@dataclass(frozen=True)
class PushResult:
    outcome: PushOutcome
    status: int | None = None
    error: str | None = None
    receipt: str | None = None  # the recipient system's own receipt number, when delivered


@dataclass(frozen=True)
class PushJob:
    """What is pushed: the stored content, and the delivery id as the idempotency key."""

    delivery_id: str
    kind: str
    from_agency: str
    to_agency: str
    case_number: str
    content: bytes
    operator_id: str | None = None  # the sender's officer, for the push-time decision

    @property
    def idempotency_key(self) -> str:
        return self.delivery_id

    @classmethod
    def of(cls, delivery: Delivery) -> PushJob:
        return cls(
            delivery.id,
            delivery.kind,
            delivery.from_agency,
            delivery.to_agency,
            delivery.case_number,
            delivery.content,
            delivery.operator_id,
        )


Push = Callable[[PushJob], Awaitable[PushResult]]
AuditSink = Callable[[EntryDraft], Awaitable[int]]


def delivery_draft(
    delivery: Delivery, event: str, *, status: int, resource: str | None, detail: str | None = None
) -> EntryDraft:
    """The audit entry of one event of ``delivery``."""
    return EntryDraft(
        kind=AuditKind.DELIVERY,
        requester_agency=delivery.from_agency,
        client_id=delivery.client_id,
        operator_id=delivery.operator_id,
        owner_agency=delivery.from_agency,
        resource=resource,
        record_ids=[delivery.id],
        purpose=delivery.purpose,
        case_number=delivery.case_number,
        decision=Decision.ALLOW if status < 400 else Decision.ERROR,
        status=status,
        body_sha256=delivery.content_sha256,
        detail=detail,
        action={
            "delivery": delivery.id,
            "event": event,
            "kind": delivery.kind,
            "to_agency": delivery.to_agency,
        },
    )


class OutboxPusher:
    def __init__(
        self,
        factory: sessionmaker[Session],
        push: Push,
        audit: AuditSink,
        *,
        resource_of: Callable[[str], str | None] = lambda kind: None,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = timedelta(seconds=60),
        base: timedelta = timedelta(seconds=2),
        cap: timedelta = timedelta(minutes=10),
        max_attempts: int = 12,
        batch: int = 10,
    ) -> None:
        self._factory = factory
        self._push = push
        self._audit = audit
        self._resource_of = resource_of
        self._clock = clock
        self._lease = lease
        self._base = base
        self._cap = cap
        self._max_attempts = max_attempts
        self._batch = batch
        self._wake = asyncio.Event()
        self._claimed = 0

    def wake(self) -> None:
        """Push now rather than at the next interval (call from the event loop's thread)."""
        self._wake.set()

    async def run(self, interval: float) -> None:
        """Push due deliveries every ``interval`` seconds, or when woken, until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception as exc:  # the database is down, …: the next pass tries again
                log.error("outbox pass failed; trying again", error=repr(exc)[:300])
            if self._claimed >= self._batch:
                continue  # a full batch: more may be due now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    def backoff(self, attempts: int) -> timedelta:
        delay: timedelta = self._base * (2 ** max(0, attempts - 1))
        return min(self._cap, delay)

    async def run_once(self) -> int:
        """Push every due delivery once; the number delivered."""
        # The database steps run in a thread: on the event loop, a claim waiting for SQLite's
        # write lock (held by the audit writer's commit) stalled every request of the worker.
        ids = await in_thread(self._claim_due)
        self._claimed = len(ids)
        delivered = 0
        for delivery_id in ids:
            delivered += await self._one(delivery_id)
        return delivered

    def _claim_due(self) -> list[str]:
        with session_scope(self._factory) as session:
            return DeliveryRepository(session).claim_due(self._clock(), self._lease, self._batch)

    def _load(self, delivery_id: str) -> tuple[Delivery, int]:
        with session_scope(self._factory) as session:
            repo = DeliveryRepository(session)
            delivery, outbox = repo.get(delivery_id), repo.outbox(delivery_id)
            assert delivery is not None
            assert outbox is not None
            session.expunge(delivery)
            return delivery, outbox.attempts

    async def _entry(self, delivery: Delivery, event: str, status: int, detail: str | None) -> int:
        resource = self._resource_of(delivery.kind)
        return await self._audit(
            delivery_draft(delivery, event, status=status, resource=resource, detail=detail)
        )

    async def _one(self, delivery_id: str) -> int:
        delivery, attempt = await in_thread(self._load, delivery_id)
        try:
            before = await self._entry(delivery, "push_attempt", 202, f"attempt {attempt}")
        except AuditUnavailable:
            log.error("audit unavailable: delivery not pushed", delivery=delivery_id)
            await in_thread(
                self._retry, delivery_id, "the audit log cannot record the push", attempt
            )
            return 0
        await in_thread(self._event, delivery_id, "push_attempt", {"attempt": attempt}, before)
        try:
            result = await self._push(PushJob.of(delivery))
        except Exception as exc:
            log.warning("delivery push failed", delivery=delivery_id, error=repr(exc)[:200])
            result = PushResult(PushOutcome.RETRY, None, "the push failed")
        final = result.outcome is PushOutcome.REFUSED or attempt >= self._max_attempts
        if result.outcome is PushOutcome.DELIVERED:
            await self._finish(delivery, "delivered", 200, result, "delivered")
            return 1
        error = result.error or f"the recipient's system answered {result.status}"
        if final:
            await self._finish(delivery, "failed", result.status or 502, result, "failed")
        else:
            index = await self._safe_entry(delivery, "push_failed", result.status or 502, error)
            detail: dict[str, object] = {"attempt": attempt, "status": result.status}
            await in_thread(self._event, delivery_id, "push_failed", detail, index)
            await in_thread(self._retry, delivery_id, error, attempt)
        return 0

    async def _safe_entry(
        self, delivery: Delivery, event: str, status: int, detail: str | None
    ) -> int | None:
        try:
            return await self._entry(delivery, event, status, detail)
        except AuditUnavailable:
            # The push already happened: the event is kept, without its audit index.
            log.error("audit unavailable after a push", delivery=delivery.id, event=event)
            return None

    async def _finish(
        self, delivery: Delivery, event: str, status: int, result: PushResult, new_status: str
    ) -> None:
        index = await self._safe_entry(delivery, event, status, result.error)
        await in_thread(self._store_finish, delivery, event, result, new_status, index)

    def _store_finish(
        self, delivery: Delivery, event: str, result: PushResult, new_status: str, index: int | None
    ) -> None:
        with session_scope(self._factory) as session:
            repo = DeliveryRepository(session)
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id, Delivery.status == "pending")
                .values(status=new_status)
                .execution_options(synchronize_session=False)
            )
            detail: dict[str, object] = {"status": result.status}
            if result.receipt is not None:
                detail["receipt"] = result.receipt
            repo.add_event(delivery.id, event, self._clock(), detail, index)
            if new_status == "delivered":
                repo.push_done(delivery.id)
            else:
                repo.push_failed(delivery.id, result.error or event, None)

    def _event(
        self, delivery_id: str, event: str, detail: dict[str, object], index: int | None
    ) -> None:
        with session_scope(self._factory) as session:
            DeliveryRepository(session).add_event(delivery_id, event, self._clock(), detail, index)

    def _retry(self, delivery_id: str, error: str, attempt: int) -> None:
        with session_scope(self._factory) as session:
            DeliveryRepository(session).push_failed(
                delivery_id, error, self._clock() + self.backoff(attempt)
            )
