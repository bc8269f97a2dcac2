"""Delivery persistence (issue 15 step 2): idempotency keys, events, keyset pages, the outbox."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.models import Delivery, DeliveryEvent, DeliveryOutbox
from gateway.deliveries.repository import (
    DeliveryRepository,
    IdempotencyConflict,
    NewDelivery,
    create_idempotent,
    new_delivery_id,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _new(
    at: datetime = T0,
    *,
    kind: str = "arrest_request",
    sender: str = "GA640104",
    to: str = "JC640104",
    case: str = "A6401040000002021030042",
    due: timedelta | None = timedelta(days=7),
    client: str = "police-client",
) -> NewDelivery:
    content = b'{"record":{"case_id":"C1"}}'
    return NewDelivery(
        id=new_delivery_id(),
        kind=kind,
        from_agency=sender,
        to_agency=to,
        case_number=case,
        purpose="ARREST_REVIEW",
        client_id=client,
        operator_id="op-1",
        content=content,
        content_sha256=hashlib.sha256(content).hexdigest(),
        created_at=at,
        due_at=None if due is None else at + due,
    )


def _create(
    factory: sessionmaker[Session], key: str, body: bytes, new: NewDelivery | None = None
) -> tuple[Delivery, bool]:
    new = new or _new()
    return create_idempotent(
        factory,
        client_id=new.client_id,
        key=key,
        request_sha256=hashlib.sha256(body).hexdigest(),
        build=lambda repo: repo.create(
            new, key=key, request_sha256=hashlib.sha256(body).hexdigest(), audit_index=7
        ),
    )


def _count(factory: sessionmaker[Session], model: type[object]) -> int:
    with session_scope(factory) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_create_writes_the_delivery_its_key_outbox_row_and_event(
    delivery_db: sessionmaker[Session],
) -> None:
    delivery, created = _create(delivery_db, "k-1", b"body")
    assert created
    assert delivery.id.startswith("DL")
    assert len(delivery.id) == 26
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        stored = repo.get(delivery.id)
        assert stored is not None
        assert (stored.status, stored.due_at) == ("pending", T0 + timedelta(days=7))
        [event] = repo.events(delivery.id)
        assert (event.type, event.audit_index, event.at) == ("created", 7, T0)
        outbox = repo.outbox(delivery.id)
        assert outbox is not None
        assert (outbox.state, outbox.attempts, outbox.next_attempt_at) == ("pending", 0, T0)


def test_replay_answers_the_same_delivery_and_a_changed_body_conflicts(
    delivery_db: sessionmaker[Session],
) -> None:
    first, created = _create(delivery_db, "k-1", b"body")
    again, created_again = _create(delivery_db, "k-1", b"body")
    assert created
    assert not created_again
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict) as conflict:
        _create(delivery_db, "k-1", b"another body")
    assert conflict.value.delivery_id == first.id
    # The key belongs to the client: another client's same key is another delivery.
    other, other_created = _create(delivery_db, "k-1", b"body", _new(client="other-client"))
    assert other_created
    assert other.id != first.id
    assert _count(delivery_db, Delivery) == 2
    assert _count(delivery_db, DeliveryOutbox) == 2
    assert _count(delivery_db, DeliveryEvent) == 2


def test_concurrent_duplicates_make_one_delivery(delivery_db: sessionmaker[Session]) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def send() -> None:
        try:
            start.wait()
            delivery, _ = _create(delivery_db, "same-key", b"same body")
            results.append(delivery.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 6
    assert len(set(results)) == 1
    assert _count(delivery_db, Delivery) == 1
    assert _count(delivery_db, DeliveryOutbox) == 1


def test_keyset_pages_by_role_and_filters(delivery_db: sessionmaker[Session]) -> None:
    made: list[str] = []
    for i in range(5):
        new = _new(T0 + timedelta(hours=i), to="JC640104" if i % 2 == 0 else "JC640105")
        made.append(_create(delivery_db, f"k-{i}", f"b{i}".encode(), new)[0].id)
    returned = _new(T0, kind="arrest_decision", sender="JC640104", to="GA640104", due=None)
    made.append(_create(delivery_db, "k-r", b"r", returned)[0].id)
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        outbound = repo.page("GA640104", "outbound", limit=2)
        assert [d.id for d in outbound] == made[0:2]
        last = outbound[-1]
        rest = repo.page("GA640104", "outbound", after=(last.created_at, last.id), limit=10)
        assert [d.id for d in rest] == made[2:5]
        inbound = repo.page("JC640104", "inbound")
        assert [d.id for d in inbound] == [made[0], made[2], made[4]]
        assert [d.id for d in repo.page("GA640104", "inbound")] == [made[5]]
        assert repo.page("GA640104", "inbound", kind="arrest_request") == []
        assert repo.page("GA640104", "outbound", status="accepted") == []
        assert repo.page("GA640104", "outbound", case_number="other") == []
        # Overdue: due (7 days after) has passed, and not yet answered.
        late = repo.page("GA640104", "outbound", overdue_at=T0 + timedelta(days=7, hours=2))
        assert [d.id for d in late] == made[0:2]
        stored = repo.get(made[0])
        assert stored is not None
        stored.status = "accepted"
        session.flush()
        late = repo.page("GA640104", "outbound", overdue_at=T0 + timedelta(days=7, hours=2))
        assert [d.id for d in late] == [made[1]]
        # No deadline, never overdue.
        assert repo.page("JC640104", "outbound", overdue_at=T0 + timedelta(days=999)) == []
        number = "A6401040000002021030042"
        assert repo.count_of_kind_for_case("arrest_request", [number]) == 5
        assert repo.count_of_kind_for_case("arrest_request", [number, "other"]) == 5
        assert repo.count_of_kind_for_case("arrest_request", ["other"]) == 0
        assert repo.count_of_kind_for_case("indictment", [number]) == 0
        assert repo.count_of_kind_for_case("arrest_request", [number], excluding=["accepted"]) == 4


def test_outbox_leases_retries_and_gives_up(delivery_db: sessionmaker[Session]) -> None:
    first = _create(delivery_db, "k-1", b"1", _new(T0))[0].id
    second = _create(delivery_db, "k-2", b"2", _new(T0 + timedelta(seconds=1)))[0].id
    lease = timedelta(seconds=30)
    now = T0 + timedelta(seconds=5)
    with session_scope(delivery_db) as session:
        assert DeliveryRepository(session).claim_due(now, lease) == [first, second]
    with session_scope(delivery_db) as session:  # leased: nobody else takes them
        assert DeliveryRepository(session).claim_due(now + timedelta(seconds=1), lease) == []
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        repo.push_done(first)
        repo.push_failed(second, "connection refused", now + timedelta(seconds=10))
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        assert repo.claim_due(now + timedelta(seconds=9), lease) == []
        assert repo.claim_due(now + timedelta(seconds=10), lease) == [second]
    # A pusher killed during the push: the lease runs out and the row is claimable again.
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        assert repo.claim_due(now + timedelta(seconds=39), lease) == []
        assert repo.claim_due(now + timedelta(seconds=41), lease) == [second]
        outbox = repo.outbox(second)
        assert outbox is not None
        assert (outbox.attempts, outbox.last_error) == (3, "connection refused")
        repo.push_failed(second, "x" * 999, None)
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        assert repo.claim_due(now + timedelta(days=1), lease) == []
        done, dead = repo.outbox(first), repo.outbox(second)
        assert done is not None
        assert dead is not None
        assert (done.state, dead.state, len(dead.last_error or "")) == ("done", "dead", 256)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM deliveries",
        "DELETE FROM delivery_events",
        "DELETE FROM delivery_outbox",
        "DELETE FROM delivery_idempotency",
        "UPDATE delivery_events SET type = 'forged'",
        "UPDATE delivery_idempotency SET request_sha256 = 'x'",
        "TRUNCATE deliveries CASCADE",
    ],
)
def test_the_application_role_cannot_rewrite_history(
    pg_delivery_db: sessionmaker[Session], statement: str
) -> None:
    _create(pg_delivery_db, "k-1", b"body")
    with pytest.raises(DBAPIError, match="permission denied"), session_scope(pg_delivery_db) as s:
        s.execute(text(statement))
    assert _count(pg_delivery_db, DeliveryEvent) == 1
