"""Tampering behind the triggers' back: the verifier fails and names the first bad entry.

The log holds 23 entries, checkpoints were signed at sizes 8 and 20. Each test
changes the tables the way someone with direct database access could (triggers
bypassed, see ``AuditLog.tamper``) and checks what the verifier reports.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.leaf import leaf_bytes
from gateway.audit.merkle import Frontier, build_tree, leaf_hash
from gateway.audit.verifier import VerifyReport
from gateway.cli import main
from tests.audit.conftest import ORIGIN, AuditLog, exchange_draft

SIZE = 23


@pytest.fixture
def log(audit_log: AuditLog) -> AuditLog:
    audit_log.fill(8)
    assert audit_log.checkpoint() == 8
    audit_log.fill(12, start=8)
    assert audit_log.checkpoint() == 20
    audit_log.fill(3, start=20)
    assert audit_log.verify().ok
    return audit_log


def _fails_at(report: VerifyReport, index: int, *phrases: str) -> None:
    assert not report.ok
    assert report.first_bad_index == index, report.problems
    for phrase in phrases:
        assert any(phrase in p for p in report.problems), report.problems


def _document(log: AuditLog, index: int) -> dict[str, Any]:
    leaf = log.scalar("SELECT leaf FROM audit_entries WHERE idx = :i", i=index)
    document: dict[str, Any] = orjson.loads(bytes(leaf))
    return document


def _leaf_hashes(log: AuditLog) -> list[bytes]:
    return [
        leaf_hash(bytes(r.leaf)) for r in log.rows("SELECT leaf FROM audit_entries ORDER BY idx")
    ]


def _rebuild_tree_statements(log: AuditLog) -> list[tuple[str, dict[str, Any]]]:
    """Statements replacing every stored node and the tree head with ones recomputed from the
    (tampered) leaves: what a careful attacker would do."""
    hashes = _leaf_hashes(log)
    store, frontier = build_tree(hashes)
    statements: list[tuple[str, dict[str, Any]]] = [
        ("DELETE FROM audit_nodes", {}),
    ]
    for (level, index), digest in store.get_nodes(
        [(lv, i) for lv in range(8) for i in range(SIZE + 1)]
    ).items():
        statements.append(
            (
                "INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)",
                {"l": level, "i": index, "h": digest},
            )
        )
    statements.append(
        (
            "UPDATE audit_tree_head SET size = :s, frontier = :f, root = :r WHERE id = 1",
            {"s": frontier.size, "f": frontier.to_bytes(), "r": frontier.root()},
        )
    )
    return statements


# --- entries ---------------------------------------------------------------------------------


def test_a_changed_leaf_byte(log: AuditLog) -> None:
    leaf = bytearray(log.scalar("SELECT leaf FROM audit_entries WHERE idx = 5"))
    leaf[leaf.index(b'"allow"') + 1] = ord("A")  # "allow" -> "Allow"
    log.tamper(("UPDATE audit_entries SET leaf = :l WHERE idx = 5", {"l": bytes(leaf)}))
    _fails_at(log.verify(), 5, "entry 5: the leaf does not hash to the stored hash")


def test_a_rewritten_leaf_with_its_hash(log: AuditLog) -> None:
    document = _document(log, 5)
    document["decision"] = "deny"
    leaf = leaf_bytes(document)
    log.tamper(
        (
            "UPDATE audit_entries SET leaf = :l, leaf_hash = :h, decision = 'deny' WHERE idx = 5",
            {"l": leaf, "h": leaf_hash(leaf)},
        )
    )
    # The stored Merkle node over entries 4 and 5 still commits to the old leaf hash. The
    # leaf hash is stored once (in the entry), so the change is located to that pair.
    _fails_at(log.verify(), 4, "node (1, 2) is missing or wrong (covers entries 4 to 5)")


def test_a_rewritten_leaf_with_every_node_recomputed(log: AuditLog) -> None:
    """Only the signed checkpoints catch it; they bound the change to a range."""
    document = _document(log, 5)
    document["purpose"] = "SOMETHING_ELSE"
    leaf = leaf_bytes(document)
    log.tamper(
        (
            "UPDATE audit_entries SET leaf = :l, leaf_hash = :h, purpose = 'SOMETHING_ELSE' "
            "WHERE idx = 5",
            {"l": leaf, "h": leaf_hash(leaf)},
        )
    )
    log.tamper(*_rebuild_tree_statements(log))
    report = log.verify()
    _fails_at(
        report, 7, "checkpoint 8 for size 8 does not match", "checkpoint 20 for size 20 does not"
    )
    assert "at or before 7" in report.problems[0]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("decision", "deny"),
        ("client_id", "client-court"),  # would hand entry 5's proofs to another client
        ("requester_agency", "FY640104"),
        ("upstream_latency_us", 1),
    ],
)
def test_a_changed_column_only(log: AuditLog, column: str, value: Any) -> None:
    log.tamper((f"UPDATE audit_entries SET {column} = :v WHERE idx = 5", {"v": value}))  # noqa: S608
    _fails_at(log.verify(), 5, f"entry 5: column {column} disagrees with the leaf")


def test_a_changed_time_column(log: AuditLog) -> None:
    moved = exchange_draft(5).time + timedelta(days=30)
    log.tamper(("UPDATE audit_entries SET created_at = :t WHERE idx = 5", {"t": moved}))
    _fails_at(log.verify(), 5, "entry 5: column created_at disagrees with the leaf")


def test_a_rule_hit_added_with_a_plain_insert(log: AuditLog) -> None:
    """INSERT is what the triggers allow; the rule-id index must still match the leaves."""
    log.execute("INSERT INTO audit_rule_hits (rule_id, idx) VALUES ('made-up-rule', 9)")
    _fails_at(log.verify(), 9, "entry 9: rule hits disagree")


def test_a_rule_hit_for_an_entry_that_does_not_exist(log: AuditLog) -> None:
    log.execute("INSERT INTO audit_rule_hits (rule_id, idx) VALUES ('r', 99)")
    _fails_at(log.verify(), 99, "rule hits name entry 99")


def test_a_deleted_entry(log: AuditLog) -> None:
    log.tamper(
        "DELETE FROM audit_entries WHERE idx = 5", "DELETE FROM audit_rule_hits WHERE idx = 5"
    )
    _fails_at(log.verify(), 5, "entry 5: missing (next stored index is 6)")


def test_an_extra_entry_at_the_end(log: AuditLog) -> None:
    leaf = leaf_bytes({**_document(log, 22), "index": SIZE, "request_id": "smuggled"})
    row = log.rows("SELECT * FROM audit_entries WHERE idx = 22")[0]._mapping
    values = {
        **row,
        "idx": SIZE,
        "request_id": "smuggled",
        "leaf": leaf,
        "leaf_hash": leaf_hash(leaf),
    }
    columns = ", ".join(values)
    log.execute(
        f"INSERT INTO audit_entries ({columns}) VALUES ({', '.join(':' + c for c in values)})",  # noqa: S608
        **values,
    )
    # Entry 23 completes node (1, 11) over entries 22 and 23, which is not stored.
    _fails_at(log.verify(), SIZE - 1, "node (1, 11) is missing or wrong (covers entries 22 to 23)")

    # Also with its nodes and rule hit stored: the tree head still says 23.
    frontier = Frontier.from_bytes(
        bytes(log.scalar("SELECT frontier FROM audit_tree_head WHERE id = 1"))
    )
    for write in frontier.append(leaf_hash(leaf))[1:]:  # (1, 11), (2, 5), (3, 2); not (0, 23)
        log.execute(
            "INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)",
            l=write.level,
            i=write.index,
            h=write.hash,
        )
    log.execute(
        "INSERT INTO audit_rule_hits (rule_id, idx) VALUES ('allow-court-judgment', :i)", i=SIZE
    )
    _fails_at(log.verify(), SIZE, f"tree head says {SIZE} entries, the log holds {SIZE + 1}")


def test_an_entry_inserted_in_the_middle(log: AuditLog) -> None:
    """Shifting entries 10.. up by one to make room for a made-up entry 10."""
    leaf = leaf_bytes({**_document(log, 10), "request_id": "smuggled"})
    row = dict(log.rows("SELECT * FROM audit_entries WHERE idx = 10")[0]._mapping)
    row.update(request_id="smuggled", leaf=leaf, leaf_hash=leaf_hash(leaf))
    columns = ", ".join(row)
    log.tamper(
        "UPDATE audit_entries SET idx = idx + 1000 WHERE idx >= 10",
        "UPDATE audit_entries SET idx = idx - 999 WHERE idx >= 1000",
        (
            f"INSERT INTO audit_entries ({columns}) VALUES ({', '.join(':' + c for c in row)})",  # noqa: S608
            row,
        ),
    )
    _fails_at(log.verify(), 10)


def test_two_entries_swapped(log: AuditLog) -> None:
    log.tamper(
        "UPDATE audit_entries SET idx = -1 WHERE idx = 3",
        "UPDATE audit_entries SET idx = 3 WHERE idx = 4",
        "UPDATE audit_entries SET idx = 4 WHERE idx = -1",
    )
    # Entries 3 and 4 moved with their stored hashes: node (1, 1) over entries 2 and 3 no longer
    # matches, so the log is trusted up to entry 2, the start of the smallest stored subtree.
    _fails_at(log.verify(), 2, "entry 3: the leaf names index 4", "node (1, 1) is missing or wrong")


def test_two_leaves_swapped_with_their_hashes_and_nodes(log: AuditLog) -> None:
    """Even a swap that keeps every stored hash consistent is caught by checkpoint 8."""
    a, b = (log.rows("SELECT * FROM audit_entries WHERE idx = :i", i=i)[0] for i in (3, 4))
    statements: list[str | tuple[str, dict[str, Any]]] = [
        (
            "UPDATE audit_entries SET leaf = :l, leaf_hash = :h, request_id = :r WHERE idx = :i",
            {"l": src.leaf, "h": src.leaf_hash, "r": src.request_id, "i": dst},
        )
        for src, dst in ((a, 4), (b, 3))
    ]
    log.tamper(*statements)
    log.tamper(*_rebuild_tree_statements(log))
    _fails_at(log.verify(), 3, "entry 3: the leaf names index 4")


# --- truncation --------------------------------------------------------------------------------


def _truncate_to(log: AuditLog, keep: int, *, drop_checkpoints_from: int | None) -> None:
    """Remove entries keep.. with their nodes, rule hits and case references, and rewind the
    tree head."""
    hashes = _leaf_hashes(log)[:keep]
    frontier = Frontier()
    for digest in hashes:
        frontier.append(digest)
    doomed_nodes = [
        (int(r.level), int(r.idx))
        for r in log.rows("SELECT level, idx FROM audit_nodes")
        if (int(r.idx) + 1) << int(r.level) > keep
    ]
    statements: list[str | tuple[str, dict[str, Any]]] = [
        (f"DELETE FROM audit_entries WHERE idx >= {keep}", {}),  # noqa: S608
        (f"DELETE FROM audit_rule_hits WHERE idx >= {keep}", {}),  # noqa: S608
        (f"DELETE FROM audit_case_refs WHERE idx >= {keep}", {}),  # noqa: S608
        *(
            ("DELETE FROM audit_nodes WHERE level = :l AND idx = :i", {"l": lv, "i": i})
            for lv, i in doomed_nodes
        ),
        (
            "UPDATE audit_tree_head SET size = :s, frontier = :f, root = :r WHERE id = 1",
            {"s": keep, "f": frontier.to_bytes(), "r": frontier.root()},
        ),
    ]
    if drop_checkpoints_from is not None:
        statements.append(
            (
                "DELETE FROM audit_checkpoints WHERE tree_size >= :n",
                {"n": drop_checkpoints_from},
            )
        )
    log.tamper(*statements)


def test_truncation_with_the_checkpoints_left_is_caught(log: AuditLog) -> None:
    _truncate_to(log, 15, drop_checkpoints_from=None)
    _fails_at(log.verify(), 15, "checkpoint 20 commits to 20 entries but the log has 15")


def test_truncation_needs_a_checkpoint_kept_outside(log: AuditLog) -> None:
    """What the log cannot prove alone: a truncation that also removes the later checkpoints
    leaves a shorter log that is internally consistent. A checkpoint note saved outside the
    database before the truncation (as any regulator's monitor would) exposes it."""
    saved_outside = log.notes()[20]
    _truncate_to(log, 15, drop_checkpoints_from=20)

    alone = log.verify()
    assert alone.ok, alone.problems  # undetectable from inside the database
    assert alone.entries == 15

    with_note = log.verify(external_notes=[("checkpoint kept by the regulator", saved_outside)])
    _fails_at(
        with_note,
        15,
        "checkpoint kept by the regulator commits to 20 entries but the log has 15",
        "truncation",
    )


def test_entries_after_the_last_checkpoint_are_protected_only_by_later_notes(
    log: AuditLog,
) -> None:
    """Entries 20-22 are not under any checkpoint yet: a careful rewrite of entry 21 passes
    until a checkpoint covering it exists somewhere the operator cannot reach."""
    log.writer.stop()
    signer_seen_23 = log.signer.sign_checkpoint(
        ORIGIN,
        SIZE,
        Frontier.from_bytes(
            bytes(log.scalar("SELECT frontier FROM audit_tree_head WHERE id = 1"))
        ).root(),
    )  # e.g. the note a monitor fetched from GET /v1/audit/checkpoint at size 23
    document = _document(log, 21)
    document["decision"] = "deny"
    leaf = leaf_bytes(document)
    log.tamper(
        (
            "UPDATE audit_entries SET leaf = :l, leaf_hash = :h, decision = 'deny' WHERE idx = 21",
            {"l": leaf, "h": leaf_hash(leaf)},
        )
    )
    log.tamper(*_rebuild_tree_statements(log))
    assert log.verify().ok
    _fails_at(
        log.verify(external_notes=[("monitor", signer_seen_23)]),
        22,
        "monitor for size 23 does not match the entries",
    )


# --- nodes, checkpoints, tree head -----------------------------------------------------------


def test_a_changed_merkle_node(log: AuditLog) -> None:
    log.tamper(
        ("UPDATE audit_nodes SET hash = :h WHERE level = 2 AND idx = 1", {"h": b"\x00" * 32})
    )
    _fails_at(log.verify(), 4, "node (2, 1) is missing or wrong (covers entries 4 to 7)")


def test_a_deleted_merkle_node(log: AuditLog) -> None:
    log.tamper("DELETE FROM audit_nodes WHERE level = 3 AND idx = 1")
    _fails_at(log.verify(), 8, "node (3, 1) is missing or wrong")


def test_a_changed_checkpoint_signature(log: AuditLog) -> None:
    note = log.notes()[8]
    body, signature_line = note[:-1].rsplit("\n", 1)
    prefix, blob = signature_line.rsplit(" ", 1)
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    log.tamper(
        (
            "UPDATE audit_checkpoints SET note = :n WHERE tree_size = 8",
            {"n": f"{body}\n{prefix} {flipped}\n"},
        )
    )
    report = log.verify()
    assert not report.ok
    assert any("checkpoint 8: invalid signature" in p for p in report.problems), report.problems


def test_a_changed_checkpoint_body(log: AuditLog) -> None:
    note = log.notes()[8].replace(f"{ORIGIN}\n8\n", f"{ORIGIN}\n7\n")
    log.tamper(("UPDATE audit_checkpoints SET note = :n WHERE tree_size = 8", {"n": note}))
    report = log.verify()
    assert not report.ok
    assert any("checkpoint 8: invalid signature" in p for p in report.problems)


def test_a_changed_checkpoint_root_column(log: AuditLog) -> None:
    log.tamper(("UPDATE audit_checkpoints SET root = :r WHERE tree_size = 20", {"r": b"1" * 32}))
    report = log.verify()
    assert not report.ok
    assert "checkpoint 20: root column disagrees with its note" in report.problems


def test_a_checkpoint_signed_by_another_key(log: AuditLog) -> None:
    forger = CheckpointSigner.generate("test-audit")
    forged = forger.sign_checkpoint(ORIGIN, 21, b"\x07" * 32)
    log.execute(
        "INSERT INTO audit_checkpoints (tree_size, root, note, created_at) VALUES (21, :r, :n, :t)",
        r=b"\x07" * 32,
        n=forged,
        t=exchange_draft().time,
    )
    report = log.verify()
    assert not report.ok
    assert any(
        "checkpoint 21: note has no signature from a known key" in p for p in report.problems
    )


def test_a_changed_tree_head_frontier(log: AuditLog) -> None:
    other = Frontier()
    for i in range(SIZE):
        other.append(leaf_hash(str(i).encode()))
    log.tamper(("UPDATE audit_tree_head SET frontier = :f WHERE id = 1", {"f": other.to_bytes()}))
    report = log.verify()
    assert not report.ok
    assert "tree head frontier disagrees with the entries" in report.problems


# --- the command line ---------------------------------------------------------------------------


def test_cli_exit_codes_on_tampering(
    log: AuditLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATEWAY_AUDIT_ORIGIN", ORIGIN)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    argv = ["audit", "verify", "--database-url", log.url, "--key", log.verifier_text, "--quiet"]
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(log.notes()[20], encoding="utf-8")

    assert main(argv) == 0
    _truncate_to(log, 15, drop_checkpoints_from=20)
    assert main(argv) == 0  # the limitation shown above
    capsys.readouterr()
    assert main([*argv, "--checkpoint", str(saved)]) == 1
    err = capsys.readouterr().err
    assert "FAILED: first bad entry: 15" in err
    assert "truncation" in err
