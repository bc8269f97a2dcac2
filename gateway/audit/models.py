"""Audit tables. Entries, nodes, checkpoints and the two indexes (rule hits, case references)
are append-only (triggers refuse UPDATE and DELETE, see migrations 0002 and 0004); the tree
head is the one mutable row, a cache of what the entries and nodes already prove, which on
PostgreSQL the database itself recomputes and checks on every update (migration 0004).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, UTCDateTime

__all__ = [
    "AuditCaseRef",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditNode",
    "AuditRuleHit",
    "AuditTreeHead",
]


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    request_id: Mapped[str | None] = mapped_column(String(64))
    requester_agency: Mapped[str | None] = mapped_column(String(32))
    client_id: Mapped[str | None] = mapped_column(String(64))
    operator_id: Mapped[str | None] = mapped_column(String(64))
    owner_agency: Mapped[str | None] = mapped_column(String(32))
    resource: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(64))
    case_number: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    upstream_status: Mapped[int | None] = mapped_column(Integer)
    upstream_latency_us: Mapped[int | None] = mapped_column(BigInteger)
    policy_version: Mapped[str | None] = mapped_column(String(80))
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (
        Index("ix_audit_entries_created_at", "created_at"),
        Index("ix_audit_entries_requester_agency", "requester_agency", "idx"),
        Index("ix_audit_entries_owner_agency", "owner_agency", "idx"),
        Index("ix_audit_entries_operator_id", "operator_id", "idx"),
        Index("ix_audit_entries_client_id", "client_id", "idx"),
        Index("ix_audit_entries_resource", "resource", "idx"),
        Index("ix_audit_entries_purpose", "purpose", "idx"),
        Index("ix_audit_entries_decision", "decision", "idx"),
    )


class AuditRuleHit(Base):
    """Which rules decided which entry: an index for the regulators' rule-id filter."""

    __tablename__ = "audit_rule_hits"
    # SQLite: the primary key is the table (migration 0014), not a second B-tree beside it.
    __table_args__ = ({"sqlite_with_rowid": False},)

    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AuditCaseRef(Base):
    """The case numbers an entry may be found by: the one the request named and, when the
    case record has them, both its police and its court case number."""

    __tablename__ = "audit_case_refs"
    __table_args__ = ({"sqlite_with_rowid": False},)

    case_number: Mapped[str] = mapped_column(String(128), primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AuditNode(Base):
    __tablename__ = "audit_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditTreeHead(Base):
    __tablename__ = "audit_tree_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    # The root of the frontier (NULL only on a head last written before migration 0004).
    root: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
