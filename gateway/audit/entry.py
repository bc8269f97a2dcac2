"""What one audit entry says, and its leaf bytes (RFC 8785 canonical JSON).

The leaf is the record of truth: the table's columns are a projection of it for
queries, and the verifier checks the two agree. Values never appear in an entry,
only field names; the released body is represented by its SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from gateway.audit.leaf import leaf_bytes

__all__ = ["AuditKind", "Decision", "EntryDraft", "entry_document", "parse_time"]


class AuditKind(StrEnum):
    EXCHANGE = "exchange"
    POLICY_ADMIN = "policy_admin"
    AUDIT_QUERY = "audit_query"


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ERROR = "error"
    INVALID = "invalid"


@dataclass
class EntryDraft:
    """An entry being filled in along the request path; sealed by the writer."""

    kind: AuditKind
    request_id: str | None = None
    requester_agency: str | None = None
    client_id: str | None = None
    operator_id: str | None = None
    owner_agency: str | None = None
    resource: str | None = None
    record_ids: list[str] = field(default_factory=list)
    purpose: str | None = None
    case_number: str | None = None
    decision: Decision = Decision.ERROR
    status: int = 500
    released: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    policy_version: str | None = None
    upstream_status: int | None = None
    upstream_latency_us: int | None = None
    body_sha256: str | None = None
    detail: str | None = None
    action: Mapping[str, Any] | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


def _sorted_unique(values: Sequence[str]) -> list[str]:
    return sorted(set(values))


def entry_document(index: int, draft: EntryDraft) -> dict[str, Any]:
    """The JSON document whose canonical bytes are leaf ``index``."""
    document: dict[str, Any] = {
        "index": index,
        "time": draft.time.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": str(draft.kind),
        "request_id": draft.request_id,
        "requester": {
            "agency": draft.requester_agency,
            "client_id": draft.client_id,
            "operator_id": draft.operator_id,
        },
        "owner_agency": draft.owner_agency,
        "resource": draft.resource,
        "record_ids": list(draft.record_ids),
        "purpose": draft.purpose,
        "case_number": draft.case_number,
        "decision": str(draft.decision),
        "status": draft.status,
        "fields": {
            "released": _sorted_unique(draft.released),
            "withheld": _sorted_unique(draft.withheld),
            "masked": _sorted_unique(draft.masked),
        },
        "rule_ids": _sorted_unique(draft.rule_ids),
        "policy_version": draft.policy_version,
        "upstream": {"status": draft.upstream_status, "latency_us": draft.upstream_latency_us},
        "body_sha256": draft.body_sha256,
        "detail": draft.detail,
    }
    if draft.action is not None:
        document["action"] = dict(draft.action)
    return document


def encode_leaf(index: int, draft: EntryDraft) -> tuple[dict[str, Any], bytes]:
    document = entry_document(index, draft)
    return document, leaf_bytes(document)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
