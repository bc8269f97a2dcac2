"""Extending a delivery's statutory deadline over HTTP (an extension the law allows).

Contract of :func:`extend_delivery`, the ``work`` of :meth:`DeliveryService.handle` (audited
before it answers): body ``{"extension": <code>, "reason": <text>}``. ``extension`` is one
of the kind's declared extensions (``time_limit.extensions`` in its standard file, each with
its legal basis); ``reason`` (required, at most 500 characters) says on what the extension
rests (e.g. who approved it: 经上一级人民法院批准). Only the agency that bears the duty
(``time_limit.duty``: the recipient or the sender) extends, and only while the delivery is
open (``pending`` or ``delivered``). The deadline moves once per extension, never earlier
(:func:`gateway.deliveries.deadlines.extend`), and the ``extended`` event carries the code,
its basis, the new ``due_at``, the reason and the audit index of the request.

Refusals: a delivery the caller neither sent nor receives is the same 404 as a missing one;
the other party 403; a kind without a deadline, an unknown or repeated extension, or a bad
body 422 naming the field; an answered delivery, or a deadline already passed, 409.
Nothing is written on a refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from gateway.audit.entry import EntryDraft
from gateway.auth.tokens import Principal
from gateway.db import session_scope
from gateway.deliveries.lifecycle import (
    MAX_REASON,
    check_extension,
    not_found,
    record_extension,
    render,
    visible_to,
)
from gateway.deliveries.models import Delivery
from gateway.deliveries.repository import OPEN_STATUSES, DeliveryRepository
from gateway.deliveries.service import Answer, DeliveryService
from gateway.errors import Conflict, Forbidden, UnprocessableContent
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["extend_delivery"]


def _invalid(name: str, reason: str) -> UnprocessableContent:
    return UnprocessableContent(f"{name}: {reason}", [{"field": name, "reason": reason}])


def _body(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise _invalid("body", "a JSON object")
    unknown = sorted(set(data) - {"extension", "reason"})
    if unknown:
        raise _invalid(str(unknown[0])[:64], "unknown key")
    code, reason = data.get("extension"), data.get("reason")
    if not isinstance(code, str) or not code:
        raise _invalid("extension", "required: the code of an extension the kind allows")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise _invalid("reason", f"required: what it rests on, 1-{MAX_REASON} characters")
    return code[:64], reason.strip()


def _check(
    repo: DeliveryRepository, row: Delivery, kind: DeliveryKind, code: str, now: datetime
) -> dict[str, object]:
    """The delivery's record, if ``code`` extends its open deadline; else the refusal."""
    if row.status not in OPEN_STATUSES:
        raise Conflict(f"the delivery is already {row.status}")
    if row.due_at is not None and now > row.due_at:
        # Extended afterwards, a late answer would read as on time (overdue figures, stats).
        raise Conflict(
            f"the deadline passed at {row.due_at.astimezone(UTC).isoformat(timespec='seconds')}: "
            "an extension is made before it runs out"
        )
    record: dict[str, object] = orjson.loads(row.content).get("record", {})
    check_extension(repo, row, kind, record, code)
    return record


def extend_delivery(
    service: DeliveryService, delivery_id: str, body: bytes, caller: Principal, draft: EntryDraft
) -> Answer:
    draft.record_ids = [delivery_id[:64]]
    draft.action = {"event": "extended", "delivery": delivery_id[:64]}
    with session_scope(service.factory) as session:
        repo = DeliveryRepository(session)
        delivery = repo.get(delivery_id)
        if delivery is None or not visible_to(delivery, caller.agency):
            raise not_found(delivery_id)
        draft.owner_agency = delivery.from_agency
        draft.body_sha256 = delivery.content_sha256
        kind = service.standard.delivery_kind(delivery.kind)
        draft.resource = kind.resource
        duty = None if kind.time_limit is None else kind.time_limit.duty
        bearer = delivery.to_agency if duty == "recipient" else delivery.from_agency
        if duty is not None and caller.agency != bearer:
            raise Forbidden(f"only the {duty} of this delivery extends its deadline")
        code, reason = _body(body)
        draft.action = {**draft.action, "extension": code}
        _check(repo, delivery, kind, code, service.clock())  # refused before its entry

    def commit(index: int) -> dict[str, Any]:
        with session_scope(service.factory) as session:
            repo = DeliveryRepository(session)
            # Locked, and checked again: of two extensions at once, the second sees the first.
            # (FOR UPDATE on PostgreSQL; on SQLite the write lock, taken before the read.)
            repo.lock_for_writing()
            row = session.execute(
                select(Delivery).where(Delivery.id == delivery_id).with_for_update()
            ).scalar_one()
            now = service.clock()
            record = _check(repo, row, kind, code, now)
            record_extension(
                repo, row, kind, record, code, at=now, audit_index=index, reason=reason
            )
            return render(repo, row)

    return Answer(200, None, {}, commit)
