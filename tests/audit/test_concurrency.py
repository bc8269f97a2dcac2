"""Two OS processes appending to one database at once: no fork, no gap.

Each process runs its own :class:`AuditWriter` (as each gateway worker does) with
several threads appending, and one of them also signs checkpoints meanwhile.
Index assignment is serialised by the database (row lock on PostgreSQL, the
write lock on SQLite), so the indices of both together are exactly 0..N-1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.audit.checkpoint import open_checkpoint, parse_verifier
from gateway.audit.verifier import verify_database
from tests.audit.conftest import ORIGIN, AuditLog

WORKER = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditWriter

url, tag, count, go, ready, private = sys.argv[1:7]
writer = AuditWriter(url, max_batch=8)
writer.start()
checkpointer = None
if private != "-":
    checkpointer = Checkpointer(
        writer.engine, CheckpointSigner.from_private_text(private), sys.argv[7], 3600
    )
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)

def one(i):
    index = writer.append_blocking(
        EntryDraft(kind=AuditKind.EXCHANGE, request_id=f"{tag}-{i}", decision=Decision.ALLOW,
                   status=200, client_id=tag)
    )
    if checkpointer is not None and i % 25 == 0:
        checkpointer.checkpoint_now()
    return index

half = int(count) // 2
with ThreadPoolExecutor(6) as pool:
    indices = list(pool.map(one, range(half)))
    # Meet the other process half-way, so that the second halves surely overlap.
    Path(f"{go}.{tag}").touch()
    deadline = time.monotonic() + 20
    while len(list(Path(go).parent.glob(Path(go).name + ".*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.002)
    indices += list(pool.map(one, range(half, int(count))))
if checkpointer is not None:
    checkpointer.checkpoint_now()
batches = writer.committed_batches
writer.stop()
print(json.dumps({"indices": indices, "batches": batches}))
"""

PER_PROCESS = 120


def _start(log: AuditLog, tag: str, go: Path, ready: Path, signer: bool) -> subprocess.Popen[str]:
    private = log.signer.private_text() if signer else "-"
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER,
            log.url,
            tag,
            str(PER_PROCESS),
            str(go),
            str(ready),
            private,
            ORIGIN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.slow
def test_two_processes_append_to_one_log(audit_log: AuditLog, tmp_path: Path) -> None:
    go = tmp_path / "go"
    readies = [tmp_path / "ready-a", tmp_path / "ready-b"]
    processes = {
        "proc-a": _start(audit_log, "proc-a", go, readies[0], signer=True),
        "proc-b": _start(audit_log, "proc-b", go, readies[1], signer=False),
    }
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in readies):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in processes.values()), "a worker died"
            time.sleep(0.01)
        go.touch()  # both start appending at the same moment
        results = {}
        for tag, process in processes.items():
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            results[tag] = json.loads(out)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    a, b = results["proc-a"]["indices"], results["proc-b"]["indices"]
    total = 2 * PER_PROCESS
    assert len(a) == len(b) == PER_PROCESS
    assert not set(a) & set(b), "two processes were given the same index (fork)"
    assert sorted(a + b) == list(range(total)), "the indices have a gap"

    rows = audit_log.rows("SELECT idx, request_id, client_id FROM audit_entries ORDER BY idx")
    assert [r.idx for r in rows] == list(range(total))
    owner = {r.idx: r.client_id for r in rows}
    assert all(owner[i] == "proc-a" for i in a)
    assert all(owner[i] == "proc-b" for i in b)
    # They really ran at the same time: the log interleaves their batches.
    switches = sum(1 for i in range(1, total) if owner[i] != owner[i - 1])
    assert switches > 1

    assert audit_log.scalar("SELECT size FROM audit_tree_head WHERE id = 1") == total
    signed_while_appending = audit_log.notes()
    assert len(signed_while_appending) >= 2  # process A signed while both were appending
    if max(signed_while_appending) < total:  # A may have finished before B
        assert audit_log.checkpoint() == total
    notes = audit_log.notes()
    verifier = parse_verifier(audit_log.verifier_text)
    assert open_checkpoint(notes[total], [verifier]).size == total
    report = verify_database(audit_log.engine, [verifier], origin=ORIGIN)
    assert report.ok, report.problems
    assert report.entries == total
    assert report.checkpoints_checked == len(notes)
