"""Statutory deadlines of deliveries: ``due_at`` from the kind's time limit, and extensions.

Contracts:

* :func:`due_at` — ``None`` when the kind has no time limit. A limit ``counted_from``
  ``received`` starts on the day the gateway took the delivery for the recipient; one counted
  from a date field of the record (``effective_date``: 判决生效后十日以内) starts on that date (a
  record without a valid date there raises :class:`DeadlineError`: the delivery is refused, not
  left without a deadline). As 刑事诉讼法 第105条 says, the starting day is not counted: the
  period's last day is the start date plus the period, and the deadline is the end of that day
  (00:00 of the next day, China Standard Time). Not applied: the same article's rule that a
  last day falling on a holiday moves to the next working day (no holiday calendar yet), so
  a deadline may be early, never late.
* :func:`extend` — the deadline after an extension the law allows: ``by`` adds its period to
  the current deadline; ``to`` sets the whole limit from the same start. An extension never
  shortens a deadline; one already applied cannot be applied again (``DeadlineError``).
* :func:`is_overdue` — unanswered (``pending``/``delivered``) and past ``due_at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone

from gateway.standard.delivery_kinds import DeliveryKind, Extension, TimeLimit

__all__ = ["CHINA", "DeadlineError", "due_at", "extend", "is_overdue", "limit_start"]

#: China Standard Time (UTC+8, no daylight saving): the day a date field names.
CHINA = timezone(timedelta(hours=8), "CST")
_OPEN = ("pending", "delivered")


class DeadlineError(ValueError):
    """A deadline cannot be computed or extended as asked; the message says why."""


def _end_of(day: date) -> datetime:
    """The end of ``day`` in China: 00:00 CST of the next day."""
    after = day + timedelta(days=1)
    return datetime(after.year, after.month, after.day, tzinfo=CHINA)


def _last_day(deadline: datetime) -> date:
    return (deadline.astimezone(CHINA) - timedelta(days=1)).date()


def limit_start(limit: TimeLimit, record: Mapping[str, object], received_at: datetime) -> date:
    """The day ``limit`` starts from (not counted) for ``record`` received at ``received_at``."""
    if limit.counted_from == "received":
        return received_at.astimezone(CHINA).date()
    value = record.get(limit.counted_from)
    try:
        day = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        raise DeadlineError(
            f"the record's {limit.counted_from} is needed to compute the deadline "
            f"({limit.basis}) and is missing or not a date"
        )
    return day


def due_at(
    kind: DeliveryKind, record: Mapping[str, object], received_at: datetime
) -> datetime | None:
    """The statutory deadline of a new delivery (see module docstring)."""
    limit = kind.time_limit
    if limit is None:
        return None
    return _end_of(limit.period.after_date(limit_start(limit, record, received_at)))


def extend(
    kind: DeliveryKind,
    record: Mapping[str, object],
    received_at: datetime,
    current: datetime,
    code: str,
    applied: Sequence[str] = (),
) -> tuple[datetime, Extension]:
    """The deadline after extension ``code`` (see module docstring) and the extension."""
    limit = kind.time_limit
    if limit is None:
        raise DeadlineError(f"{kind.name} has no statutory time limit to extend")
    try:
        extension = limit.extension(code)
    except KeyError:
        known = ", ".join(e.code for e in limit.extensions) or "none"
        raise DeadlineError(
            f"unknown extension {code!r} for {kind.name} (the law allows: {known})"
        ) from None
    if code in applied:
        raise DeadlineError(f"extension {code!r} was already applied")
    if extension.by is not None:
        new = _end_of(extension.by.after_date(_last_day(current)))
    else:
        assert extension.to is not None
        new = _end_of(extension.to.after_date(limit_start(limit, record, received_at)))
    if new <= current:
        raise DeadlineError(f"extension {code!r} would not extend the deadline")
    return new, extension


def is_overdue(status: str, due: datetime | None, now: datetime) -> bool:
    """True when the delivery is still unanswered and its deadline has passed."""
    return status in _OPEN and due is not None and due < now
