"""The audit tables' rows and their bulk insert, shared by the writer and the benchmarks.

:func:`insert_rows` appends with the cheapest plain bulk insert each backend offers
(PostgreSQL ``COPY``, SQLite multi-row ``INSERT``): one statement per table and batch, not
one per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Dialect, LargeBinary, Table

from gateway.audit.entry import EntryDraft
from gateway.db import Base

__all__ = [
    "CASE_REF_COLUMNS",
    "ENTRY_COLUMNS",
    "HIT_COLUMNS",
    "NODE_COLUMNS",
    "entry_row",
    "insert_rows",
]


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
