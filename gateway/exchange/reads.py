"""One allowed (or concealed) read for :class:`~gateway.exchange.service.ExchangeService`: a
fetch by id or a search page, each record filtered by the policy and validated, and what the
audit entry and the body say about it.

The service decides the request (authentication, headers, case, policy); :class:`Read` does
the upstream call and the per-record work, and the helpers here turn agency failures into the
caller's problems without ever passing an agency's own text on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from adapters.base import AdapterError, MappingError
from gateway.audit.entry import CONCEALED, Decision, EntryDraft
from gateway.errors import Forbidden, GatewayError, NotFound, UpstreamError, UpstreamTimeout
from gateway.exchange.paging import FilledPage, UpstreamPages, fill_page, first_ask
from gateway.exchange.request import SearchQuery
from gateway.exchange.upstream import Clearance, UpstreamCall
from gateway.policy.decision import (
    AccessRequest,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    RequestDecision,
    SubjectRecords,
)
from gateway.standard import ResourceType

if TYPE_CHECKING:
    from gateway.exchange.service import ExchangeService

__all__ = [
    "RECORD_SPECIFIC",
    "Read",
    "ReadOutcome",
    "auditable",
    "not_found",
    "note_upstream_failure",
    "upstream_problem",
]

# The same logger name as before this module was split from the service: operators filter on it.
log = structlog.get_logger("gateway.exchange.service")

# Agency answers that may be about the record itself (a refusal, a 4xx): for a record the
# caller might not have been allowed to see, they answer like the concealed case.
RECORD_SPECIFIC = frozenset({"upstream_4xx", "upstream_refused"})
_NO_MATCH = RecordDecision(False, {}, frozenset(), frozenset(), (), "not a match", True)


@dataclass
class ReadOutcome:
    status: int
    body: dict[str, Any] | None = None
    error: GatewayError | None = None
    released: set[str] = field(default_factory=set)
    withheld: set[str] = field(default_factory=set)
    masked: set[str] = field(default_factory=set)
    rule_ids: set[str] = field(default_factory=set)


def auditable(text: str) -> str:
    """Caller-chosen text as the audit log can hold it: 64 characters at most, and no NUL.

    PostgreSQL text refuses NUL, and the writer commits entries in batches: one such entry
    would fail its whole batch (503 for every request in it).
    """
    return text[:64].replace("\x00", "\N{REPLACEMENT CHARACTER}")


def not_found(resource: str, record_id: str) -> NotFound:
    # One wording for "really absent" and "concealed": neither confirm nor deny.
    return NotFound(f"no {resource} record {record_id!r} is available to you")


def upstream_problem(exc: AdapterError) -> GatewayError:
    """The caller's problem for an agency failure: a fixed text, never the agency's own."""
    if exc.category == "upstream_timeout":
        return UpstreamTimeout(exc.agency, "the agency system did not answer in time")
    extra: dict[str, Any] = {"category": exc.category}
    if isinstance(exc, MappingError) and exc.field_name:
        extra["field"] = exc.field_name
    what = {
        "upstream_unavailable": "the agency system cannot be reached",
        "upstream_circuit_open": "the agency system cannot be reached (circuit open after "
        "repeated failures: it is tried again shortly)",
        "upstream_invalid": "the agency system's answer could not be used",
    }.get(exc.category, "the agency system answered with an error")
    return UpstreamError(exc.agency, what + "; nothing was released", **extra)


def note_upstream_failure(draft: EntryDraft, exc: AdapterError, latency_us: int | None) -> None:
    """The entry records the category and status; the operator's log has the agency's text."""
    draft.upstream_status, draft.upstream_latency_us = exc.upstream_status, latency_us
    draft.detail = exc.category
    log.warning(
        "agency system error",
        agency=exc.agency,
        category=exc.category,
        upstream_status=exc.upstream_status,
        message=exc.message[:500],
    )


def _matches(record: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """The record really has the filtered values (an upstream may match loosely)."""
    return all(str(record.get(name)) == value for name, value in filters.items())


@dataclass
class Read:
    """One allowed (or concealed) read: a fetch by id or a search page."""

    service: ExchangeService
    access: AccessRequest
    decision: RequestDecision
    clearance: Clearance
    resource: ResourceType
    subjects: SubjectRecords
    draft: EntryDraft
    pdp: PolicyDecisionPoint

    @property
    def concealed(self) -> bool:
        return self.decision.outcome is Outcome.NOT_FOUND

    def _conceal(self, rule_ids: Sequence[str] = ()) -> None:
        self.draft.decision = Decision.DENY
        self.draft.detail = (
            CONCEALED if self.draft.detail is None else f"{CONCEALED} ({self.draft.detail})"
        )
        if rule_ids:
            self.draft.rule_ids = sorted({*self.draft.rule_ids, *rule_ids})

    def _lists(self, outcome: ReadOutcome) -> dict[str, list[str]]:
        # The body's lists come from the request-level decision only: identical whatever
        # records the page holds (or conceals). The audit entry keeps the per-record truth.
        outcome.withheld |= self.decision.withheld_fields
        return {
            "withheld": sorted(self.decision.withheld_fields),
            "masked": sorted(self.decision.masked_fields),
        }

    def _examine(self, record: Mapping[str, Any]) -> RecordDecision:
        verdict = self.pdp.filter_record(self.decision, self.access, record, self.subjects)
        if verdict.released:
            self.service.validate(self.resource, [record])
        return verdict

    async def fetch(self, record_id: str) -> ReadOutcome:
        resource, draft = self.resource, self.draft
        call = UpstreamCall()
        try:
            record = await self.service.adapters.fetch(
                self.clearance, resource.owner, resource.name, record_id, call
            )
        except AdapterError as exc:
            note_upstream_failure(draft, exc, call.latency_us)
            if self.concealed or exc.category in RECORD_SPECIFIC:
                self._conceal()
                raise not_found(resource.name, record_id) from exc
            raise upstream_problem(exc) from exc
        draft.upstream_status, draft.upstream_latency_us = call.status, call.latency_us
        if self.concealed:
            # Concealed before the call; the call still ran so timing matches a real miss.
            self._conceal()
            raise not_found(resource.name, record_id)
        if record is None:
            draft.decision = Decision.ALLOW
            raise not_found(resource.name, record_id)
        await self.service.subjects.complete(self.subjects, self.decision, resource, [record])
        verdict = self._examine(record)
        outcome = ReadOutcome(status=200, rule_ids=set(self.decision.rule_ids))
        _account(outcome, verdict)
        if not verdict.released:
            draft.decision = Decision.DENY
            draft.rule_ids = sorted(outcome.rule_ids)
            if verdict.conceal:
                self._conceal()
                raise not_found(resource.name, record_id)
            raise Forbidden(
                f"denied: {verdict.reason or 'the record is withheld'}",
                extra={"rule_ids": list(verdict.rule_ids)},
            )
        draft.decision = Decision.ALLOW
        outcome.body = {
            "resource": resource.name,
            "id": record_id,
            "record": dict(verdict.record),
            **self._lists(outcome),
            "policy_version": self.decision.policy_version,
        }
        return outcome

    def _upstream_filters(self, search: SearchQuery) -> dict[str, str]:
        """The caller's filters, plus the bound case where the agency's search takes it."""
        filters = dict(search.filters)
        bound = self.decision.bound_case_id
        resource = self.resource
        if (
            self.decision.records_bound
            and bound is not None
            and "case_id" in resource.filterable_fields
            and self.service.adapters.can_filter(resource.owner, resource.name, "case_id")
        ):
            # No record of another case is even fetched. A caller's own case_id filter for
            # another case still gets nothing: the records come back and do not match it.
            filters["case_id"] = bound
        return filters

    async def search(self, search: SearchQuery) -> ReadOutcome:
        resource, draft, decision = self.resource, self.draft, self.decision
        service = self.service

        def examine(record: Mapping[str, Any]) -> RecordDecision:
            if not _matches(record, search.filters):
                return _NO_MATCH
            return self._examine(record)

        async def before(records: Sequence[Mapping[str, Any]]) -> None:
            await service.subjects.complete(self.subjects, decision, resource, records)

        outcome = ReadOutcome(status=200, rule_ids=set(decision.rule_ids))
        fetch = UpstreamPages(
            service.adapters, self.clearance, resource, self._upstream_filters(search)
        )
        refused_upstream = False
        try:
            if self.concealed:
                # The whole request is concealed: an empty page, like a search that found
                # nothing (the first upstream call of any search still runs: same timing).
                page = await fetch(search.after, first_ask(search.limit))
                draft.record_ids.extend(str(r.get(resource.id_field)) for r in page.records)
                filled = FilledPage()
            else:
                filled = await fill_page(
                    fetch,
                    examine,
                    limit=search.limit,
                    after=search.after,
                    id_field=resource.id_field,
                    max_calls=service.search_upstream_calls,
                    seen=draft.record_ids,
                    before=before,
                )
        except AdapterError as exc:
            note_upstream_failure(draft, exc, fetch.latency_us)
            if not (self.concealed or exc.category in RECORD_SPECIFIC):
                raise upstream_problem(exc) from exc
            # An agency refusing this search answers like one that found nothing.
            filled, refused_upstream = FilledPage(), True
        else:
            draft.upstream_status, draft.upstream_latency_us = fetch.status, fetch.latency_us
        finally:
            # Ids come from the agency system, not all of them validated: keep the log writable.
            draft.record_ids[:] = [auditable(record_id) for record_id in draft.record_ids]
        if self.concealed or refused_upstream:
            self._conceal()
        else:
            for verdict in (*filled.refused, *filled.released):
                _account(outcome, verdict)
            draft.decision = Decision.ALLOW
            if filled.truncated:
                # The caller sees a last page; the regulator sees where and why it ended.
                draft.detail = (
                    f"page fill stopped at its bound of {filled.calls} upstream calls: no cursor"
                )
                log.warning("search page fill reached its bound", request_id=draft.request_id)
        after = filled.next_after
        outcome.body = {
            "resource": resource.name,
            "records": [verdict.record for verdict in filled.released],
            **self._lists(outcome),
            "next_cursor": None if after is None else service.cursors.seal(after, search.binding),
            "policy_version": decision.policy_version,
        }
        return outcome


def _account(outcome: ReadOutcome, verdict: RecordDecision) -> None:
    outcome.rule_ids.update(verdict.rule_ids)
    if verdict.released:
        outcome.released.update(verdict.record.keys())
        outcome.withheld.update(verdict.withheld_fields)
        outcome.masked.update(verdict.masked_fields)
