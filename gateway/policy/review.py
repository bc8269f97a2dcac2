"""Candidates and their review: maker-checker, with no exception that loosens.

A candidate is validated and its policy tests run in the isolated evaluation process (CPU
and memory limits; :mod:`gateway.policy.isolation`), then stored with its **base**: the
version in force when it was made (or the version its edits start from). Another
administrator approves or rejects it. Approving publishes it, unless its base is no longer
the version in force: then 409 ``/problems/stale-candidate`` (an approval must not silently
drop what was approved since; the administrator rebases and resubmits). The same review
approves a rollback (:mod:`gateway.policy.rollback`) and accepts the initial import from files
as reviewed (without publishing anything: it is in force already).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.auth.users import person_of
from gateway.errors import Conflict, Forbidden, NotFound, UnprocessableContent
from gateway.policy.admin_log import Actor, AdminLog
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.follower import PolicyFollower
from gateway.policy.isolation import EvaluationLimitExceeded, IsolatedEvaluator
from gateway.policy.store import (
    PolicyProposal,
    PolicyRepository,
    ProposalKind,
    PublicationKind,
    Verdict,
    VersionStatus,
)
from gateway.policy.versions import VersionStore

__all__ = ["Reviews", "StaleCandidate", "limit_problem", "policy_problems"]


class StaleCandidate(Conflict):
    slug = "stale-candidate"
    title = "Stale candidate"

    def __init__(self, version_id: str, base: str | None, in_force: str | None) -> None:
        super().__init__(
            f"{version_id} was proposed against {base or 'an unrecorded base'}, but "
            f"{in_force} is in force now: rebase it on the version in force and resubmit",
            extra={"base": base, "in_force": in_force},
        )


def policy_problems(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Problems of the evaluation process as the 422's ``errors``."""
    return [
        {
            "file": p.get("file"),
            "line": p.get("line"),
            "column": p.get("column"),
            "rule_id": p.get("rule_id"),
            "code": p.get("code"),
            "reason": p.get("message"),
            "field": f"files.{p['file']}" if p.get("file") else "files",
        }
        for p in problems
    ]


def limit_problem(exc: EvaluationLimitExceeded, what: str) -> UnprocessableContent:
    return UnprocessableContent(
        f"{what}: {exc}", [{"field": "files", "reason": str(exc), "limit": exc.limit}]
    )


def evaluation_failed(answer: Mapping[str, Any], what: str) -> UnprocessableContent:
    detail = str(answer.get("detail", "the evaluation failed"))
    return UnprocessableContent(f"{what}: {detail}", [{"field": "files", "reason": detail}])


class Reviews:
    def __init__(
        self,
        store: VersionStore,
        follower: PolicyFollower,
        log: AdminLog,
        evaluator: IsolatedEvaluator,
    ) -> None:
        self.store = store
        self.follower = follower
        self.log = log
        self.evaluator = evaluator

    def in_force(self) -> str:
        """The version the latest publication put in force (the database decides)."""
        current = self.store.current()
        return current[1] if current else self.follower.holder.current.version

    # --- candidates -------------------------------------------------------------------------

    async def submit(
        self, actor: Actor, files: Mapping[str, str | None], comment: str, base: str | None
    ) -> dict[str, Any]:
        in_force = await run_in_threadpool(self.in_force)
        base_id = in_force if base in (None, "current") else str(base)
        try:
            base_files = await run_in_threadpool(self.store.files, base_id)
        except NotFound:
            raise NotFound(f"no policy version {base_id} to start from") from None
        except PolicyError as exc:
            raise UnprocessableContent(
                f"the base {base_id} does not load", policy_problems(_as_json(exc))
            ) from exc
        if base is not None:
            merged = {**base_files, **{k: v for k, v in files.items() if v is not None}}
            bundle = {k: v for k, v in merged.items() if files.get(k, "") is not None}
        else:
            bundle = {k: v for k, v in files.items() if v is not None}
        if not any(path.startswith("tests/") for path in bundle):
            # The suites gate every change; a candidate cannot drop them to skip the gate.
            raise UnprocessableContent(
                "a candidate keeps at least one policy test suite (tests/NAME.yaml)",
                [{"field": "files", "reason": "no tests/*.yaml in the bundle"}],
            )
        answer = await self._evaluate(
            {"job": "check", "files": bundle, "base_files": base_files},
            "the candidate's policy tests exceeded a limit",
        )
        if "problems" in answer:
            problems = answer["problems"]
            raise UnprocessableContent(
                f"the candidate is invalid: {len(problems)} problem(s)", policy_problems(problems)
            )
        if answer.get("error"):
            raise evaluation_failed(answer, "the candidate could not be evaluated")
        if answer["failures"]:
            failures = [
                {
                    "field": f"files.{f['file']}",
                    "line": f["line"],
                    "case": f["case"],
                    "reason": f["reason"],
                }
                for f in answer["failures"]
            ]
            raise UnprocessableContent(
                f"the candidate's policy tests fail: {answer['tests']['failed']} failed", failures
            )
        version_id: str = answer["version_id"]
        if await run_in_threadpool(self._exists, version_id):
            raise Conflict(f"version {version_id} exists already")
        index = await self.log.record(
            actor, "submit", {"version_id": version_id, "base": base_id, "comment": comment[:500]}
        )
        try:
            await run_in_threadpool(self._store, actor, version_id, bundle, comment, base_id)
        except IntegrityError:
            raise Conflict(f"version {version_id} exists already") from None
        return {
            "version_id": version_id,
            "status": str(VersionStatus.CANDIDATE),
            "kind": str(ProposalKind.CANDIDATE),
            "base": base_id,
            "warnings": answer["warnings"],
            "tests": answer["tests"],
            "diff": answer["diff"],
            "audit_index": index,
        }

    async def _evaluate(self, job: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return await run_in_threadpool(self.evaluator.run, job)
        except EvaluationLimitExceeded as exc:
            raise limit_problem(exc, what) from exc

    def _exists(self, version_id: str) -> bool:
        with Session(self.store.engine) as session:
            return PolicyRepository(session).version(version_id) is not None

    def _store(
        self,
        actor: Actor,
        version_id: str,
        files: dict[str, str],
        comment: str,
        base_id: str,
    ) -> None:
        with Session(self.store.engine) as session, session.begin():
            repository = PolicyRepository(session)
            repository.add_version(version_id, files, actor.client_id, comment)
            repository.propose(
                version_id, ProposalKind.CANDIDATE, actor.client_id, comment, base_id
            )

    # --- reviews ----------------------------------------------------------------------------

    async def review(
        self, actor: Actor, version_id: str, *, approve: bool, comment: str
    ) -> dict[str, Any]:
        state = await run_in_threadpool(self.store.state, version_id)
        proposal = state.open
        if proposal is None:
            raise Conflict(f"version {version_id} is {state.status}, not a candidate")
        if proposal.proposed_by == actor.client_id:
            raise Forbidden("maker-checker: a candidate is reviewed by another administrator")
        if await run_in_threadpool(self._same_person, proposal.proposed_by, actor.client_id):
            raise Forbidden(
                "maker-checker: a candidate is reviewed by another person; "
                "this account and the proposer's belong to the same person"
            )
        publishes = approve and proposal.kind != ProposalKind.INITIAL
        candidate: PolicyEngine | None = None
        if publishes:
            in_force = await run_in_threadpool(self.in_force)
            if proposal.base_version_id != in_force:
                raise StaleCandidate(version_id, proposal.base_version_id, in_force)
            try:
                candidate = await run_in_threadpool(self.store.load, version_id)
            except PolicyError as exc:
                raise UnprocessableContent(
                    f"{version_id} does not load", policy_problems(_as_json(exc))
                ) from exc
        action = "approve" if approve else "reject"
        index = await self.log.record(
            actor,
            action,
            {
                "version_id": version_id,
                "kind": proposal.kind,
                "base": proposal.base_version_id,
                "comment": comment[:500],
            },
        )
        seq = await run_in_threadpool(self._store_review, actor, proposal, approve, comment)
        if seq is not None and candidate is not None:
            self.follower.adopt(seq, candidate)  # one reference swap: atomic for every request
        return {
            "version_id": version_id,
            "kind": proposal.kind,
            "status": "approved" if approve else "rejected",
            "published": seq is not None,
            "audit_index": index,
        }

    def _same_person(self, proposer: str, reviewer: str) -> bool:
        """Two console accounts of one person (``person_id``); clients are compared by id."""
        with Session(self.store.engine) as session:
            person = person_of(session, proposer)
            return person is not None and person == person_of(session, reviewer)

    def _store_review(
        self, actor: Actor, proposal: PolicyProposal, approve: bool, comment: str
    ) -> int | None:
        """Record the review; the publication's seq when it publishes."""
        verdict = Verdict.APPROVED if approve else Verdict.REJECTED
        with Session(self.store.engine) as session, session.begin():
            repository = PolicyRepository(session)
            try:
                # The write first: on SQLite it takes the write lock before anything is read.
                repository.add_review(proposal.proposal_id, verdict, actor.client_id, comment)
            except IntegrityError:
                raise Conflict(f"version {proposal.version_id} was reviewed meanwhile") from None
            if not approve or proposal.kind == ProposalKind.INITIAL:
                return None
            current = repository.current()
            if current is None or current.version_id != proposal.base_version_id:
                in_force = current.version_id if current else None
                raise StaleCandidate(proposal.version_id, proposal.base_version_id, in_force)
            kind = (
                PublicationKind.ROLLBACK
                if proposal.kind == ProposalKind.ROLLBACK
                else PublicationKind.APPROVAL
            )
            try:
                with session.begin_nested():
                    publication = repository.publish(
                        proposal.version_id,
                        kind,
                        actor.client_id,
                        after=current.seq,
                        proposal_id=proposal.proposal_id,
                    )
            except IntegrityError:
                # Another publication followed the same one first: this base is stale now.
                raise StaleCandidate(
                    proposal.version_id, proposal.base_version_id, "a newer version"
                ) from None
            return publication.seq


def _as_json(exc: PolicyError) -> list[dict[str, Any]]:
    return [p.to_json() for p in exc.problems]
