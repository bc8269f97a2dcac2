"""The choke point: every read of agency data goes through :meth:`ExchangeService.handle`.

One way through, for every request, whatever happens::

    authenticate → parse headers and query (standard) → resolve the case
      → policy.decide (before any data call) → filters checked against the decision
      → subjects the request names resolved → adapter fetch/search (with a Clearance)
      → subjects the records refer to resolved → policy.filter_record per record
      → standard validation of what is released → audit.append (durable)
      → response with X-Audit-Index

What a response may carry is decided for the *subject*, not only for the record in hand
(docs/security.md, "Inference channels"): a filter is a read; records about a sealed person or
a secret case are concealed wherever they appear; a page's ``withheld`` and ``masked`` lists
come from the request-level decision only; no agency error text passes through, and an
agency's error about a record answers like the concealed case where it could be one.

Every request gets exactly one audit entry, whether it is allowed, denied, invalid
or failed upstream, and the entry is durable before any byte of data leaves. If it
cannot be written the caller gets 503 and no data (fail closed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from adapters.base import AdapterError
from gateway.audit.entry import AuditKind, Decision, EntryDraft, SearchCriteria
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.auth.tokens import Principal
from gateway.errors import (
    FilterNotPermitted,
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UpstreamError,
    error_response,
    problem_response,
)
from gateway.exchange.cursor import CursorSealer
from gateway.exchange.parties import CaseLocator, CaseParties
from gateway.exchange.reads import (
    RECORD_SPECIFIC,
    Read,
    ReadOutcome,
    auditable,
    note_upstream_failure,
    upstream_problem,
)
from gateway.exchange.request import (
    check_record_id,
    parse_fetch_query,
    parse_headers,
    parse_search_query,
    query_params,
)
from gateway.exchange.subjects import SubjectResolver
from gateway.exchange.upstream import AgencyAdapters, Clearance, UpstreamCall
from gateway.observability.context import current_request_id
from gateway.policy.admin import PolicyHolder
from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    Grant,
    Outcome,
    PolicyDecisionPoint,
    RequestDecision,
)
from gateway.standard import ResourceType, Standard, record_validator

__all__ = ["AUDIT_INDEX_HEADER", "ExchangeService"]

log = structlog.get_logger(__name__)

AUDIT_INDEX_HEADER = "X-Audit-Index"


def _case_context(record: Mapping[str, Any]) -> CaseContext:
    return CaseContext(
        case_id=str(record["case_id"]),
        police_case_number=record.get("police_case_number"),
        court_case_number=record.get("court_case_number"),
        handling_agencies=frozenset(str(a) for a in record.get("handling_agencies", ())),
        stage=record.get("stage"),
        secrecy_mark=record.get("secrecy_mark"),
        record=record,
    )


class LiveGrants(Protocol):
    """The conditional-sharing grants in force (gateway/sharing/grants.py)."""

    def for_request(self, agency: str, resource: str, now: datetime) -> tuple[Grant, ...]: ...

    def is_live(self, grant_id: str, now: datetime) -> bool: ...

    def clock(self) -> datetime: ...


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
        subjects: SubjectResolver | None = None,
    ) -> None:
        self.standard = standard
        self.policy = policy
        self.adapters = adapters
        self.audit = audit
        self.cursors = cursors
        self.search_upstream_calls = search_upstream_calls
        self.subjects = subjects or SubjectResolver(adapters, standard)
        ttl = self.subjects.ttl_seconds
        self.parties = CaseParties(adapters, standard, ttl_seconds=ttl)
        self._locator = CaseLocator(adapters, standard, ttl_seconds=ttl)
        # Conditional-sharing grants (set by gateway.sharing.wiring); None: no grants.
        self.grants: LiveGrants | None = None

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
            resource=auditable(resource_name),
            record_ids=[auditable(record_id)] if record_id else [],
        )
        pdp = self.policy.current
        draft.policy_version = pdp.version
        try:
            outcome = await self._serve(request, caller, resource_name, record_id, draft, pdp)
        except GatewayError as exc:
            outcome = ReadOutcome(status=exc.status, error=exc)
            if draft.decision is Decision.ERROR and exc.status < 500:
                draft.decision = Decision.INVALID
            if draft.detail is None:
                draft.detail = f"{exc.slug}: {exc.detail}"[:500]
        draft.status = outcome.status
        if outcome.error is None:
            draft.released = sorted(outcome.released)
            draft.withheld = sorted(outcome.withheld)
            draft.masked = sorted(outcome.masked)
            draft.rule_ids = sorted(outcome.rule_ids)
        # else: the rules that refused (set along the way) stay in the entry.
        body_bytes = orjson.dumps(outcome.body) if outcome.body is not None else None
        if body_bytes is not None:
            draft.body_sha256 = hashlib.sha256(body_bytes).hexdigest()
        try:
            index = await self.audit.append(draft)
        except AuditUnavailable:
            log.error("audit unavailable: refusing to release", request_id=draft.request_id)
            return error_response(
                ServiceUnavailable(
                    "the audit log cannot record this request, so nothing is released"
                ),
                request.url.path,
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
    ) -> ReadOutcome:
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
        if headers.approval_reference is not None:
            draft.action = {"approval_reference": headers.approval_reference}
        if not self.standard.has_resource(resource_name):
            raise NotFound(f"unknown resource type {resource_name[:64]!r}; see GET /v1/catalog")
        resource = self.standard.resource(resource_name)
        draft.owner_agency = resource.owner
        if record_id is not None:
            check_record_id(record_id)
            query = query_params(request.scope.get("query_string", b""))
            fields = parse_fetch_query(resource, query)
            search = None
        else:
            search = parse_search_query(
                self.standard,
                resource,
                request.query_params,
                cursors=self.cursors,
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
        case = await self._resolve_case(headers.case_number, draft, caller.agency, headers.purpose)
        if case is not None:
            # The entry names the case by both numbers: a regulator finds it by either.
            numbers = (("police", case.police_case_number), ("court", case.court_case_number))
            draft.case_numbers = {name: number for name, number in numbers if number}
        grants = self.grants
        now = datetime.now(UTC) if grants is None else grants.clock()
        access = AccessRequest(
            requester_agency=caller.agency,
            requester_kind=requester_kind,
            resource=resource.name,
            purpose=headers.purpose,
            operator_id=headers.operator_id,
            time=now,
            case_number=headers.case_number,
            case=case,
            requested_fields=fields,
            record_id=record_id,
            filters=search.filters if search else {},
            approval_reference=headers.approval_reference,
            grants=() if grants is None else grants.for_request(caller.agency, resource.name, now),
        )
        decision = pdp.decide(access)
        draft.rule_ids = list(decision.rule_ids)
        if decision.outcome is Outcome.DENY:
            draft.decision = Decision.DENY
            raise Forbidden(
                f"denied: {decision.reason}",
                extra={"rule_ids": list(decision.rule_ids)},
            )
        if search is not None:
            # A filter is a read: refused on any field not released in the clear, before any
            # upstream call. Decided from the request alone (concealed or not), so the refusal
            # says nothing about the data.
            for name in sorted(search.filters):
                if name not in decision.clear_fields:
                    draft.decision = Decision.DENY
                    raise FilterNotPermitted(name, resource.name, headers.purpose)
        subjects = await self.subjects.prepare(
            decision, resource, search.filters if search else {}, case.record if case else None
        )
        clearance = Clearance.for_decision(decision)
        read = Read(self, access, decision, clearance, resource, subjects, draft, pdp)
        if record_id is not None:
            outcome = await read.fetch(record_id)
        else:
            assert search is not None
            outcome = await read.search(search)
        if decision.grant_ids:
            self._check_grants(decision.grant_ids, draft, outcome)
        return outcome

    def _check_grants(
        self, grant_ids: tuple[str, ...], draft: EntryDraft, outcome: ReadOutcome
    ) -> None:
        """The response and its entry name the grants it used; a grant revoked (or expired)
        while the request was served releases nothing."""
        draft.action = {**(draft.action or {}), "grant_ids": list(grant_ids)}
        grants = self.grants
        now = datetime.now(UTC) if grants is None else grants.clock()
        ended = [g for g in grant_ids if grants is None or not grants.is_live(g, now)]
        if ended:
            draft.decision = Decision.DENY
            raise Forbidden(
                f"denied: the conditional-sharing grant {ended[0]} ended while the request "
                "was served; nothing was released",
                extra={"grant_ids": ended},
            )
        if outcome.body is not None:
            outcome.body["grant_ids"] = list(grant_ids)

    async def case_context(
        self, case_number: str | None, draft: EntryDraft, agency: str, purpose: str
    ) -> CaseContext | None:
        """The case ``case_number`` as the policy sees it for ``agency`` acting for ``purpose``
        (None if unknown); an upstream failure is a 502/504 problem noted in ``draft``."""
        return await self._resolve_case(case_number, draft, agency, purpose)

    def forget_case(self, case_number: str) -> None:
        """The case moved (a delivery answered): read it again next time (see upstream)."""
        self.adapters.forget_case(case_number)

    async def fetch_for_delivery(
        self, resource: ResourceType, record_id: str, decision: RequestDecision, draft: EntryDraft
    ) -> Mapping[str, Any] | None:
        """A sender's own record for a delivery (``record_id``), from its agency's system.

        Cleared by the RECIPIENT's allowing decision: the record goes nowhere but to the
        recipient, and only after :func:`gateway.deliveries.recipient.check_for_recipient`
        finds it reaches it whole. Validated against the standard (502 if it breaks it);
        None if the system has no such record.
        """
        clearance = Clearance.for_decision(decision)
        call = UpstreamCall()
        try:
            record = await self.adapters.fetch(
                clearance, resource.owner, resource.name, record_id, call
            )
        except AdapterError as exc:
            note_upstream_failure(draft, exc, call.latency_us)
            if exc.category in RECORD_SPECIFIC:
                return None
            raise upstream_problem(exc) from exc
        draft.upstream_status, draft.upstream_latency_us = call.status, call.latency_us
        if record is not None:
            self.validate(resource, [record])
        return record

    async def _resolve_case(
        self, case_number: str | None, draft: EntryDraft, agency: str, purpose: str
    ) -> CaseContext | None:
        if case_number is None:
            return None
        case_type = self.standard.resource("case")
        call = UpstreamCall()
        try:
            # The policy trusts handling_agencies: only a valid case record may decide.
            # It is validated once, when fetched, not again on every cached use.
            case_record = await self.adapters.resolve_case(
                case_number, call, lambda record: self.validate(case_type, [record])
            )
            if case_record is None and not case_number.startswith("A"):
                # A 刑终 or 刑更 案号: the court's and the prison's records know the case.
                case_record = await self._locator.locate(case_number)
                if case_record is not None:
                    self.validate(case_type, [case_record])
            if case_record is not None:
                # Parties the case's owner cannot know (the prison, the 司法局 …).
                return await self.parties.complete(_case_context(case_record), agency, purpose)
        except AdapterError as exc:
            note_upstream_failure(draft, exc, call.latency_us)
            if exc.category in RECORD_SPECIFIC:
                # The case system refused this case: it reads like a case that is not there
                # (the policy then answers as for any case the caller does not handle).
                return None
            raise upstream_problem(exc) from exc
        # The entry's upstream status is the data call's; the case lookup is the policy's input.
        return None

    def validate(self, resource: ResourceType, records: Sequence[Mapping[str, Any]]) -> None:
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
