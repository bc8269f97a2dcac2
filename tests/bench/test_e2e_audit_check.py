"""The soak's receipt check: one pass over the stored entries, not two queries per receipt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from bench.e2e.audit_check import verify_receipts
from gateway.audit.checkpoint import open_checkpoint, parse_verifier
from gateway.audit.merkle import inclusion_proof
from gateway.audit.repository import AuditRepository, NodeTable
from tests.audit.conftest import AuditLog, exchange_draft, open_audit_log

STATUSES = (200, 403, 200, 502, 200, 422, 200)


@pytest.fixture
def signed_log(tmp_path: Path, database_url: str) -> Iterator[tuple[AuditLog, int, bytes]]:
    log = open_audit_log(tmp_path, database_url)
    try:
        log.append(*(exchange_draft(n, status=STATUSES[n % len(STATUSES)]) for n in range(37)))
        size = log.checkpoint()
        assert size == 37
        checkpoint = open_checkpoint(log.notes()[size], [parse_verifier(log.verifier_text)])
        yield log, checkpoint.size, checkpoint.root
    finally:
        log.close()


def receipts_of(log: AuditLog) -> list[tuple[int, int]]:
    return [(int(r.status), int(r.idx)) for r in log.rows("SELECT idx, status FROM audit_entries")]


def test_every_receipt_of_an_intact_log_verifies(signed_log: tuple[AuditLog, int, bytes]) -> None:
    log, size, root = signed_log
    with Session(log.engine) as session:
        assert verify_receipts(session, size, root, receipts_of(log)) == (37, [])


def test_the_proofs_are_the_ones_the_stored_nodes_give(
    signed_log: tuple[AuditLog, int, bytes],
) -> None:
    """Oracle: the in-memory tree's proofs equal the gateway's own, read from audit_nodes."""
    from gateway.audit.merkle import Frontier, MemoryNodeStore, leaf_hash

    log, size, _ = signed_log
    store, frontier = MemoryNodeStore(), Frontier()
    for _, leaf in sorted(log.leaves().items()):
        store.put_nodes(frontier.append(leaf_hash(leaf)))
    with Session(log.engine) as session:
        assert AuditRepository(session).tree_size() == size
        reader = NodeTable(session)
        for index in range(size):
            assert inclusion_proof(index, size, store) == inclusion_proof(index, size, reader)


def test_a_receipt_with_another_status_is_reported(
    signed_log: tuple[AuditLog, int, bytes],
) -> None:
    log, size, root = signed_log
    receipts = [(200, 0), (500, 1), (200, 2)]
    with Session(log.engine) as session:
        verified, problems = verify_receipts(session, size, root, receipts)
    assert verified == 2
    assert problems == ["receipt 1: stored status 403, client saw 500"]


def test_a_receipt_beyond_the_checkpoint_is_reported(
    signed_log: tuple[AuditLog, int, bytes],
) -> None:
    log, size, root = signed_log
    with Session(log.engine) as session:
        verified, problems = verify_receipts(session, size, root, [(200, 0), (200, size)])
    assert (verified, problems) == (1, [f"receipt {size}: stored status None, client saw 200"])


def test_a_rewritten_leaf_fails_the_signed_root(signed_log: tuple[AuditLog, int, bytes]) -> None:
    log, size, root = signed_log
    log.tamper(("UPDATE audit_entries SET leaf = :leaf WHERE idx = 5", {"leaf": b"forged"}))
    with Session(log.engine) as session:
        verified, problems = verify_receipts(session, size, root, receipts_of(log))
    assert verified == 0
    assert problems == [f"the stored entries' root is not the signed checkpoint's at size {size}"]


def test_a_deleted_entry_is_named(signed_log: tuple[AuditLog, int, bytes]) -> None:
    log, size, root = signed_log
    log.tamper(
        "DELETE FROM audit_rule_hits WHERE idx = 9", "DELETE FROM audit_entries WHERE idx = 9"
    )
    with Session(log.engine) as session:
        verified, problems = verify_receipts(session, size, root, receipts_of(log))
    assert (verified, problems) == (0, ["audit entry 9 is missing (the next stored is 10)"])
