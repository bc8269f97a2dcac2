"""Per-case limits of a delivery kind (``per_case`` in the standard: 补充侦查以二次为限).

Contract of :func:`check_per_case_limit`: for a kind with a per-case limit, it counts the
deliveries of that kind already made in the case and raises :class:`~gateway.errors.Conflict`
(409, with ``limit``, ``made`` and ``basis``) when one more would pass the limit; it writes
nothing. 409, not 422: the request is well formed and valid on its own; it conflicts with the
case's state (the deliveries already made in it). Counted over the case's numbers (案号 and
公安案件编号), so a sender cannot pass the limit by naming the case another way. Returned (退回)
and failed deliveries were never received as made, so they do not count. The count is read,
not locked: two concurrent requests at the limit could both pass (a known gap).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.repository import DeliveryRepository
from gateway.errors import Conflict
from gateway.policy.decision import CaseContext
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["check_per_case_limit"]

#: Statuses of a delivery that was never received as made (退回, or never delivered).
NOT_COUNTED = ("returned", "failed")


def check_per_case_limit(
    factory: sessionmaker[Session], kind: DeliveryKind, case_number: str, case: CaseContext
) -> None:
    """Refuse (409) a delivery of ``kind`` past its per-case limit (see module docstring)."""
    limit = kind.per_case
    if limit is None:
        return
    numbers = {n for n in (case_number, case.police_case_number, case.court_case_number) if n}
    with session_scope(factory) as session:
        made = DeliveryRepository(session).count_of_kind_for_case(
            kind.code, numbers, excluding=NOT_COUNTED
        )
    if made >= limit.count:
        raise Conflict(
            f"{kind.name} ({kind.code}) has been made {made} times in this case: "
            f"{limit.basis}: {limit.quote}",
            extra={"limit": limit.count, "made": made, "basis": limit.basis},
        )
