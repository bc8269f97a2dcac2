"""The narrow interface between the exchange path and the policy decision point (PDP).

The exchange service builds an :class:`AccessRequest`, asks :meth:`PolicyDecisionPoint.decide`
*before* any upstream call, then runs every upstream record through
:meth:`PolicyDecisionPoint.filter_record`. The PDP never does I/O: the exchange
hands it everything it needs (including the case the request names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "AccessRequest",
    "CaseContext",
    "Outcome",
    "PolicyDecisionPoint",
    "RecordDecision",
    "RequestDecision",
]


@dataclass(frozen=True)
class CaseContext:
    """The case named by ``X-Case-Number``, as the owning agency's system knows it."""

    case_id: str
    police_case_number: str | None
    court_case_number: str | None
    handling_agencies: frozenset[str]
    stage: str | None = None
    secrecy_mark: str | None = None


@dataclass(frozen=True)
class AccessRequest:
    requester_agency: str  # agency code, e.g. FY640104
    requester_kind: str  # agency kind, e.g. court
    resource: str
    purpose: str
    operator_id: str
    time: datetime
    case_number: str | None = None
    case: CaseContext | None = None  # resolved when case_number is given and found
    requested_fields: frozenset[str] | None = None  # None: every field the standard defines
    record_id: str | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    role: str | None = None


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    # Refuse in a way indistinguishable from "no such record" (neither confirm nor deny).
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RequestDecision:
    """Decided from the request alone, before any upstream call."""

    outcome: Outcome
    reason: str
    rule_ids: tuple[str, ...]
    policy_version: str
    # Fields that may be released at most (permitted ∩ requested, before record rules).
    permitted_fields: frozenset[str] = frozenset()
    # Requested fields that no permission grants.
    withheld_fields: frozenset[str] = frozenset()
    # If set, each record must belong to this case (case binding).
    bound_case_id: str | None = None
    # Opaque to the exchange: whatever the PDP needs to filter records quickly.
    plan: Any = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


@dataclass(frozen=True)
class RecordDecision:
    """What happens to one record: released with some fields, or withheld entirely."""

    released: bool
    record: Mapping[str, Any]  # the filtered (and masked) record; empty when not released
    withheld_fields: frozenset[str]
    masked_fields: frozenset[str]
    rule_ids: tuple[str, ...]
    reason: str = ""
    # A withheld record whose existence must not be revealed (neither confirm nor deny).
    conceal: bool = False


class PolicyDecisionPoint(Protocol):
    @property
    def version(self) -> str:
        """Content hash of the policy set in force."""

    def decide(self, request: AccessRequest) -> RequestDecision: ...

    def filter_record(
        self, decision: RequestDecision, request: AccessRequest, record: Mapping[str, Any]
    ) -> RecordDecision: ...

    def explain(self, request: AccessRequest, records: Sequence[Mapping[str, Any]]) -> Any: ...
