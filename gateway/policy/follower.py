"""The set in force on this worker, and the follower that keeps it on the latest publication.

A publication on any worker reaches every worker within ``follow_interval_s``; each swaps the
set whole (one reference), so a request sees one set from start to end.

A worker whose published set does not load starts with the deny-all set (deny-all mode, which
``/readyz`` reports) instead of not starting: its admin API keeps working, so the
administrators can publish a set that loads, which it then adopts like any publication.
"""

from __future__ import annotations

import asyncio
import threading

import structlog
from sqlalchemy.exc import SQLAlchemyError

from gateway.background import in_thread
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.versions import VersionStore

__all__ = ["PolicyFollower", "PolicyHolder"]

log = structlog.get_logger(__name__)


class PolicyHolder:
    """The policy set in force. Publishing swaps one reference: a request sees one set whole."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.current = engine


class PolicyFollower:
    def __init__(
        self,
        store: VersionStore,
        holder: PolicyHolder,
        *,
        follow_interval_s: float = 2.0,
        adopted_seq: int = 0,
        load_error: str | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.follow_interval_s = follow_interval_s
        # The publication (seq) the holder reflects. Swaps only ever move forward, so a
        # follower that read the publications just before a local approval or rollback
        # committed cannot put the older set back in force.
        self._adopted_seq = adopted_seq
        self._swap_lock = threading.Lock()
        # Why the published set did not load, while this worker denies everything instead.
        self.load_error = load_error
        store.remember(holder.current)

    @property
    def deny_all_mode(self) -> bool:
        return self.load_error is not None

    def adopt(self, seq: int, engine: PolicyEngine) -> bool:
        """Put ``engine`` in force for publication ``seq`` unless a later one is; True if
        the set in force changed."""
        with self._swap_lock:
            if seq <= self._adopted_seq:
                return False
            self._adopted_seq = seq
            previous, self.holder.current = self.holder.current, engine
            self.load_error = None
        self.store.remember(engine)
        return previous.version != engine.version

    def refresh(self) -> bool:
        """Adopt the latest publication if it is not the set in force; True if it swapped.

        A publication that does not load here raises ``PolicyError``: the set in force stays.
        """
        latest = self.store.current()
        if latest is None or latest[0] <= self._adopted_seq:
            return False
        seq, version_id = latest
        in_force = self.holder.current
        engine = in_force if version_id == in_force.version else self.store.load(version_id)
        swapped = self.adopt(seq, engine)
        if swapped:
            log.info("policy set swapped", version=version_id)
        return swapped

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_interval_s)
            try:
                await in_thread(self.refresh)
            except (SQLAlchemyError, PolicyError) as exc:
                log.error("cannot follow policy publications", error=str(exc))
