"""The offline verifier: recompute every leaf hash and root, check every signature.

It reads the log in index order, once, holding only the O(log n) frontier in
memory, and checks that

* indices are contiguous from 0, each leaf hashes to its stored hash and says
  its own index, and the queryable columns agree with the leaf;
* the stored Merkle nodes equal the recomputed ones (clients' proofs use them);
* every stored checkpoint carries a valid signature and commits to the root
  recomputed at its size (which also proves consistency between successive
  checkpoints: they are prefixes of one recomputed tree);
* every checkpoint kept outside the database is also matched: one for a size
  beyond the log proves truncation, which nothing inside the database can;
* the tree head agrees with the entries.

It names the first bad entry. Sources: a live database, or an export file
(JSON Lines from ``GET /v1/audit/export``) with checkpoint notes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.audit.checkpoint import Checkpoint, CheckpointError, Verifier, open_checkpoint
from gateway.audit.entry import parse_time
from gateway.audit.merkle import EMPTY_ROOT, Frontier, NodeWrite, build_tree, leaf_hash
from gateway.audit.models import (
    AuditCaseRef,
    AuditCheckpoint,
    AuditEntry,
    AuditNode,
    AuditRuleHit,
    AuditTreeHead,
)
from gateway.audit.repository import node_keys_match
from gateway.audit.writer import TREE_HEAD_ID

__all__ = ["VerifyReport", "verify_database", "verify_export"]

Progress = Callable[[int, int | None], None]

_COLUMN_CHECKS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("kind", lambda d: d.get("kind")),
    ("request_id", lambda d: d.get("request_id")),
    ("requester_agency", lambda d: d.get("requester", {}).get("agency")),
    ("client_id", lambda d: d.get("requester", {}).get("client_id")),
    ("operator_id", lambda d: d.get("requester", {}).get("operator_id")),
    ("owner_agency", lambda d: d.get("owner_agency")),
    ("resource", lambda d: d.get("resource")),
    ("purpose", lambda d: d.get("purpose")),
    ("case_number", lambda d: d.get("case_number")),
    ("decision", lambda d: d.get("decision")),
    ("status", lambda d: d.get("status")),
    ("upstream_status", lambda d: d.get("upstream", {}).get("status")),
    ("upstream_latency_us", lambda d: d.get("upstream", {}).get("latency_us")),
    ("policy_version", lambda d: d.get("policy_version")),
)


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints_checked: int = 0
    external_checked: int = 0
    root: bytes | None = None
    problems: list[str] = field(default_factory=list)
    first_bad_index: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, index: int | None = None) -> None:
        self.problems.append(message)
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index


@dataclass(frozen=True)
class _Leaf:
    index: int
    leaf: bytes
    stored_hash: bytes | None
    columns: dict[str, Any] | None
    created_at: datetime | None = None
    shown: dict[str, Any] | None = None  # an export line's fields beside the leaf


class _Walk:
    """Feeds leaves in order into one frontier and checks roots at checkpoint sizes."""

    def __init__(
        self, report: VerifyReport, checkpoints: dict[int, list[tuple[str, bytes]]]
    ) -> None:
        self.report = report
        self.frontier = Frontier()
        self.checkpoints = checkpoints
        self.broken = False
        self.last_document: dict[str, Any] = {}
        # The checkpoint signed at start-up on an empty log commits to the empty tree.
        for source, root in checkpoints.get(0, []):
            report.checkpoints_checked += 1
            if root != EMPTY_ROOT:
                report.fail(f"{source} for size 0 is not the empty tree's root", 0)

    def add(self, item: _Leaf) -> list[NodeWrite]:
        report = self.report
        expected = self.frontier.size
        if item.index != expected:
            what = "missing" if item.index > expected else "duplicated or reordered"
            report.fail(f"entry {expected}: {what} (next stored index is {item.index})", expected)
            self.broken = True
            return []
        digest = leaf_hash(item.leaf)
        if item.stored_hash is not None and digest != item.stored_hash:
            report.fail(
                f"entry {item.index}: the leaf does not hash to the stored hash", item.index
            )
        try:
            document = orjson.loads(item.leaf)
        except orjson.JSONDecodeError:
            report.fail(f"entry {item.index}: the leaf is not JSON", item.index)
            document = {}
        if not isinstance(document, dict):
            report.fail(f"entry {item.index}: the leaf is not a JSON object", item.index)
            document = {}
        self.last_document = document
        if document.get("index") != item.index:
            report.fail(
                f"entry {item.index}: the leaf names index {document.get('index')}", item.index
            )
        if item.columns is not None:
            for column, read in _COLUMN_CHECKS:
                if item.columns.get(column) != read(document):
                    report.fail(
                        f"entry {item.index}: column {column} disagrees with the leaf", item.index
                    )
                    break
        if item.created_at is not None and _leaf_time(document) != item.created_at:
            report.fail(
                f"entry {item.index}: column created_at disagrees with the leaf", item.index
            )
        if item.shown is not None and item.shown != {
            k: v for k, v in document.items() if k != "index"
        }:
            report.fail(
                f"entry {item.index}: the export line's fields disagree with its leaf", item.index
            )
        writes = self.frontier.append(digest)
        for source, root in self.checkpoints.get(self.frontier.size, []):
            self.report.checkpoints_checked += 1
            if root != self.frontier.root():
                report.fail(
                    f"{source} for size {self.frontier.size} does not match the entries "
                    f"(first entry possibly changed: at or before {self.frontier.size - 1})",
                    self.frontier.size - 1,
                )
        return writes


def _leaf_time(document: dict[str, Any]) -> datetime | None:
    try:
        return parse_time(document["time"])
    except (KeyError, TypeError, ValueError):
        return None


def _open(
    note: str, verifiers: Sequence[Verifier], source: str, report: VerifyReport
) -> Checkpoint | None:
    try:
        return open_checkpoint(note, verifiers)
    except CheckpointError as exc:
        report.fail(f"{source}: {exc}")
        return None


def _expected_roots(
    notes: Iterable[tuple[str, str]],
    verifiers: Sequence[Verifier],
    origin: str | Sequence[str] | None,
    report: VerifyReport,
) -> dict[int, list[tuple[str, bytes]]]:
    origins = [origin] if isinstance(origin, str) else origin
    roots: dict[int, list[tuple[str, bytes]]] = {}
    for source, note in notes:
        checkpoint = _open(note, verifiers, source, report)
        if checkpoint is None:
            continue
        if origins is not None and checkpoint.origin not in origins:
            expected = " or ".join(repr(o) for o in origins)
            report.fail(f"{source}: origin {checkpoint.origin!r} is not {expected}")
        roots.setdefault(checkpoint.size, []).append((source, checkpoint.root))
    return roots


def _finish(walk: _Walk, report: VerifyReport) -> None:
    size = walk.frontier.size
    report.entries = size
    report.root = walk.frontier.root() if size else None
    for checkpoint_size, sources in sorted(walk.checkpoints.items()):
        if checkpoint_size > size:
            for source, _ in sources:
                report.fail(
                    f"{source} commits to {checkpoint_size} entries but the log has {size}: "
                    f"entries from {size} on were removed (truncation)",
                    size,
                )


def verify_database(
    engine: Engine,
    verifiers: Sequence[Verifier],
    *,
    origin: str | Sequence[str] | None = None,
    external_notes: Sequence[tuple[str, str]] = (),
    batch: int = 5000,
    progress: Progress | None = None,
) -> VerifyReport:
    report = VerifyReport()
    with Session(engine) as session:
        stored = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)).all()
        notes = [(f"checkpoint {c.tree_size}", c.note) for c in stored]
        roots = _expected_roots(notes, verifiers, origin, report)
        for c in stored:
            if not any(r == c.root for _, r in roots.get(c.tree_size, [])):
                report.fail(f"checkpoint {c.tree_size}: root column disagrees with its note")
        external = _expected_roots(external_notes, verifiers, origin, report)
        report.external_checked = sum(len(v) for v in external.values())
        for size, items in external.items():
            roots.setdefault(size, []).extend(items)
        head = session.execute(
            select(AuditTreeHead.size, AuditTreeHead.frontier, AuditTreeHead.root).where(
                AuditTreeHead.id == TREE_HEAD_ID
            )
        ).one()
        total = int(head.size)
        walk = _Walk(report, roots)
        after = -1
        while not walk.broken:
            rows = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.idx > after)
                .order_by(AuditEntry.idx)
                .limit(batch)
            ).all()
            if not rows:
                break
            writes: list[NodeWrite] = []
            rules: dict[int, set[str]] = {}
            cases: dict[int, set[str]] = {}
            for row in rows:
                columns = {column: getattr(row, column) for column, _ in _COLUMN_CHECKS}
                writes.extend(
                    walk.add(
                        _Leaf(
                            row.idx,
                            bytes(row.leaf),
                            bytes(row.leaf_hash),
                            columns,
                            created_at=row.created_at,
                        )
                    )
                )
                if walk.broken:
                    break
                rule_ids = walk.last_document.get("rule_ids")
                rules[row.idx] = set(rule_ids) if isinstance(rule_ids, list) else set()
                cases[row.idx] = _case_refs(walk.last_document)
            _check_nodes(session, writes, report)
            last = max(rules, default=after)
            _check_index(session, AuditRuleHit.rule_id, rules, after, last, report, "rule hits")
            _check_index(
                session, AuditCaseRef.case_number, cases, after, last, report, "case references"
            )
            after = rows[-1].idx
            if progress is not None:
                progress(walk.frontier.size, total)
            session.expunge_all()
        _finish(walk, report)
        indexes = (("rule hits", AuditRuleHit.idx), ("case references", AuditCaseRef.idx))
        for label, position in indexes:
            orphan = session.execute(
                select(func.min(position)).where(position >= walk.frontier.size)
            ).scalar()
            if orphan is not None and not walk.broken:
                report.fail(f"{label} name entry {orphan}, which the log does not hold", orphan)
        if not walk.broken:
            if total != walk.frontier.size:
                report.fail(
                    f"tree head says {total} entries, the log holds {walk.frontier.size}",
                    min(total, walk.frontier.size),
                )
            elif bytes(head.frontier) != walk.frontier.to_bytes():
                report.fail("tree head frontier disagrees with the entries")
            elif head.root is not None and bytes(head.root) != walk.frontier.root():
                report.fail("tree head root disagrees with the entries")
    return report


def _check_nodes(session: Session, writes: Sequence[NodeWrite], report: VerifyReport) -> None:
    # Level 0 is each entry's own leaf_hash, checked against its leaf in ``_Walk.add``.
    writes = [write for write in writes if write.level]
    if not writes:
        return
    keys = [(w.level, w.index) for w in writes]
    stored: dict[tuple[int, int], bytes] = {}
    for chunk_start in range(0, len(keys), 500):
        chunk = keys[chunk_start : chunk_start + 500]
        for row in session.execute(
            select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(node_keys_match(chunk))
        ):
            stored[(row.level, row.idx)] = bytes(row.hash)
    for write in writes:
        found = stored.get((write.level, write.index))
        if found == write.hash:
            continue
        first, last = write.index << write.level, ((write.index + 1) << write.level) - 1
        named = report.first_bad_index
        at = first
        if found is not None and named is not None and first <= named <= last:
            # The node may only restate a leaf already found not to hash to its stored hash:
            # then the stored hashes of its range still build it, and that entry is the answer.
            hashes = session.execute(
                select(AuditEntry.leaf_hash)
                .where(AuditEntry.idx.between(first, last))
                .order_by(AuditEntry.idx)
            ).scalars()
            store, _ = build_tree(bytes(h) for h in hashes)
            if store.get_nodes([(write.level, 0)]).get((write.level, 0)) == found:
                at = named
        # Otherwise the stored node commits to hashes its range no longer has: some entry in
        # it changed, with its stored hash (a leaf hash is stored once, in its entry).
        report.fail(
            f"node ({write.level}, {write.index}) is missing or wrong "
            f"(covers entries {first} to {last})",
            at,
        )
        return


def _case_refs(document: dict[str, Any]) -> set[str]:
    """The case numbers a leaf says its entry is found by (see ``EntryDraft.case_refs``)."""
    refs = {document["case_number"]} if isinstance(document.get("case_number"), str) else set()
    numbers = document.get("case_numbers")
    if isinstance(numbers, dict):
        refs.update(v for v in numbers.values() if isinstance(v, str))
    return refs


def _check_index(
    session: Session,
    column: InstrumentedAttribute[str],
    expected: dict[int, set[str]],
    after: int,
    last: int,
    report: VerifyReport,
    label: str,
) -> None:
    """An index table (``audit_rule_hits``, ``audit_case_refs``) must say what the leaves say."""
    position = column.class_.idx
    stored: dict[int, set[str]] = {}
    for row in session.execute(select(position, column).where(position > after, position <= last)):
        stored.setdefault(int(row[0]), set()).add(row[1])
    for index in sorted(set(expected) | set(stored)):
        if stored.get(index, set()) != expected.get(index, set()):
            report.fail(f"entry {index}: {label} disagree with the leaf", index)
            return


def _export_leaves(path: Path, report: VerifyReport) -> Iterator[_Leaf]:
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                shown = {k: v for k, v in item.items() if k not in ("index", "leaf")}
                parsed = _Leaf(
                    int(item["index"]),
                    base64.b64decode(item["leaf"], validate=True),
                    None,
                    None,
                    shown=shown,
                )
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
                report.fail(f"{path}:{line_number}: not an export line ({exc.__class__.__name__})")
                return
            yield parsed


def verify_export(
    path: Path,
    verifiers: Sequence[Verifier],
    notes: Sequence[tuple[str, str]],
    *,
    origin: str | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    report = VerifyReport()
    roots = _expected_roots(notes, verifiers, origin, report)
    report.external_checked = sum(len(v) for v in roots.values())
    walk = _Walk(report, roots)
    for item in _export_leaves(path, report):
        walk.add(item)
        if walk.broken:
            break
        if progress is not None and walk.frontier.size % 10_000 == 0:
            progress(walk.frontier.size, None)
    if progress is not None:
        progress(walk.frontier.size, None)
    _finish(walk, report)
    return report


def progress_printer(stream: Any, every_s: float = 1.0) -> Progress:
    started = time.monotonic()
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        of = f"/{total}" if total is not None else ""
        stream.write(f"\rverified {done}{of} entries ({rate:,.0f}/s)")
        stream.flush()

    return report
