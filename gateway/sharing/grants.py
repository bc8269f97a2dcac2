"""The live grants every worker decides with, and the follower that keeps them current.

A worker holds the grants that are neither revoked nor past their window, by (requester
agency, resource). An approval or a revocation on this worker takes effect here at once; on
every other worker within ``follow_interval_s`` (1 s by default, like the policy follower's
publications). Expiry needs no follower: a grant covers a request only inside its window
(``Grant.covers``), and :meth:`GrantRegistry.for_request` hands out only grants live at the
request's time.

A revocation is final: a grant revoked on this worker stays out even if a refresh that began
before it still read the grant as live.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.background import in_thread
from gateway.policy.decision import Grant
from gateway.sharing.models import SharingGrant

__all__ = ["Clock", "GrantRegistry", "grant_of_row", "utc_now"]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def grant_of_row(row: SharingGrant) -> Grant:
    record_ids = None if row.record_ids is None else frozenset(json.loads(row.record_ids))
    return Grant(
        grant_id=row.id,
        requester_agency=row.requester_agency,
        resource=row.resource,
        fields=frozenset(json.loads(row.fields)),
        purpose=row.purpose,
        case_id=row.case_id,
        record_ids=record_ids,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
    )


class GrantRegistry:
    """Live grants by (requester agency, resource); swapped whole on each refresh."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        follow_interval_s: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self._factory = factory
        self.follow_interval_s = follow_interval_s
        self.clock = clock
        self._by_key: dict[tuple[str, str], tuple[Grant, ...]] = {}
        self._ids: dict[str, Grant] = {}
        self._revoked: set[str] = set()
        # Grants approved here while a refresh may have been reading: (grant, monotonic time).
        self._added: dict[str, tuple[Grant, float]] = {}
        self._lock = threading.Lock()
        #: Called by the follower with the time of each pass (expiry entries).
        self.on_pass: Callable[[datetime], Awaitable[None]] | None = None

    def for_request(self, agency: str, resource: str, now: datetime) -> tuple[Grant, ...]:
        """The grants of ``agency`` for ``resource`` that are live at ``now``."""
        found = self._by_key.get((agency, resource))
        if not found:
            return ()
        return tuple(g for g in found if g.valid_from <= now < g.valid_until)

    def is_live(self, grant_id: str, now: datetime) -> bool:
        grant = self._ids.get(grant_id)
        return grant is not None and grant.valid_from <= now < grant.valid_until

    def _install(self, grants: list[Grant]) -> None:
        by_key: dict[tuple[str, str], list[Grant]] = {}
        ids: dict[str, Grant] = {}
        for grant in grants:
            if grant.grant_id in self._revoked or grant.grant_id in ids:
                continue
            ids[grant.grant_id] = grant
            by_key.setdefault((grant.requester_agency, grant.resource), []).append(grant)
        self._by_key = {key: tuple(found) for key, found in by_key.items()}
        self._ids = ids

    def add(self, grant: Grant) -> None:
        """An approval on this worker: in force here at once."""
        with self._lock:
            self._added[grant.grant_id] = (grant, time.monotonic())
            self._install([*self._ids.values(), grant])

    def revoke(self, grant_id: str) -> None:
        """A revocation on this worker: out at once, and for good."""
        with self._lock:
            self._revoked.add(grant_id)
            self._added.pop(grant_id, None)
            self._install(list(self._ids.values()))

    def refresh(self) -> None:
        """Read the grants live now from the database and swap them in."""
        started = time.monotonic()
        now = self.clock()
        with self._factory() as session:
            rows = session.scalars(
                select(SharingGrant).where(
                    SharingGrant.revoked_at.is_(None), SharingGrant.valid_until > now
                )
            ).all()
            revoked = session.scalars(
                select(SharingGrant.id).where(
                    SharingGrant.revoked_at.is_not(None), SharingGrant.valid_until > now
                )
            ).all()
        loaded = [grant_of_row(row) for row in rows]
        with self._lock:
            self._revoked.update(revoked)
            # Approvals made here after this read began are not in it yet: keep them.
            recent = [g for g, at in self._added.values() if at >= started - 1.0]
            self._added = {g.grant_id: (g, at) for g, at in self._added.values() if at >= started}
            self._install(loaded + recent)

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_interval_s)
            try:
                await in_thread(self.refresh)
                if self.on_pass is not None:
                    await self.on_pass(self.clock())
            except SQLAlchemyError as exc:
                # Fail closed: a revocation elsewhere may be unseen, so no grant counts here
                # until the grants can be read again.
                with self._lock:
                    self._install([])
                log.error("cannot follow conditional-sharing grants", error=str(exc))
