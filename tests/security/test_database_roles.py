"""Attack matrix, rows D1-D5: a database the application cannot rewrite (docs/security.md).

Before issue 12's fix the application's database user owned the tables and their triggers
and could drop them; the tree-head trigger checked only the size; the policy tables had no
append-only guard; a loaded version's content hash was not re-checked. Here the gateway's
role is :data:`tests.conftest.APP_ROLE`, set up by ``gateway db upgrade --app-role``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.entry import encode_leaf
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.db import create_db_engine
from gateway.migrate import MigrationError, grant_application_role
from gateway.policy.errors import PolicyError
from tests.audit.conftest import AuditLog, exchange_draft, open_audit_log
from tests.conftest import APP_ROLE, Gateway, as_app_role
from tests.policy.test_admin_api import in_force, review, version

AUDIT_TABLES = (
    "audit_entries",
    "audit_nodes",
    "audit_checkpoints",
    "audit_rule_hits",
    "audit_case_refs",
)
POLICY_TABLES = ("policy_versions", "policy_proposals", "policy_reviews", "policy_publications")


@pytest.fixture
def pg_log(tmp_path: Path, postgres_url: str) -> Iterator[AuditLog]:
    log = open_audit_log(tmp_path, postgres_url)
    log.fill(3)
    assert log.checkpoint() == 3
    yield log
    log.close()


@pytest.fixture
def app_engine(pg_log: AuditLog) -> Iterator[Engine]:
    engine = create_engine(as_app_role(pg_log.url))
    yield engine
    engine.dispose()


def _as(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


# D1
@pytest.mark.postgres
@pytest.mark.parametrize("table", AUDIT_TABLES + POLICY_TABLES + ("audit_tree_head",))
def test_d01_the_application_role_cannot_rewrite_truncate_or_alter(
    pg_log: AuditLog, app_engine: Engine, table: str
) -> None:
    column = _a_column(pg_log, table)
    refused = [
        f"DELETE FROM {table}",  # noqa: S608 - a fixed table name
        f"TRUNCATE {table}",
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"ALTER TABLE {table} ADD COLUMN x int",
        f"DROP TABLE {table}",
    ]
    if table != "audit_tree_head":
        refused.append(f"UPDATE {table} SET {column} = {column}")  # noqa: S608
    for statement in refused:
        with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
            _as(app_engine, statement)
    with app_engine.connect() as conn:  # and it may read
        conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
    assert pg_log.verify().ok


def _a_column(log: AuditLog, table: str) -> str:
    row = log.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
        "AND table_schema = current_schema() ORDER BY ordinal_position LIMIT 1",
        t=table,
    )
    return str(row[0].column_name)


@pytest.mark.postgres
def test_d01b_the_owner_runs_the_migrations_and_the_role_owns_nothing(
    pg_log: AuditLog,
) -> None:
    owners = {
        r.tableowner
        for r in pg_log.rows("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()")
    }
    assert owners == {"postgres"}
    privileges = {
        (r.table_name, r.privilege_type)
        for r in pg_log.rows(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = :role AND table_schema = current_schema()",
            role=APP_ROLE,
        )
    }
    for table in AUDIT_TABLES + POLICY_TABLES:
        assert {p for t, p in privileges if t == table} == {"SELECT", "INSERT"}, table
    assert {p for t, p in privileges if t == "audit_tree_head"} == {"SELECT", "UPDATE"}
    assert {p for t, p in privileges if t == "oauth_clients"} == {"SELECT", "INSERT", "UPDATE"}
    # Conditional sharing: answered and revoked, never deleted.
    for table in ("sharing_applications", "sharing_grants"):
        assert {p for t, p in privileges if t == table} == {"SELECT", "INSERT", "UPDATE"}, table
    # Deliveries, their copies (抄送, rows naming their main delivery in copy_of, migration 0012)
    # included: answered and pushed, never deleted; events and idempotency keys only appended.
    for table in ("deliveries", "delivery_outbox"):
        assert {p for t, p in privileges if t == table} == {"SELECT", "INSERT", "UPDATE"}, table
    for table in ("delivery_events", "delivery_idempotency"):
        assert {p for t, p in privileges if t == table} == {"SELECT", "INSERT"}, table
    assert _has_column(pg_log, "deliveries", "copy_of")


def _has_column(log: AuditLog, table: str, column: str) -> bool:
    return bool(
        log.rows(
            "SELECT 1 FROM information_schema.columns WHERE table_name = :t AND column_name = :c "
            "AND table_schema = current_schema()",
            t=table,
            c=column,
        )
    )


# D2
@pytest.mark.postgres
def test_d02_the_database_checks_the_tree_head_frontier_and_root(
    pg_log: AuditLog, app_engine: Engine
) -> None:
    size, frontier_bytes = 3, bytes(pg_log.scalar("SELECT frontier FROM audit_tree_head"))
    frontier = Frontier.from_bytes(frontier_bytes)
    # a head that claims more entries than there are
    with pytest.raises(DBAPIError, match="missing"):
        _as(app_engine, "UPDATE audit_tree_head SET size = 4")
    # the same size with another frontier or root
    with pytest.raises(DBAPIError, match="without new entries"):
        _as(app_engine, "UPDATE audit_tree_head SET root = :r", r=bytes(32))
    # an appended entry whose stored hash is not the hash of its leaf
    _, leaf = encode_leaf(size, exchange_draft(size))
    bogus = frontier.copy()
    bogus.append(bytes(32))
    with pytest.raises(DBAPIError, match="does not hash to its leaf hash"):
        _append_forged(app_engine, size, leaf, bytes(32), bogus)
    # a right leaf hash, but a frontier or root that does not follow from the entries
    right = frontier.copy()
    right.append(leaf_hash(leaf))
    for forged_frontier, forged_root, message in (
        (bogus.to_bytes(), right.root(), "frontier does not match"),
        (right.to_bytes(), bytes(32), "root does not match"),
    ):
        with pytest.raises(DBAPIError, match=message):
            _append_forged(
                app_engine, size, leaf, leaf_hash(leaf), right, forged_frontier, forged_root
            )
    # a checkpoint at the head's size must carry the head's root
    with pytest.raises(DBAPIError, match="not the tree head root"):
        _as(
            app_engine,
            "INSERT INTO audit_checkpoints (tree_size, root, note, created_at) "
            "VALUES (3, :r, 'forged', now())",
            r=bytes(32),
        )
    with pytest.raises(DBAPIError, match="beyond the tree head"):
        _as(
            app_engine,
            "INSERT INTO audit_checkpoints (tree_size, root, note, created_at) "
            "VALUES (99, :r, 'forged', now())",
            r=frontier.root(),
        )
    # the control: the writer, as this role, still appends
    assert pg_log.fill(2, start=3) == [3, 4]
    assert pg_log.verify().ok


def _append_forged(
    engine: Engine,
    index: int,
    leaf: bytes,
    digest: bytes,
    frontier: Frontier,
    stored_frontier: bytes | None = None,
    root: bytes | None = None,
) -> None:
    """One entry and a new head, as a compromised application would write them."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_entries (idx, created_at, kind, decision, status, leaf, "
                "leaf_hash) VALUES (:i, now(), 'exchange', 'allow', 200, :l, :h)"
            ),
            {"i": index, "l": leaf, "h": digest},
        )
        conn.execute(
            text("UPDATE audit_tree_head SET size = :s, frontier = :f, root = :r"),
            {
                "s": index + 1,
                "f": stored_frontier or frontier.to_bytes(),
                "r": root or frontier.root(),
            },
        )


# D3
@pytest.mark.parametrize("table", POLICY_TABLES)
def test_d03_policy_tables_are_append_only(
    make_gateway: Callable[..., Gateway], database_url: str, table: str
) -> None:
    gw = make_gateway(database_url)
    gw.register("approver", "ZF640000", ["policy:admin"])
    assert review(gw, in_force(gw), "approve").status_code == 200  # a row in every table
    owner = create_db_engine(database_url)  # even the owner, through the triggers
    try:
        column = "kind" if table == "policy_publications" else "comment"
        for statement in (
            f"UPDATE {table} SET {column} = {column}",  # noqa: S608 - fixed names
            f"DELETE FROM {table}",  # noqa: S608
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                _as(owner, statement)
        if owner.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="append-only"):
                _as(owner, f"TRUNCATE {table} CASCADE")
    finally:
        owner.dispose()
    assert version(gw, in_force(gw))["status"] == "approved"


# D4
def test_d04_a_version_whose_files_were_changed_is_refused_when_loaded(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(database_url)
    shipped = in_force(gw)
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    files = runtime.policy_admin.store.version_or_404(shipped).files
    tampered = files.replace(b"fy.trial.case-file", b"fy.trial.case-fil3")
    assert tampered != files
    owner = create_db_engine(database_url)
    try:
        with owner.begin() as conn:  # a database administrator, triggers bypassed
            if owner.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text("UPDATE policy_versions SET files = :f"), {"f": tampered})
            else:
                conn.execute(text("DROP TRIGGER policy_versions_no_update"))
                conn.execute(text("UPDATE policy_versions SET files = :f"), {"f": tampered})
                conn.execute(
                    text(
                        "CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON "
                        "policy_versions BEGIN SELECT RAISE(ABORT, "
                        "'policy_versions is append-only'); END"
                    )
                )
    finally:
        owner.dispose()
    assert hashlib.sha256(tampered).hexdigest() != version(gw, shipped)["content_sha256"]
    assert version(gw, shipped)["intact"] is False
    runtime.policy_admin.store._engines.clear()  # the next load reads the row again
    with pytest.raises(PolicyError, match="content hash"):
        runtime.policy_admin.engine_for(shipped)
    with TestClient(create_app(gw.settings)) as second:  # a worker starting now
        ready = second.get("/readyz").json()["checks"]["policy"]
        assert (ready["ok"], ready["mode"]) == (False, "deny-all")


# D5
@pytest.mark.postgres
def test_d05_grants_refuse_a_role_that_would_defeat_them(pg_log: AuditLog) -> None:
    with pg_log.engine.begin() as conn:
        for role, message in (
            ("postgres", "superuser"),
            ("no_such_role_here", "does not exist"),
            ("Bad-Name", "invalid role name"),
        ):
            with pytest.raises(MigrationError, match=message):
                grant_application_role(conn, role)
        grant_application_role(conn, APP_ROLE)  # idempotent: the same grants again
    app = create_engine(as_app_role(pg_log.url))
    try:
        with pytest.raises(ProgrammingError, match="permission denied"):
            _as(app, "DELETE FROM audit_entries")
    finally:
        app.dispose()
