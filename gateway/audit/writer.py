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

Rows are appended with :func:`insert_rows`, the cheapest plain bulk insert each
backend offers (PostgreSQL ``COPY``, SQLite's C ``executemany``): one statement per
table and batch, not one per row. On PostgreSQL the batch's Merkle nodes and the new
tree head are written by a single statement.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Dialect, Engine, LargeBinary, Table, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.entry import EntryDraft, encode_leaf
from gateway.audit.leaf import LeafEncodingError
from gateway.audit.merkle import Frontier, NodeWrite, leaf_hash
from gateway.audit.models import AuditCaseRef, AuditEntry, AuditNode, AuditRuleHit, AuditTreeHead
from gateway.db import Base, create_db_engine

__all__ = [
    "CASE_REF_COLUMNS",
    "ENTRY_COLUMNS",
    "HIT_COLUMNS",
    "NODE_COLUMNS",
    "TREE_HEAD_ID",
    "AuditUnavailable",
    "AuditWriter",
    "entry_row",
    "insert_rows",
]

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
        criteria_key: bytes | None = None,
    ) -> None:
        self.engine = engine or create_db_engine(database_url, sqlite_begin="BEGIN IMMEDIATE")
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
            # asyncio.timeout rather than wait_for: no second future and callback per entry.
            # On expiry the task is cancelled, which cancels the wrapped future and so the
            # draft, unless the writer has taken it already.
            async with asyncio.timeout(self.append_timeout_s):
                return await asyncio.wrap_future(future)
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
            # The tree head and the nodes go through the DB-API cursor: SQLAlchemy's
            # per-statement work (cache key, compiled-cache lookup, result processing)
            # cost more than the statements themselves here.
            head = _HeadStatements.for_dialect(conn.dialect.name)
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.execute(head.read, (TREE_HEAD_ID,))
                size, stored_frontier = cursor.fetchone()
                frontier = Frontier.from_bytes(bytes(stored_frontier))
                if frontier.size != size:
                    raise SQLAlchemyError("tree head size and frontier disagree")
                entries: list[tuple[Any, ...]] = []
                nodes: list[NodeWrite] = []
                hits: list[tuple[Any, ...]] = []
                refs: list[tuple[Any, ...]] = []
                for pending in batch:
                    draft = pending.draft
                    index = frontier.size
                    try:
                        if draft.time.utcoffset() is None:
                            raise LeafEncodingError("time: a naive datetime is not a UTC instant")
                        _, leaf = encode_leaf(index, draft, self.criteria_key)
                    except LeafEncodingError as exc:
                        refused.append((pending, exc))
                        continue
                    digest = leaf_hash(leaf)
                    # Level 0 (the leaf hash) is not stored twice: audit_entries holds it.
                    nodes.extend(w for w in frontier.append(digest) if w.level)
                    entries.append(entry_row(index, draft, leaf, digest))
                    hits.extend((r, index) for r in sorted(set(draft.rule_ids)))
                    refs.extend((number, index) for number in sorted(draft.case_refs()))
                    committed.append((pending, index))
                if not entries:
                    return committed, refused
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
            finally:
                cursor.close()
        return committed, refused


@dataclass(frozen=True)
class _HeadStatements:
    """The writer's own SQL for one backend (DB-API parameter style)."""

    read: str
    """Read (and on PostgreSQL lock) the tree head: size and frontier."""
    write: str
    """Store the new size and frontier."""
    nodes_and_head: str | None = None
    """PostgreSQL: insert the batch's nodes and store the new head in one statement."""

    @staticmethod
    def for_dialect(name: str) -> _HeadStatements:
        return _POSTGRES_HEAD if name == "postgresql" else _SQLITE_HEAD


_SQLITE_HEAD = _HeadStatements(
    # No FOR UPDATE on SQLite: the writer's BEGIN IMMEDIATE already holds the write lock.
    read="SELECT size, frontier FROM audit_tree_head WHERE id = ?",
    write="UPDATE audit_tree_head SET size = ?, frontier = ?, root = ? WHERE id = ?",
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


ENTRY_COLUMNS = (
    "idx",
    "created_at",
    "kind",
    "request_id",
    "requester_agency",
    "client_id",
    "operator_id",
    "owner_agency",
    "resource",
    "purpose",
    "case_number",
    "decision",
    "status",
    "upstream_status",
    "upstream_latency_us",
    "policy_version",
    "leaf",
    "leaf_hash",
)
"""The ``audit_entries`` columns, in the order of :func:`entry_row`."""
NODE_COLUMNS = ("level", "idx", "hash")
HIT_COLUMNS = ("rule_id", "idx")
CASE_REF_COLUMNS = ("case_number", "idx")


def entry_row(index: int, draft: EntryDraft, leaf: bytes, digest: bytes) -> tuple[Any, ...]:
    """The ``audit_entries`` row of ``draft`` (values in :data:`ENTRY_COLUMNS` order)."""
    return (
        index,
        draft.time,
        str(draft.kind),
        draft.request_id,
        draft.requester_agency,
        draft.client_id,
        draft.operator_id,
        draft.owner_agency,
        draft.resource,
        draft.purpose,
        draft.case_number,
        str(draft.decision),
        draft.status,
        draft.upstream_status,
        draft.upstream_latency_us,
        draft.policy_version,
        leaf,
        digest,
    )


_Processors = tuple[tuple[int, Callable[[Any], Any]], ...]
_statements: dict[tuple[str, type[Base], tuple[str, ...]], tuple[str, _Processors]] = {}


def _statement(
    dialect: Dialect, model: type[Base], columns: tuple[str, ...]
) -> tuple[str, _Processors]:
    """The bulk statement for ``columns`` of ``model``'s table, and their bind processing.

    The processing is what SQLAlchemy applies on an ORM or Core insert (e.g. UTC
    normalisation and SQLite's text form of a datetime), so rows stored here read back
    exactly as rows stored through SQLAlchemy.
    """
    key = (dialect.name, model, columns)
    cached = _statements.get(key)
    if cached is None:
        table = cast(Table, model.__table__)
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in columns)
        target = dialect.identifier_preparer.format_table(table)
        if dialect.name == "postgresql":
            sql = f"COPY {target} ({names}) FROM STDIN"
        else:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {target} ({names}) VALUES ({marks})"  # noqa: S608 - quoted names
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for position, name in enumerate(columns):
            column_type = table.c[name].type
            if isinstance(column_type, LargeBinary):
                continue  # SQLAlchemy only wraps bytes in the DB-API's Binary(): same BLOB
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((position, process))
        cached = _statements[key] = (sql, tuple(processors))
    return cached


def _processed(row: tuple[Any, ...], processors: _Processors) -> tuple[Any, ...]:
    values = list(row)
    for position, process in processors:
        values[position] = process(values[position])
    return tuple(values)


def insert_rows(
    conn: Connection, model: type[Base], columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append ``rows`` (tuples in ``columns`` order) to ``model``'s table in ``conn``'s transaction.

    One statement for the whole batch, the cheapest plain bulk insert each backend has:
    ``COPY … FROM STDIN`` on PostgreSQL (psycopg formats the rows in C; a multi-row
    ``executemany`` there costs a parse/bind/execute per row), and a few multi-row
    ``INSERT``s on SQLite (:func:`_insert_sqlite`). The audit writer and the plain-insert
    baseline of ``bench/audit_appends.py`` both insert through this function.
    """
    if not rows:
        return
    sql, processors = _statement(conn.dialect, model, columns)
    if processors:
        rows = [_processed(row, processors) for row in rows]
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cursor = driver.cursor()
        try:
            _insert_sqlite(cursor, sql, len(columns), rows)
        finally:
            cursor.close()


#: Rows per multi-row INSERT on SQLite (chunks of powers of two up to this: few statements
#: to prepare and cache; 64 rows of the widest table stay far below SQLite's variable limit).
_SQLITE_CHUNK = 64
_multi_row: dict[tuple[str, int], str] = {}


def _insert_sqlite(cursor: Any, sql: str, width: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows`` in a few multi-row ``INSERT … VALUES (…), (…)``, not ``executemany``.

    The sqlite3 module releases the GIL around every step of a statement, and ``executemany``
    steps once per row: each release hands the GIL to the event loop, which holds it until
    the switch interval forces it back. With ~5 rows per audit entry that convoy cost the
    event loop's thread more CPU than the writer's own work (docs/performance.md §6).
    """
    start = 0
    while start < len(rows):
        size = min(_SQLITE_CHUNK, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        statement = _multi_row.get((sql, size))
        if statement is None:
            head, _, values = sql.partition(" VALUES ")
            statement = _multi_row[(sql, size)] = head + " VALUES " + ", ".join([values] * size)
        cursor.execute(statement, [value for row in chunk for value in row])
        start += size
