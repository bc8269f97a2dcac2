"""Reading deliveries over HTTP: one delivery, a keyset-paged listing, the figures.

Each function is the ``work`` of :meth:`DeliveryService.handle` (audited before it answers).
Only the sender's and the recipient's agencies see a delivery: a third party gets the same
404 as for a missing one (:func:`gateway.deliveries.lifecycle.not_found`), listings and
figures hold only the caller's own agency's deliveries. No content leaves here: the documents
hold the delivery's metadata, events and receipt, never the record.

Listing query: ``role`` (``inbound``/``outbound``, required), ``status``, ``kind``,
``case_number``, ``overdue`` (``true``/``false``), ``limit`` (1-100, default 20), ``cursor``
(the previous page's ``next_cursor``). Any other parameter, or a bad value, is a 422 naming it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from gateway.audit.entry import EntryDraft
from gateway.auth.tokens import Principal
from gateway.db import session_scope
from gateway.deliveries.lifecycle import not_found, render, visible_to
from gateway.deliveries.repository import STATUSES, DeliveryRepository
from gateway.deliveries.service import Answer, DeliveryService
from gateway.deliveries.stats import delivery_stats
from gateway.errors import UnprocessableContent

__all__ = ["get_delivery", "list_deliveries", "stats"]

_PARAMS = frozenset({"role", "status", "kind", "case_number", "overdue", "limit", "cursor"})
_ID = re.compile(r"DL[0-9a-f]{24}")


def _invalid(name: str, reason: str) -> UnprocessableContent:
    return UnprocessableContent(f"{name}: {reason}", [{"field": name, "reason": reason}])


def get_delivery(
    service: DeliveryService, delivery_id: str, caller: Principal, draft: EntryDraft
) -> Answer:
    draft.record_ids = [delivery_id[:64]]
    draft.action = {"event": "read", "delivery": delivery_id[:64]}
    with session_scope(service.factory) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(delivery_id) if _ID.fullmatch(delivery_id) else None
        if delivery is None or not visible_to(delivery, caller.agency):
            raise not_found(delivery_id)
        draft.owner_agency = delivery.from_agency
        return Answer(200, render(repo, delivery))


def _encode(at: datetime, delivery_id: str) -> str:
    text = f"{at.astimezone(UTC).isoformat()}|{delivery_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, delivery_id = raw.split("|")
        when = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid("cursor", "not a cursor of this listing") from None
    if when.tzinfo is None or not _ID.fullmatch(delivery_id):
        raise _invalid("cursor", "not a cursor of this listing")
    return when, delivery_id


def list_deliveries(
    service: DeliveryService, query: Mapping[str, str], caller: Principal, draft: EntryDraft
) -> Answer:
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise _invalid(unknown[0][:64], "unknown query parameter")
    role = query.get("role")
    if role not in ("inbound", "outbound"):
        raise _invalid("role", "inbound or outbound")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise _invalid("status", f"one of: {', '.join(STATUSES)}")
    kind = query.get("kind")
    if kind is not None and kind not in {k.code for k in service.standard.deliveries}:
        raise _invalid("kind", "not a delivery kind of the standard")
    case_number = query.get("case_number")
    if case_number is not None and not 0 < len(case_number) <= 128:
        raise _invalid("case_number", "1-128 characters")
    overdue = query.get("overdue")
    if overdue not in (None, "true", "false"):
        raise _invalid("overdue", "true or false")
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise _invalid("limit", "an integer from 1 to 100")
    limit = int(raw_limit)
    after = _decode(query["cursor"]) if "cursor" in query else None
    draft.action = {"event": "listed", "role": role}
    now = service.clock()
    with session_scope(service.factory) as session:
        repo = DeliveryRepository(session)
        rows = repo.page(
            caller.agency,
            "inbound" if role == "inbound" else "outbound",
            status=status,
            kind=kind,
            case_number=case_number,
            overdue_at=now if overdue == "true" else None,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        documents = [render(repo, d) for d in page]
        last = page[-1] if len(rows) > limit else None
        next_cursor = _encode(last.created_at, last.id) if last is not None else None
    draft.record_ids = [d["id"] for d in documents]
    return Answer(200, {"deliveries": documents, "next_cursor": next_cursor})


def stats(service: DeliveryService, caller: Principal, draft: EntryDraft) -> Answer:
    draft.action = {"event": "stats"}
    with session_scope(service.factory) as session:
        rows = delivery_stats(session, now=service.clock(), agencies=[caller.agency])
    return Answer(200, {"agency": caller.agency, "figures": rows})
