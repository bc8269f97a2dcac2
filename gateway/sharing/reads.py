"""Reading applications and figures: every read is audited before it is answered.

An application holds a case number, the fields asked for and why: reading one is an access
like any other. Each read (one application, a listing, the figures) is an audit entry of kind
``sharing`` (``action`` ``read``, ``list`` or ``stats``; the applications shown in
``record_ids``) written BEFORE the answer; if it cannot be written the caller gets a 503 and
nothing. Refusals are audited by the routes' class (``SharingAuditedRoute``).

Who sees what (:meth:`SharingService.get` / :meth:`SharingService.list`): applicants their
agency's applications, reviewers their agency's to answer, regulators (``audit:read``) all.
The figures likewise: a reviewer those of its own agency, a regulator every agency's.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.errors import ServiceUnavailable
from gateway.observability.context import current_request_id
from gateway.sharing.service import SharingService
from gateway.sharing.stats import sharing_stats

__all__ = ["list_applications", "read_application", "read_stats"]


async def _audited(
    service: SharingService,
    caller: Principal,
    action: str,
    record_ids: list[str],
    *,
    application: dict[str, Any] | None = None,
    **detail: Any,
) -> int:
    draft = EntryDraft(
        kind=AuditKind.SHARING,
        request_id=current_request_id(),
        requester_agency=caller.agency,
        client_id=caller.client_id,
        record_ids=record_ids,
        decision=Decision.ALLOW,
        status=200,
        policy_version=service.exchange.policy.current.version,
        action={"action": action, **detail},
    )
    if application is not None:  # what the read was about, as for the other steps
        draft.owner_agency, draft.resource = application["owner_agency"], application["resource"]
        draft.purpose, draft.case_number = application["purpose"], application["case_number"]
    try:
        return await service.audit.append(draft)
    except AuditUnavailable as exc:
        raise ServiceUnavailable(
            "the audit log cannot record this read; nothing is answered"
        ) from exc


async def read_application(
    service: SharingService, caller: Principal, app_id: str
) -> tuple[dict[str, Any], int]:
    """One application and the index of its read's audit entry."""
    document = await run_in_threadpool(service.get, caller, app_id)
    index = await _audited(service, caller, "read", [app_id], application=document)
    return document, index


async def list_applications(
    service: SharingService, caller: Principal, role: str, status: str | None
) -> tuple[dict[str, Any], int]:
    """A listing and the index of its audit entry, which names the applications shown."""
    document = await run_in_threadpool(service.list, caller, role, status)
    ids = [str(a["id"]) for a in document["applications"]]
    index = await _audited(service, caller, "list", ids, role=role, status=status)
    return document, index


async def read_stats(service: SharingService, caller: Principal) -> tuple[dict[str, Any], int]:
    """The figures of the caller's agency (a regulator: of every agency), and the entry's index."""
    if Scope.AUDIT_READ in caller.scopes:
        rows = await run_in_threadpool(service.repository.list_rows)
    else:
        rows = await run_in_threadpool(service.repository.list_rows, owner=caller.agency)
    index = await _audited(service, caller, "stats", [])
    return sharing_stats(rows, service.now()), index
