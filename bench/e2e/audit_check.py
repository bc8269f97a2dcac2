"""After a run against the gateway: does the audit log hold every receipt, and verify?

* ``gateway audit verify`` (a separate process) over the whole database: leaf hashes, roots,
  contiguous indices, every checkpoint's signature and consistency between them;
* every receipt (``X-Audit-Index`` the load generator received) is unique, names a stored
  entry with the status the client saw, and its RFC 9162 inclusion proof verifies against the
  latest signed checkpoint (waited for until it covers the highest receipt).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = ["AuditCheck", "check_audit", "read_receipts", "verify_receipts"]


@dataclass
class AuditCheck:
    entries: int = 0
    receipts: int = 0
    proofs_verified: int = 0
    verify_exit: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.verify_exit == 0

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def read_receipts(path: Path) -> tuple[list[tuple[int, int]], list[str]]:
    """(status, index) per response, and what was wrong with the file."""
    receipts: list[tuple[int, int]] = []
    problems: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        status, _, index = line.partition(" ")
        if not index.isdigit():
            problems.append(f"response {number} (HTTP {status}) carried no X-Audit-Index")
            continue
        receipts.append((int(status), int(index)))
    return receipts, problems


def check_audit(database_url: str, data_dir: Path, receipts_file: Path | None,
                *, wait_s: float = 30.0) -> AuditCheck:  # fmt: skip
    from gateway.audit.checkpoint import open_checkpoint, parse_verifier
    from gateway.audit.repository import AuditRepository
    from gateway.db import create_db_engine, make_session_factory

    result = AuditCheck()
    receipts: list[tuple[int, int]] = []
    if receipts_file is not None:
        receipts, result.problems = read_receipts(receipts_file)
        result.receipts = len(receipts)
        indices = [index for _, index in receipts]
        if len(set(indices)) != len(indices):
            result.problems.append("an audit index was handed out twice")
    engine = create_db_engine(database_url)
    try:
        sessions = make_session_factory(engine)
        highest = max((index for _, index in receipts), default=-1)
        deadline = time.monotonic() + wait_s
        with sessions() as session:
            repository = AuditRepository(session)
            while True:
                latest = repository.latest_checkpoint()
                if latest is not None and latest.tree_size > highest:
                    break
                if time.monotonic() > deadline:
                    result.problems.append(f"no checkpoint covers index {highest} in {wait_s} s")
                    return result
                time.sleep(0.5)
                session.rollback()
            result.entries = repository.tree_size()
            verifier = parse_verifier(_verifier_text(data_dir))
            checkpoint = open_checkpoint(latest.note, [verifier])
            result.proofs_verified, problems = verify_receipts(
                session, checkpoint.size, checkpoint.root, receipts
            )
            result.problems.extend(problems)
    finally:
        engine.dispose()
    result.verify_exit = _gateway_verify(database_url, data_dir)
    if result.verify_exit != 0:
        result.problems.append(f"gateway audit verify exited {result.verify_exit}")
    return result


def verify_receipts(session: Session, size: int, root: bytes,
                    receipts: list[tuple[int, int]]) -> tuple[int, list[str]]:  # fmt: skip
    """Check each (status, index) receipt against the first ``size`` stored entries.

    The entries are read once, in index order, and their leaf hashes are recomputed from
    the stored leaves into an in-memory tree; that tree must have the signed ``root``, and
    each receipt's inclusion proof (built from it) must verify against that root. One pass
    over the table instead of two queries per receipt: a soak leaves 300,000+ receipts.
    Returns how many proofs verified, and what was wrong.
    """
    from gateway.audit.merkle import (
        Frontier,
        MemoryNodeStore,
        ProofError,
        inclusion_proof,
        leaf_hash,
        verify_inclusion,
    )
    from gateway.audit.models import AuditEntry

    wanted = dict((index, status) for status, index in receipts)
    statuses: dict[int, int] = {}
    store = MemoryNodeStore()
    frontier = Frontier()
    rows = session.execute(
        select(AuditEntry.idx, AuditEntry.status, AuditEntry.leaf)
        .where(AuditEntry.idx < size)
        .order_by(AuditEntry.idx)
        .execution_options(yield_per=5_000)
    )
    with rows:  # closed on an early return too (a server-side cursor on PostgreSQL)
        for idx, status, leaf in rows:
            if idx != frontier.size:
                return 0, [f"audit entry {frontier.size} is missing (the next stored is {idx})"]
            store.put_nodes(frontier.append(leaf_hash(bytes(leaf))))
            if idx in wanted:
                statuses[idx] = status
    if frontier.size != size:
        return 0, [f"the signed checkpoint covers {size} entries, {frontier.size} are stored"]
    if frontier.root() != root:
        return 0, [f"the stored entries' root is not the signed checkpoint's at size {size}"]
    verified = 0
    problems: list[str] = []
    for index, status in wanted.items():
        if statuses.get(index) != status:
            problems.append(
                f"receipt {index}: stored status {statuses.get(index)}, client saw {status}"
            )
            continue
        proof = inclusion_proof(index, size, store)
        try:
            verify_inclusion(store.get_nodes([(0, index)])[(0, index)], index, size, proof, root)
        except ProofError as exc:
            problems.append(f"receipt {index}: inclusion proof fails: {exc}")
            continue
        verified += 1
    return verified, problems


def _verifier_text(data_dir: Path) -> str:
    from gateway.audit.checkpoint import load_signer

    return load_signer(data_dir / "keys" / "checkpoint.key").verifier_text()


def _gateway_verify(database_url: str, data_dir: Path) -> int:
    env = {**os.environ, "GATEWAY_MODE": "demo", "GATEWAY_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gateway"), "audit", "verify", "--database-url",
         database_url, "--key", _verifier_text(data_dir), "--quiet"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return done.returncode
