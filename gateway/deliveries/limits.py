"""Per-case limits of a delivery kind (``per_case`` in the standard: 补充侦查以二次为限).

Contract of :func:`check_per_case_limit`: for a kind with a per-case limit, it counts the
deliveries of that kind already made in the case and raises :class:`~gateway.errors.Conflict`
(409, with ``limit``, ``made`` and ``basis``) when one more would pass the limit; it writes
nothing. 409, not 422: the request is well formed and valid on its own; it conflicts with the
case's state (the deliveries already made in it). Counted over the case's numbers (案号 and
公安案件编号), so a sender cannot pass the limit by naming the case another way. Returned (退回)
and failed deliveries were never received as made, so they do not count.

:func:`check_per_case_limit` answers early, before the content is decided; it cannot hold.
:func:`enforce_per_case_limit` holds: it counts again in the transaction that stores the
delivery, after taking a lock of that kind in that case (PostgreSQL: a transaction-scoped
advisory lock on the kind and the case id; SQLite: the database's write lock, taken by a first
write before the count), so two concurrent requests at the limit cannot both be stored.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.repository import DeliveryRepository
from gateway.errors import Conflict
from gateway.policy.decision import CaseContext
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["check_per_case_limit", "enforce_per_case_limit"]

#: Statuses of a delivery that was never received as made (退回, or never delivered).
NOT_COUNTED = ("returned", "failed")


def _numbers(case_number: str, case: CaseContext) -> set[str]:
    return {n for n in (case_number, case.police_case_number, case.court_case_number) if n}


def _refuse_past(kind: DeliveryKind, made: int) -> None:
    limit = kind.per_case
    if limit is not None and made >= limit.count:
        raise Conflict(
            f"{kind.name} ({kind.code}) has been made {made} times in this case: "
            f"{limit.basis}: {limit.quote}",
            extra={"limit": limit.count, "made": made, "basis": limit.basis},
        )


def check_per_case_limit(
    factory: sessionmaker[Session], kind: DeliveryKind, case_number: str, case: CaseContext
) -> None:
    """Refuse (409) a delivery of ``kind`` past its per-case limit (see module docstring)."""
    if kind.per_case is None:
        return
    with session_scope(factory) as session:
        made = DeliveryRepository(session).count_of_kind_for_case(
            kind.code, _numbers(case_number, case), excluding=NOT_COUNTED
        )
    _refuse_past(kind, made)


def _lock_key(kind: str, case_id: str) -> int:
    digest = hashlib.blake2b(f"{kind}\x00{case_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def enforce_per_case_limit(
    session: Session, kind: DeliveryKind, case_number: str, case: CaseContext
) -> None:
    """In the storing transaction: lock the kind in the case, count again, refuse (409)."""
    if kind.per_case is None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(kind.code, case.case_id)}
        )
    else:  # SQLite: a first write takes the write lock, so the count below is not stale
        DeliveryRepository(session).lock_for_writing()
    made = DeliveryRepository(session).count_of_kind_for_case(
        kind.code, _numbers(case_number, case), excluding=NOT_COUNTED
    )
    _refuse_past(kind, made)
