"""The checkpointer: signs only when the tree grew, commits to the recomputed root, races safely."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session

from gateway.audit.checkpoint import open_checkpoint, parse_verifier
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, root_at
from gateway.audit.repository import NodeTable
from tests.audit.conftest import ORIGIN, AuditLog


def _recomputed_root(log: AuditLog, size: int) -> bytes:
    frontier = Frontier()
    for row in log.rows("SELECT leaf FROM audit_entries WHERE idx < :n ORDER BY idx", n=size):
        frontier.append(leaf_hash(bytes(row.leaf)))
    assert frontier.size == size
    return frontier.root()


def test_signs_only_when_the_tree_grew(audit_log: AuditLog) -> None:
    assert audit_log.checkpoint() == 0  # the empty tree is signed, once
    assert audit_log.checkpoint() is None
    empty = open_checkpoint(audit_log.notes()[0], [parse_verifier(audit_log.verifier_text)])
    assert (empty.size, empty.root) == (0, EMPTY_ROOT)

    audit_log.fill(5)
    assert audit_log.checkpoint() == 5
    assert audit_log.checkpoint() is None  # no growth, no new checkpoint
    audit_log.fill(3, start=5)
    assert audit_log.checkpoint() == 8
    assert audit_log.checkpoint() is None
    assert sorted(audit_log.notes()) == [0, 5, 8]  # all kept
    assert audit_log.verify().ok


def test_note_opens_with_the_verifier_and_commits_to_the_recomputed_root(
    audit_log: AuditLog,
) -> None:
    audit_log.fill(11)
    audit_log.checkpoint()
    note = audit_log.notes()[11]
    checkpoint = open_checkpoint(note, [parse_verifier(audit_log.verifier_text)])
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, 11)
    assert checkpoint.root == _recomputed_root(audit_log, 11)
    with Session(audit_log.engine) as session:
        assert root_at(11, NodeTable(session)) == checkpoint.root
    stored_root = audit_log.scalar("SELECT root FROM audit_checkpoints WHERE tree_size = 11")
    assert bytes(stored_root) == checkpoint.root
    assert note.startswith(f"{ORIGIN}\n11\n")
    assert "\n\n— test-audit " in note


def test_without_a_key_nothing_is_signed(audit_log: AuditLog) -> None:
    audit_log.fill(2)
    unsigned = Checkpointer(audit_log.engine, None, ORIGIN, 1.0)
    assert unsigned.checkpoint_now() is None
    assert unsigned.last_error == "no checkpoint signing key"
    assert audit_log.notes() == {}


def test_two_checkpointers_racing_create_one_row_per_size(audit_log: AuditLog) -> None:
    """Two workers, each with its own engine and checkpointer, sign at the same moment."""
    racers = [Checkpointer(audit_log.new_engine(), audit_log.signer, ORIGIN, 1.0) for _ in range(2)]
    barrier = threading.Barrier(2)

    def race(checkpointer: Checkpointer) -> int | None:
        barrier.wait()
        return checkpointer.checkpoint_now()

    sizes: list[int] = []
    with ThreadPoolExecutor(2) as pool:
        for round_ in range(8):
            audit_log.fill(3, start=round_ * 3)
            results = list(pool.map(race, racers))  # neither may raise
            signed = [r for r in results if r is not None]
            assert signed == [3 * (round_ + 1)], results
            sizes.extend(signed)
    assert sorted(audit_log.notes()) == sizes
    assert audit_log.verify().ok


async def test_run_signs_periodically_while_the_log_grows(audit_log: AuditLog) -> None:
    checkpointer = Checkpointer(audit_log.engine, audit_log.signer, ORIGIN, 0.05)
    task = asyncio.create_task(checkpointer.run())
    try:
        for expected in (4, 9):
            audit_log.fill(expected - len(audit_log.leaves()), start=expected * 10)
            deadline = time.monotonic() + 5
            while expected not in audit_log.notes():
                assert time.monotonic() < deadline, "no checkpoint within 5 s"
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # no growth: no further checkpoints
        assert sorted(audit_log.notes()) == [4, 9]
        assert checkpointer.last_error is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
