"""The durable audit writer: group commit on a dedicated thread, fail closed.

``append`` hands a draft to the writer thread and waits until the transaction
that holds it has committed, then returns the entry's index. Drafts that arrive
while a transaction is in flight are committed together in the next one (group
commit, at most ``max_batch`` entries or ``max_wait_s`` of gathering), so
durability (fsync per commit) does not cap throughput.

Index assignment is serialised by the database, not by this process: every batch
locks the one tree-head row (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and reads the size and frontier from it. Several workers
or processes therefore never fork the log nor leave a gap.

If the commit fails, every waiting caller gets :class:`AuditUnavailable`, and
the exchange answers 503 with no data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.entry import EntryDraft, encode_leaf
from gateway.audit.leaf import LeafEncodingError
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.models import AuditEntry, AuditNode, AuditRuleHit, AuditTreeHead
from gateway.db import create_db_engine

__all__ = ["TREE_HEAD_ID", "AuditUnavailable", "AuditWriter"]

log = structlog.get_logger(__name__)

TREE_HEAD_ID = 1


class AuditUnavailable(Exception):
    """The entry could not be made durable; nothing may be released."""


@dataclass
class _Pending:
    draft: EntryDraft
    future: concurrent.futures.Future[int]


_STOP = object()


class AuditWriter:
    def __init__(
        self,
        database_url: str,
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        append_timeout_s: float = 10.0,
        engine: Engine | None = None,
    ) -> None:
        self.engine = engine or create_db_engine(database_url, sqlite_begin="BEGIN IMMEDIATE")
        self._is_postgres = self.engine.dialect.name == "postgresql"
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.append_timeout_s = append_timeout_s
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.committed_batches = 0
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        self.engine.dispose()

    def probe(self) -> str | None:
        """Can the writer take the log's write lock now? None if so, else why not.

        Readiness asks this instead of trusting the last commit's outcome, so an instance
        becomes ready again when the database is back, before any request succeeds, and
        is not ready on a database it cannot write.
        """
        try:
            with self.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE takes the write lock
                # A no-op write, rolled back: refused on a read-only database, and it waits
                # for the same row lock an append takes. (A full disk shows only at commit.)
                conn.execute(
                    update(AuditTreeHead)
                    .where(AuditTreeHead.id == TREE_HEAD_ID)
                    .values(size=AuditTreeHead.size)
                )
                conn.rollback()
        except (SQLAlchemyError, OSError) as exc:
            return f"{exc.__class__.__name__}: {exc}"
        self.last_error = None
        return None

    # --- appending -----------------------------------------------------------------------------

    def submit(self, draft: EntryDraft) -> concurrent.futures.Future[int]:
        if self._thread is None:
            raise AuditUnavailable("the audit writer is not running")
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put(_Pending(draft, future))
        return future

    async def append(self, draft: EntryDraft) -> int:
        """Make ``draft`` durable and return its index, or raise :class:`AuditUnavailable`."""
        future = self.submit(draft)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=self.append_timeout_s
            )
        except TimeoutError as exc:
            raise AuditUnavailable("the audit log did not confirm the entry in time") from exc

    def append_blocking(self, draft: EntryDraft) -> int:
        """The same as :meth:`append`, for code running in a worker thread."""
        future = self.submit(draft)
        try:
            return future.result(timeout=self.append_timeout_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()  # not committed unless the writer has already taken it
            raise AuditUnavailable("the audit log did not confirm the entry in time") from exc

    # --- the writer thread ---------------------------------------------------------------------

    def _gather(self, first: _Pending) -> tuple[list[_Pending], bool]:
        # A caller that gave up (timed out, cancelled) before its draft was taken is
        # skipped: its entry is not written. Once taken, the future can no longer be
        # cancelled, so settling it below never raises InvalidStateError.
        batch = [first] if first.future.set_running_or_notify_cancel() else []
        deadline = time.monotonic() + self.max_wait_s
        stop = False
        while len(batch) < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=max(timeout, 0))
                    if timeout > 0
                    else (self._queue.get_nowait())
                )
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            assert isinstance(item, _Pending)
            if item.future.set_running_or_notify_cancel():
                batch.append(item)
        return batch, stop

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, _Pending)
            batch, stop = self._gather(item)
            if batch:
                self._write(batch)
            if stop:
                return

    def _write(self, batch: Sequence[_Pending]) -> None:
        """Commit one batch and settle every future in it; never raises (the thread lives on)."""
        try:
            committed, refused = self._commit(batch)
        except Exception as exc:  # any failure: fail closed for the whole batch, keep running
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            log.error("audit commit failed", error=self.last_error, entries=len(batch))
            failure = AuditUnavailable("the audit log cannot be written")
            for pending in batch:
                pending.future.set_exception(failure)
            # Drop pooled connections: one opened on a read-only or vanished file would
            # keep failing after the database is writable again.
            self.engine.dispose()
            return
        self.last_error = None
        if committed:
            self.committed_batches += 1
        for pending, index in committed:
            pending.future.set_result(index)
        for pending, error in refused:
            log.error("audit entry refused", error=str(error))
            pending.future.set_exception(AuditUnavailable(f"the audit entry is malformed: {error}"))

    def _commit(
        self, batch: Sequence[_Pending]
    ) -> tuple[list[tuple[_Pending, int]], list[tuple[_Pending, Exception]]]:
        """Write ``batch`` in one transaction; a draft that cannot be encoded is refused alone."""
        committed: list[tuple[_Pending, int]] = []
        refused: list[tuple[_Pending, Exception]] = []
        with self.engine.begin() as conn:
            query = select(AuditTreeHead.size, AuditTreeHead.frontier).where(
                AuditTreeHead.id == TREE_HEAD_ID
            )
            if self._is_postgres:
                query = query.with_for_update()
            head = conn.execute(query).one()
            frontier = Frontier.from_bytes(head.frontier)
            if frontier.size != head.size:
                raise SQLAlchemyError("tree head size and frontier disagree")
            entries: list[dict[str, Any]] = []
            nodes: list[dict[str, Any]] = []
            hits: list[dict[str, Any]] = []
            for pending in batch:
                draft = pending.draft
                index = frontier.size
                try:
                    if draft.time.utcoffset() is None:
                        raise LeafEncodingError("time: a naive datetime is not a UTC instant")
                    _, leaf = encode_leaf(index, draft)
                except LeafEncodingError as exc:
                    refused.append((pending, exc))
                    continue
                digest = leaf_hash(leaf)
                nodes.extend(
                    {"level": w.level, "idx": w.index, "hash": w.hash}
                    for w in frontier.append(digest)
                )
                entries.append(_columns(index, draft, leaf, digest))
                hits.extend({"rule_id": r, "idx": index} for r in sorted(set(draft.rule_ids)))
                committed.append((pending, index))
            if not entries:
                return committed, refused
            conn.execute(insert(AuditEntry), entries)
            conn.execute(insert(AuditNode), nodes)
            if hits:
                conn.execute(insert(AuditRuleHit), hits)
            conn.execute(
                update(AuditTreeHead)
                .where(AuditTreeHead.id == TREE_HEAD_ID)
                .values(size=frontier.size, frontier=frontier.to_bytes())
            )
        return committed, refused


def _columns(index: int, draft: EntryDraft, leaf: bytes, digest: bytes) -> dict[str, Any]:
    return {
        "idx": index,
        "created_at": draft.time,
        "kind": str(draft.kind),
        "request_id": draft.request_id,
        "requester_agency": draft.requester_agency,
        "client_id": draft.client_id,
        "operator_id": draft.operator_id,
        "owner_agency": draft.owner_agency,
        "resource": draft.resource,
        "purpose": draft.purpose,
        "case_number": draft.case_number,
        "decision": str(draft.decision),
        "status": draft.status,
        "upstream_status": draft.upstream_status,
        "upstream_latency_us": draft.upstream_latency_us,
        "policy_version": draft.policy_version,
        "leaf": leaf,
        "leaf_hash": digest,
    }
