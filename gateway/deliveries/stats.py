"""Delivery performance figures (绩效考核数据自动抓取): per recipient agency and kind.

Contract of :func:`delivery_stats`: one row per ``(agency, kind)`` where ``agency`` is the
recipient (whose duty the figures measure), sorted by agency then kind::

    {"agency", "kind", "count", "by_status": {status: n for every status},
     "answered", "median_seconds_to_answer", "p90_seconds_to_answer",
     "overdue", "answered_late", "returned_rate"}

Time to answer is ``answered_at - created_at`` in whole seconds; the median is the middle value
(the mean of the two middle ones for an even count, rounded down), p90 the nearest-rank 90th
percentile; both ``None`` when nothing was answered. ``overdue``: unanswered and past ``due_at``
at ``now``; ``answered_late``: answered after ``due_at``. ``returned_rate`` = returned /
answered, rounded to 4 places (``None`` when nothing was answered). ``agencies`` limits the
rows to deliveries whose recipient or sender is one of them (``None``: all). Copies (抄送) are
not counted: a copy asks for no answer and has no deadline, so it is no figure of a duty.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.deliveries.deadlines import is_overdue
from gateway.deliveries.models import Delivery
from gateway.deliveries.repository import STATUSES

__all__ = ["delivery_stats", "median", "nearest_rank"]


def median(values: list[int]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def nearest_rank(values: list[int], percent: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def delivery_stats(
    session: Session, *, now: datetime, agencies: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The figures (see module docstring)."""
    query = select(
        Delivery.to_agency,
        Delivery.kind,
        Delivery.status,
        Delivery.created_at,
        Delivery.answered_at,
        Delivery.due_at,
    ).where(Delivery.copy_of.is_(None))  # a copy (抄送) asks no answer: no figure of a duty
    if agencies is not None:
        query = query.where(
            or_(Delivery.to_agency.in_(list(agencies)), Delivery.from_agency.in_(list(agencies)))
        )
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in session.execute(query):
        groups.setdefault((row.to_agency, row.kind), []).append(row)
    out: list[dict[str, Any]] = []
    for (agency, kind), rows in sorted(groups.items()):
        by_status = dict.fromkeys(STATUSES, 0)
        durations: list[int] = []
        overdue = late = returned = 0
        for row in rows:
            by_status[row.status] = by_status.get(row.status, 0) + 1
            if is_overdue(row.status, row.due_at, now):
                overdue += 1
            if row.answered_at is not None:
                durations.append(int((row.answered_at - row.created_at).total_seconds()))
                if row.due_at is not None and row.answered_at > row.due_at:
                    late += 1
                returned += row.status == "returned"
        out.append(
            {
                "agency": agency,
                "kind": kind,
                "count": len(rows),
                "by_status": by_status,
                "answered": len(durations),
                "median_seconds_to_answer": median(durations),
                "p90_seconds_to_answer": nearest_rank(durations, 90),
                "overdue": overdue,
                "answered_late": late,
                "returned_rate": round(returned / len(durations), 4) if durations else None,
            }
        )
    return out
