"""Fill the audit tables fast with synthetic entries, without the writer.

Rows are what the writer would have written for the same drafts — every column, the RFC 8785
canonical leaf (built with ``orjson`` and sorted keys, checked byte for byte against
``gateway.audit.entry.encode_leaf`` on the first entries), its leaf hash, the Merkle nodes from
``Frontier.append``, the rule hits, the tree head and a checkpoint — but they are generated in
chunks by a lean generator and bulk-inserted: SQLite through a raw connection with
``synchronous=OFF`` during the load (the gateway's WAL + ``synchronous=FULL`` are restored
afterwards), PostgreSQL with ``COPY``. The secondary indexes of ``audit_entries`` are dropped
during a load and rebuilt from the migration's own definitions before anything is measured.

The stream is seeded and deterministic: the database of 1M entries is exactly the first 1M
entries of the one of 10M. A child process generates (:class:`ChunkFeed`) while this one
loads (:class:`SqliteLoader`, :class:`PostgresLoader`).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing as mp
import queue
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench._audit_data import AGENCIES, DEFAULT_FIELDS, FIELDS, NEGATIVE_ITEMS, PURPOSES, RESOURCES
from bench._audit_data import rule_id as make_rule_id
from gateway.audit.entry import AuditKind, Decision, EntryDraft, encode_leaf
from gateway.audit.merkle import Frontier

__all__ = [
    "Chunk",
    "ChunkFeed",
    "FastSource",
    "PostgresLoader",
    "SqliteLoader",
    "case_number",
    "copy_postgres_schema",
    "pg_connect",
]

START = datetime(2025, 1, 1, tzinfo=UTC)
POLICY_VERSION = "2025.06.01-7f3a9c2e"
_DIVISIONS = ["640104", "640105", "640106", "640121", "640122", "640181", "640202", "640205",
              "640302", "640303", "640323", "640402", "640502", "640100"]  # fmt: skip
_OPEN_CASES = 64
_CASE_CLOSE_P = 1 / 20
_RESOURCE_WEIGHTS = [0.45, 0.25, 0.12, 0.07, 0.04, 0.03, 0.02, 0.02]
_AGENCY_CUM = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(AGENCIES))))
_RESOURCE_CUM = list(itertools.accumulate(_RESOURCE_WEIGHTS))
_SORT = orjson.OPT_SORT_KEYS


def case_number(n: int) -> str:
    """The ``n``-th case opened (from 1)."""
    return f"（{2025 + n // 400_000}）宁{_DIVISIONS[n % len(_DIVISIONS)]}刑初{n}号"


@dataclass
class Chunk:
    """Consecutive rows from ``start``: entry tuples (columns of ``ENTRY_COLUMNS``), nodes
    ``(level, idx, hash)``, rule hits ``(rule_id, idx)``, case references
    ``(case_number, idx)``."""

    start: int
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    hits: list[tuple[str, int]] = field(default_factory=list)
    refs: list[tuple[str, int]] = field(default_factory=list)
    frontier: bytes = b""  # the tree after this chunk
    cases_opened: int = 0

    @property
    def end(self) -> int:
        return self.start + len(self.entries)


ENTRY_COLUMNS = (
    "idx", "created_at", "kind", "request_id", "requester_agency", "client_id", "operator_id",
    "owner_agency", "resource", "purpose", "case_number", "decision", "status",
    "upstream_status", "upstream_latency_us", "policy_version", "leaf", "leaf_hash",
)  # fmt: skip


class FastSource:
    """Deterministic synthetic exchange entries, ~15 µs each including leaf, hash and nodes.

    Same distributions as ``bench._audit_data.EntrySource`` (Zipf requesters, ~20 entries per
    case among 64 open cases, 85 % allow / 10 % deny / 5 % error), drawn in batches.
    """

    def __init__(self, seed: int = 2025, *, postgres: bool = False) -> None:
        self.rng = random.Random(seed)
        self.frontier = Frontier()
        self.cases_opened = 0
        self.open_cases = [self._new_case() for _ in range(_OPEN_CASES)]
        self.postgres = postgres
        self.drafts_checked = 0

    def _new_case(self) -> str:
        self.cases_opened += 1
        return case_number(self.cases_opened)

    @property
    def size(self) -> int:
        return self.frontier.size

    def chunk(self, count: int, *, check: int = 0) -> Chunk:
        """The next ``count`` entries; the first ``check`` leaves are compared to the writer's."""
        rng = self.rng
        start = self.frontier.size
        out = Chunk(start)
        requesters = rng.choices(AGENCIES, cum_weights=_AGENCY_CUM, k=count)
        owners = rng.choices(AGENCIES, k=count)
        resources = rng.choices(RESOURCES, cum_weights=_RESOURCE_CUM, k=count)
        purposes = rng.choices(PURPOSES, k=count)
        slots = rng.choices(range(_OPEN_CASES), k=count)
        random_ = rng.random
        getrandbits = rng.getrandbits
        append_node = out.nodes.extend
        append_entry = out.entries.append
        append_hit = out.hits.append
        frontier_append = self.frontier.append
        sha256 = hashlib.sha256
        for k in range(count):
            index = start + k
            slot = slots[k]
            if random_() < _CASE_CLOSE_P:
                self.open_cases[slot] = self._new_case()
            case = self.open_cases[slot]
            requester, resource, purpose = requesters[k], resources[k], purposes[k]
            roll = random_()
            fields = FIELDS.get(resource, DEFAULT_FIELDS)
            records = [f"R{getrandbits(30):09d}" for _ in range(1 + int(roll * 3))]
            grant = make_rule_id(requester, resource, purpose)
            withheld: list[str] = []
            masked: list[str] = []
            if roll < 0.85:
                decision, status, rules = "allow", 200, [grant]
                if random_() < 0.1:
                    rules.append(NEGATIVE_ITEMS[getrandbits(16) % len(NEGATIVE_ITEMS)])
                    withheld = [fields[0]]
                if resource == "person":
                    masked = ["id_number", "phone"]
                released = [f for f in fields if f not in withheld]
                upstream: int | None = 200
                latency: int | None = 8000 + getrandbits(14)
                body: str | None = sha256(index.to_bytes(8, "big")).hexdigest()
                detail = None
            elif roll < 0.95:
                decision, status, rules, released = "deny", 403, [], []
                upstream = latency = body = None
                detail = "no permission grants this request"
            else:
                decision, status, rules, released = "error", 504, [grant], []
                upstream, latency, body = None, 5_000_000, None
                detail = "upstream_timeout: no answer within 5 s"
            rules.sort()
            moment = START + timedelta(microseconds=index * 83_000 + getrandbits(10))
            request_id = f"{getrandbits(128):032x}"
            operator = f"{requester}-{getrandbits(16) % 200:04d}"
            client = f"{requester.lower()}-exchange"
            document = {
                "index": index, "time": moment.isoformat(timespec="microseconds"),
                "kind": "exchange", "request_id": request_id,
                "requester": {"agency": requester, "client_id": client, "operator_id": operator},
                "owner_agency": owners[k], "resource": resource, "record_ids": records,
                "purpose": purpose, "case_number": case, "decision": decision, "status": status,
                "fields": {"released": released, "withheld": withheld, "masked": masked},
                "rule_ids": rules, "policy_version": POLICY_VERSION,
                "upstream": {"status": upstream, "latency_us": latency},
                "body_sha256": body, "detail": detail,
            }  # fmt: skip
            leaf = orjson.dumps(document, option=_SORT)
            if k < check:
                self._check(index, leaf, document, moment)
            digest = sha256(b"\x00" + leaf).digest()
            append_node([(w.level, w.index, w.hash) for w in frontier_append(digest) if w.level])
            # SQLAlchemy stores a SQLite DATETIME as the text "YYYY-MM-DD HH:MM:SS.ffffff".
            iso = str(document["time"])
            created = moment if self.postgres else f"{iso[:10]} {iso[11:26]}"
            append_entry((
                index, created, "exchange", request_id, requester, client, operator, owners[k],
                resource, purpose, case, decision, status, upstream, latency, POLICY_VERSION,
                leaf, digest,
            ))  # fmt: skip
            for rule in rules:
                append_hit((rule, index))
            out.refs.append((case, index))
        out.frontier = self.frontier.to_bytes()
        out.cases_opened = self.cases_opened
        return out

    def _check(self, index: int, leaf: bytes, doc: dict[str, Any], moment: datetime) -> None:
        """The writer's own encoding of the same draft must give the same leaf bytes."""
        requester = doc["requester"]
        draft = EntryDraft(
            kind=AuditKind.EXCHANGE, request_id=doc["request_id"],
            requester_agency=requester["agency"], client_id=requester["client_id"],
            operator_id=requester["operator_id"], owner_agency=doc["owner_agency"],
            resource=doc["resource"], record_ids=doc["record_ids"], purpose=doc["purpose"],
            case_number=doc["case_number"], decision=Decision(doc["decision"]),
            status=doc["status"], released=doc["fields"]["released"],
            withheld=doc["fields"]["withheld"], masked=doc["fields"]["masked"],
            rule_ids=doc["rule_ids"], policy_version=doc["policy_version"],
            upstream_status=doc["upstream"]["status"],
            upstream_latency_us=doc["upstream"]["latency_us"], body_sha256=doc["body_sha256"],
            detail=doc["detail"], time=moment,
        )  # fmt: skip
        expected = encode_leaf(index, draft)[1]
        if expected != leaf:
            raise AssertionError(f"synthetic leaf {index} differs from the writer's encoding")
        self.drafts_checked += 1


def _generate(
    seed: int, postgres: bool, stop_at: int, chunk_size: int, out: mp.Queue[Chunk | str | None]
) -> None:
    """Child process: the whole stream up to ``stop_at``, chunk by chunk (blocks when ahead)."""
    try:
        source = FastSource(seed, postgres=postgres)
        while source.size < stop_at:
            first = source.size == 0
            out.put(source.chunk(min(chunk_size, stop_at - source.size), check=2000 * first))
        out.put(None)
    except BaseException as exc:
        out.put(f"{exc.__class__.__name__}: {exc}")
        raise


class ChunkFeed:
    """Chunks generated by a child process (generation overlaps the database's work)."""

    def __init__(self, *, seed: int, postgres: bool, stop_at: int, chunk_size: int) -> None:
        context = mp.get_context("spawn")
        self._queue: mp.Queue[Chunk | str | None] = context.Queue(maxsize=4)
        self._process = context.Process(
            target=_generate,
            args=(seed, postgres, stop_at, chunk_size, self._queue),
            name="audit-fill",
            daemon=True,
        )
        self._process.start()
        self.size = 0
        self.frontier = Frontier()
        self.cases_opened = 0

    def until(self, target: int) -> Iterator[Chunk]:
        """Chunks up to entry ``target`` (a multiple of the chunk size, or the end)."""
        while self.size < target:
            try:
                item = self._queue.get(timeout=5)
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError("the generator process died") from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise RuntimeError(f"the generator failed: {item}")
            self.size = item.end
            self.frontier = Frontier.from_bytes(item.frontier)
            self.cases_opened = item.cases_opened
            yield item

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
        self._queue.close()


class SqliteLoader:
    """Bulk appends to a migrated SQLite database through one raw connection.

    The secondary indexes of ``audit_entries`` (``ix_…``) are dropped while loading and
    rebuilt, with the migration's own definitions, by :meth:`finish`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.indexes: list[str] = []

    def open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")  # a bulk load: durability comes afterwards
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1500000")  # 1.5 GB: hot index pages stay cached
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'audit_entries' AND name LIKE 'ix_%'"
        ).fetchall()
        for name, definition in rows:
            conn.execute(f'DROP INDEX "{name}"')
            self.indexes.append(definition)
        self.conn = conn
        return conn

    def load(self, chunk: Chunk) -> None:
        conn = self.conn or self.open()
        conn.execute("BEGIN")
        conn.executemany(_SQLITE_ENTRY_INSERT, chunk.entries)
        conn.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", chunk.nodes)
        conn.executemany("INSERT INTO audit_rule_hits (rule_id, idx) VALUES (?, ?)", chunk.hits)
        conn.executemany("INSERT INTO audit_case_refs (case_number, idx) VALUES (?, ?)", chunk.refs)
        conn.execute("COMMIT")

    def finish(self, frontier: Frontier) -> None:
        """Tree head + checkpoint, statistics, back to the gateway's WAL mode; closes."""
        conn = self.conn or self.open()
        for definition in self.indexes:
            conn.execute(definition)
        self.indexes.clear()
        _finish(conn.execute, frontier, "sqlite")
        conn.execute("PRAGMA analysis_limit=2000")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA locking_mode=NORMAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
        self.conn = None


def pg_connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A raw psycopg connection for a SQLAlchemy URL (with its ``options``: the search path)."""
    sa_url = make_url(url)
    options = sa_url.query.get("options")
    return psycopg.connect(
        host=sa_url.host, port=sa_url.port, user=sa_url.username, password=sa_url.password,
        dbname=sa_url.database, options=options if isinstance(options, str) else "",
    )  # fmt: skip


_AUDIT_TABLES = (
    "audit_entries", "audit_nodes", "audit_rule_hits", "audit_case_refs", "audit_tree_head",
    "audit_checkpoints",
)  # fmt: skip


def copy_postgres_schema(source_url: str, target_url: str) -> None:
    """Copy the audit tables (rows, then the same indexes) into the empty schema of
    ``target_url``: a snapshot of the log at its current size, on the same server."""
    with pg_connect(source_url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        source = str(row[0])
    with pg_connect(target_url) as conn:
        conn.autocommit = True
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        target = str(row[0])
        for table in _AUDIT_TABLES:
            src, dst = sql.Identifier(source, table), sql.Identifier(target, table)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(dst, src))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(dst, src))
            indexes = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (source, table),
            ).fetchall()
            for (definition,) in indexes:
                moved = definition.replace(f" ON {source}.", f' ON "{target}".')
                conn.execute(moved.encode())
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(dst))


class PostgresLoader:
    """Bulk appends to a migrated PostgreSQL schema with COPY."""

    def __init__(self, url: str) -> None:
        self.conn = pg_connect(url)
        self.conn.execute("SET synchronous_commit = off")  # a bulk load
        self.conn.execute("SET maintenance_work_mem = '512MB'")
        self.indexes: list[str] = []

    def _drop_indexes(self) -> None:
        """Secondary indexes of ``audit_entries`` go while loading; :meth:`finish` rebuilds."""
        rows = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'audit_entries' AND indexname LIKE 'ix_%%'"
        ).fetchall()
        for name, definition in rows:
            self.conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            self.indexes.append(definition)
        self.conn.commit()

    def load(self, chunk: Chunk) -> None:
        if not self.indexes:
            self._drop_indexes()
        with self.conn.cursor() as cur:
            with cur.copy(_PG_ENTRY_COPY) as copy:
                for row in chunk.entries:
                    copy.write_row(row)
            with cur.copy("COPY audit_nodes (level, idx, hash) FROM STDIN") as copy:
                for node in chunk.nodes:
                    copy.write_row(node)
            with cur.copy("COPY audit_rule_hits (rule_id, idx) FROM STDIN") as copy:
                for hit in chunk.hits:
                    copy.write_row(hit)
            with cur.copy("COPY audit_case_refs (case_number, idx) FROM STDIN") as copy:
                for ref in chunk.refs:
                    copy.write_row(ref)
        self.conn.commit()

    def finish(self, frontier: Frontier) -> None:
        for definition in self.indexes:
            self.conn.execute(definition.encode())
        self.indexes.clear()
        _finish(self.conn.execute, frontier, "postgresql")
        self.conn.commit()
        self.conn.autocommit = True
        for table in ("audit_entries", "audit_nodes", "audit_rule_hits", "audit_case_refs"):
            self.conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        self.conn.autocommit = False

    def close(self) -> None:
        self.conn.close()


_SQLITE_ENTRY_INSERT = (  # built from the constant column list only
    f"INSERT INTO audit_entries ({', '.join(ENTRY_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})"
)
_PG_ENTRY_COPY = f"COPY audit_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN"
_FINISH = {
    "sqlite": (
        "UPDATE audit_tree_head SET size = ?, frontier = ?, root = ? WHERE id = 1",
        "INSERT INTO audit_checkpoints (tree_size, root, note, created_at) VALUES (?, ?, ?, ?)",
    ),
    "postgresql": (
        "UPDATE audit_tree_head SET size = %s, frontier = %s, root = %s WHERE id = 1",
        "INSERT INTO audit_checkpoints (tree_size, root, note, created_at) VALUES (%s, %s, %s, %s)",
    ),
}


def _finish(execute: Callable[..., Any], frontier: Frontier, dialect: str) -> None:
    """Tree head and a checkpoint at the current size (the service proves up to it).

    On PostgreSQL the owner's bulk load skips the trigger that recomputes a head update from
    its new leaves (millions of them at once); ``gateway audit verify`` checks the result.
    """
    head_sql, checkpoint_sql = _FINISH[dialect]
    if dialect == "postgresql":
        execute("SET LOCAL session_replication_role = replica")
    execute(head_sql, (frontier.size, frontier.to_bytes(), frontier.root()))
    created: Any = datetime.now(UTC)
    if dialect == "sqlite":
        created = created.strftime("%Y-%m-%d %H:%M:%S.%f")
    note = "bench checkpoint (unsigned)\n"
    execute(checkpoint_sql, (frontier.size, frontier.root(), note, created))
