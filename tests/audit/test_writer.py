"""The group-commit audit writer: contiguous indices, batching, canonical leaves, fail closed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.audit.entry import (
    AuditKind,
    Decision,
    EntryDraft,
    SearchCriteria,
    criteria_hash,
    entry_document,
)
from gateway.audit.leaf import LeafEncodingError, leaf_bytes
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.repository import EntryFilter
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.db import create_db_engine
from tests.audit.conftest import AuditLog, exchange_draft, migrate


def _stored_indices(log: AuditLog) -> list[int]:
    return [int(r.idx) for r in log.rows("SELECT idx FROM audit_entries ORDER BY idx")]


def test_concurrent_appends_get_each_index_exactly_once(audit_log: AuditLog) -> None:
    threads, per_thread = 12, 20
    total = threads * per_thread

    def work(t: int) -> list[int]:
        return [
            audit_log.writer.append_blocking(exchange_draft(t * 1000 + i))
            for i in range(per_thread)
        ]

    with ThreadPoolExecutor(threads) as pool:
        results = [i for chunk in pool.map(work, range(threads)) for i in chunk]

    assert sorted(results) == list(range(total))
    assert _stored_indices(audit_log) == list(range(total))
    assert audit_log.scalar("SELECT size FROM audit_tree_head WHERE id = 1") == total
    # Every request id landed once, at the index its caller was told.
    by_index = {
        int(r.idx): r.request_id
        for r in audit_log.rows("SELECT idx, request_id FROM audit_entries")
    }
    assert len(set(by_index.values())) == total
    assert audit_log.verify().ok


async def test_async_appends_from_one_event_loop(audit_log: AuditLog) -> None:
    indices = await asyncio.gather(*(audit_log.writer.append(exchange_draft(i)) for i in range(50)))
    assert sorted(indices) == list(range(50))
    assert audit_log.writer.committed_batches < 50


def test_group_commit_batches_a_burst(audit_log: AuditLog) -> None:
    n = 200
    before = audit_log.writer.committed_batches
    indices = audit_log.append(*(exchange_draft(i) for i in range(n)))
    batches = audit_log.writer.committed_batches - before
    assert indices == list(range(n))  # submitted in order, committed in order
    assert 1 <= batches < n // 4, batches


def test_group_commit_respects_max_batch(audit_log: AuditLog) -> None:
    writer = AuditWriter(audit_log.url, max_batch=8, max_wait_s=0.05)
    writer.start()
    try:
        futures = [writer.submit(exchange_draft(i)) for i in range(64)]
        assert [f.result(timeout=30) for f in futures] == list(range(64))
        assert writer.committed_batches >= 64 // 8
    finally:
        writer.stop()


def test_leaf_is_canonical_json_of_the_entry_document(audit_log: AuditLog) -> None:
    draft = exchange_draft(
        7,
        released=["verdict", "case_number", "verdict"],  # duplicates and order do not matter
        masked=["姓名", "defendant_name"],
        record_ids=["r-2", "r-1"],
        rule_ids=["z-rule", "a-rule", "z-rule"],
        detail='quote " backslash \\ newline \n',
        action={"route": "/v1/x", "nested": {"b": 1, "a": [True, None]}},
    )
    (index,) = audit_log.append(draft)
    row = audit_log.rows("SELECT * FROM audit_entries WHERE idx = :i", i=index)[0]
    leaf = bytes(row.leaf)

    document = entry_document(index, draft)
    assert leaf == leaf_bytes(document)
    # RFC 8785 for this document (ASCII keys, no floats) is sorted keys, no whitespace, UTF-8.
    assert leaf == json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert json.loads(leaf)["fields"]["released"] == ["case_number", "verdict"]
    assert json.loads(leaf)["rule_ids"] == ["a-rule", "z-rule"]
    assert json.loads(leaf)["index"] == index
    assert bytes(row.leaf_hash) == hashlib.sha256(b"\x00" + leaf).digest()

    # The columns are a projection of the leaf.
    assert (row.kind, row.decision, row.status) == ("exchange", "allow", 200)
    assert (row.requester_agency, row.owner_agency, row.resource) == (
        "GA640104",
        "court",
        "judgment",
    )
    assert row.upstream_latency_us == 1007
    hits = audit_log.rows("SELECT rule_id FROM audit_rule_hits WHERE idx = :i", i=index)
    assert sorted(h.rule_id for h in hits) == ["a-rule", "z-rule"]
    # The leaf hash is stored once, in the entry: audit_nodes holds interior nodes only.
    assert bytes(row.leaf_hash) == leaf_hash(bytes(row.leaf))
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes WHERE level = 0") == 0


def test_tree_is_kept_incrementally(audit_log: AuditLog) -> None:
    leaves: list[bytes] = []
    for round_ in range(4):
        audit_log.fill(5, start=round_ * 5)
        leaves = [
            bytes(r.leaf_hash)
            for r in audit_log.rows("SELECT leaf_hash FROM audit_entries ORDER BY idx")
        ]
        expected = Frontier()
        for digest in leaves:
            expected.append(digest)
        row = audit_log.rows("SELECT size, frontier FROM audit_tree_head WHERE id = 1")[0]
        assert row.size == len(leaves)
        assert Frontier.from_bytes(bytes(row.frontier)) == expected
    # 20 leaves: complete interior nodes 10 at level 1, 5 at 2, 2 at 3, 1 at 4 (the 20 leaf
    # hashes are the entries' own leaf_hash, not stored twice).
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes") == 10 + 5 + 2 + 1


def test_an_appended_entry_is_visible_to_other_connections(audit_log: AuditLog) -> None:
    (index,) = audit_log.append(exchange_draft(1))
    other = audit_log.new_engine()
    with other.connect() as conn:
        assert (
            conn.execute(
                text("SELECT request_id FROM audit_entries WHERE idx = :i"), {"i": index}
            ).scalar()
            == "req-00001"
        )


def test_durability_settings(audit_log: AuditLog) -> None:
    with audit_log.writer.engine.connect() as conn:
        if audit_log.is_postgres:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert conn.exec_driver_sql("SHOW fsync").scalar() == "on"
        else:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_only_the_writer_keeps_sqlite_temporary_files_in_memory(tmp_path: Path) -> None:
    """The writer's batches keep their statement journal in memory (a file opened, written and
    deleted per batch otherwise); the gateway's other connections keep the default, so that a
    regulator's large sort may spill to disk rather than grow in memory."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(tmp_path, url)
    writer, engine = AuditWriter(url, max_wait_s=0.05), create_db_engine(url)
    try:
        with writer.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 0  # the default
        writer.start()
        # A burst commits in batches of many rows, each one statement per table.
        futures = [writer.submit(exchange_draft(i)) for i in range(200)]
        assert [future.result(timeout=30) for future in futures] == list(range(200))
        assert writer.committed_batches < 50
    finally:
        writer.stop()
        engine.dispose()


async def test_append_when_not_running_is_refused(audit_log: AuditLog) -> None:
    idle = AuditWriter(audit_log.url)
    with pytest.raises(AuditUnavailable):
        await idle.append(exchange_draft())
    idle.stop()

    audit_log.writer.stop()
    with pytest.raises(AuditUnavailable):
        await audit_log.writer.append(exchange_draft())
    with pytest.raises(AuditUnavailable):
        audit_log.writer.append_blocking(exchange_draft())
    with pytest.raises(AuditUnavailable):
        audit_log.writer.submit(exchange_draft())
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_entries") == 0


async def test_fails_closed_and_recovers_without_restart(audit_log: AuditLog) -> None:
    writer = audit_log.writer
    assert await writer.append(exchange_draft(0)) == 0
    assert await writer.append(exchange_draft(1)) == 1

    audit_log.execute("ALTER TABLE audit_entries RENAME TO audit_entries_away")
    with pytest.raises(AuditUnavailable):
        await writer.append(exchange_draft(2))
    with pytest.raises(AuditUnavailable):
        writer.append_blocking(exchange_draft(3))
    assert writer.last_error is not None
    # Nothing of the failed batches was kept: no index was consumed.
    assert audit_log.scalar("SELECT size FROM audit_tree_head WHERE id = 1") == 2

    audit_log.execute("ALTER TABLE audit_entries_away RENAME TO audit_entries")
    assert await writer.append(exchange_draft(4)) == 2
    assert writer.last_error is None
    assert _stored_indices(audit_log) == [0, 1, 2]
    assert audit_log.verify().ok


async def test_fails_closed_while_the_log_is_locked_then_recovers(audit_log: AuditLog) -> None:
    """A stalled database: the caller gets AuditUnavailable in time; the writer survives."""
    writer = AuditWriter(audit_log.url, append_timeout_s=0.3)
    writer.start()
    blocker = audit_log.new_engine().connect()
    try:
        transaction = blocker.begin()
        # Takes the write lock (SQLite) / the tree-head row lock (PostgreSQL).
        blocker.execute(text("UPDATE audit_tree_head SET size = size WHERE id = 1"))
        with pytest.raises(AuditUnavailable, match="in time"):
            await writer.append(exchange_draft(0, request_id="timed-out"))
        transaction.commit()

        # The writer thread is still alive and the log continues without a gap.
        assert await writer.append(exchange_draft(1, request_id="after")) == 1
        assert writer.last_error is None
        rows = audit_log.rows("SELECT idx, request_id FROM audit_entries ORDER BY idx")
        # The timed-out entry was committed once the lock went away: it is recorded,
        # while its caller released nothing (503). Recording more than was released is
        # the safe direction.
        assert [(r.idx, r.request_id) for r in rows] == [(0, "timed-out"), (1, "after")]
    finally:
        blocker.close()
        writer.stop()
    assert audit_log.verify().ok


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_unreachable_database_fails_closed(backend: str, tmp_path: Path) -> None:
    url = (
        f"sqlite:///{tmp_path / 'no-such-directory' / 'gateway.db'}"
        if backend == "sqlite"
        else "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    )
    writer = AuditWriter(url)
    writer.start()
    try:
        with pytest.raises(AuditUnavailable):
            await writer.append(exchange_draft())
        assert writer.last_error is not None
    finally:
        writer.stop()


async def test_a_malformed_draft_fails_alone(audit_log: AuditLog) -> None:
    """One request's unencodable entry must not fail the others committed with it."""
    good = [exchange_draft(i) for i in range(3)]
    bad_float = exchange_draft(90, action={"ratio": 0.5})  # floats are not allowed in leaves
    bad_time = exchange_draft(91, time=datetime(2026, 1, 1))  # naive: not a UTC instant
    futures = [audit_log.writer.submit(d) for d in (good[0], bad_float, good[1], bad_time, good[2])]
    outcomes: list[int | str] = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=30))
        except AuditUnavailable:
            outcomes.append("refused")
    assert outcomes == [0, "refused", 1, "refused", 2]
    assert _stored_indices(audit_log) == [0, 1, 2]
    assert audit_log.writer.last_error is None
    assert audit_log.verify().ok


def test_stop_drains_what_was_submitted(tmp_path: Path, database_url: str) -> None:
    migrate(tmp_path, database_url)
    writer = AuditWriter(database_url, max_wait_s=0.01)
    writer.start()
    futures = [writer.submit(exchange_draft(i)) for i in range(30)]
    writer.stop()
    assert [f.result(timeout=1) for f in futures] == list(range(30))


def test_kinds_and_decisions_are_recorded_verbatim(audit_log: AuditLog) -> None:
    drafts = [
        EntryDraft(kind=kind, decision=decision, status=status)
        for kind, decision, status in (
            (AuditKind.AUDIT_QUERY, Decision.ALLOW, 200),
            (AuditKind.POLICY_ADMIN, Decision.DENY, 403),
            (AuditKind.EXCHANGE, Decision.INVALID, 422),
        )
    ]
    audit_log.append(*drafts)
    rows = audit_log.rows("SELECT kind, decision, status FROM audit_entries ORDER BY idx")
    assert [tuple(r) for r in rows] == [
        ("audit_query", "allow", 200),
        ("policy_admin", "deny", 403),
        ("exchange", "invalid", 422),
    ]


def test_threads_and_a_second_writer_on_one_database(audit_log: AuditLog) -> None:
    """Two writers (as two workers would have) in one process never fork the log."""
    second = AuditWriter(audit_log.url)
    second.start()
    barrier = threading.Barrier(2)

    def burst(writer: AuditWriter, start: int) -> list[int]:
        barrier.wait()
        futures = [writer.submit(exchange_draft(start + i)) for i in range(100)]
        return [f.result(timeout=30) for f in futures]

    try:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(burst, audit_log.writer, 0)
            b = pool.submit(burst, second, 1000)
            first, other = a.result(), b.result()
    finally:
        second.stop()
    assert sorted(first + other) == list(range(200))
    assert first == sorted(first)
    assert other == sorted(other)
    assert audit_log.verify().ok


# --- optional keys (issue 12): absent unless set, so every earlier leaf verifies unchanged ----

FIRST_RELEASE_KEYS = {
    "index",
    "time",
    "kind",
    "request_id",
    "requester",
    "owner_agency",
    "resource",
    "record_ids",
    "purpose",
    "case_number",
    "decision",
    "status",
    "fields",
    "rule_ids",
    "policy_version",
    "upstream",
    "body_sha256",
    "detail",
}


def test_an_entry_without_the_new_keys_is_encoded_as_before(audit_log: AuditLog) -> None:
    draft = exchange_draft(3)
    assert set(entry_document(3, draft)) == FIRST_RELEASE_KEYS
    (index,) = audit_log.append(draft)
    assert set(json.loads(audit_log.leaves()[index])) == FIRST_RELEASE_KEYS
    assert audit_log.verify().ok


def test_search_criteria_are_kept_as_keyed_hashes(audit_log: AuditLog) -> None:
    criteria = SearchCriteria({"id_number": "64010419900101001X", "case_id": "C1"}, 20, True)
    draft = exchange_draft(4, search=criteria)
    with pytest.raises(LeafEncodingError, match="criteria key"):
        entry_document(4, draft)  # never stored without its key
    (index,) = audit_log.append(draft)
    leaf = audit_log.leaves()[index]
    document = json.loads(leaf)
    key = audit_log.writer.criteria_key
    assert document["search"] == {
        "filters": {
            "case_id": criteria_hash(key, "case_id", "C1"),
            "id_number": criteria_hash(key, "id_number", "64010419900101001X"),
        },
        "limit": 20,
        "cursor": True,
    }
    assert b"64010419900101001X" not in leaf
    assert criteria_hash(key, "id_number", "x") != criteria_hash(key, "case_id", "x")
    assert criteria_hash(key, "id_number", "x") != criteria_hash(bytes(32), "id_number", "x")
    assert audit_log.verify().ok


def test_both_case_numbers_are_indexed_and_verified(audit_log: AuditLog) -> None:
    police = "A6401040000002024078396"
    draft = exchange_draft(
        5,
        case_number=police,
        case_numbers={"police": police, "court": "(2024)宁0104刑初465号"},
    )
    (index,) = audit_log.append(draft)
    refs = {
        r.case_number
        for r in audit_log.rows("SELECT * FROM audit_case_refs WHERE idx = :i", i=index)
    }
    assert refs == {police, "(2024)宁0104刑初465号"}
    for number in refs:
        found, _ = audit_log.service.entries(EntryFilter(case_number=number), after=None, limit=10)
        assert [v.index for v in found] == [index]
    assert audit_log.verify().ok
    audit_log.tamper(("DELETE FROM audit_case_refs WHERE case_number = :n", {"n": police}))
    report = audit_log.verify()
    assert not report.ok
    assert f"entry {index}: case references disagree with the leaf" in report.problems


@pytest.mark.postgres
async def test_a_connection_dropped_while_idle_fails_no_append(
    tmp_path: Path, postgres_url: str
) -> None:
    """The writer keeps its connection between batches; after a pause it takes it through the
    pool again (its pre-ping), so a session the server ended meanwhile costs no caller a 503."""
    migrate(tmp_path, postgres_url)
    writer = AuditWriter(postgres_url)
    writer.start()
    admin = create_db_engine(postgres_url)
    try:
        assert await writer.append(exchange_draft(0)) == 0
        held = writer._conn  # the writer thread's connection, idle between batches
        assert held is not None
        pid = held.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        await asyncio.sleep(1.2)  # longer than the writer holds an idle connection
        assert await writer.append(exchange_draft(1)) == 1
        assert writer.last_error is None
    finally:
        writer.stop()
        admin.dispose()
