"""What one audit entry says, and its leaf bytes (RFC 8785 canonical JSON).

The leaf is the record of truth: the table's columns are a projection of it for
queries, and the verifier checks the two agree. Values never appear in an entry,
only field names; the released body is represented by its SHA-256.

Keys added after the first release are optional: a document has them only when the entry
carries them (``case_numbers``, ``search``, ``aggregate``), so every leaf written before them
encodes, hashes and verifies exactly as it did.

* ``case_numbers``: the police (``police``) and court (``court``) case numbers of the case the
  request was bound to, as its case record names them; a regulator finds the request by either.
* ``search``: a search's criteria without their values: the filter names, each with a keyed
  hash (HMAC-SHA-256 under the deployment's audit criteria key, 128 bits, hex) of its value,
  the ``limit`` and whether a ``cursor`` was used. Equal values give equal hashes, so a caller
  who tries many values shows as many hashes; the log never holds the values.
* ``aggregate``: one entry standing for many requests of one kind (unauthenticated ones, failed
  token requests) from one source in one interval: ``source``, ``route``, ``from``/``until``,
  ``count`` and counts by outcome.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from gateway.audit.leaf import LeafEncodingError, leaf_bytes

__all__ = [
    "CONCEALED",
    "AuditKind",
    "Decision",
    "EntryDraft",
    "SearchCriteria",
    "criteria_hash",
    "entry_document",
    "parse_time",
]


class AuditKind(StrEnum):
    EXCHANGE = "exchange"
    POLICY_ADMIN = "policy_admin"
    AUDIT_QUERY = "audit_query"
    # A refused request of an identified caller on a route no other kind covers (405s,
    # /v1/me).
    ACCESS = "access"
    # Failed token requests, one entry per claimed client id, source and interval.
    TOKEN = "token"  # noqa: S105 - an entry kind, not a secret
    # Unauthenticated requests, one entry per source, route and interval.
    ANONYMOUS = "anonymous"
    # Client registrations by the operator's CLI.
    CLIENT_ADMIN = "client_admin"
    # Conditional sharing: apply, approve, refuse, revoke, expire (and their refusals).
    SHARING = "sharing"
    # A delivery's events (协同办案): created, push attempts, delivered, answered, extended,
    # failed; one entry per event, its index in the delivery's events.
    DELIVERY = "delivery"


# The detail of a concealed request (decision deny, answered as if nothing existed): the
# exchange writes it, the statistics count it.
CONCEALED = "concealed: neither confirm nor deny"


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ERROR = "error"
    INVALID = "invalid"


def criteria_hash(key: bytes, name: str, value: str) -> str:
    """The keyed hash a search entry holds for ``name=value`` (128 bits of HMAC-SHA-256)."""
    message = name.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class SearchCriteria:
    """A search's criteria as the request gave them; only their keyed hashes are stored."""

    filters: Mapping[str, str]
    limit: int
    cursor: bool

    def sealed(self, key: bytes) -> dict[str, Any]:
        return {
            "filters": {name: criteria_hash(key, name, v) for name, v in self.filters.items()},
            "limit": self.limit,
            "cursor": self.cursor,
        }


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
    # Optional keys (see the module docstring): absent from the leaf when None.
    case_numbers: Mapping[str, str] | None = None
    search: SearchCriteria | None = None
    aggregate: Mapping[str, Any] | None = None

    def case_refs(self) -> set[str]:
        """Every case number this entry may be found by (``audit_case_refs``)."""
        refs = set((self.case_numbers or {}).values())
        if self.case_number is not None:
            refs.add(self.case_number)
        return refs


def _sorted_unique(values: Sequence[str]) -> list[str]:
    return sorted(set(values))


def entry_document(
    index: int, draft: EntryDraft, criteria_key: bytes | None = None
) -> dict[str, Any]:
    """The JSON document whose canonical bytes are leaf ``index``.

    ``criteria_key`` seals a search's criteria; a draft with criteria and no key is refused.
    """
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
    if draft.case_numbers:
        document["case_numbers"] = dict(sorted(draft.case_numbers.items()))
    if draft.search is not None:
        if criteria_key is None:
            raise LeafEncodingError("search: no audit criteria key to seal the criteria with")
        document["search"] = draft.search.sealed(criteria_key)
    if draft.aggregate is not None:
        document["aggregate"] = dict(draft.aggregate)
    return document


def encode_leaf(
    index: int, draft: EntryDraft, criteria_key: bytes | None = None
) -> tuple[dict[str, Any], bytes]:
    document = entry_document(index, draft, criteria_key)
    return document, leaf_bytes(document)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
