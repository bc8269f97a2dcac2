"""What may be applied for: asked of the policy decision point that decides every read.

A field is refused, named, when it is 不予共享, when the PDP with a grant for it in place
still withholds it (the negative list for this request), or when it is already released to
the requester (nothing to apply for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from gateway.errors import Forbidden, NotFound
from gateway.policy.decision import AccessRequest, CaseContext, Grant, Outcome
from gateway.policy.engine import NOTHING_RELEASABLE, PolicyEngine
from gateway.standard import ResourceType, SharingClass

__all__ = ["field_problems"]


def field_problems(
    pdp: PolicyEngine,
    access: AccessRequest,
    resource: ResourceType,
    fields: list[str],
    case: CaseContext,
) -> list[Mapping[str, str]]:
    """Each field of ``fields`` that cannot be applied for, with why (none: it may be).

    Raises 404 when the case is not there for the requester (concealed), 403 when the
    request itself is refused (not a party of the case, a stage the purpose is not valid in).
    """
    not_shared = {f.name for f in resource.fields if f.sharing is SharingClass.NOT_SHARED}
    problems: list[Mapping[str, str]] = [
        {"field": name, "reason": "不予共享: never shared"} for name in fields if name in not_shared
    ]
    rest = [name for name in fields if name not in not_shared]
    if not rest:
        return problems
    now = access.time
    trial = Grant(
        grant_id="application",
        requester_agency=access.requester_agency,
        resource=access.resource,
        fields=frozenset(rest),
        purpose=access.purpose,
        case_id=case.case_id,
        record_ids=None,
        valid_from=now,
        valid_until=now + timedelta(days=1),
    )
    asked = replace(access, requested_fields=frozenset(rest))
    with_grant = pdp.decide(replace(asked, grants=(*access.grants, trial)), remember=False)
    if with_grant.outcome is Outcome.NOT_FOUND:
        raise NotFound(f"no case numbered {access.case_number!r} is available to you")
    if not with_grant.allowed and with_grant.reason != NOTHING_RELEASABLE:
        raise Forbidden(
            f"denied: {with_grant.reason}", extra={"rule_ids": list(with_grant.rule_ids)}
        )
    today = pdp.decide(asked, remember=False)
    released = today.permitted_fields if today.allowed else frozenset()
    for name in rest:
        if name in released:
            problems.append({"field": name, "reason": "already released to you"})
        elif name not in with_grant.permitted_fields:
            problems.append({"field": name, "reason": "on the negative list for this request"})
    return problems
