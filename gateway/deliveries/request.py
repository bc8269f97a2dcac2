"""The body of ``POST /v1/deliveries``, checked before anything is decided or written.

Body: ``{"kind", "to_agency", "record"}`` (the standard record inline) or ``{"kind",
"to_agency", "record_id"}`` (the sender's own record, fetched through its adapter by the
caller of :func:`parse_delivery`), with optional ``"attachments"`` and ``"copies"`` (抄送: a
list of agency codes, each of a kind the delivery kind's ``copies`` declares, neither the
sender nor the recipient, none twice; 422 naming ``copies[i]``).

Contract of :func:`parse_delivery`: it returns a :class:`DeliveryRequest`, or raises one 4xx,
always naming the field: 403 when the sender's agency, or its kind, does not send this kind;
413 for an oversize attachment; 422 for anything else (not a JSON object, unknown keys, an
unknown kind, an unknown recipient or one of a kind the kind does not go to, the sender itself,
both or neither of ``record``/``record_id``, a record that breaks the standard (``record.<field>``),
a record without the date its deadline counts from, bad attachments, bad copies). Nothing is
written.

``request_sha256`` is the SHA-256 of the body's canonical JSON (sorted keys, no whitespace):
the idempotency key's fingerprint, the same for the same body however it is spaced.
``content`` (canonical JSON of ``{"record", "attachments"}``, attachments with their bytes in
base64) is what is stored and pushed; ``content_sha256`` its SHA-256, which the receipt binds.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from gateway.deliveries.attachments import Attachment, check_attachments
from gateway.deliveries.deadlines import DeadlineError, due_at
from gateway.errors import Forbidden, UnprocessableContent
from gateway.standard import Agency, Standard, record_validator
from gateway.standard.delivery_kinds import DeliveryKind

__all__ = ["DeliveryRequest", "parse_delivery"]

_KEYS = frozenset({"kind", "to_agency", "record", "record_id", "attachments", "copies"})
#: At most this many copies (抄送) per delivery (no kind copies to more than two agency kinds).
MAX_COPIES = 10
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def _invalid(field: str, reason: str) -> UnprocessableContent:
    return UnprocessableContent(f"{field}: {reason}", [{"field": field, "reason": reason}])


@dataclass(frozen=True)
class DeliveryRequest:
    kind: DeliveryKind
    sender: Agency
    recipient: Agency
    record: dict[str, Any] | None  # None: fetch record_id from the sender's system
    record_id: str | None
    attachments: list[Attachment]
    request_sha256: str
    copies: tuple[Agency, ...] = ()  # 抄送: each its own delivery of the same content

    def content(self, record: dict[str, Any]) -> bytes:
        """The canonical stored and pushed content for ``record`` (see module docstring)."""
        return orjson.dumps(
            {
                "record": record,
                "attachments": [
                    {
                        "name": a.name,
                        "media_type": a.media_type,
                        "content_base64": base64.b64encode(a.content).decode("ascii"),
                    }
                    for a in self.attachments
                ],
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def checked_record(self, standard: Standard, record: object) -> dict[str, Any]:
        """``record`` if it is a standard record of the kind's resource type, else the 422."""
        if not isinstance(record, dict):
            raise _invalid("record", f"must be a {self.kind.resource} record (an object)")
        violations = record_validator(standard, self.kind.resource).validate(record)
        if violations:
            first = violations[0]
            raise UnprocessableContent(
                f"record.{first.field}: {first.reason}",
                [{"field": f"record.{v.field}", "reason": v.reason} for v in violations[:20]],
            )
        return record

    def deadline(self, record: dict[str, Any], received_at: datetime) -> datetime | None:
        """The statutory ``due_at``; the 422 names the date field it needs."""
        try:
            return due_at(self.kind, record, received_at)
        except DeadlineError as exc:
            limit = self.kind.time_limit
            field = "record" if limit is None else f"record.{limit.counted_from}"
            raise _invalid(field, str(exc)) from None


def _kind(standard: Standard, value: object) -> DeliveryKind:
    try:
        if isinstance(value, str):
            return standard.delivery_kind(value)
    except KeyError:
        pass
    known = ", ".join(k.code for k in standard.deliveries)
    raise _invalid("kind", f"not a delivery kind of the standard (one of: {known})")


def parse_delivery(standard: Standard, sender_agency: str, body: bytes) -> DeliveryRequest:
    """Check the body sent by ``sender_agency`` (see module docstring)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise _invalid("body", "must be a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _invalid(str(unknown[0])[:64], "unknown key")
    kind = _kind(standard, data.get("kind"))
    try:
        sender = standard.agency(sender_agency)
    except KeyError:
        raise Forbidden(f"agency {sender_agency} is not in the standard's agency list") from None
    if sender.kind not in kind.senders:
        raise Forbidden(f"agencies of kind {sender.kind} do not send {kind.name} ({kind.code})")
    to = data.get("to_agency")
    try:
        recipient = standard.agency(to) if isinstance(to, str) else None
    except KeyError:
        recipient = None
    if recipient is None:
        raise _invalid("to_agency", "not an agency of the standard")
    if recipient.code == sender.code:
        raise _invalid("to_agency", "an agency does not deliver to itself")
    if recipient.kind not in kind.recipients:
        goes_to = ", ".join(kind.recipients)
        raise _invalid("to_agency", f"{kind.name} goes to agencies of kind: {goes_to}")
    if ("record" in data) == ("record_id" in data):
        raise _invalid("record", "give either record (inline) or record_id, not both")
    record_id = data.get("record_id")
    if "record_id" in data and not (isinstance(record_id, str) and _RECORD_ID.fullmatch(record_id)):
        raise _invalid("record_id", "1-64 letters, digits, '_', '.', ':' or '-'")
    attachments = check_attachments(data.get("attachments"), kind.attachments)
    copies = _copies(standard, kind, sender, recipient, data.get("copies"))
    request = DeliveryRequest(
        kind=kind,
        sender=sender,
        recipient=recipient,
        record=None,
        record_id=record_id if isinstance(record_id, str) else None,
        attachments=attachments,
        request_sha256=hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        copies=copies,
    )
    if "record" in data:
        checked = request.checked_record(standard, data["record"])
        request = replace(request, record=checked)
    return request


def _copies(
    standard: Standard, kind: DeliveryKind, sender: Agency, recipient: Agency, value: object
) -> tuple[Agency, ...]:
    """The ``copies`` (抄送) of the body: agencies of the kind's ``copies`` kinds, each once,
    neither the sender nor the recipient; the 422 names ``copies[i]``."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_COPIES:
        raise _invalid("copies", f"a list of at most {MAX_COPIES} agency codes")
    copies: list[Agency] = []
    for i, code in enumerate(value):
        field = f"copies[{i}]"
        try:
            agency = standard.agency(code) if isinstance(code, str) else None
        except KeyError:
            agency = None
        if agency is None:
            raise _invalid(field, "not an agency of the standard")
        if agency.code == sender.code:
            raise _invalid(field, "the sender does not copy itself")
        if agency.code == recipient.code:
            raise _invalid(field, "the recipient already receives the delivery")
        if agency in copies:
            raise _invalid(field, f"{agency.code} is listed twice")
        if agency.kind not in kind.copies:
            to = ", ".join(kind.copies) or "no agency"
            raise _invalid(field, f"{kind.name} ({kind.code}) is copied to: {to}")
        copies.append(agency)
    return tuple(copies)
