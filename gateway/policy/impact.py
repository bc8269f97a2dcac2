"""Impact analysis: replay recently audited exchange requests against a version.

Audit entries keep requests, not records, so this replays request-level decisions
(permissions, purposes, fields, case binding as it was decided, request-level negative-list
items). Record-level conditions are reported as not replayable.

:func:`read_documents` runs in the gateway (it reads the audit log); :func:`replay` runs in
the isolated evaluation process (:mod:`gateway.policy.isolation`), since it evaluates the
conditions of a version nobody has approved yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.audit.entry import AuditKind, Decision
from gateway.audit.models import AuditEntry
from gateway.policy.decision import AccessRequest, CaseContext
from gateway.policy.engine import PolicyEngine
from gateway.standard import Standard

__all__ = ["read_documents", "replay"]

# What a replay reads of an entry: nothing else of the log leaves the gateway's process.
_REPLAYED_KEYS = ("requester", "resource", "purpose", "case_number", "decision", "fields")


def read_documents(engine: Engine, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """The latest ``limit`` allowed or denied exchange entries, newest first."""
    with Session(engine) as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.kind == str(AuditKind.EXCHANGE))
            .where(AuditEntry.decision.in_([str(Decision.ALLOW), str(Decision.DENY)]))
            .order_by(AuditEntry.idx.desc())
            .limit(limit)
        ).all()
        documents = []
        for row in rows:
            document = orjson.loads(row.leaf)
            documents.append((row.idx, {k: document.get(k) for k in _REPLAYED_KEYS}))
    return documents


def replay(
    current: PolicyEngine,
    candidate: PolicyEngine,
    standard: Standard,
    documents: Sequence[tuple[int, Mapping[str, Any]]],
) -> dict[str, Any]:
    changes: list[dict[str, Any]] = []
    replayed = skipped = 0
    for index, doc in documents:
        request = _replayable(doc, standard)
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
        "version_id": candidate.version,
        "against": current.version,
        "replayed": replayed,
        "skipped": skipped,
        "changed": len(changes),
        "changes": changes,
        "note": "request-level decisions only: the audit log keeps no record values",
    }


def _replayable(doc: Mapping[str, Any], standard: Standard) -> AccessRequest | None:
    requester = doc.get("requester") or {}
    agency, resource, purpose = requester.get("agency"), doc.get("resource"), doc.get("purpose")
    if not (agency and resource and purpose) or not standard.has_resource(resource):
        return None
    try:
        kind = standard.agency(agency).kind
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
        known = {p.code: p.stages for p in standard.purposes}
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
