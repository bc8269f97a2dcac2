"""Delivery tables (协同办案, issue 15): deliveries, their events, the outbox and idempotency keys.

* ``deliveries``: one row per delivery (a copy, 抄送, is its own row naming its main delivery
  in ``copy_of``); ``status``, ``due_at``, ``answered_at`` and ``receipt``
  change as it moves (the application role may UPDATE it, never DELETE).
* ``delivery_events``: append-only history (created, push attempts, delivered, answered,
  extended, failed), each with the audit index of its audit entry.
* ``delivery_outbox``: the durable outbox. The row is committed with the delivery, then a
  pusher claims it (``lease_until``), pushes, and records the outcome; a crash leaves the row
  claimable again once the lease runs out. ``done`` rows stay, as a record.
* ``delivery_idempotency``: ``(client_id, key)`` -> the SHA-256 of the request and its delivery.
  The primary key makes concurrent duplicates collide in the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime

__all__ = ["Delivery", "DeliveryEvent", "DeliveryIdempotency", "DeliveryOutbox"]

_EVENT_ID = BigInteger().with_variant(Integer(), "sqlite")


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    from_agency: Mapped[str] = mapped_column(String(32))
    to_agency: Mapped[str] = mapped_column(String(32))
    case_number: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_id: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    # Canonical JSON of {"record", "attachments"} as validated: what the outbox pushes.
    content: Mapped[bytes] = mapped_column(LargeBinary)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)
    # 抄送: the main delivery this row is a copy of (None: a main delivery). Migration 0012.
    copy_of: Mapped[str | None] = mapped_column(ForeignKey("deliveries.id"), nullable=True)

    __table_args__ = (
        Index("ix_deliveries_from_agency", "from_agency", "created_at", "id"),
        Index("ix_deliveries_to_agency", "to_agency", "created_at", "id"),
        Index("ix_deliveries_case_number", "case_number"),
        Index("ix_deliveries_status_due_at", "status", "due_at"),
        Index("ix_deliveries_copy_of", "copy_of"),
    )


class DeliveryEvent(Base):
    __tablename__ = "delivery_events"

    seq: Mapped[int] = mapped_column(_EVENT_ID, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(24))
    # Canonical JSON object with the event's details (reason, basis, error, attempt ...).
    detail: Mapped[str] = mapped_column(Text)
    audit_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_delivery_events_delivery_id", "delivery_id", "seq"),)


class DeliveryOutbox(Base):
    __tablename__ = "delivery_outbox"

    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # pending | done | dead
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)

    __table_args__ = (Index("ix_delivery_outbox_due", "state", "next_attempt_at"),)


class DeliveryIdempotency(Base):
    __tablename__ = "delivery_idempotency"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
