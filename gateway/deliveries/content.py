"""A delivery's content decided for its recipient: when it is created, and again before a push.

:func:`decide_content` is the one path both take: the recipient's read of the record (its
agency and kind, the purpose it receives the kind under, the case as the delivery leaves it),
the subjects the decision needs resolved, then
:func:`gateway.deliveries.recipient.check_for_recipient` (whole or refused, the field named).

:class:`PushRecheck` asks it again before the outbox sends a stored delivery, under the policy
IN FORCE then: a delivery created before the negative list was tightened, or before a subject
was sealed, waits in the outbox (its recipient down, backoff) and must not leave after it. The
stored content lacks the ``decision_only`` flags (never delivered); for a case record they are
taken from the case as its owner reports it now, so a condition on them decides as at creation.
Refused now: the push ends ``failed`` with category ``policy_refuses_now``, nothing sent. An
agency system that cannot answer for the case or its subjects is no refusal: the push is
retried (the caller's backoff), never sent undecided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from gateway.audit.entry import AuditKind, EntryDraft
from gateway.deliveries.moves import as_received
from gateway.deliveries.outbox import PushJob
from gateway.deliveries.recipient import check_for_recipient
from gateway.errors import Forbidden
from gateway.exchange.service import ExchangeService
from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    RecordDecision,
    RequestDecision,
)
from gateway.policy.follower import PolicyHolder
from gateway.standard import Agency, Standard
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["PushRecheck", "RecipientRead", "decide_content"]

log = structlog.get_logger(__name__)

REFUSED_NOW = "policy_refuses_now"


@dataclass(frozen=True)
class RecipientRead:
    """Who receives, under which purpose, in which case: the read the decision is about."""

    kind: DeliveryKind
    recipient: Agency
    purpose: str
    case_number: str | None
    operator_id: str
    case: CaseContext | None


async def decide_content(
    standard: Standard,
    policy: PolicyHolder,
    exchange: ExchangeService,
    read: RecipientRead,
    record: dict[str, Any],
    now: datetime,
) -> tuple[RequestDecision, RecordDecision]:
    """The record's decisions for its recipient if it goes whole; else the 403 (recipient.py)."""
    resource = standard.resource(read.kind.resource)
    id_value = record.get(resource.id_field)
    decision_only = resource.decision_only_fields
    access = AccessRequest(
        requester_agency=read.recipient.code,
        requester_kind=read.recipient.kind,
        resource=read.kind.resource,
        purpose=read.purpose,
        operator_id=read.operator_id,
        time=now,
        case_number=read.case_number,
        case=read.case,
        requested_fields=frozenset(record) - decision_only,
        record_id=id_value if isinstance(id_value, str) else None,
        channel="delivery",
    )
    pdp = policy.current
    decision = pdp.decide(access)
    case_record = read.case.record if read.case else None
    subjects = await exchange.subjects.prepare(decision, resource, {}, case_record)
    await exchange.subjects.complete(subjects, decision, resource, [record])
    verdict = check_for_recipient(pdp, access, record, subjects, decision_only)
    return decision, verdict


class PushRecheck:
    """Before a push: None if the content still goes whole to its recipient, else why not."""

    def __init__(
        self,
        standard: Standard,
        policy: PolicyHolder,
        exchange: ExchangeService,
        clock: Callable[[], datetime],
    ) -> None:
        self._standard = standard
        self._policy = policy
        self._exchange = exchange
        self._clock = clock

    async def __call__(self, job: PushJob) -> str | None:
        kind = self._standard.delivery_kind(job.kind)
        recipient = self._standard.agency(job.to_agency)
        purpose = kind.recipient_purpose(recipient.kind)
        if purpose is None:
            return REFUSED_NOW
        # Scratch: an upstream failure raises (the push is retried); nothing here is audited,
        # the outbox's own entries say what became of the push.
        draft = EntryDraft(kind=AuditKind.DELIVERY, resource=kind.resource)
        case = await self._exchange.case_context(job.case_number, draft, recipient.code, purpose)
        if case is None:
            return REFUSED_NOW  # the case is gone, or its system no longer shows it
        record: dict[str, Any] = dict(orjson.loads(job.content)["record"])
        resource = self._standard.resource(kind.resource)
        if resource.name == "case" and case.record is not None:
            for name in resource.decision_only_fields:
                record.setdefault(name, case.record.get(name))
        received = as_received(self._standard, case, kind, recipient, resource, record)
        operator = job.operator_id or ""  # stored with every delivery the API creates
        read = RecipientRead(kind, recipient, purpose, job.case_number, operator, received)
        try:
            await decide_content(
                self._standard, self._policy, self._exchange, read, record, self._clock()
            )
        except Forbidden as exc:
            log.warning(
                "delivery not pushed: its content is refused now",
                delivery=job.delivery_id,
                rule_ids=exc.extra.get("rule_ids", []),
            )
            return REFUSED_NOW
        return None
