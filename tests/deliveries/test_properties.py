"""Property tests against independent oracles: deadlines and keyset pages (issue 15)."""

from __future__ import annotations

import calendar
import hashlib
from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.deadlines import due_at
from gateway.deliveries.repository import DeliveryRepository, NewDelivery, new_delivery_id
from gateway.standard import Standard

_CST = timezone(timedelta(hours=8))
_KINDS = ("arrest_request", "prosecution_transfer", "indictment", "judgment_execution")


def _oracle_last_day(start: date, days: int | None, months: int | None) -> date:
    """Count the days one by one, or step the calendar month by month."""
    if days is not None:
        day = start
        for _ in range(days):
            day = day + timedelta(days=1)
        return day
    year, month = start.year, start.month
    for _ in range(months or 0):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@settings(max_examples=300, deadline=None)
@given(
    kind_code=st.sampled_from(_KINDS),
    received=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    effective=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
)
def test_due_at_matches_the_oracle(
    standard: Standard, kind_code: str, received: datetime, effective: date
) -> None:
    kind = standard.delivery_kind(kind_code)
    limit = kind.time_limit
    assert limit is not None
    record = {"effective_date": effective.isoformat()}
    start = received.astimezone(_CST).date() if limit.counted_from == "received" else effective
    last = _oracle_last_day(start, limit.period.days, limit.period.months)
    expected = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=_CST)
    got = due_at(kind, record, received)
    assert got == expected
    # The deadline is never before the end of the starting day, whatever the period.
    assert got is not None
    assert got > datetime.combine(start, datetime.min.time(), tzinfo=_CST) + timedelta(days=1)


T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 5),  # minutes after T0 (ties on created_at are common)
            st.sampled_from(["JC640104", "JC640105"]),
            st.sampled_from(["arrest_request", "indictment"]),
        ),
        max_size=12,
    ),
    limit=st.integers(1, 4),
    kind=st.sampled_from([None, "arrest_request"]),
)
def test_keyset_pages_cover_the_listing_exactly_once(
    delivery_db: sessionmaker[Session],
    rows: list[tuple[int, str, str]],
    limit: int,
    kind: str | None,
) -> None:
    batch = new_delivery_id()[:8]
    made: list[tuple[datetime, str, str, str]] = []
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        for minute, to, kind_code in rows:
            at = T0 + timedelta(minutes=minute)
            new = NewDelivery(
                id=new_delivery_id(),
                kind=kind_code,
                from_agency=f"GA{batch[2:8]}",
                to_agency=to,
                case_number="A1",
                purpose="P",
                client_id=batch,
                operator_id=None,
                content=b"{}",
                content_sha256=hashlib.sha256(b"{}").hexdigest(),
                created_at=at,
                due_at=None,
            )
            repo.create(new, key=new.id, request_sha256="0" * 64, audit_index=None)
            made.append((at, new.id, to, kind_code))
    sender = f"GA{batch[2:8]}"
    expected = [i for at, i, _, k in sorted(made) if kind is None or k == kind]
    seen: list[str] = []
    after: tuple[datetime, str] | None = None
    with session_scope(delivery_db) as session:
        repo = DeliveryRepository(session)
        while True:
            page = repo.page(sender, "outbound", kind=kind, after=after, limit=limit)
            assert len(page) <= limit
            seen.extend(d.id for d in page)
            if len(page) < limit:
                break
            after = (page[-1].created_at, page[-1].id)
    assert seen == expected
