"""The narrow interface between the exchange path and the policy decision point (PDP).

The exchange service builds an :class:`AccessRequest`, asks :meth:`PolicyDecisionPoint.decide`
*before* any upstream call, then runs every upstream record through
:meth:`PolicyDecisionPoint.filter_record`. The PDP never does I/O: the exchange
hands it everything it needs: the case the request names, and the records of the subjects
(persons, cases) that each record refers to (:class:`SubjectRecords`), because protection
belongs to a subject, not to one resource. The decision says which subjects it needs.
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
    "Grant",
    "Outcome",
    "PolicyDecisionPoint",
    "RecordDecision",
    "RequestDecision",
    "SubjectRecords",
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
    # The whole case record: the subject of every record that belongs to the case.
    record: Mapping[str, Any] | None = None
    # Procuratorates stationed at a prison of the case (派驻监所检察): parties of the case for
    # the purposes whose standard entry says ``stationed_supervision``.
    stationed_procuratorates: frozenset[str] = frozenset()

    def flag(self, name: str) -> bool | None:
        """A boolean of the case record (``closed_trial``, ``work_secret``), None if unknown."""
        value = None if self.record is None else self.record.get(name)
        return value if isinstance(value, bool) else None

    def as_record(self) -> Mapping[str, Any]:
        """The case as a subject record: the whole record if known, else what is known here."""
        if self.record is not None:
            return self.record
        return {
            "case_id": self.case_id,
            "police_case_number": self.police_case_number,
            "court_case_number": self.court_case_number,
            "handling_agencies": sorted(self.handling_agencies),
            "stage": self.stage,
            "secrecy_mark": self.secrecy_mark,
        }


@dataclass(frozen=True)
class Grant:
    """A live conditional-sharing grant (有条件共享), as the owning agency's reviewer approved it.

    It satisfies the sharing conditions of ``fields`` of ``resource`` for exactly this scope:
    the requester agency, the purpose, the bound case (``case_id``), the records
    (``record_ids``; None: every record of the case) and the window ``[valid_from,
    valid_until)``. It is never wider: see :meth:`covers`. The negative list still wins.
    """

    grant_id: str
    requester_agency: str
    resource: str
    fields: frozenset[str]
    purpose: str
    case_id: str
    record_ids: frozenset[str] | None
    valid_from: datetime
    valid_until: datetime

    def covers(self, request: AccessRequest) -> bool:
        """The request is inside this grant's scope (its case and records included).

        A grant for named records covers a fetch of one of them, never a search.
        """
        case = request.case
        return (
            self.requester_agency == request.requester_agency
            and self.resource == request.resource
            and self.purpose == request.purpose
            and case is not None
            and case.case_id == self.case_id
            and self.valid_from <= request.time < self.valid_until
            and (self.record_ids is None or request.record_id in self.record_ids)
        )


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
    # X-Approval-Reference: the approval a 挂牌督办 request acts under (督办批准文号).
    approval_reference: str | None = None
    # Live conditional-sharing grants of the requester for this resource (the PDP uses only
    # those that cover the request: Grant.covers).
    grants: tuple[Grant, ...] = ()
    # How the data reaches the requester: "read" (it asks: the exchange, searches, grants) or
    # "delivery" (a delivery or copy is decided for its recipient: a document the law has sent
    # to it, 抄送). A permission may apply to one only (``request.channel`` in its condition).
    channel: str = "read"


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
    # If set, each record must belong to this case (case binding), or be reached by a rule.
    bound_case_id: str | None = None
    # Opaque to the exchange: whatever the PDP needs to filter records quickly.
    plan: Any = None
    # Requested fields masked for every record (the request-level masks).
    masked_fields: frozenset[str] = frozenset()
    # Fields this caller would receive in the clear for any record, requested or not: a search
    # may filter only on these (a filter is a read).
    clear_fields: frozenset[str] = frozenset()
    # Subject resource types (e.g. person, case) whose records filter_record needs for the
    # records' references; empty: none.
    subject_resources: frozenset[str] = frozenset()
    # filter_record needs the bound case's persons (SubjectRecords.case_persons).
    needs_case_persons: bool = False
    # Every released record belongs to the bound case: a search may ask the upstream for
    # that case's records only.
    records_bound: bool = False
    # Conditional-sharing grants that released a field of this decision (their ids); set for
    # a concealed (NOT_FOUND) decision too, so that its empty page looks like any other.
    grant_ids: tuple[str, ...] = ()

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


@dataclass
class SubjectRecords:
    """Subject records the exchange resolved for one request, as the standard has them.

    ``records`` maps ``(resource, record id)`` to the record, or None when the owner's system
    has no such record (or it could not be checked): a record referring to an unresolved
    subject is withheld and concealed (fail closed). ``case_persons`` maps a case id to every
    person record of that case.
    """

    records: dict[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)
    case_persons: dict[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def get(self, resource: str, record_id: str) -> Mapping[str, Any] | None:
        return self.records.get((resource, record_id))

    def add(self, resource: str, id_field: str, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records:
            record_id = record.get(id_field)
            if isinstance(record_id, str):
                self.records[(resource, record_id)] = record


class PolicyDecisionPoint(Protocol):
    @property
    def version(self) -> str:
        """Content hash of the policy set in force."""

    def decide(self, request: AccessRequest) -> RequestDecision: ...

    def filter_record(
        self,
        decision: RequestDecision,
        request: AccessRequest,
        record: Mapping[str, Any],
        subjects: SubjectRecords | None = None,
    ) -> RecordDecision: ...

    def explain(
        self,
        request: AccessRequest,
        records: Sequence[Mapping[str, Any]],
        subjects: SubjectRecords | None = None,
    ) -> Any: ...
