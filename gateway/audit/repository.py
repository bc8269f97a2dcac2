"""Reads of the audit tables: entries by filter, nodes for proofs, checkpoints, statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    SmallInteger,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.audit.merkle import NodeKey
from gateway.audit.models import (
    AuditCaseRef,
    AuditCheckpoint,
    AuditEntry,
    AuditNode,
    AuditRuleHit,
    AuditTreeHead,
)
from gateway.audit.writer import TREE_HEAD_ID

__all__ = ["AuditRepository", "EntryFilter", "NodeTable", "node_keys_match", "node_select"]


@dataclass(frozen=True)
class EntryFilter:
    since: datetime | None = None
    until: datetime | None = None
    requester_agency: str | None = None
    owner_agency: str | None = None
    resource: str | None = None
    case_number: str | None = None
    operator_id: str | None = None
    purpose: str | None = None
    decision: str | None = None
    rule_id: str | None = None
    client_id: str | None = None
    kind: str | None = None

    def apply(self, query: Select[AuditEntry]) -> Select[AuditEntry]:
        columns = {
            "requester_agency": AuditEntry.requester_agency,
            "owner_agency": AuditEntry.owner_agency,
            "resource": AuditEntry.resource,
            "operator_id": AuditEntry.operator_id,
            "purpose": AuditEntry.purpose,
            "decision": AuditEntry.decision,
            "client_id": AuditEntry.client_id,
            "kind": AuditEntry.kind,
        }
        for name, column in columns.items():
            value = getattr(self, name)
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(AuditEntry.created_at >= self.since)
        if self.until is not None:
            query = query.where(AuditEntry.created_at < self.until)
        if self.rule_id is not None:
            # A join on the hits' primary key (rule_id, idx) walks that rule's entries in
            # index order; an IN (subquery) made SQLite read every hit of the rule first.
            query = query.join(
                AuditRuleHit,
                and_(AuditRuleHit.idx == AuditEntry.idx, AuditRuleHit.rule_id == self.rule_id),
            )
        if self.case_number is not None:
            # The same shape for case numbers: an entry is found by the number its request
            # named and by both numbers of the case record (police and court).
            query = query.join(
                AuditCaseRef,
                and_(
                    AuditCaseRef.idx == AuditEntry.idx,
                    AuditCaseRef.case_number == self.case_number,
                ),
            )
        return query

    def position(self) -> InstrumentedAttribute[int]:
        """The column to page on: with a case or rule filter, the joined index row's own
        index (equal to the entry's through the join). Ordering by it lets the planner walk
        that index's primary key; ordered by the entry's index, SQLite walked the whole log
        instead and probed the hits for each entry (measured 9× slower at 10M than at 1M)."""
        if self.case_number is not None:
            return AuditCaseRef.idx
        return AuditRuleHit.idx if self.rule_id is not None else AuditEntry.idx


def node_keys_match(keys: Sequence[NodeKey]) -> ColumnElement[bool]:
    """``(level, idx) IN keys`` as an OR of primary-key lookups (interior nodes only).

    SQLite plans a row-value ``IN`` as a scan of the whole table (proofs then grow
    linearly with the log); an OR of equalities on the primary key is one index probe
    per key on both SQLite and PostgreSQL.
    """
    return or_(*(and_(AuditNode.level == level, AuditNode.idx == idx) for level, idx in keys))


def node_select(
    keys: Sequence[NodeKey],
    match: Callable[[Sequence[NodeKey]], ColumnElement[bool]] = node_keys_match,
) -> Select[int, int, bytes]:
    """The stored hashes of ``keys``, as rows ``(level, idx, hash)``, in one statement.

    ``audit_nodes`` holds interior nodes only (level >= 1): a leaf's hash (level 0) is the
    ``leaf_hash`` of its entry, the same index, so leaf keys are read from ``audit_entries``
    (by primary key) in the same round trip.
    """
    leaves = [idx for level, idx in keys if level == 0]
    interior = [key for key in keys if key[0] != 0]
    from_nodes = select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
        match(interior) if interior else false()
    )
    if not leaves:
        return from_nodes
    from_entries = select(
        literal(0, SmallInteger).label("level"),
        AuditEntry.idx.label("idx"),
        AuditEntry.leaf_hash.label("hash"),
    ).where(AuditEntry.idx.in_(leaves))
    if not interior:
        return from_entries
    both: Select[int, int, bytes] = select(union_all(from_entries, from_nodes).subquery())
    return both


class NodeTable:
    """A :class:`~gateway.audit.merkle.NodeReader` over the audit tables: one query per proof."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        if not keys:
            return {}
        rows = self.session.execute(node_select(keys))
        return {(int(row[0]), int(row[1])): bytes(row[2]) for row in rows}


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def tree_size(self) -> int:
        size = self.session.execute(
            select(AuditTreeHead.size).where(AuditTreeHead.id == TREE_HEAD_ID)
        ).scalar_one()
        return int(size)

    def head(self) -> tuple[int, bytes]:
        row = self.session.execute(
            select(AuditTreeHead.size, AuditTreeHead.frontier).where(
                AuditTreeHead.id == TREE_HEAD_ID
            )
        ).one()
        return int(row.size), bytes(row.frontier)

    def entry(self, index: int) -> AuditEntry | None:
        return self.session.get(AuditEntry, index)

    def entries(self, filters: EntryFilter, *, after: int | None, limit: int) -> list[AuditEntry]:
        position = filters.position()
        query = filters.apply(select(AuditEntry))
        if after is not None:
            query = query.where(position > after)
        query = query.order_by(position).limit(limit)
        return list(self.session.scalars(query))

    def iter_entries(
        self, filters: EntryFilter, *, batch: int = 1000, start: int = 0, stop: int | None = None
    ) -> Iterator[AuditEntry]:
        after = start - 1
        position = filters.position()
        while True:
            query = filters.apply(select(AuditEntry)).where(position > after)
            if stop is not None:
                query = query.where(position < stop)
            rows = list(self.session.scalars(query.order_by(position).limit(batch)))
            if not rows:
                return
            yield from rows
            after = rows[-1].idx

    def latest_checkpoint(self) -> AuditCheckpoint | None:
        return self.session.scalars(
            select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
        ).first()

    def checkpoints(self) -> list[AuditCheckpoint]:
        return list(
            self.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))
        )

    def count(self, filters: EntryFilter) -> int:
        query = filters.apply(select(AuditEntry)).with_only_columns(func.count())
        return int(self.session.execute(query).scalar_one())
