"""A leaf hash is stored once (migration 0009): proofs read it from the entry, and a log
written before the migration keeps verifying after it, and after a downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.audit.merkle import (
    build_tree,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from gateway.audit.repository import NodeTable, node_select
from gateway.migrate import alembic_config
from tests.audit.conftest import AuditLog
from tests.conftest import make_settings


def _leaf_hashes(log: AuditLog) -> list[bytes]:
    return [
        bytes(r.leaf_hash) for r in log.rows("SELECT leaf_hash FROM audit_entries ORDER BY idx")
    ]


def _migrate(log: AuditLog, tmp_path: Path, revision: str) -> None:
    config = alembic_config(make_settings(tmp_path, log.url), log.url)
    with log.engine.begin() as connection:
        config.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


def _check_proofs(log: AuditLog) -> None:
    """Every inclusion and consistency proof of the stored tree checks against an in-memory
    tree built from the entries' leaf hashes (an independent oracle)."""
    leaves = _leaf_hashes(log)
    size = len(leaves)
    oracle, frontier = build_tree(leaves)
    root = frontier.root()
    with Session(log.engine) as session:
        nodes = NodeTable(session)
        for index in range(size):
            proof = inclusion_proof(index, size, nodes)
            assert proof == inclusion_proof(index, size, oracle)
            verify_inclusion(leaves[index], index, size, proof, root)
        for first in range(1, size):
            _, old = build_tree(leaves[:first])
            proof = consistency_proof(first, size, nodes)
            verify_consistency(first, size, proof, old.root(), root)


def test_no_leaf_hash_is_stored_twice(audit_log: AuditLog) -> None:
    audit_log.fill(13)
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes WHERE level = 0") == 0
    # 13 leaves: interior nodes 6 at level 1, 3 at level 2, 1 at level 3.
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes") == 6 + 3 + 1
    _check_proofs(audit_log)


def test_a_proof_mixing_leaves_and_interior_nodes_is_one_statement(audit_log: AuditLog) -> None:
    audit_log.fill(6)
    leaves = _leaf_hashes(audit_log)
    # Entry 4's proof in a tree of 6: leaf 5, node (2, 0).
    with Session(audit_log.engine) as session:
        rows = session.execute(node_select([(0, 5), (2, 0), (1, 9)])).all()
    found = {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}
    store, _ = build_tree(leaves)
    assert found == {(0, 5): leaves[5], (2, 0): store.get_nodes([(2, 0)])[(2, 0)]}


def test_a_log_from_before_the_migration(audit_log: AuditLog, tmp_path: Path) -> None:
    audit_log.fill(11)
    assert audit_log.checkpoint() == 11
    _migrate(audit_log, tmp_path, "0008")
    # Before 0009 every leaf hash was also a level-0 node: the downgrade puts them back.
    stored = {
        int(r.idx): bytes(r.hash)
        for r in audit_log.rows("SELECT idx, hash FROM audit_nodes WHERE level = 0")
    }
    assert stored == dict(enumerate(_leaf_hashes(audit_log)))

    _migrate(audit_log, tmp_path, "head")
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes WHERE level = 0") == 0
    audit_log.fill(6, start=11)
    assert audit_log.checkpoint() == 17
    report = audit_log.verify()
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints_checked) == (17, 2)
    _check_proofs(audit_log)
    # The migration put the append-only triggers back.
    with pytest.raises(DBAPIError), audit_log.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_nodes WHERE level = 1")
