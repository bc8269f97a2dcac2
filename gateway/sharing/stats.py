"""``GET /v1/sharing/stats``: per owning agency, how it answers (绩效考核)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from gateway.sharing.documents import effective_status
from gateway.sharing.repository import Row

__all__ = ["sharing_stats"]


def _quantile(values: list[float], q: float) -> float | None:
    """The nearest-rank quantile (q in (0, 1]); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n q)
    return round(ordered[int(rank) - 1], 3)


def sharing_stats(rows: list[Row], now: datetime) -> dict[str, Any]:
    by_owner: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_owner[row[0].owner_agency].append(row)
    agencies = []
    for owner in sorted(by_owner):
        counts: dict[str, int] = defaultdict(int)
        waits: list[float] = []
        overdue = 0
        for app, grant in by_owner[owner]:
            counts[effective_status(app, grant, now)] += 1
            if app.answered_at is not None:
                waits.append((app.answered_at - app.created_at).total_seconds())
                overdue += app.answered_at > app.due_at
            else:
                overdue += now > app.due_at
        answered = len(waits)
        agencies.append(
            {
                "owner_agency": owner,
                "applications": len(by_owner[owner]),
                "counts": dict(sorted(counts.items())),
                "answered": answered,
                "median_seconds_to_answer": _quantile(waits, 0.5),
                "p90_seconds_to_answer": _quantile(waits, 0.9),
                "overdue": overdue,
                "refusal_rate": None
                if answered == 0
                else round(counts.get("refused", 0) / answered, 4),
            }
        )
    return {"generated_at": now.isoformat().replace("+00:00", "Z"), "agencies": agencies}
