"""Database steps of conditional sharing. Each state change is one conditional UPDATE, so two
reviewers answering at once cannot both win."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.sharing.models import SharingApplication, SharingGrant

__all__ = ["SharingRepository"]

Row = tuple[SharingApplication, SharingGrant | None]


class SharingRepository:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def insert(self, app: SharingApplication) -> None:
        with session_scope(self._factory) as session:
            session.add(app)

    def get(self, app_id: str) -> Row | None:
        with self._factory() as session:
            app = session.get(SharingApplication, app_id)
            if app is None:
                return None
            grant = session.get(SharingGrant, app.grant_id) if app.grant_id else None
            return app, grant

    def list_rows(
        self,
        *,
        requester: str | None = None,
        owner: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        query = select(SharingApplication, SharingGrant).outerjoin(
            SharingGrant, SharingGrant.id == SharingApplication.grant_id
        )
        if requester is not None:
            query = query.where(SharingApplication.requester_agency == requester)
        if owner is not None:
            query = query.where(SharingApplication.owner_agency == owner)
        if statuses is not None:
            query = query.where(SharingApplication.status.in_(statuses))
        query = query.order_by(SharingApplication.created_at.desc(), SharingApplication.id)
        if limit is not None:
            query = query.limit(limit)
        with self._factory() as session:
            return [(row[0], row[1]) for row in session.execute(query).all()]

    def approve(
        self,
        app: SharingApplication,
        grant: SharingGrant,
        *,
        answered_by: str,
        comment: str,
        days: int,
    ) -> bool:
        """Approve a pending application and create its grant; False if no longer pending."""
        with session_scope(self._factory) as session:
            claimed = session.execute(
                update(SharingApplication)
                .where(SharingApplication.id == app.id, SharingApplication.status == "pending")
                .values(
                    status="approved",
                    answered_at=grant.valid_from,
                    answered_by=answered_by,
                    comment=comment,
                    granted_days=days,
                    grant_id=grant.id,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.add(grant)
        return True

    def undo_approval(self, app_id: str, grant_id: str, now: datetime) -> None:
        """The approval could not be audited: the grant never counts, the application waits."""
        with session_scope(self._factory) as session:
            session.execute(
                update(SharingGrant)
                .where(SharingGrant.id == grant_id)
                .values(revoked_at=now, revoked_by="system:audit-unavailable", valid_until=now)
            )
            session.execute(
                update(SharingApplication)
                .where(SharingApplication.id == app_id)
                .values(
                    status="pending",
                    answered_at=None,
                    answered_by=None,
                    comment=None,
                    granted_days=None,
                    grant_id=None,
                )
            )

    def refuse(self, app_id: str, *, answered_by: str, reason: str, now: datetime) -> bool:
        with session_scope(self._factory) as session:
            claimed = session.execute(
                update(SharingApplication)
                .where(SharingApplication.id == app_id, SharingApplication.status == "pending")
                .values(
                    status="refused",
                    answered_at=now,
                    answered_by=answered_by,
                    refusal_reason=reason,
                )
            )
            return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]

    def undo_refusal(self, app_id: str) -> None:
        with session_scope(self._factory) as session:
            session.execute(
                update(SharingApplication)
                .where(SharingApplication.id == app_id, SharingApplication.status == "refused")
                .values(status="pending", answered_at=None, answered_by=None, refusal_reason=None)
            )

    def revoke(self, app_id: str, grant_id: str, *, revoked_by: str, now: datetime) -> bool:
        """End a live grant now; False if it was revoked or had ended already."""
        with session_scope(self._factory) as session:
            claimed = session.execute(
                update(SharingGrant)
                .where(
                    SharingGrant.id == grant_id,
                    SharingGrant.revoked_at.is_(None),
                    SharingGrant.valid_until > now,
                )
                .values(revoked_at=now, revoked_by=revoked_by)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.execute(
                update(SharingApplication)
                .where(SharingApplication.id == app_id)
                .values(status="revoked")
            )
        return True

    def claim_expired(self, now: datetime) -> list[SharingGrant]:
        """Grants whose window ended and whose expiry is not recorded yet, claimed by this
        worker (each by a conditional update: one worker records each expiry)."""
        with self._factory() as session:
            due = session.scalars(
                select(SharingGrant).where(
                    SharingGrant.revoked_at.is_(None),
                    SharingGrant.valid_until <= now,
                    SharingGrant.expiry_recorded.is_(False),
                )
            ).all()
        claimed = []
        for grant in due:
            with session_scope(self._factory) as session:
                result = session.execute(
                    update(SharingGrant)
                    .where(SharingGrant.id == grant.id, SharingGrant.expiry_recorded.is_(False))
                    .values(expiry_recorded=True)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    session.execute(
                        update(SharingApplication)
                        .where(
                            SharingApplication.id == grant.application_id,
                            SharingApplication.status == "approved",
                        )
                        .values(status="expired")
                    )
                    claimed.append(grant)
        return claimed

    def unclaim_expired(self, grant_id: str) -> None:
        with session_scope(self._factory) as session:
            session.execute(
                update(SharingGrant)
                .where(SharingGrant.id == grant_id)
                .values(expiry_recorded=False)
            )


def dumps(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values), ensure_ascii=False)
