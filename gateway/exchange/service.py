"""The choke point: every read of agency data goes through :meth:`ExchangeService.handle`.

One way through, for every request, whatever happens::

    authenticate → parse headers and query (standard) → resolve the case
      → policy.decide (before any data call) → adapter fetch/search (with a Clearance)
      → standard validation of every record → policy.filter_record per record
      → audit.append (durable) → response with X-Audit-Index

A search page is filled past the records the policy conceals, within a bound on upstream
calls, and its cursor is sealed (gateway/exchange/paging.py, gateway/exchange/cursor.py).

Every request gets exactly one audit entry, whether it is allowed, denied, invalid
or failed upstream, and the entry is durable before any byte of data leaves. If it
cannot be written the caller gets 503 and no data (fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from adapters.base import (
    AdapterError,
    MappingError,
    StandardRecord,
    UpstreamTimeout,
)
from gateway.audit.entry import AuditKind, Decision, EntryDraft, SearchCriteria
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.auth.tokens import Principal
from gateway.errors import (
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UpstreamError,
    problem_response,
)
from gateway.errors import UpstreamTimeout as UpstreamTimeoutProblem
from gateway.exchange.cursor import CursorSealer
from gateway.exchange.paging import FilledPage, UpstreamPages, fill_page, first_ask
from gateway.exchange.request import (
    SearchQuery,
    check_record_id,
    parse_fetch_query,
    parse_headers,
    parse_search_query,
)
from gateway.exchange.upstream import AgencyAdapters, Clearance, UpstreamCall
from gateway.observability.context import current_request_id
from gateway.policy.admin import PolicyHolder
from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    RequestDecision,
)
from gateway.standard import ResourceType, Standard, record_validator

__all__ = ["AUDIT_INDEX_HEADER", "ExchangeService"]

log = structlog.get_logger(__name__)

AUDIT_INDEX_HEADER = "X-Audit-Index"


@dataclass
class _Outcome:
    status: int
    body: dict[str, Any] | None = None
    error: GatewayError | None = None
    released: set[str] = field(default_factory=set)
    withheld: set[str] = field(default_factory=set)
    masked: set[str] = field(default_factory=set)
    rule_ids: set[str] = field(default_factory=set)


def _case_context(record: Mapping[str, Any]) -> CaseContext:
    return CaseContext(
        case_id=str(record["case_id"]),
        police_case_number=record.get("police_case_number"),
        court_case_number=record.get("court_case_number"),
        handling_agencies=frozenset(str(a) for a in record.get("handling_agencies", ())),
        stage=record.get("stage"),
        secrecy_mark=record.get("secrecy_mark"),
    )


def _auditable(text: str) -> str:
    """Caller-chosen text as the audit log can hold it: 64 characters at most, and no NUL.

    PostgreSQL text refuses NUL, and the writer commits entries in batches: one such entry
    would fail its whole batch (503 for every request in it).
    """
    return text[:64].replace("\x00", "\N{REPLACEMENT CHARACTER}")


def _not_found(resource: str, record_id: str) -> NotFound:
    # One wording for "really absent" and "concealed": neither confirm nor deny.
    return NotFound(f"no {resource} record {record_id!r} is available to you")


def _upstream_problem(exc: AdapterError) -> GatewayError:
    if isinstance(exc, UpstreamTimeout):
        return UpstreamTimeoutProblem(exc.agency, exc.message)
    extra: dict[str, Any] = {}
    if isinstance(exc, MappingError) and exc.field_name:
        extra["field"] = exc.field_name
    return UpstreamError(exc.agency, exc.message, **extra)


class ExchangeService:
    def __init__(
        self,
        *,
        standard: Standard,
        policy: PolicyHolder,
        adapters: AgencyAdapters,
        audit: AuditWriter,
        cursors: CursorSealer,
        search_upstream_calls: int = 8,
    ) -> None:
        self.standard = standard
        self.policy = policy
        self._adapters = adapters
        self.audit = audit
        self._cursors = cursors
        self._search_upstream_calls = search_upstream_calls

    async def handle(
        self,
        request: Request,
        caller: Principal | GatewayError,
        resource_name: str,
        record_id: str | None,
    ) -> Response:
        """Serve one exchange request, audited; ``record_id`` None means a search."""
        draft = EntryDraft(
            kind=AuditKind.EXCHANGE,
            request_id=current_request_id(),
            resource=_auditable(resource_name),
            record_ids=[_auditable(record_id)] if record_id else [],
        )
        pdp = self.policy.current
        draft.policy_version = pdp.version
        try:
            outcome = await self._serve(request, caller, resource_name, record_id, draft, pdp)
        except GatewayError as exc:
            outcome = _Outcome(status=exc.status, error=exc)
            if draft.decision is Decision.ERROR and exc.status < 500:
                draft.decision = Decision.INVALID
            draft.detail = f"{exc.slug}: {exc.detail}"[:500]
        draft.status = outcome.status
        draft.released = sorted(outcome.released)
        draft.withheld = sorted(outcome.withheld)
        draft.masked = sorted(outcome.masked)
        draft.rule_ids = sorted(outcome.rule_ids)
        body_bytes = orjson.dumps(outcome.body) if outcome.body is not None else None
        if body_bytes is not None:
            draft.body_sha256 = hashlib.sha256(body_bytes).hexdigest()
        try:
            index = await self.audit.append(draft)
        except AuditUnavailable:
            log.error("audit unavailable: refusing to release", request_id=draft.request_id)
            failure = ServiceUnavailable(
                "the audit log cannot record this request, so nothing is released"
            )
            return problem_response(
                failure.status,
                failure.title,
                failure.detail,
                slug=failure.slug,
                instance=request.url.path,
            )
        headers = {AUDIT_INDEX_HEADER: str(index)}
        if outcome.error is not None:
            error = outcome.error
            return problem_response(
                error.status,
                error.title,
                error.detail,
                slug=error.slug,
                instance=request.url.path,
                headers={**error.headers, **headers},
                extra=error.extra,
            )
        assert body_bytes is not None
        return Response(body_bytes, status_code=200, media_type="application/json", headers=headers)

    async def _serve(
        self,
        request: Request,
        caller: Principal | GatewayError,
        resource_name: str,
        record_id: str | None,
        draft: EntryDraft,
        pdp: PolicyDecisionPoint,
    ) -> _Outcome:
        if isinstance(caller, GatewayError):
            # Refused after authentication (scope, rate limit): still tie it to the caller.
            draft.client_id = getattr(request.state, "client_id", None)
            draft.requester_agency = getattr(request.state, "agency", None)
            raise caller
        draft.client_id = caller.client_id
        draft.requester_agency = caller.agency
        headers = parse_headers(request.headers, self.standard)
        draft.purpose = headers.purpose
        draft.operator_id = headers.operator_id
        draft.case_number = headers.case_number
        if not self.standard.has_resource(resource_name):
            raise NotFound(f"unknown resource type {resource_name[:64]!r}; see GET /v1/catalog")
        resource = self.standard.resource(resource_name)
        draft.owner_agency = resource.owner
        if record_id is not None:
            check_record_id(record_id)
            fields = parse_fetch_query(resource, request.query_params)
            search = None
        else:
            search = parse_search_query(
                self.standard,
                resource,
                request.query_params,
                cursors=self._cursors,
                client_id=caller.client_id,
                agency=caller.agency,
            )
            fields = search.fields
            draft.search = SearchCriteria(search.filters, search.limit, search.after is not None)
        try:
            requester_kind = self.standard.agency(caller.agency).kind
        except KeyError:
            raise Forbidden(
                f"agency {caller.agency} is not in the standard's agency list"
            ) from None
        call = UpstreamCall()
        case = None
        if headers.case_number is not None:
            case_type = self.standard.resource("case")
            try:
                # The policy trusts handling_agencies: only a valid case record may decide.
                # It is validated once, when fetched, not again on every cached use.
                case_record = await self._adapters.resolve_case(
                    headers.case_number, call, lambda record: self._validate(case_type, [record])
                )
            except AdapterError as exc:
                draft.upstream_status, draft.upstream_latency_us = call.status, call.latency_us
                raise _upstream_problem(exc) from exc
            if case_record is not None:
                case = _case_context(case_record)
                numbers = (("police", case.police_case_number), ("court", case.court_case_number))
                draft.case_numbers = {name: number for name, number in numbers if number}
        access = AccessRequest(
            requester_agency=caller.agency,
            requester_kind=requester_kind,
            resource=resource.name,
            purpose=headers.purpose,
            operator_id=headers.operator_id,
            time=datetime.now(UTC),
            case_number=headers.case_number,
            case=case,
            requested_fields=fields,
            record_id=record_id,
            filters=search.filters if search else {},
        )
        decision = pdp.decide(access)
        draft.rule_ids = list(decision.rule_ids)
        if decision.outcome is Outcome.DENY:
            draft.decision = Decision.DENY
            raise Forbidden(
                f"denied: {decision.reason}",
                extra={"rule_ids": list(decision.rule_ids)},
            )
        clearance = Clearance.for_decision(decision)
        if record_id is not None:
            return await self._fetch(access, decision, clearance, resource, record_id, draft, pdp)
        assert search is not None
        return await self._search(access, decision, clearance, resource, search, draft, pdp)

    async def _search(
        self,
        access: AccessRequest,
        decision: RequestDecision,
        clearance: Clearance,
        resource: ResourceType,
        search: SearchQuery,
        draft: EntryDraft,
        pdp: PolicyDecisionPoint,
    ) -> _Outcome:
        def examine(record: StandardRecord) -> RecordDecision:
            self._validate(resource, [record])
            return pdp.filter_record(decision, access, record)

        outcome = _Outcome(status=200, rule_ids=set(decision.rule_ids))
        fetch = UpstreamPages(self._adapters, clearance, resource, search.filters)
        try:
            if decision.outcome is Outcome.NOT_FOUND:
                # The whole request is concealed: an empty page, like a search that found
                # nothing (the first upstream call of any search still runs: same timing).
                page = await fetch(search.after, first_ask(search.limit))
                draft.record_ids.extend(str(r.get(resource.id_field)) for r in page.records)
                self._validate(resource, page.records)
                filled = FilledPage()
            else:
                filled = await fill_page(
                    fetch,
                    examine,
                    limit=search.limit,
                    after=search.after,
                    id_field=resource.id_field,
                    max_calls=self._search_upstream_calls,
                    seen=draft.record_ids,
                )
        except AdapterError as exc:
            raise _upstream_problem(exc) from exc
        finally:
            draft.upstream_status, draft.upstream_latency_us = fetch.status, fetch.latency_us
            # Ids come from the agency system, not all of them validated: keep the log writable.
            draft.record_ids[:] = [_auditable(record_id) for record_id in draft.record_ids]
        if decision.outcome is Outcome.NOT_FOUND:
            draft.decision = Decision.DENY
            draft.detail = "concealed: neither confirm nor deny"
        else:
            for verdict in (*filled.refused, *filled.released):
                self._account(outcome, verdict)
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
            "withheld": sorted(outcome.withheld | decision.withheld_fields),
            "masked": sorted(outcome.masked),
            "next_cursor": None if after is None else self._cursors.seal(after, search.binding),
            "policy_version": decision.policy_version,
        }
        outcome.withheld |= decision.withheld_fields
        return outcome

    async def _fetch(
        self,
        access: AccessRequest,
        decision: RequestDecision,
        clearance: Clearance,
        resource: ResourceType,
        record_id: str,
        draft: EntryDraft,
        pdp: PolicyDecisionPoint,
    ) -> _Outcome:
        call = UpstreamCall()
        try:
            record = await self._adapters.fetch(
                clearance, resource.owner, resource.name, record_id, call
            )
        except AdapterError as exc:
            draft.upstream_status, draft.upstream_latency_us = exc.upstream_status, call.latency_us
            raise _upstream_problem(exc) from exc
        draft.upstream_status, draft.upstream_latency_us = call.status, call.latency_us
        if decision.outcome is Outcome.NOT_FOUND:
            # Concealed before the call; the call still ran so timing matches a real miss.
            draft.decision = Decision.DENY
            draft.detail = "concealed: neither confirm nor deny"
            raise _not_found(resource.name, record_id)
        if record is None:
            draft.decision = Decision.ALLOW
            raise _not_found(resource.name, record_id)
        self._validate(resource, [record])
        verdict = pdp.filter_record(decision, access, record)
        outcome = _Outcome(status=200, rule_ids=set(decision.rule_ids))
        self._account(outcome, verdict)
        if not verdict.released:
            draft.decision = Decision.DENY
            draft.rule_ids = sorted(outcome.rule_ids)
            if verdict.conceal:
                draft.detail = "concealed: neither confirm nor deny"
                raise _not_found(resource.name, record_id)
            raise Forbidden(
                f"denied: {verdict.reason or 'the record is withheld'}",
                extra={"rule_ids": list(verdict.rule_ids)},
            )
        draft.decision = Decision.ALLOW
        outcome.withheld |= decision.withheld_fields
        outcome.body = {
            "resource": resource.name,
            "id": record_id,
            "record": dict(verdict.record),
            "withheld": sorted(outcome.withheld),
            "masked": sorted(outcome.masked),
            "policy_version": decision.policy_version,
        }
        return outcome

    def _validate(self, resource: ResourceType, records: Sequence[Mapping[str, Any]]) -> None:
        validator = record_validator(self.standard, resource.name)
        for record in records:
            violations = validator.validate(record)
            if violations:
                first = violations[0]
                raise UpstreamError(
                    resource.owner,
                    f"a {resource.name} record breaks the standard at {first.field}: "
                    f"{first.reason}; nothing was released",
                    field=first.field,
                    violations=[{"field": v.field, "reason": v.reason} for v in violations[:20]],
                )

    @staticmethod
    def _account(outcome: _Outcome, verdict: RecordDecision) -> None:
        outcome.rule_ids.update(verdict.rule_ids)
        if verdict.released:
            outcome.released.update(verdict.record.keys())
            outcome.withheld.update(verdict.withheld_fields)
            outcome.masked.update(verdict.masked_fields)
