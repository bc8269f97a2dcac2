"""Copies (抄送) of a delivery: each its own delivery, decided for ITS recipient.

The standard declares which agency kinds a delivery kind is copied to (``copies`` in
``policies/standard/deliveries/<code>.yaml``) and the purpose each receives it under
(``recipient_purposes``). The body of ``POST /v1/deliveries`` names the copy agencies
(``"copies": ["JC640104", ...]``, checked by :func:`gateway.deliveries.request.parse_delivery`).

Contracts:

* :func:`check_copy_rules` (before anything is looked up): each copy agency's kind has a declared
  purpose and a delivery rule of the permissions list lets the sender's kind copy the kind to
  it (``policies/permissions/deliveries.yaml``, ``*.copy`` rules); else 403 naming
  ``copies[i]`` in ``field`` and the agency in ``to_agency``.
* :func:`check_copies` (after the main recipient's decision): the content is decided for each
  copy agency exactly as for the main recipient, through the same choke point
  (:func:`gateway.deliveries.recipient.check_for_recipient`), on the case as the delivery leaves
  it for that agency (:func:`gateway.deliveries.moves.as_received`: the stage the step puts the
  case in; a copy agency is a party only if it handles the case or the record names it; being
  copied makes it nothing). Refuse, never strip: if any copy agency may not receive the content
  whole, the whole request is refused (403, ``copy`` = ``copies[i]``, ``to_agency``, and the
  record ``field``/``fields`` as for a recipient); nothing is stored, no copy and no main
  delivery.
* :func:`copy_rows`: the copies to store with the main delivery, in one transaction: the same
  kind, sender, case, content and ``content_sha256``, their own ``to_agency`` and id, ``copy_of``
  the main delivery, and no deadline (``due_at`` null: a copy asks no answer).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gateway.audit.entry import EntryDraft
from gateway.deliveries.moves import as_received
from gateway.deliveries.repository import NewDelivery, new_delivery_id
from gateway.deliveries.request import DeliveryRequest
from gateway.errors import Forbidden
from gateway.exchange.request import ExchangeHeaders
from gateway.policy.engine import PolicyEngine
from gateway.standard import Agency

if TYPE_CHECKING:
    from gateway.deliveries.service import DeliveryService

__all__ = ["check_copies", "check_copy_rules", "copy_rows"]


def _refused(i: int, copy: Agency, detail: str, extra: dict[str, Any]) -> Forbidden:
    return Forbidden(
        f"copies[{i}] ({copy.code}): {detail}",
        extra={**extra, "copy": f"copies[{i}]", "to_agency": copy.code},
    )


def check_copy_rules(pdp: PolicyEngine, parsed: DeliveryRequest, draft: EntryDraft) -> list[str]:
    """The purpose each copy agency receives the kind under; or the 403 (module docstring)."""
    kind, sender = parsed.kind, parsed.sender
    purposes: list[str] = []
    for i, copy in enumerate(parsed.copies):
        purpose = kind.recipient_purpose(copy.kind)
        if purpose is None:
            raise _refused(
                i,
                copy,
                f"the standard declares no purpose agencies of kind {copy.kind} receive "
                f"{kind.name} ({kind.code}) under",
                {"rule_ids": []},
            )
        allowed = pdp.decide_delivery(sender.kind, copy.kind, kind.code)
        draft.rule_ids = sorted({*draft.rule_ids, *allowed.rule_ids})
        if not allowed.allowed:
            raise _refused(i, copy, f"denied: {allowed.reason}", {"rule_ids": []})
        purposes.append(purpose)
    return purposes


async def check_copies(
    service: DeliveryService,
    parsed: DeliveryRequest,
    record: dict[str, Any],
    headers: ExchangeHeaders,
    purposes: list[str],
    draft: EntryDraft,
) -> None:
    """The content decided for every copy agency, whole or refused (module docstring)."""
    resource = service.standard.resource(parsed.kind.resource)
    for i, (copy, purpose) in enumerate(zip(parsed.copies, purposes, strict=True)):
        case = await service.exchange.case_context(headers.case_number, draft, copy.code, purpose)
        if case is None:
            raise _refused(i, copy, "the case is not known to it", {"rule_ids": []})
        received = as_received(service.standard, case, parsed.kind, copy, resource, record)
        try:
            await service.check_content(
                replace(parsed, recipient=copy), record, headers, received, purpose, draft
            )
        except Forbidden as exc:
            raise _refused(i, copy, exc.detail, exc.extra) from None


def copy_rows(parsed: DeliveryRequest, main: NewDelivery) -> list[NewDelivery]:
    """The copies stored with ``main`` (module docstring)."""
    return [
        replace(main, id=new_delivery_id(), to_agency=copy.code, due_at=None, copy_of=main.id)
        for copy in parsed.copies
    ]
