"""A delivery's life after creation: its JSON, the recipient's answer, deadline extensions.

Contracts:

* :func:`delivery_document` is the issue's shape: ``{"id", "kind", "from_agency", "to_agency",
  "case_number", "status", "created_at", "due_at", "content_sha256", "events", "receipt"}``,
  plus ``"copy_of"`` (a copy, 抄送: the id of the delivery it copies; else null) and ``"copies"``
  (a main delivery's copies: ``[{"id", "to_agency", "status"}]``, by id; else ``[]``); each
  event is ``{"type", "at", "audit_index", **detail}``.
* :func:`visible_to` is the only test of who sees a delivery: the sender's and the recipient's
  agencies. Everyone else is answered exactly as for a delivery that does not exist
  (:func:`not_found`: one text for both, neither confirm nor deny).
* :func:`check_answer` refuses, before anything is written or audited as done: an answer by
  a third party (the NCND 404) or by the sender (403), an answer to a copy (409: a copy asks no
  answer; ``delivered`` is its final status), an answer the kind does not allow (422), a
  ``returned`` without a reason (422, ``reason`` named), an answer to a delivery already
  answered or failed (409).
* :func:`record_answer` then applies it: the receipt (signed, holding the audit index of the
  answer's entry), the status, the ``answered`` event. It changes the row only while it is still
  unanswered (a concurrent answer that won makes it return ``False``: nothing is changed).
* :func:`record_extension` moves ``due_at`` by an extension the law allows, as an
  ``extended`` event with the extension's basis.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import update

from gateway.audit.checkpoint import CheckpointSigner
from gateway.deliveries.deadlines import DeadlineError, extend
from gateway.deliveries.models import Delivery, DeliveryEvent
from gateway.deliveries.receipts import Receipt, sign_receipt
from gateway.deliveries.repository import OPEN_STATUSES, DeliveryRepository
from gateway.errors import Conflict, Forbidden, NotFound, UnprocessableContent
from gateway.standard.delivery_kinds import DeliveryKind, Extension

__all__ = [
    "MAX_REASON",
    "check_answer",
    "check_extension",
    "delivery_document",
    "not_found",
    "record_answer",
    "record_extension",
    "render",
    "visible_to",
]

MAX_REASON = 500


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def delivery_document(
    delivery: Delivery, events: Sequence[DeliveryEvent], copies: Sequence[Delivery] = ()
) -> dict[str, Any]:
    """The delivery as the API answers it (see module docstring)."""
    return {
        "id": delivery.id,
        "kind": delivery.kind,
        "from_agency": delivery.from_agency,
        "to_agency": delivery.to_agency,
        "case_number": delivery.case_number,
        "status": delivery.status,
        "created_at": _time(delivery.created_at),
        "due_at": _time(delivery.due_at),
        "content_sha256": delivery.content_sha256,
        "events": [
            {
                "type": event.type,
                "at": _time(event.at),
                "audit_index": event.audit_index,
                **orjson.loads(event.detail),
            }
            for event in events
        ],
        "receipt": delivery.receipt,
        "copy_of": delivery.copy_of,
        "copies": [{"id": c.id, "to_agency": c.to_agency, "status": c.status} for c in copies],
    }


def render(repo: DeliveryRepository, delivery: Delivery) -> dict[str, Any]:
    """:func:`delivery_document` of ``delivery`` with its events and copies, as stored."""
    return delivery_document(delivery, repo.events(delivery.id), repo.copies_of(delivery.id))


def visible_to(delivery: Delivery | None, agency: str) -> bool:
    return delivery is not None and agency in (delivery.from_agency, delivery.to_agency)


def not_found(delivery_id: str) -> NotFound:
    """The one answer for a delivery that is missing or not the caller's to see."""
    return NotFound(f"no delivery {delivery_id[:40]!r} is available to you")


def check_answer(
    delivery: Delivery | None,
    delivery_id: str,
    kind: DeliveryKind,
    *,
    agency: str,
    decision: object,
    reason: object,
) -> tuple[str, str | None]:
    """The valid ``(decision, reason)`` of ``agency``'s answer, or the refusal (see above)."""
    if delivery is None or not visible_to(delivery, agency):
        raise not_found(delivery_id)
    if agency != delivery.to_agency:
        raise Forbidden("only the recipient answers a delivery")
    if delivery.copy_of is not None:
        raise Conflict(
            "a copy (抄送) is delivered for information and takes no answer; "
            f"the delivery it copies ({delivery.copy_of}) is answered by its own recipient",
            extra={"copy_of": delivery.copy_of},
        )
    allowed = [answer.value for answer in kind.answers]
    if decision not in allowed:
        raise UnprocessableContent(
            f"decision must be one of: {', '.join(allowed)}",
            [{"field": "decision", "reason": f"one of: {', '.join(allowed)}"}],
        )
    assert isinstance(decision, str)
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise UnprocessableContent(
            "reason must be a text", [{"field": "reason", "reason": f"1-{MAX_REASON} characters"}]
        )
    if decision == "returned" and not (isinstance(reason, str) and reason.strip()):
        raise UnprocessableContent(
            "a returned delivery (退回) states its reason",
            [{"field": "reason", "reason": "required when the decision is returned"}],
        )
    if delivery.status not in OPEN_STATUSES:
        raise Conflict(f"the delivery is already {delivery.status}")
    return decision, reason if isinstance(reason, str) and reason.strip() else None


def record_answer(
    repo: DeliveryRepository,
    delivery: Delivery,
    *,
    decision: str,
    reason: str | None,
    at: datetime,
    audit_index: int,
    signer: CheckpointSigner,
) -> bool:
    """Apply a checked answer (see module docstring); ``False`` if another answer came first."""
    receipt = sign_receipt(
        signer,
        Receipt(
            delivery_id=delivery.id,
            kind=delivery.kind,
            from_agency=delivery.from_agency,
            to_agency=delivery.to_agency,
            case_number=delivery.case_number,
            content_sha256=delivery.content_sha256,
            decision=decision,
            time=at,
            audit_index=audit_index,
        ),
    )
    changed = repo.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status.in_(OPEN_STATUSES))
        .values(status=decision, decision=decision, answered_at=at, receipt=receipt)
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    detail: dict[str, object] = {"decision": decision}
    if reason is not None:
        detail["reason"] = reason
    repo.add_event(delivery.id, "answered", at, detail, audit_index)
    repo.session.refresh(delivery)
    return True


def check_extension(
    repo: DeliveryRepository,
    delivery: Delivery,
    kind: DeliveryKind,
    record: dict[str, object],
    code: str,
) -> tuple[datetime, Extension]:
    """The deadline after extension ``code`` of ``delivery``, and the extension; or the 422."""
    if delivery.due_at is None:
        raise UnprocessableContent(
            "this delivery has no statutory deadline", [{"field": "extension", "reason": code}]
        )
    applied = [
        str(orjson.loads(e.detail).get("extension"))
        for e in repo.events(delivery.id)
        if e.type == "extended"
    ]
    try:
        return extend(kind, record, delivery.created_at, delivery.due_at, code, applied)
    except DeadlineError as exc:
        raise UnprocessableContent(str(exc), [{"field": "extension", "reason": str(exc)}]) from None


def record_extension(
    repo: DeliveryRepository,
    delivery: Delivery,
    kind: DeliveryKind,
    record: dict[str, object],
    code: str,
    *,
    at: datetime,
    audit_index: int | None,
    reason: str | None = None,
) -> datetime:
    """Extend ``delivery``'s deadline by extension ``code``; the new ``due_at``."""
    new, extension = check_extension(repo, delivery, kind, record, code)
    delivery.due_at = new
    detail: dict[str, object] = {"extension": code, "basis": extension.basis, "due_at": _time(new)}
    if reason is not None:
        detail["reason"] = reason
    repo.add_event(delivery.id, "extended", at, detail, audit_index)
    return new
