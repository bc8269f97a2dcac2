"""Administration of the lists: versions, maker-checker approval, atomic publish, rollback,
explain and impact analysis; and the follower that keeps every worker on the latest set.

Every change is an audit entry (kind ``policy_admin``), written before the change takes
effect: no unaudited change to what may be shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.models import AuditEntry
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.db import utcnow
from gateway.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, UnprocessableContent
from gateway.observability.context import current_request_id
from gateway.policy.bundle import bundle_from_directory, load_bundle
from gateway.policy.decision import AccessRequest, CaseContext
from gateway.policy.diff import diff_policy_sets
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.store import (
    PolicyRepository,
    PolicyVersion,
    PublicationKind,
    VersionStatus,
)
from gateway.standard import Standard

__all__ = ["Actor", "PolicyAdministration", "PolicyHolder"]

log = structlog.get_logger(__name__)

SYSTEM_AUTHOR = "system:files"


class PolicyHolder:
    """The policy set in force. Publishing swaps one reference: a request sees one set whole."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.current = engine


@dataclass(frozen=True)
class Actor:
    client_id: str
    agency: str


def _problems(exc: PolicyError) -> list[dict[str, Any]]:
    return [
        {
            "file": p.file,
            "line": p.line,
            "column": p.column,
            "rule_id": p.rule_id,
            "code": p.code,
            "reason": p.message,
            "field": f"files.{p.file}" if p.file else "files",
        }
        for p in exc.problems
    ]


class PolicyAdministration:
    def __init__(
        self,
        engine: Engine,
        standard: Standard,
        holder: PolicyHolder,
        audit: AuditWriter,
        *,
        follow_interval_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.standard = standard
        self.holder = holder
        self.audit = audit
        self.follow_interval_s = follow_interval_s
        self._engines: dict[str, PolicyEngine] = {holder.current.version: holder.current}
        # The publication (seq) the holder reflects. Swaps only ever move forward, so a
        # follower that read the publications just before a local approval or rollback
        # committed cannot put the older set back in force.
        self._adopted_seq = 0
        self._swap_lock = threading.Lock()

    # --- loading ----------------------------------------------------------------------------

    def engine_for(self, version_id: str) -> PolicyEngine:
        cached = self._engines.get(version_id)
        if cached is not None:
            return cached
        with Session(self.engine) as session:
            version = PolicyRepository(session).version(version_id)
            if version is None:
                raise NotFound(f"no policy version {version_id}")
            files = version.file_map()
        loaded = load_bundle(files, self.standard, run_tests=False).engine
        if len(self._engines) > 16:
            self._engines.clear()
            self._engines[self.holder.current.version] = self.holder.current
        self._engines[version_id] = loaded
        return loaded

    @staticmethod
    def bootstrap(
        engine: Engine, standard: Standard, policy_dir: Any, *, retry: bool = True
    ) -> tuple[PolicyEngine, bool]:
        """The set to start with: the latest publication, else the shipped files.

        Returns (engine, imported) where ``imported`` means the files were just recorded as
        the initial published version (the caller audits that).
        """
        with Session(engine) as session, session.begin():
            repository = PolicyRepository(session)
            current = repository.current()
            if current is not None:
                version = repository.version(current.version_id)
                assert version is not None
                return load_bundle(version.file_map(), standard, run_tests=False).engine, False
        files = bundle_from_directory(policy_dir)
        loaded = load_bundle(files, standard, run_tests=False).engine
        try:
            with Session(engine) as session, session.begin():
                repository = PolicyRepository(session)
                if repository.version(loaded.version) is None:
                    repository.add_version(
                        PolicyVersion(
                            version_id=loaded.version,
                            created_at=utcnow(),
                            author=SYSTEM_AUTHOR,
                            comment="shipped policy files",
                            status=str(VersionStatus.APPROVED),
                            files=orjson.dumps(files),
                        )
                    )
                if repository.current() is None:
                    repository.publish(loaded.version, PublicationKind.INITIAL, SYSTEM_AUTHOR)
        except IntegrityError:
            if not retry:
                raise
            # Another worker recorded them first; follow whatever it published.
            return PolicyAdministration.bootstrap(engine, standard, policy_dir, retry=False)
        return loaded, True

    # --- the audit trail of administration ----------------------------------------------

    async def _record(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> int:
        draft = EntryDraft(
            kind=AuditKind.POLICY_ADMIN,
            request_id=current_request_id(),
            requester_agency=actor.agency,
            client_id=actor.client_id,
            decision=Decision.ALLOW,
            status=200,
            policy_version=self.holder.current.version,
            action={"action": action, **detail},
        )
        try:
            return await self.audit.append(draft)
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the audit log cannot record this change; nothing changed"
            ) from exc

    # --- versions -----------------------------------------------------------------------

    def list_versions(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            repository = PolicyRepository(session)
            current = repository.current()
            versions = [_summary(v) for v in repository.versions()]
            publications = [
                {
                    "seq": p.seq,
                    "version_id": p.version_id,
                    "kind": p.kind,
                    "published_by": p.published_by,
                    "published_at": p.published_at.isoformat(),
                }
                for p in repository.publications(20)
            ]
        return {
            "current": current.version_id if current else self.holder.current.version,
            "versions": versions,
            "publications": publications,
        }

    def get_version(self, version_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            version = PolicyRepository(session).version(version_id)
            if version is None:
                raise NotFound(f"no policy version {version_id}")
            return {**_summary(version), "files": version.file_map()}

    def diff(self, version_id: str, against: str | None) -> dict[str, Any]:
        new = self.engine_for(version_id)
        old = self.holder.current if against in (None, "current") else self.engine_for(str(against))
        return diff_policy_sets(old.policy_set, new.policy_set).to_json()

    async def submit(
        self, actor: Actor, files: Mapping[str, str], comment: str, base: str | None
    ) -> dict[str, Any]:
        if base is not None:
            base_files = await run_in_threadpool(self._base_files, base)
            merged = {**base_files, **{k: v for k, v in files.items() if v is not None}}
            files = {k: v for k, v in merged.items() if files.get(k, "") is not None}
        if not any(path.startswith("tests/") for path in files):
            # The suites gate every change; a candidate cannot drop them to skip the gate.
            raise UnprocessableContent(
                "a candidate keeps at least one policy test suite (tests/NAME.yaml)",
                [{"field": "files", "reason": "no tests/*.yaml in the bundle"}],
            )
        try:
            loaded = await run_in_threadpool(load_bundle, files, self.standard, run_tests=True)
        except PolicyError as exc:
            raise UnprocessableContent(
                f"the candidate is invalid: {len(exc.problems)} problem(s)", _problems(exc)
            ) from exc
        if loaded.suite is not None and not loaded.suite.ok:
            failures = [
                {
                    "field": f"files.{case.file}",
                    "line": case.line,
                    "case": case.name,
                    "reason": "; ".join(case.failures),
                }
                for case in loaded.suite.cases
                if not case.passed
            ][:50]
            raise UnprocessableContent(
                f"the candidate's policy tests fail: {loaded.suite.failed} failed", failures
            )
        version_id = loaded.engine.version
        index = await self._record(
            actor, "submit", {"version_id": version_id, "comment": comment[:500]}
        )
        try:
            await run_in_threadpool(self._store_candidate, actor, version_id, files, comment)
        except IntegrityError:
            raise Conflict(f"version {version_id} exists already") from None
        self._engines[version_id] = loaded.engine
        diff = diff_policy_sets(self.holder.current.policy_set, loaded.engine.policy_set)
        return {
            "version_id": version_id,
            "status": str(VersionStatus.CANDIDATE),
            "warnings": [str(w) for w in loaded.engine.policy_set.warnings],
            "tests": None
            if loaded.suite is None
            else {"passed": loaded.suite.passed, "failed": loaded.suite.failed},
            "diff": diff.to_json(),
            "audit_index": index,
        }

    def _base_files(self, base: str) -> dict[str, str]:
        version_id = self.holder.current.version if base == "current" else base
        with Session(self.engine) as session:
            version = PolicyRepository(session).version(version_id)
            if version is None:
                raise NotFound(f"no policy version {version_id} to start from")
            return version.file_map()

    def _store_candidate(
        self, actor: Actor, version_id: str, files: Mapping[str, str], comment: str
    ) -> None:
        with Session(self.engine) as session, session.begin():
            PolicyRepository(session).add_version(
                PolicyVersion(
                    version_id=version_id,
                    created_at=utcnow(),
                    author=actor.client_id,
                    comment=comment,
                    status=str(VersionStatus.CANDIDATE),
                    files=orjson.dumps(dict(files)),
                )
            )

    async def review(
        self, actor: Actor, version_id: str, *, approve: bool, comment: str
    ) -> dict[str, Any]:
        version = await run_in_threadpool(self._version_or_404, version_id)
        if version.status != VersionStatus.CANDIDATE:
            raise Conflict(f"version {version_id} is {version.status}, not a candidate")
        if version.author == actor.client_id:
            raise Forbidden("maker-checker: a candidate is reviewed by another administrator")
        candidate = await run_in_threadpool(self.engine_for, version_id)
        action = "approve" if approve else "reject"
        index = await self._record(
            actor, action, {"version_id": version_id, "comment": comment[:500]}
        )
        seq = await run_in_threadpool(self._store_review, actor, version_id, approve, comment)
        if seq is not None:
            self._adopt(seq, candidate)  # one reference swap: atomic for every request
        return {
            "version_id": version_id,
            "status": "approved" if approve else "rejected",
            "published": approve,
            "audit_index": index,
        }

    def _version_or_404(self, version_id: str) -> PolicyVersion:
        with Session(self.engine) as session:
            version = PolicyRepository(session).version(version_id)
        if version is None:
            raise NotFound(f"no policy version {version_id}")
        return version

    def _store_review(
        self, actor: Actor, version_id: str, approve: bool, comment: str
    ) -> int | None:
        """Record the review; the publication's seq when approved."""
        status = VersionStatus.APPROVED if approve else VersionStatus.REJECTED
        with Session(self.engine) as session, session.begin():
            repository = PolicyRepository(session)
            if not repository.review(version_id, status, actor.client_id, comment):
                raise Conflict(f"version {version_id} was reviewed meanwhile")
            if not approve:
                return None
            return repository.publish(version_id, PublicationKind.APPROVAL, actor.client_id).seq

    async def rollback(self, actor: Actor, version_id: str, comment: str) -> dict[str, Any]:
        version = await run_in_threadpool(self._version_or_404, version_id)
        if version.status != VersionStatus.APPROVED:
            raise Conflict(
                f"only approved versions can be restored; {version_id} is {version.status}"
            )
        if version_id == self.holder.current.version:
            raise Conflict(f"{version_id} is already in force")
        restored = await run_in_threadpool(self.engine_for, version_id)
        index = await self._record(
            actor,
            "rollback",
            {
                "version_id": version_id,
                "from": self.holder.current.version,
                "comment": comment[:500],
            },
        )
        seq = await run_in_threadpool(
            self._publish, version_id, PublicationKind.ROLLBACK, actor.client_id
        )
        self._adopt(seq, restored)
        return {"version_id": version_id, "published": True, "audit_index": index}

    def _publish(self, version_id: str, kind: PublicationKind, by: str) -> int:
        with Session(self.engine) as session, session.begin():
            return PolicyRepository(session).publish(version_id, kind, by).seq

    def _adopt(self, seq: int, engine: PolicyEngine) -> bool:
        """Put ``engine`` in force for publication ``seq`` unless a later one is; True if
        the set in force changed."""
        with self._swap_lock:
            if seq <= self._adopted_seq:
                return False
            self._adopted_seq = seq
            previous, self.holder.current = self.holder.current, engine
        return previous.version != engine.version

    async def record_read(self, actor: Actor, action: str, detail: Mapping[str, Any]) -> int:
        """Reads of the administered state are audited too: the watchers are watched."""
        return await self._record(actor, action, detail)

    async def record_initial_import(self) -> None:
        await self._record(
            Actor(SYSTEM_AUTHOR, "-"), "initial", {"version_id": self.holder.current.version}
        )

    # --- following publications from other workers -------------------------------------

    def _latest_publication(self) -> tuple[int, str] | None:
        with Session(self.engine) as session:
            current = PolicyRepository(session).current()
            return None if current is None else (current.seq, current.version_id)

    def refresh(self) -> bool:
        """Adopt the latest publication if it is not the set in force; True if it swapped."""
        latest = self._latest_publication()
        if latest is None or latest[0] <= self._adopted_seq:
            return False
        seq, version_id = latest
        in_force = self.holder.current
        engine = in_force if version_id == in_force.version else self.engine_for(version_id)
        swapped = self._adopt(seq, engine)
        if swapped:
            log.info("policy set swapped", version=version_id)
        return swapped

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(self.follow_interval_s)
            try:
                await run_in_threadpool(self.refresh)
            except (SQLAlchemyError, PolicyError) as exc:
                log.error("cannot follow policy publications", error=str(exc))

    # --- impact analysis ------------------------------------------------------------------

    def impact(self, version_id: str, limit: int) -> dict[str, Any]:
        """Replay recently audited exchange requests against a candidate; report what changes.

        Audit entries keep requests, not records, so this replays request-level decisions
        (permissions, purposes, fields, case binding as it was decided, request-level
        negative-list items). Record-level conditions are reported as not replayable.
        """
        candidate = self.engine_for(version_id)
        current = self.holder.current
        with Session(self.engine) as session:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.kind == str(AuditKind.EXCHANGE))
                .where(AuditEntry.decision.in_([str(Decision.ALLOW), str(Decision.DENY)]))
                .order_by(AuditEntry.idx.desc())
                .limit(limit)
            ).all()
            documents = [(row.idx, orjson.loads(row.leaf)) for row in rows]
        changes: list[dict[str, Any]] = []
        replayed = skipped = 0
        for index, doc in documents:
            request = self._replayable(doc)
            if request is None:
                skipped += 1
                continue
            replayed += 1
            before, after = current.decide(request), candidate.decide(request)
            if before.outcome != after.outcome or before.permitted_fields != after.permitted_fields:
                changes.append(
                    {
                        "index": index,
                        "requester_agency": request.requester_agency,
                        "resource": request.resource,
                        "purpose": request.purpose,
                        "before": {
                            "outcome": str(before.outcome),
                            "fields": sorted(before.permitted_fields),
                            "rule_ids": list(before.rule_ids),
                        },
                        "after": {
                            "outcome": str(after.outcome),
                            "fields": sorted(after.permitted_fields),
                            "rule_ids": list(after.rule_ids),
                        },
                    }
                )
        return {
            "version_id": version_id,
            "against": current.version,
            "replayed": replayed,
            "skipped": skipped,
            "changed": len(changes),
            "changes": changes,
            "note": "request-level decisions only: the audit log keeps no record values",
        }

    def _replayable(self, doc: Mapping[str, Any]) -> AccessRequest | None:
        requester = doc.get("requester") or {}
        agency, resource, purpose = requester.get("agency"), doc.get("resource"), doc.get("purpose")
        if not (agency and resource and purpose) or not self.standard.has_resource(resource):
            return None
        try:
            kind = self.standard.agency(agency).kind
        except KeyError:
            return None
        fields = doc.get("fields") or {}
        requested = set(fields.get("released", [])) | set(fields.get("withheld", []))
        case = None
        if doc.get("case_number"):
            # Case binding as it was then: allowed requests passed it (the requester handled
            # the case, in a stage the purpose is valid in), denied ones are replayed as if
            # the requester did not handle the case.
            allowed = doc.get("decision") == "allow"
            handled = {agency} if allowed else set()
            known = {p.code: p.stages for p in self.standard.purposes}
            stages = known.get(purpose, ())
            case = CaseContext(
                case_id=_case_id(doc),
                police_case_number=None,
                court_case_number=doc["case_number"],
                handling_agencies=frozenset(handled),
                stage=stages[0] if allowed and stages else None,
            )
        return AccessRequest(
            requester_agency=agency,
            requester_kind=kind,
            resource=resource,
            purpose=purpose,
            operator_id=requester.get("operator_id") or "replay",
            time=datetime.now(UTC),
            case_number=doc.get("case_number"),
            case=case,
            requested_fields=frozenset(requested) or None,
        )


def _case_id(doc: Mapping[str, Any]) -> str:
    return "replay-" + hashlib.sha256(str(doc.get("case_number")).encode()).hexdigest()[:12]


def _summary(version: PolicyVersion) -> dict[str, Any]:
    return {
        "version_id": version.version_id,
        "status": version.status,
        "author": version.author,
        "created_at": version.created_at.isoformat(),
        "comment": version.comment,
        "reviewer": version.reviewer,
        "reviewed_at": version.reviewed_at.isoformat() if version.reviewed_at else None,
        "review_comment": version.review_comment,
    }
