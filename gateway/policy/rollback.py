"""Rolling back, and the emergency freeze: the only change one administrator makes alone.

A rollback is a candidate like any other: ``POST /rollback`` proposes an earlier approved
version (201, ``status: candidate``, ``kind: rollback``, its base the version in force), and
it is in force only when a second administrator approves it (:mod:`gateway.policy.review`).
An earlier set may be looser than the one in force; putting it back is a loosening, so it
gets four eyes like any other.

A **freeze** only ever makes things stricter: it puts the deny-all set in force at once,
audited first, with no second person. Lifting it is a loosening: a rollback (or a candidate)
based on the freeze, approved by a second administrator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.errors import Conflict, UnprocessableContent
from gateway.policy.admin_log import Actor, AdminLog
from gateway.policy.diff import diff_policy_sets
from gateway.policy.errors import PolicyError
from gateway.policy.follower import PolicyFollower
from gateway.policy.review import policy_problems
from gateway.policy.store import (
    PolicyRepository,
    ProposalKind,
    PublicationKind,
    VersionStatus,
)
from gateway.policy.versions import DENY_ALL_FILES, VersionStore

__all__ = ["Rollbacks"]

_FREEZE_ATTEMPTS = 5


class Rollbacks:
    def __init__(self, store: VersionStore, follower: PolicyFollower, log: AdminLog) -> None:
        self.store = store
        self.follower = follower
        self.log = log

    async def propose(self, actor: Actor, version_id: str, comment: str) -> dict[str, Any]:
        state = await run_in_threadpool(self.store.state, version_id)
        if state.open is not None and state.approved:
            raise Conflict(f"a proposal to put {version_id} in force is waiting for review")
        if not state.approved:
            raise Conflict(
                f"only approved versions can be restored; {version_id} is {state.status}"
            )
        current = await run_in_threadpool(self.store.current)
        in_force = current[1] if current else self.follower.holder.current.version
        if version_id == in_force:
            raise Conflict(f"{version_id} is already in force")
        try:
            restored = await run_in_threadpool(self.store.load, version_id)
        except PolicyError as exc:
            raise UnprocessableContent(
                f"{version_id} does not load", policy_problems([p.to_json() for p in exc.problems])
            ) from exc
        try:
            now = await run_in_threadpool(self.store.load, in_force)
        except PolicyError:
            now = self.follower.holder.current  # deny-all mode: the published set did not load
        index = await self.log.record(
            actor,
            "rollback",
            {"version_id": version_id, "from": in_force, "comment": comment[:500]},
        )
        await run_in_threadpool(self._store, actor, version_id, comment, in_force)
        return {
            "version_id": version_id,
            "status": str(VersionStatus.CANDIDATE),
            "kind": str(ProposalKind.ROLLBACK),
            "base": in_force,
            "published": False,
            "diff": diff_policy_sets(now.policy_set, restored.policy_set).to_json(),
            "audit_index": index,
        }

    def _store(self, actor: Actor, version_id: str, comment: str, base: str) -> None:
        with Session(self.store.engine) as session, session.begin():
            repository = PolicyRepository(session)
            version = repository.version(version_id)
            assert version is not None
            if repository.state(version).open is not None:
                raise Conflict(f"a proposal to put {version_id} in force is waiting for review")
            repository.propose(version_id, ProposalKind.ROLLBACK, actor.client_id, comment, base)

    async def freeze(self, actor: Actor, comment: str) -> dict[str, Any]:
        frozen = self.store.deny_all
        current = await run_in_threadpool(self.store.current)
        if current is not None and current[1] == frozen.version:
            raise Conflict("the deny-all set is in force already (frozen)")
        index = await self.log.record(
            actor,
            "freeze",
            {
                "version_id": frozen.version,
                "from": current[1] if current else None,
                "comment": comment[:500],
            },
        )
        seq = await run_in_threadpool(self._publish_freeze, actor, comment)
        self.follower.adopt(seq, frozen)
        return {
            "version_id": frozen.version,
            "status": str(VersionStatus.FREEZE),
            "kind": "freeze",
            "published": True,
            "audit_index": index,
        }

    def _publish_freeze(self, actor: Actor, comment: str) -> int:
        frozen = self.store.deny_all.version
        for _ in range(_FREEZE_ATTEMPTS):
            try:
                with Session(self.store.engine) as session, session.begin():
                    repository = PolicyRepository(session)
                    if repository.version(frozen) is None:
                        repository.add_version(
                            frozen,
                            dict(DENY_ALL_FILES),
                            actor.client_id,
                            "the deny-all set of an emergency freeze",
                        )
                    current = repository.current()
                    return repository.publish(
                        frozen,
                        PublicationKind.FREEZE,
                        actor.client_id,
                        after=current.seq if current else 0,
                    ).seq
            except IntegrityError:
                continue  # a publication (or the freeze set) was written meanwhile: again
        raise Conflict("the publications kept changing; freeze again")
