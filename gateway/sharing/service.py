"""Conditional sharing (有条件共享): apply, answer (approve / refuse), revoke, expire.

Every step is an audit entry (kind ``sharing``), and every refusal names the field and why:
不予共享 (never shared), the negative list for this requester (the policy decision point with a
grant in place still withholds it), or already released (nothing to apply for). Whether a
field may be applied for is asked of the same policy decision point that decides every read,
on the same case (resolved as the exchange resolves it): no second opinion on the law.

State changes are claimed first (one conditional UPDATE), then audited; a step the audit log
cannot record is undone (an approval's grant never counts) and answered 503.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.background import in_thread
from gateway.errors import (
    Conflict,
    Forbidden,
    InvalidHeader,
    NotFound,
    ServiceUnavailable,
    UnprocessableContent,
)
from gateway.exchange.request import ExchangeHeaders
from gateway.exchange.service import ExchangeService
from gateway.observability.context import current_request_id
from gateway.policy.decision import AccessRequest, CaseContext
from gateway.sharing.calendar import WorkingCalendar
from gateway.sharing.documents import ApplyBody, application_document, effective_status
from gateway.sharing.eligibility import field_problems
from gateway.sharing.grants import GrantRegistry, grant_of_row
from gateway.sharing.models import SharingApplication, SharingGrant
from gateway.sharing.repository import SharingRepository, dumps
from gateway.standard import Standard

__all__ = ["STATUSES", "SharingService"]

STATUSES = ("pending", "approved", "refused", "revoked", "expired", "overdue")


def _kind_of(standard: Standard, agency: str) -> str | None:
    try:
        return str(standard.agency(agency).kind)
    except KeyError:
        return None


def _no_application(app_id: str) -> NotFound:
    return NotFound(f"no application {app_id[:64]!r} is available to you")


class SharingService:
    def __init__(
        self,
        *,
        exchange: ExchangeService,
        repository: SharingRepository,
        grants: GrantRegistry,
        calendar: WorkingCalendar,
        audit: AuditWriter,
        answer_working_days: int = 5,
        max_days: int = 90,
    ) -> None:
        self.exchange = exchange
        self.repository = repository
        self.grants = grants
        self.calendar = calendar
        self.audit = audit
        self.answer_working_days = answer_working_days
        self.max_days = max_days

    @property
    def standard(self) -> Standard:
        return self.exchange.standard

    def now(self) -> datetime:
        return self.grants.clock()

    # -- audit -------------------------------------------------------------------------------

    def _draft(
        self, caller: Principal, app: SharingApplication, action: str, **detail: Any
    ) -> EntryDraft:
        return EntryDraft(
            kind=AuditKind.SHARING,
            request_id=current_request_id(),
            requester_agency=caller.agency,
            client_id=caller.client_id,
            operator_id=app.operator_id if action == "apply" else None,
            owner_agency=app.owner_agency,
            resource=app.resource,
            record_ids=[] if app.record_ids is None else list(json.loads(app.record_ids)),
            purpose=app.purpose,
            case_number=app.case_number,
            decision=Decision.ALLOW,
            status=201 if action == "apply" else 200,
            policy_version=self.exchange.policy.current.version,
            action={"action": action, "application_id": app.id, **detail},
        )

    async def _record(self, draft: EntryDraft) -> int:
        try:
            return await self.audit.append(draft)
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the audit log cannot record this step; nothing changed"
            ) from exc

    # -- apply -------------------------------------------------------------------------------

    async def apply(
        self, caller: Principal, headers: ExchangeHeaders, body: ApplyBody
    ) -> tuple[dict[str, Any], int]:
        std = self.standard
        if headers.case_number is None:
            raise InvalidHeader(
                "X-Case-Number", "X-Case-Number is required: a grant is bound to one case"
            )
        if not std.has_resource(body.resource):
            raise NotFound(f"unknown resource type {body.resource!r}; see GET /v1/catalog")
        resource = std.resource(body.resource)
        fields = list(dict.fromkeys(body.fields))
        unknown = [f for f in fields if f not in resource.field_names]
        if unknown:
            raise UnprocessableContent(
                f"{resource.name} has no field {unknown[0]!r}",
                [{"field": f, "reason": "not a field of the resource"} for f in unknown],
            )
        record_ids = None if body.record_ids is None else list(dict.fromkeys(body.record_ids))
        if body.days > self.max_days:
            raise UnprocessableContent(
                f"a grant lasts at most {self.max_days} days",
                [{"field": "days", "reason": f"at most {self.max_days}"}],
            )
        try:
            kind = std.agency(caller.agency).kind
        except KeyError:
            raise Forbidden(
                f"agency {caller.agency} is not in the standard's agency list"
            ) from None
        case = await self._case(caller, headers)
        now = self.now()
        access = AccessRequest(
            requester_agency=caller.agency,
            requester_kind=kind,
            resource=resource.name,
            purpose=headers.purpose,
            operator_id=headers.operator_id,
            time=now,
            case_number=headers.case_number,
            case=case,
            requested_fields=frozenset(fields),
            approval_reference=headers.approval_reference,
            grants=self.grants.for_request(caller.agency, resource.name, now),
        )
        problems = field_problems(self.exchange.policy.current, access, resource, fields, case)
        if problems:
            first = problems[0]
            raise UnprocessableContent(
                f"field {first['field']!r} cannot be applied for: {first['reason']}", problems
            )
        owners = sorted(a for a in case.handling_agencies if _kind_of(std, a) == resource.owner)
        if not owners:
            raise UnprocessableContent(
                f"no {resource.owner} agency handles this case to answer the application",
                [{"field": "resource", "reason": f"owned by a {resource.owner} agency"}],
            )
        app = SharingApplication(
            id=str(uuid.uuid4()),
            created_at=now,
            requester_agency=caller.agency,
            client_id=caller.client_id,
            operator_id=headers.operator_id,
            owner_agency=owners[0],
            resource=resource.name,
            fields=dumps(fields) or "[]",
            record_ids=dumps(record_ids),
            purpose=headers.purpose,
            case_number=headers.case_number,
            case_id=case.case_id,
            reason=body.reason,
            days=body.days,
            status="pending",
            due_at=self.calendar.due_at(now, self.answer_working_days),
        )
        draft = self._draft(caller, app, "apply", fields=fields, days=body.days)
        index = await self._record(draft)  # the entry first: an application is its record
        self.repository.insert(app)
        return application_document(app, None, now), index

    async def _case(self, caller: Principal, headers: ExchangeHeaders) -> CaseContext:
        assert headers.case_number is not None
        draft = EntryDraft(kind=AuditKind.SHARING)
        case = await self.exchange.case_context(
            headers.case_number, draft, caller.agency, headers.purpose
        )
        if case is None:
            raise NotFound(f"no case numbered {headers.case_number!r} is available to you")
        return case

    # -- read --------------------------------------------------------------------------------

    def _visible(self, caller: Principal, app: SharingApplication) -> bool:
        scopes = caller.scopes
        return (
            (Scope.EXCHANGE in scopes and app.requester_agency == caller.agency)
            or (Scope.SHARING_REVIEW in scopes and app.owner_agency == caller.agency)
            or Scope.AUDIT_READ in scopes
        )

    def get(self, caller: Principal, app_id: str) -> dict[str, Any]:
        row = self.repository.get(app_id)
        if row is None or not self._visible(caller, row[0]):
            raise _no_application(app_id)
        return application_document(row[0], row[1], self.now())

    def list(self, caller: Principal, role: str, status: str | None) -> dict[str, Any]:
        scopes = caller.scopes
        if role == "mine":
            if Scope.EXCHANGE not in scopes:
                raise Forbidden("role=mine lists an applicant's applications (scope exchange)")
            rows = self.repository.list_rows(requester=caller.agency)
        else:
            if Scope.SHARING_REVIEW in scopes:
                rows = self.repository.list_rows(owner=caller.agency)
            elif Scope.AUDIT_READ in scopes:
                rows = self.repository.list_rows()
            else:
                raise Forbidden(
                    "role=review lists the applications to answer (scope sharing:review)"
                )
        now = self.now()
        documents = [application_document(app, grant, now) for app, grant in rows]
        if status == "overdue":
            documents = [d for d in documents if d["overdue"]]
        elif status is not None:
            documents = [d for d in documents if d["status"] == status]
        return {"role": role, "status": status, "applications": documents}

    # -- answer ------------------------------------------------------------------------------

    def _answerable(self, caller: Principal, app_id: str) -> tuple[SharingApplication, Any]:
        row = self.repository.get(app_id)
        if row is None or not self._visible(caller, row[0]):
            if row is not None and Scope.SHARING_REVIEW in caller.scopes:
                raise Forbidden(
                    f"only reviewers of the owning agency {row[0].owner_agency} may answer"
                )
            raise _no_application(app_id)
        app, grant = row
        if app.owner_agency != caller.agency:
            raise Forbidden(f"only reviewers of the owning agency {app.owner_agency} may answer")
        if app.requester_agency == caller.agency or app.client_id == caller.client_id:
            raise Forbidden("self-review: an agency does not answer its own application")
        return app, grant

    async def approve(
        self, caller: Principal, app_id: str, comment: str, days: int
    ) -> dict[str, Any]:
        app, _ = self._answerable(caller, app_id)
        if app.status != "pending":
            raise Conflict(f"the application is {app.status}, not pending")
        if days > app.days:
            raise UnprocessableContent(
                f"approve at most the {app.days} days asked for",
                [{"field": "days", "reason": f"at most {app.days}"}],
            )
        now = self.now()
        row = SharingGrant(
            id=str(uuid.uuid4()),
            application_id=app.id,
            requester_agency=app.requester_agency,
            owner_agency=app.owner_agency,
            resource=app.resource,
            fields=app.fields,
            record_ids=app.record_ids,
            purpose=app.purpose,
            case_id=app.case_id,
            case_number=app.case_number,
            valid_from=now,
            valid_until=now + timedelta(days=days),
            revoked_at=None,
            revoked_by=None,
            expiry_recorded=False,
        )
        if not self.repository.approve(
            app, row, answered_by=caller.client_id, comment=comment, days=days
        ):
            raise Conflict("the application was answered meanwhile")
        draft = self._draft(
            caller, app, "approve", grant_id=row.id, days=days,
            valid_until=row.valid_until.isoformat(),
        )  # fmt: skip
        try:
            await self._record(draft)
        except ServiceUnavailable:
            self.repository.undo_approval(app.id, row.id, now)
            raise
        self.grants.add(grant_of_row(row))
        return self.get(caller, app.id)

    async def refuse(self, caller: Principal, app_id: str, reason: str) -> dict[str, Any]:
        app, _ = self._answerable(caller, app_id)
        if app.status != "pending":
            raise Conflict(f"the application is {app.status}, not pending")
        now = self.now()
        if not self.repository.refuse(app.id, answered_by=caller.client_id, reason=reason, now=now):
            raise Conflict("the application was answered meanwhile")
        draft = self._draft(caller, app, "refuse", reason=reason[:500])
        draft.decision = Decision.DENY
        try:
            await self._record(draft)
        except ServiceUnavailable:
            self.repository.undo_refusal(app.id)
            raise
        return self.get(caller, app.id)

    async def revoke(self, caller: Principal, app_id: str, reason: str) -> dict[str, Any]:
        app, grant = self._answerable(caller, app_id)
        now = self.now()
        if grant is None or effective_status(app, grant, now) != "approved":
            raise Conflict(f"the application is {effective_status(app, grant, now)}: no live grant")
        # Out of force on this worker first (fail closed), then everywhere.
        self.grants.revoke(grant.id)
        if not self.repository.revoke(app.id, grant.id, revoked_by=caller.client_id, now=now):
            raise Conflict("the grant ended meanwhile")
        draft = self._draft(caller, app, "revoke", grant_id=grant.id, reason=reason[:500])
        try:
            await self.audit.append(draft)
        except AuditUnavailable as exc:
            raise ServiceUnavailable(
                "the grant is revoked, but the audit log could not record it"
            ) from exc
        return self.get(caller, app.id)

    # -- expiry ------------------------------------------------------------------------------

    async def record_expiries(self, now: datetime) -> None:
        """An entry for each grant whose window ended (one worker writes each)."""
        # In a thread: a blocking query (and its conditional updates) on the event loop stalls
        # every request of the worker while it waits for the database.
        for grant in await in_thread(self.repository.claim_expired, now):
            draft = EntryDraft(
                kind=AuditKind.SHARING,
                request_id=None,
                requester_agency=grant.requester_agency,
                client_id="system:expiry",
                owner_agency=grant.owner_agency,
                resource=grant.resource,
                purpose=grant.purpose,
                case_number=grant.case_number,
                decision=Decision.ALLOW,
                status=200,
                action={
                    "action": "expire",
                    "application_id": grant.application_id,
                    "grant_id": grant.id,
                    "valid_until": grant.valid_until.isoformat(),
                },
            )
            try:
                await self.audit.append(draft)
            except AuditUnavailable:
                await in_thread(self.repository.unclaim_expired, grant.id)
