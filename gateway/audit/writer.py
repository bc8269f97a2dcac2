"""The durable audit writer: group commit on a dedicated thread, fail closed.

``append`` hands a draft to the writer thread and waits until the transaction
that holds it has committed, then returns the entry's index. Drafts that arrive
while a transaction is in flight are committed together in the next one (group
commit, at most ``max_batch`` entries or ``max_wait_s`` of gathering), so
durability (fsync per commit) does not cap throughput. Drafts from an event loop
are gathered on the loop and reach the thread a batch at a time
(:mod:`gateway.audit.gathering`); drafts from other threads (``submit``,
``append_blocking``) are gathered by the writer thread itself.

Index assignment is serialised by the database, not by this process: every batch
locks the one tree-head row (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and reads the size and frontier from it. Several workers
or processes therefore never fork the log nor leave a gap.

If the commit fails, every waiting caller gets :class:`AuditUnavailable`, and
the exchange answers 503 with no data.

Rows are appended with :func:`gateway.audit.rows.insert_rows`: one statement per
table and batch, not one per row. On PostgreSQL the batch's Merkle nodes and the new
tree head are written by a single statement.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import Pool

from gateway.audit.entry import EntryDraft, encode_leaf
from gateway.audit.gathering import LoopGroup, Outcome
from gateway.audit.leaf import LeafEncodingError
from gateway.audit.merkle import Frontier, NodeWrite, leaf_hash
from gateway.audit.models import AuditCaseRef, AuditEntry, AuditNode, AuditRuleHit, AuditTreeHead
from gateway.audit.rows import (
    CASE_REF_COLUMNS,
    ENTRY_COLUMNS,
    HIT_COLUMNS,
    NODE_COLUMNS,
    entry_row,
    insert_rows,
)
from gateway.db import create_db_engine

__all__ = ["TREE_HEAD_ID", "AuditUnavailable", "AuditWriter"]

log = structlog.get_logger(__name__)

TREE_HEAD_ID = 1
# The writer keeps its connection between batches that come closer than this (under load);
# after a longer pause it checks it out of the pool again (see AuditWriter._connection).
_HOLD_IDLE_S = 1.0


class AuditUnavailable(Exception):
    """The entry could not be made durable; nothing may be released."""


@dataclass
class _Pending:
    """One draft from a thread, settled through a concurrent future."""

    draft: EntryDraft
    future: concurrent.futures.Future[int]

    @property
    def drafts(self) -> Sequence[EntryDraft]:
        return (self.draft,)

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        (outcome,) = outcomes
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


@dataclass
class _LoopBatch:
    """Drafts gathered on an event loop, settled with one call back into that loop."""

    group: LoopGroup[EntryDraft]
    drafts: list[EntryDraft]
    futures: list[asyncio.Future[int]]

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        # A closed loop raises RuntimeError: nobody is waiting for these any more.
        with contextlib.suppress(RuntimeError):
            self.group.loop.call_soon_threadsafe(self.group.settle, self.futures, outcomes)


def _not_confirmed() -> AuditUnavailable:
    return AuditUnavailable("the audit log did not confirm the entry in time")


_Job = _Pending | _LoopBatch
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
        criteria_key: bytes | None = None,
    ) -> None:
        self.engine = engine or create_db_engine(
            database_url, sqlite_begin="BEGIN IMMEDIATE", sqlite_temp_in_memory=True
        )
        self._is_postgres = self.engine.dialect.name == "postgresql"
        if self._is_postgres and self.engine.dialect.driver != "psycopg":
            # insert_rows and the tree-head statements use psycopg 3's COPY and paramstyle.
            raise ValueError(f"the audit writer needs psycopg 3, not {self.engine.dialect.driver}")
        # Seals search criteria (keyed hashes of the filter values). The deployment's key
        # (GATEWAY_AUDIT_CRITERIA_SECRET or its key file) makes equal values comparable across
        # workers and restarts; without one, a key of this writer's own.
        self.criteria_key = criteria_key or secrets.token_bytes(32)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.append_timeout_s = append_timeout_s
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._carried: _Job | None = None  # taken from the queue, left for the next batch
        self._groups: dict[asyncio.AbstractEventLoop, LoopGroup[EntryDraft]] = {}
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer thread's (see _connection)
        self._conn_pool: Pool | None = None  # the engine's pool when it was opened
        self._conn_used = 0.0  # time.monotonic() of its last batch
        self.committed_batches = 0
        self.hand_offs = 0
        """Batches handed from event loops to the writer thread (each one wake-up of it)."""
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            # What the calling loop has gathered goes before the stop (the thread drains the
            # queue in order); another loop's drafts find the writer stopped and fail closed.
            try:
                group = self._groups.get(asyncio.get_running_loop())
            except RuntimeError:
                group = None
            if group is not None:
                group.flush(even_in_flight=True)
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
        """Queue ``draft`` from any thread; the future gives its index once durable."""
        if self._thread is None:
            raise AuditUnavailable("the audit writer is not running")
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put(_Pending(draft, future))
        return future

    async def append(self, draft: EntryDraft) -> int:
        """Make ``draft`` durable and return its index, or raise :class:`AuditUnavailable`."""
        if self._thread is None:
            raise AuditUnavailable("the audit writer is not running")
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = LoopGroup(
                loop,
                max_batch=self.max_batch,
                max_wait_s=self.max_wait_s,
                hand_off=self._hand_off,
                on_idle=self._forget,
                timeout_s=self.append_timeout_s,
                expired=_not_confirmed,
            )
        # Past append_timeout_s the group fails the future: the draft is skipped unless it has
        # been handed to the writer already (then it is written, and nothing was released).
        return await group.add(draft)

    def append_blocking(self, draft: EntryDraft) -> int:
        """The same as :meth:`append`, for code running in a worker thread."""
        future = self.submit(draft)
        try:
            return future.result(timeout=self.append_timeout_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()  # not committed unless the writer has already taken it
            raise AuditUnavailable("the audit log did not confirm the entry in time") from exc

    def _hand_off(
        self,
        group: LoopGroup[EntryDraft],
        drafts: list[EntryDraft],
        futures: list[asyncio.Future[int]],
    ) -> None:
        if self._thread is None:
            stopped = [AuditUnavailable("the audit writer is not running") for _ in futures]
            group.settle(futures, stopped)
            return
        self.hand_offs += 1
        self._queue.put(_LoopBatch(group, drafts, futures))

    def _forget(self, group: LoopGroup[EntryDraft]) -> None:
        if self._groups.get(group.loop) is group:
            del self._groups[group.loop]

    # --- the writer thread ---------------------------------------------------------------------

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs: list[_Job] = []
        count = 0

        def take(job: _Job) -> bool:
            """Add ``job`` to the batch unless it would overflow it (then it is carried)."""
            nonlocal count
            if isinstance(job, _Pending):
                # A thread that gave up before its draft was taken is skipped. Once taken,
                # the future can no longer be cancelled, so settling it never raises.
                if not job.future.set_running_or_notify_cancel():
                    return True
            elif count and count + len(job.drafts) > self.max_batch:
                self._carried = job
                return False
            jobs.append(job)
            count += len(job.drafts)
            return True

        take(first)
        # A batch gathered on an event loop has waited already: it goes with what is queued.
        wait = 0.0 if isinstance(first, _LoopBatch) else self.max_wait_s
        deadline = time.monotonic() + wait
        while count < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return jobs, True
            assert isinstance(item, _Pending | _LoopBatch)
            if not take(item):
                break
        return jobs, False

    def _run(self) -> None:
        try:
            while True:
                item: _Job | object
                if self._carried is not None:
                    item, self._carried = self._carried, None
                else:
                    item = self._queue.get()
                if item is _STOP:
                    return
                assert isinstance(item, _Pending | _LoopBatch)
                jobs, stop = self._gather(item)
                if jobs:
                    self._write(jobs)
                if stop:
                    return
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _write(self, jobs: Sequence[_Job]) -> None:
        """Commit one batch and settle every draft in it; never raises (the thread lives on)."""
        drafts = [draft for job in jobs for draft in job.drafts]
        outcomes: list[Outcome]
        try:
            written = self._commit(drafts)
        except Exception as exc:  # any failure: fail closed for the whole batch, keep running
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            log.error("audit commit failed", error=self.last_error, entries=len(drafts))
            outcomes = [AuditUnavailable("the audit log cannot be written") for _ in drafts]
            # Drop the connection and the pooled ones: one opened on a read-only or vanished
            # file would keep failing after the database is writable again.
            self._discard()
            self.engine.dispose()
        else:
            self.last_error = None
            outcomes = []
            for outcome in written:
                if isinstance(outcome, LeafEncodingError):
                    log.error("audit entry refused", error=str(outcome))
                    outcomes.append(AuditUnavailable(f"the audit entry is malformed: {outcome}"))
                else:
                    outcomes.append(outcome)
            if any(isinstance(outcome, int) for outcome in outcomes):
                self.committed_batches += 1
        position = 0
        for job in jobs:
            size = len(job.drafts)
            job.settle(outcomes[position : position + size])
            position += size

    def _connection(self) -> Connection:
        """The writer thread's own connection, held from batch to batch.

        A pool checkout per batch cost more than a small batch's SQL: SQLAlchemy's
        transaction and event machinery, the reset on return, and on PostgreSQL the pre-ping
        (one more round trip). A connection that failed a batch is dropped (:meth:`_discard`),
        and so is one the engine has disposed of since (``engine.dispose()`` means: connect
        afresh), as a pooled connection would be.
        """
        pool = self.engine.pool
        now = time.monotonic()
        if self._conn is not None and self._conn_pool is not pool:
            self._discard()
        elif self._conn is not None and now - self._conn_used > _HOLD_IDLE_S:
            # Idle a while: back to the pool and out again, through its pre-ping on PostgreSQL,
            # so a connection the server or the network dropped meanwhile fails no batch.
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = self.engine.connect()
            self._conn_pool = pool
        self._conn_used = now
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    def _commit(self, drafts: Sequence[EntryDraft]) -> list[int | LeafEncodingError]:
        """Write ``drafts`` in one transaction: each one's index, or why it was refused alone
        (a draft that cannot be encoded)."""
        conn = self._connection()
        # The transaction and every statement go through the DB-API connection: SQLAlchemy's
        # per-statement work (cache key, compiled-cache lookup, result processing) and its
        # per-transaction events cost more than the statements themselves here.
        driver = conn.connection.driver_connection
        assert driver is not None
        head = _HeadStatements.for_dialect(conn.dialect.name)
        cursor = driver.cursor()
        try:
            if head.begin is not None:
                cursor.execute(head.begin)  # SQLite: BEGIN IMMEDIATE takes the write lock
            outcomes = self._append(conn, cursor, head, drafts)
            if any(isinstance(outcome, int) for outcome in outcomes):
                driver.commit()
            else:
                driver.rollback()
        except BaseException:
            with contextlib.suppress(Exception):
                driver.rollback()
            raise
        finally:
            cursor.close()
        return outcomes

    def _append(
        self, conn: Connection, cursor: Any, head: _HeadStatements, drafts: Sequence[EntryDraft]
    ) -> list[int | LeafEncodingError]:
        """The batch's rows and the new tree head, in the transaction ``cursor`` is in."""
        outcomes: list[int | LeafEncodingError] = []
        cursor.execute(head.read, (TREE_HEAD_ID,))
        size, stored_frontier = cursor.fetchone()
        frontier = Frontier.from_bytes(bytes(stored_frontier))
        if frontier.size != size:
            raise SQLAlchemyError("tree head size and frontier disagree")
        entries: list[tuple[Any, ...]] = []
        nodes: list[NodeWrite] = []
        hits: list[tuple[Any, ...]] = []
        refs: list[tuple[Any, ...]] = []
        for draft in drafts:
            index = frontier.size
            try:
                if draft.time.utcoffset() is None:
                    raise LeafEncodingError("time: a naive datetime is not a UTC instant")
                _, leaf = encode_leaf(index, draft, self.criteria_key)
            except LeafEncodingError as exc:
                outcomes.append(exc)
                continue
            digest = leaf_hash(leaf)
            # Level 0 (the leaf hash) is not stored twice: audit_entries holds it.
            nodes.extend(w for w in frontier.append(digest) if w.level)
            entries.append(entry_row(index, draft, leaf, digest))
            hits.extend((r, index) for r in sorted(set(draft.rule_ids)))
            refs.extend((number, index) for number in sorted(draft.case_refs()))
            outcomes.append(index)
        if not entries:
            return outcomes
        insert_rows(conn, AuditEntry, ENTRY_COLUMNS, entries)
        insert_rows(conn, AuditRuleHit, HIT_COLUMNS, hits)
        insert_rows(conn, AuditCaseRef, CASE_REF_COLUMNS, refs)
        if head.nodes_and_head is not None:
            # PostgreSQL: the nodes and the new head in one statement, one round trip.
            hashes = b"".join(node.hash for node in nodes)
            if len(hashes) != 32 * len(nodes):
                raise ValueError("a Merkle node hash is not 32 bytes")
            cursor.execute(
                head.nodes_and_head,
                {
                    "levels": ",".join([str(node.level) for node in nodes]),
                    "indices": ",".join([str(node.index) for node in nodes]),
                    "hashes": hashes,
                    "size": frontier.size,
                    "frontier": frontier.to_bytes(),
                    "root": frontier.root(),
                    "id": TREE_HEAD_ID,
                },
            )
        else:
            insert_rows(
                conn,
                AuditNode,
                NODE_COLUMNS,
                [(node.level, node.index, node.hash) for node in nodes],
            )
            cursor.execute(
                head.write,
                (frontier.size, frontier.to_bytes(), frontier.root(), TREE_HEAD_ID),
            )
        return outcomes


@dataclass(frozen=True)
class _HeadStatements:
    """The writer's own SQL for one backend (DB-API parameter style)."""

    read: str
    """Read (and on PostgreSQL lock) the tree head: size and frontier."""
    write: str
    """Store the new size and frontier."""
    nodes_and_head: str | None = None
    """PostgreSQL: insert the batch's nodes and store the new head in one statement."""
    begin: str | None = None
    """The statement that opens the batch's transaction (None: the driver opens it)."""

    @staticmethod
    def for_dialect(name: str) -> _HeadStatements:
        return _POSTGRES_HEAD if name == "postgresql" else _SQLITE_HEAD


_SQLITE_HEAD = _HeadStatements(
    # No FOR UPDATE on SQLite: the writer's BEGIN IMMEDIATE already holds the write lock.
    read="SELECT size, frontier FROM audit_tree_head WHERE id = ?",
    write="UPDATE audit_tree_head SET size = ?, frontier = ?, root = ? WHERE id = ?",
    # The engine's connections run in autocommit mode (gateway.db): the writer opens its
    # transactions itself, taking the write lock up front as every other writer waits for it.
    begin="BEGIN IMMEDIATE",
)
_POSTGRES_HEAD = _HeadStatements(
    read="SELECT size, frontier FROM audit_tree_head WHERE id = %s FOR UPDATE",
    write="UPDATE audit_tree_head SET size = %s, frontier = %s, root = %s WHERE id = %s",
    # The nodes travel packed, as two comma-separated integer lists and one bytea of
    # 32-byte hashes (node n's hash at byte 32 * (n - 1)): three parameters, no per-row
    # or per-element adaptation on the client. A data-modifying WITH runs to completion
    # whether or not the outer statement reads it.
    nodes_and_head="""
        WITH nodes AS (
            INSERT INTO audit_nodes (level, idx, hash)
            SELECT node.level, node.idx,
                   substring(%(hashes)s::bytea FROM 32 * (node.n - 1)::int + 1 FOR 32)
            FROM unnest(
                string_to_array(%(levels)s, ',')::smallint[],
                string_to_array(%(indices)s, ',')::bigint[]
            ) WITH ORDINALITY AS node(level, idx, n)
        )
        UPDATE audit_tree_head SET size = %(size)s, frontier = %(frontier)s, root = %(root)s
        WHERE id = %(id)s
    """,
)
