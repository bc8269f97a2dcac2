"""Queries on the delivery tables. Only this module touches them.

Contracts:

* :meth:`DeliveryRepository.create` inserts, in the caller's transaction, the delivery, its
  idempotency key (none for a copy, 抄送, stored with its main delivery), its outbox row
  (``pending``, due now) and its ``created`` event. A duplicate key raises ``IntegrityError``
  from the database at flush: the caller rolls back and replays (:func:`create_idempotent`).
* :func:`create_idempotent` answers ``(delivery, True)`` for a new delivery, ``(delivery,
  False)`` when the key was already used with the same request (also when a concurrent duplicate
  won the race), and raises :class:`IdempotencyConflict` when it was used with another request.
* :meth:`DeliveryRepository.page` lists one agency's deliveries (``outbound``: it sent them;
  ``inbound``: it receives them), oldest first, after a ``(created_at, id)`` keyset position.
  ``overdue_at`` keeps deliveries not yet answered (``pending``/``delivered``) whose ``due_at``
  has passed at that time.
* Outbox: :meth:`claim_due` leases the due ``pending`` rows (``SKIP LOCKED`` on PostgreSQL), so
  that two pushers never push one delivery at once and a pusher killed mid-push leaves a row
  that becomes claimable when its lease runs out. :meth:`push_done` and :meth:`push_failed`
  record the outcome and clear the lease.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import orjson
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.models import (
    Delivery,
    DeliveryEvent,
    DeliveryIdempotency,
    DeliveryOutbox,
)

__all__ = [
    "OPEN_STATUSES",
    "STATUSES",
    "DeliveryRepository",
    "IdempotencyConflict",
    "NewDelivery",
    "create_idempotent",
    "new_delivery_id",
]

#: Every status a delivery can have (the issue's contract).
STATUSES = ("pending", "delivered", "accepted", "returned", "failed")
#: Statuses of deliveries still waiting for the recipient's answer.
OPEN_STATUSES = ("pending", "delivered")

Role = Literal["inbound", "outbound"]


class IdempotencyConflict(Exception):
    """The idempotency key was already used by this client with another request."""

    def __init__(self, delivery_id: str) -> None:
        super().__init__("the Idempotency-Key was used with another request")
        self.delivery_id = delivery_id


def new_delivery_id() -> str:
    """A fresh, unguessable delivery id: ``DL`` + 24 hex digits."""
    return "DL" + secrets.token_hex(12)


def _detail(detail: dict[str, object] | None) -> str:
    return orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class NewDelivery:
    """What :meth:`DeliveryRepository.create` stores for a new delivery."""

    id: str
    kind: str
    from_agency: str
    to_agency: str
    case_number: str
    purpose: str
    client_id: str
    operator_id: str | None
    content: bytes
    content_sha256: str
    created_at: datetime
    due_at: datetime | None
    copy_of: str | None = None  # 抄送: the main delivery's id


class DeliveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- deliveries ----------------------------------------------------------------------

    def get(self, delivery_id: str) -> Delivery | None:
        return self.session.get(Delivery, delivery_id)

    def by_key(self, client_id: str, key: str) -> DeliveryIdempotency | None:
        return self.session.get(DeliveryIdempotency, (client_id, key))

    def create(
        self,
        new: NewDelivery,
        *,
        key: str | None,
        request_sha256: str,
        audit_index: int | None,
        detail: dict[str, object] | None = None,
    ) -> Delivery:
        row = Delivery(
            id=new.id,
            kind=new.kind,
            from_agency=new.from_agency,
            to_agency=new.to_agency,
            case_number=new.case_number,
            purpose=new.purpose,
            status="pending",
            created_at=new.created_at,
            due_at=new.due_at,
            client_id=new.client_id,
            operator_id=new.operator_id,
            content_sha256=new.content_sha256,
            content=new.content,
            copy_of=new.copy_of,
        )
        self.session.add(row)
        self.session.flush()
        if key is not None:  # a copy has none: the request's key names its main delivery
            self.session.add(
                DeliveryIdempotency(
                    client_id=new.client_id,
                    key=key,
                    request_sha256=request_sha256,
                    delivery_id=new.id,
                    created_at=new.created_at,
                )
            )
        self.session.add(
            DeliveryOutbox(
                delivery_id=new.id,
                state="pending",
                attempts=0,
                next_attempt_at=new.created_at,
            )
        )
        self.add_event(new.id, "created", new.created_at, detail, audit_index)
        self.session.flush()
        return row

    def add_event(
        self,
        delivery_id: str,
        type_: str,
        at: datetime,
        detail: dict[str, object] | None,
        audit_index: int | None,
    ) -> DeliveryEvent:
        event = DeliveryEvent(
            delivery_id=delivery_id,
            at=at,
            type=type_,
            detail=_detail(detail),
            audit_index=audit_index,
        )
        self.session.add(event)
        self.session.flush()
        return event

    def copies_of(self, delivery_id: str) -> Sequence[Delivery]:
        """The copies (抄送) of a main delivery, by id."""
        return self.session.scalars(
            select(Delivery).where(Delivery.copy_of == delivery_id).order_by(Delivery.id)
        ).all()

    def events(self, delivery_id: str) -> Sequence[DeliveryEvent]:
        return self.session.scalars(
            select(DeliveryEvent)
            .where(DeliveryEvent.delivery_id == delivery_id)
            .order_by(DeliveryEvent.seq)
        ).all()

    def count_of_kind_for_case(
        self, kind: str, case_numbers: Collection[str], *, excluding: Collection[str] = ()
    ) -> int:
        """Deliveries of ``kind`` under any of ``case_numbers`` (one case's 案号 and 公安案件编号:
        per-case limits such as 补充侦查 ≤ 2), not counting those whose status is in
        ``excluding``."""
        query = (
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.kind == kind,
                Delivery.case_number.in_(list(case_numbers)),
                Delivery.copy_of.is_(None),  # a copy is not another delivery of the kind
            )
        )
        if excluding:
            query = query.where(Delivery.status.not_in(list(excluding)))
        return self.session.scalar(query) or 0

    def page(
        self,
        agency: str,
        role: Role,
        *,
        status: str | None = None,
        kind: str | None = None,
        case_number: str | None = None,
        overdue_at: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> Sequence[Delivery]:
        column = Delivery.from_agency if role == "outbound" else Delivery.to_agency
        query = select(Delivery).where(column == agency)
        if status is not None:
            query = query.where(Delivery.status == status)
        if kind is not None:
            query = query.where(Delivery.kind == kind)
        if case_number is not None:
            query = query.where(Delivery.case_number == case_number)
        if overdue_at is not None:
            query = query.where(
                Delivery.status.in_(OPEN_STATUSES),
                Delivery.due_at.is_not(None),
                Delivery.due_at < overdue_at,
            )
        if after is not None:
            at, last_id = after
            query = query.where(
                or_(
                    Delivery.created_at > at,
                    and_(Delivery.created_at == at, Delivery.id > last_id),
                )
            )
        query = query.order_by(Delivery.created_at, Delivery.id).limit(limit)
        return self.session.scalars(query).all()

    # -- outbox --------------------------------------------------------------------------

    def lock_for_writing(self) -> None:
        """SQLite: take the database's write lock now, by a first write (one that changes
        nothing). What this transaction reads next is then not stale, and its write after the
        read does not fail at once ("database is locked") when another connection committed
        in between: SQLite cannot make a reading transaction wait for the lock. PostgreSQL:
        nothing (its row and advisory locks serve)."""
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                update(DeliveryOutbox)
                .where(DeliveryOutbox.delivery_id == "")
                .values(attempts=DeliveryOutbox.attempts)
            )

    def claim_due(self, now: datetime, lease: timedelta, limit: int = 10) -> list[str]:
        """Lease up to ``limit`` due pending outbox rows until ``now + lease``; their ids."""
        due = (
            select(DeliveryOutbox)
            .where(
                DeliveryOutbox.state == "pending",
                DeliveryOutbox.next_attempt_at <= now,
                or_(DeliveryOutbox.lease_until.is_(None), DeliveryOutbox.lease_until <= now),
            )
            .order_by(DeliveryOutbox.next_attempt_at, DeliveryOutbox.delivery_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if self.session.get_bind().dialect.name == "sqlite":
            # An idle pass only reads: a write on every pass (every interval, on every worker)
            # would end the snapshot of every other reading transaction. With work due, the
            # read ends and the write lock is taken first (a reading transaction cannot wait
            # for it), then the rows are read again under it.
            if self.session.scalars(due).first() is None:
                return []
            self.session.rollback()
            self.lock_for_writing()
        rows = self.session.scalars(due).all()
        for row in rows:
            row.lease_until = now + lease
            row.attempts += 1
        self.session.flush()
        return [row.delivery_id for row in rows]

    def outbox(self, delivery_id: str) -> DeliveryOutbox | None:
        return self.session.get(DeliveryOutbox, delivery_id)

    def push_done(self, delivery_id: str) -> None:
        self.lock_for_writing()  # a read, then a write (see lock_for_writing)
        row = self.session.get(DeliveryOutbox, delivery_id)
        if row is not None:
            row.state, row.lease_until, row.last_error = "done", None, None
            self.session.flush()

    def push_failed(self, delivery_id: str, error: str, next_attempt_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``next_attempt_at``, or give up (``dead``) if None."""
        self.lock_for_writing()  # a read, then a write (see lock_for_writing)
        row = self.session.get(DeliveryOutbox, delivery_id)
        if row is None:
            return
        row.lease_until = None
        row.last_error = error[:256]
        if next_attempt_at is None:
            row.state = "dead"
        else:
            row.next_attempt_at = next_attempt_at
        self.session.flush()


def create_idempotent(
    factory: sessionmaker[Session],
    *,
    client_id: str,
    key: str,
    request_sha256: str,
    build: Callable[[DeliveryRepository], Delivery],
    looked_up: bool = False,
) -> tuple[Delivery, bool]:
    """Create with ``build`` once per ``(client_id, key)``; see module docstring.

    ``looked_up``: the caller has just found the key unused, so the insert is tried at once
    (one session less); a concurrent duplicate still ends in the replay after the insert's
    ``IntegrityError``.
    """

    def replay() -> tuple[Delivery, bool] | None:
        with session_scope(factory) as session:
            repo = DeliveryRepository(session)
            used = repo.by_key(client_id, key)
            if used is None:
                return None
            if used.request_sha256 != request_sha256:
                raise IdempotencyConflict(used.delivery_id)
            found = repo.get(used.delivery_id)
            assert found is not None  # the key row references it
            return found, False

    earlier = None if looked_up else replay()
    if earlier is not None:
        return earlier
    try:
        with session_scope(factory) as session:
            return build(DeliveryRepository(session)), True
    except IntegrityError:
        raced = replay()
        if raced is None:
            raise
        return raced
