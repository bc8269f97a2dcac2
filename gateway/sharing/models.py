"""Tables of conditional sharing: applications and the grants their approvals create.

Lists (fields, record ids) are stored as JSON text. The application role may read, insert and
update these rows (an application is answered, a grant revoked or marked expired), never
delete them: the audit log holds every step besides.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime, utcnow

__all__ = ["SharingApplication", "SharingGrant"]


class SharingApplication(Base):
    __tablename__ = "sharing_applications"
    __table_args__ = (
        Index("ix_sharing_applications_requester", "requester_agency", "created_at"),
        Index("ix_sharing_applications_owner", "owner_agency", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requester_agency: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[str] = mapped_column(String(64))
    owner_agency: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(Text)
    record_ids: Mapped[str | None] = mapped_column(Text, nullable=True)
    purpose: Mapped[str] = mapped_column(String(64))
    case_number: Mapped[str] = mapped_column(String(256))
    case_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    days: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    refusal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    granted_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class SharingGrant(Base):
    __tablename__ = "sharing_grants"
    __table_args__ = (
        Index("ix_sharing_grants_live", "revoked_at", "valid_until"),
        Index("ix_sharing_grants_application", "application_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(36), ForeignKey("sharing_applications.id"))
    requester_agency: Mapped[str] = mapped_column(String(32))
    owner_agency: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(Text)
    record_ids: Mapped[str | None] = mapped_column(Text, nullable=True)
    purpose: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(128))
    case_number: Mapped[str] = mapped_column(String(256))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The expiry's audit entry is written (once, by whichever worker notices it first).
    expiry_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
