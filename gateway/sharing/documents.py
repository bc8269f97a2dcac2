"""Request bodies and the JSON documents of applications (the API's contract)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.sharing.models import SharingApplication, SharingGrant

__all__ = [
    "ApplyBody",
    "ApproveBody",
    "RefuseBody",
    "RevokeBody",
    "application_document",
    "effective_status",
]

# Text goes to the database and the audit log: no control characters (NUL breaks PostgreSQL
# text), but line breaks and tabs are fine.
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_Text = Annotated[str, Field(min_length=1, max_length=2000, pattern=_PRINTABLE)]
_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
_RecordId = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._:-]{0,63}$")]


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: _Name
    fields: Annotated[list[_Name], Field(min_length=1, max_length=64)]
    record_ids: Annotated[list[_RecordId], Field(min_length=1, max_length=100)] | None = None
    reason: _Text
    days: Annotated[int, Field(ge=1, le=366)]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(max_length=2000, pattern=_PRINTABLE)] = ""
    days: Annotated[int, Field(ge=1, le=366)]


class RefuseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: _Text


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=2000, pattern=_PRINTABLE)] = ""


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def effective_status(app: SharingApplication, grant: SharingGrant | None, now: datetime) -> str:
    """The stored status, or ``expired`` for an approval whose grant's window has passed."""
    if app.status == "approved" and grant is not None and grant.valid_until <= now:
        return "expired"
    return app.status


def application_document(
    app: SharingApplication, grant: SharingGrant | None, now: datetime
) -> dict[str, Any]:
    status = effective_status(app, grant, now)
    answered_late = app.answered_at is not None and app.answered_at > app.due_at
    return {
        "id": app.id,
        "status": status,
        "overdue": (status == "pending" and now > app.due_at) or answered_late,
        "due_at": _time(app.due_at),
        "created_at": _time(app.created_at),
        "requester_agency": app.requester_agency,
        "owner_agency": app.owner_agency,
        "resource": app.resource,
        "fields": json.loads(app.fields),
        "record_ids": None if app.record_ids is None else json.loads(app.record_ids),
        "purpose": app.purpose,
        "case_number": app.case_number,
        "reason": app.reason,
        "days": app.days,
        "answered_at": _time(app.answered_at),
        "comment": app.comment,
        "refusal_reason": app.refusal_reason,
        "granted_days": app.granted_days,
        "grant": None
        if grant is None
        else {
            "id": grant.id,
            "valid_from": _time(grant.valid_from),
            "valid_until": _time(grant.valid_until),
            "revoked_at": _time(grant.revoked_at),
        },
    }
