"""Administration of the lists: one facade over storage (:mod:`~gateway.policy.versions`),
review (:mod:`~gateway.policy.review`), rollback and freeze (:mod:`~gateway.policy.rollback`),
the follower (:mod:`~gateway.policy.follower`) and impact replay (:mod:`~gateway.policy.impact`).

Every change is an audit entry (kind ``policy_admin``), written before the change takes
effect: no unaudited change to what may be shared (:mod:`~gateway.policy.admin_log`). Code an
administrator wrote (a candidate's conditions) is evaluated only in the isolated process
(:mod:`~gateway.policy.isolation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from gateway.audit.writer import AuditWriter
from gateway.errors import UnprocessableContent
from gateway.policy.admin_log import SYSTEM_AUTHOR, Actor, AdminLog
from gateway.policy.diff import diff_policy_sets
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.follower import PolicyFollower, PolicyHolder
from gateway.policy.impact import read_documents
from gateway.policy.isolation import EvaluationLimitExceeded, IsolatedEvaluator
from gateway.policy.review import Reviews, evaluation_failed, limit_problem, policy_problems
from gateway.policy.rollback import Rollbacks
from gateway.policy.store import content_sha256
from gateway.policy.versions import Bootstrap, VersionStore, bootstrap, summary
from gateway.standard import Standard

__all__ = ["SYSTEM_AUTHOR", "Actor", "PolicyAdministration", "PolicyHolder"]


def _unloadable(version_id: str, exc: PolicyError) -> UnprocessableContent:
    return UnprocessableContent(
        f"{version_id} does not load", policy_problems([p.to_json() for p in exc.problems])
    )


class PolicyAdministration:
    def __init__(
        self,
        engine: Engine,
        standard: Standard,
        holder: PolicyHolder,
        audit: AuditWriter,
        evaluator: IsolatedEvaluator,
        *,
        follow_interval_s: float = 2.0,
        started: Bootstrap | None = None,
    ) -> None:
        self.engine = engine
        self.standard = standard
        self.holder = holder
        self.audit = audit
        self.evaluator = evaluator
        self.store = VersionStore(engine, standard)
        self.follower = PolicyFollower(
            self.store,
            holder,
            follow_interval_s=follow_interval_s,
            adopted_seq=started.seq if started else 0,
            load_error=started.load_error if started else None,
        )
        self.log = AdminLog(audit, lambda: holder.current.version)
        self.reviews = Reviews(self.store, self.follower, self.log, evaluator)
        self.rollbacks = Rollbacks(self.store, self.follower, self.log)

    @staticmethod
    def bootstrap(
        engine: Engine, standard: Standard, policy_dir: Path, *, reviewed_by: str | None = None
    ) -> Bootstrap:
        return bootstrap(engine, standard, policy_dir, reviewed_by=reviewed_by)

    # --- reads ------------------------------------------------------------------------------

    def engine_for(self, version_id: str) -> PolicyEngine:
        return self.store.load(version_id)

    def list_versions(self) -> dict[str, Any]:
        return self.store.listing(self.holder.current.version)

    def get_version(self, version_id: str) -> dict[str, Any]:
        state = self.store.state(version_id)
        version = state.version
        intact = content_sha256(bytes(version.files)) == version.content_sha256
        return {**summary(state), "intact": intact, "files": version.file_map()}

    def diff(self, version_id: str, against: str | None) -> dict[str, Any]:
        try:
            new = self.store.load(version_id)
            old = (
                self.holder.current
                if against in (None, "current")
                else self.store.load(str(against))
            )
        except PolicyError as exc:
            raise _unloadable(version_id, exc) from exc
        return diff_policy_sets(old.policy_set, new.policy_set).to_json()

    async def record_read(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> int:
        """Reads of the administered state are audited too: the watchers are watched."""
        return await self.log.record(actor, action, detail)

    async def record_initial_import(self) -> None:
        await self.log.record(
            Actor(SYSTEM_AUTHOR, "-"), "initial", {"version_id": self.holder.current.version}
        )

    # --- changes ----------------------------------------------------------------------------

    async def submit(
        self, actor: Actor, files: Mapping[str, str | None], comment: str, base: str | None
    ) -> dict[str, Any]:
        return await self.reviews.submit(actor, files, comment, base)

    async def review(
        self, actor: Actor, version_id: str, *, approve: bool, comment: str
    ) -> dict[str, Any]:
        return await self.reviews.review(actor, version_id, approve=approve, comment=comment)

    async def rollback(self, actor: Actor, version_id: str, comment: str) -> dict[str, Any]:
        return await self.rollbacks.propose(actor, version_id, comment)

    async def freeze(self, actor: Actor, comment: str) -> dict[str, Any]:
        return await self.rollbacks.freeze(actor, comment)

    # --- evaluation in the isolated process -------------------------------------------------

    async def _files(self, version_id: str) -> dict[str, str]:
        try:
            return await run_in_threadpool(self.store.files, version_id)
        except PolicyError as exc:
            raise _unloadable(version_id, exc) from exc

    async def _evaluate(self, job: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            answer = await run_in_threadpool(self.evaluator.run, job)
        except EvaluationLimitExceeded as exc:
            raise limit_problem(exc, what) from exc
        if "problems" in answer:
            raise UnprocessableContent(
                f"{what}: the version does not load", policy_problems(answer["problems"])
            )
        if answer.get("error"):
            raise evaluation_failed(answer, what)
        return answer

    async def explain(
        self,
        version: str,
        request: Mapping[str, Any],
        records: list[dict[str, Any]],
        subjects: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        version_id = self.holder.current.version if version == "current" else version
        files = await self._files(version_id)
        job = {"job": "explain", "files": files, "request": dict(request), "records": records}
        answer = await self._evaluate(
            {**job, "subjects": None if subjects is None else dict(subjects)},
            "the explanation exceeded a limit",
        )
        if "invalid" in answer:
            reason = str(answer["invalid"])
            field = str(answer.get("field", "request"))
            raise UnprocessableContent(reason, [{"field": field, "reason": reason}])
        explained: dict[str, Any] = answer["explained"]
        return explained

    async def impact(self, version_id: str, limit: int) -> dict[str, Any]:
        """Replay recently audited exchange requests against a version; report what changes."""
        candidate = await self._files(version_id)
        current = await self._files(self.holder.current.version)
        documents = await run_in_threadpool(read_documents, self.engine, limit)
        job = {"job": "impact", "candidate": candidate, "current": current}
        return await self._evaluate(
            {**job, "documents": documents}, "the impact replay exceeded a limit"
        )

    # --- following publications -------------------------------------------------------------

    def refresh(self) -> bool:
        return self.follower.refresh()

    async def follow(self) -> None:
        await self.follower.follow()

    def readiness(self) -> dict[str, Any]:
        """For ``/readyz`` (public): the mode, the set in force, no details of a failure."""
        if self.follower.deny_all_mode:
            return {
                "ok": False,
                "mode": "deny-all",
                "version": self.holder.current.version,
                "error": "the published policy set does not load; every request is denied",
            }
        return {"ok": True, "mode": "enforcing", "version": self.holder.current.version}
