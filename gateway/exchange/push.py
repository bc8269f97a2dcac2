"""The outbox's push (issue 15): a stored delivery to the recipient agency's system.

Contract of :func:`adapter_push`: the returned function renders the :class:`PushJob` through the
recipient agency kind's adapter (its declarative write mapping, adapters/agencies/*.yaml) and
sends it with the delivery id as the idempotency key. Its :class:`PushResult`:

* ``delivered`` — the agency system took it (2xx with an OK answer naming its receipt);
* ``retry`` — it did not answer usably: cannot connect, circuit open, timeout, 5xx, 408/425/429,
  an answer we cannot read. The outbox tries again with backoff;
* ``refused`` — it refused for good: any other 4xx, an error answer in its envelope, or a
  record its write mapping cannot render. The outbox marks the delivery ``failed``.

Before anything is sent, the delivery rules of the policy IN FORCE are asked again
(``allowed(sender kind, recipient kind, delivery kind)``): a delivery created before an
emergency freeze, or before its rule was withdrawn, waits in the outbox (a recipient down,
backoff) and must not leave after it. Refused then: ``refused`` with category
``policy_refuses_now``, so the outbox marks it ``failed`` with its audit entry.

Then, when given (the app gives it), ``recheck`` decides the stored content again for its
recipient under the policy in force (:class:`gateway.deliveries.content.PushRecheck`): a
negative list tightened, or a subject sealed, since the delivery was created refuses it the
same way (``policy_refuses_now``); a case or subject lookup that fails is retried.

The adapter's own error text goes to the log only; the result carries a fixed category.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson
import structlog
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import (
    AdapterError,
    MappingError,
    OutboundDelivery,
    UnsupportedOperation,
)
from gateway.audit.writer import AuditWriter
from gateway.deliveries.outbox import OutboxPusher, Push, PushJob, PushOutcome, PushResult
from gateway.errors import GatewayError
from gateway.exchange.upstream import AgencyAdapters
from gateway.policy.follower import PolicyHolder
from gateway.settings import Settings
from gateway.standard import Standard

__all__ = ["DeliveryRules", "Recheck", "adapter_push", "outbox_pusher", "rules_in_force"]

log = structlog.get_logger(__name__)

#: 4xx answers that say "not now" rather than "never".
_TRANSIENT_4XX = frozenset({408, 425, 429})


def _outcome(exc: AdapterError) -> PushResult:
    status = exc.upstream_status
    refused = isinstance(exc, MappingError) or exc.category == "upstream_refused"
    if status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
        refused = True
    return PushResult(PushOutcome.REFUSED if refused else PushOutcome.RETRY, status, exc.category)


DeliveryRules = Callable[[str, str, str], bool]
"""``(sender kind, recipient kind, delivery kind) -> allowed`` by the policy in force."""


def rules_in_force(policy: PolicyHolder) -> DeliveryRules:
    """The delivery rules of the set in force at each call (a freeze included)."""

    def allowed(sender_kind: str, recipient_kind: str, kind: str) -> bool:
        return policy.current.decide_delivery(sender_kind, recipient_kind, kind).allowed

    return allowed


Recheck = Callable[[PushJob], Awaitable[str | None]]
"""The stored content decided again before a push: None, or the refusal's category."""


def adapter_push(
    adapters: AgencyAdapters,
    standard: Standard,
    allowed: DeliveryRules,
    recheck: Recheck | None = None,
) -> Push:
    async def push(job: PushJob) -> PushResult:
        recipient = standard.agency(job.to_agency)
        sender = standard.agency(job.from_agency)
        if not allowed(sender.kind, recipient.kind, job.kind):
            log.warning(
                "delivery not pushed: the policy in force refuses it", delivery=job.delivery_id
            )
            return PushResult(PushOutcome.REFUSED, None, "policy_refuses_now")
        if recheck is not None:
            try:
                refused = await recheck(job)
            except GatewayError as exc:  # the case's or a subject's system did not answer
                log.warning(
                    "delivery not pushed yet: its content cannot be decided now",
                    delivery=job.delivery_id,
                    error=exc.slug,
                )
                return PushResult(PushOutcome.RETRY, None, "content_undecided")
            if refused is not None:
                return PushResult(PushOutcome.REFUSED, None, refused)
        if not adapters.serves(recipient.kind):
            return PushResult(PushOutcome.REFUSED, None, "recipient_has_no_adapter")
        content = orjson.loads(job.content)
        delivery = OutboundDelivery(
            id=job.delivery_id,
            kind=job.kind,
            from_agency=job.from_agency,
            to_agency=job.to_agency,
            case_number=job.case_number,
            resource=standard.delivery_kind(job.kind).resource,
            record=content["record"],
            attachments=content.get("attachments", []),
        )
        try:
            delivered = await adapters.deliver(recipient.kind, delivery)
        except UnsupportedOperation:
            return PushResult(PushOutcome.REFUSED, None, "recipient_accepts_no_deliveries")
        except AdapterError as exc:
            log.warning(
                "delivery push not taken",
                delivery=job.delivery_id,
                agency=exc.agency,
                category=exc.category,
                status=exc.upstream_status,
                error=exc.message[:300],
            )
            return _outcome(exc)
        adapters.forget_case(job.case_number)  # the recipient's system may have moved it on
        log.info(
            "delivery pushed",
            delivery=job.delivery_id,
            agency=recipient.kind,
            receipt=delivered.receipt_id,
        )
        return PushResult(PushOutcome.DELIVERED, delivered.status, None, delivered.receipt_id)

    return push


def outbox_pusher(
    settings: Settings,
    factory: sessionmaker[Session],
    adapters: AgencyAdapters,
    standard: Standard,
    audit: AuditWriter,
    policy: PolicyHolder,
    recheck: Recheck | None = None,
) -> OutboxPusher:
    """The app's pusher: pushes through the adapters what the policy in force still allows,
    audited by the app's writer."""
    return OutboxPusher(
        factory,
        adapter_push(adapters, standard, rules_in_force(policy), recheck),
        audit.append,
        resource_of=lambda kind: standard.delivery_kind(kind).resource,
        lease=timedelta(seconds=settings.delivery_push_lease_seconds),
        base=timedelta(seconds=settings.delivery_push_backoff_seconds),
        cap=timedelta(seconds=settings.delivery_push_backoff_cap_seconds),
        max_attempts=settings.delivery_push_max_attempts,
    )
