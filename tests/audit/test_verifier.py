"""The offline verifier on clean logs: live database, JSON Lines export, and the CLI."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from gateway.audit.checkpoint import CheckpointSigner, open_checkpoint, parse_verifier
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.repository import EntryFilter
from gateway.audit.verifier import progress_printer, verify_database, verify_export
from gateway.cli import main
from gateway.settings import (
    DEFAULT_AUDIT_ORIGIN,
    LEGACY_AUDIT_ORIGIN,
    LEGACY_CHECKPOINT_KEY_NAME,
)
from tests.audit.conftest import ORIGIN, T0, AuditLog, open_audit_log


def _fill_clean(log: AuditLog) -> AuditLog:
    log.fill(10)
    assert log.checkpoint() == 10
    log.fill(15, start=10)
    assert log.checkpoint() == 25
    return log


@pytest.fixture(scope="module")
def clean(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditLog]:
    """25 entries, checkpoints at 10 and 25, shared by the module: tests only read it."""
    log = open_audit_log(tmp_path_factory.mktemp("clean"), module_database_url)
    yield _fill_clean(log)
    log.close()


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_AUDIT_ORIGIN", ORIGIN)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "cli"))


def _export(log: AuditLog, path: Path, filters: EntryFilter | None = None) -> Path:
    path.write_bytes(b"".join(log.service.export_lines(filters or EntryFilter(), "jsonl")))
    return path


def _notes(log: AuditLog) -> list[tuple[str, str]]:
    return [(f"note {size}", note) for size, note in sorted(log.notes().items())]


def test_clean_database_passes(clean: AuditLog) -> None:
    calls: list[tuple[int, int | None]] = []
    report = clean.verify(batch=7, progress=lambda done, total: calls.append((done, total)))
    assert report.ok, report.problems
    assert report.entries == 25
    assert report.checkpoints_checked == 2
    assert report.first_bad_index is None
    latest = open_checkpoint(clean.notes()[25], [parse_verifier(clean.verifier_text)])
    assert report.root == latest.root
    assert calls == [(7, 25), (14, 25), (21, 25), (25, 25)]


def test_empty_log_passes(audit_log: AuditLog) -> None:
    report = audit_log.verify()
    assert report.ok
    assert (report.entries, report.root) == (0, None)


def test_a_checkpoint_kept_outside_is_matched(clean: AuditLog) -> None:
    report = clean.verify(external_notes=[("my copy", clean.notes()[10])])
    assert report.ok, report.problems
    assert report.external_checked == 1
    assert report.checkpoints_checked == 3


def test_wrong_key_or_origin_fails(clean: AuditLog) -> None:
    stranger = CheckpointSigner.generate("test-audit")
    report = verify_database(clean.engine, [stranger.verifier()], origin=ORIGIN)
    assert not report.ok
    assert any("no signature from a known key" in p for p in report.problems)

    report = verify_database(
        clean.engine, [parse_verifier(clean.verifier_text)], origin="another/log"
    )
    assert not report.ok
    assert any("origin" in p for p in report.problems)


def test_export_with_checkpoints_passes(clean: AuditLog, tmp_path: Path) -> None:
    path = _export(clean, tmp_path / "audit.jsonl")
    assert len(path.read_bytes().splitlines()) == 25
    calls: list[tuple[int, int | None]] = []
    report = verify_export(
        path,
        [parse_verifier(clean.verifier_text)],
        _notes(clean),
        origin=ORIGIN,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints_checked, report.external_checked) == (25, 2, 2)
    assert calls[-1] == (25, None)


def test_export_is_checked_line_by_line(clean: AuditLog, tmp_path: Path) -> None:
    verifiers = [parse_verifier(clean.verifier_text)]
    lines = _export(clean, tmp_path / "audit.jsonl").read_bytes().splitlines()

    # A field shown beside the leaf was edited: named exactly.
    edited = orjson.loads(lines[6])
    edited["decision"] = "deny"
    path = tmp_path / "edited.jsonl"
    path.write_bytes(b"\n".join([*lines[:6], orjson.dumps(edited), *lines[7:]]))
    report = verify_export(path, verifiers, _notes(clean), origin=ORIGIN)
    assert not report.ok
    assert report.first_bad_index == 6

    # A line is missing.
    path = tmp_path / "gap.jsonl"
    path.write_bytes(b"\n".join(lines[:3] + lines[4:]))
    report = verify_export(path, verifiers, _notes(clean), origin=ORIGIN)
    assert not report.ok
    assert report.first_bad_index == 3

    # The file stops early: the checkpoint of 25 proves the rest existed.
    path = tmp_path / "short.jsonl"
    path.write_bytes(b"\n".join(lines[:18]))
    report = verify_export(path, verifiers, _notes(clean), origin=ORIGIN)
    assert not report.ok
    assert report.first_bad_index == 18
    assert any("truncation" in p for p in report.problems)

    # Not an export line at all.
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n".join([*lines[:2], b"{not json"]))
    report = verify_export(path, verifiers, _notes(clean), origin=ORIGIN)
    assert not report.ok
    assert any("garbage.jsonl:3" in p for p in report.problems)


def test_a_filtered_export_is_not_a_verifiable_log(clean: AuditLog, tmp_path: Path) -> None:
    path = _export(clean, tmp_path / "part.jsonl", EntryFilter(since=T0 + timedelta(minutes=5)))
    assert orjson.loads(path.read_bytes().splitlines()[0])["index"] == 5
    report = verify_export(path, [parse_verifier(clean.verifier_text)], _notes(clean))
    assert not report.ok
    assert report.first_bad_index == 0  # entries 0-4 are not in the file


def test_progress_printer_shows_counts() -> None:
    stream = io.StringIO()
    show = progress_printer(stream, every_s=0)
    show(500, 1000)
    show(1000, 1000)
    assert "verified 500/1000 entries" in stream.getvalue()
    assert "verified 1000/1000 entries" in stream.getvalue()


# --- the command line ---------------------------------------------------------------------------


def _cli(log: AuditLog, *extra: str) -> int:
    return main(["audit", "verify", "--database-url", log.url, "--key", log.verifier_text, *extra])


def test_cli_passes_a_clean_log(clean: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(clean, "--quiet") == 0
    out = capsys.readouterr()
    assert out.out.startswith("OK: 25 entries")
    assert "2 checkpoint(s) matched" in out.out
    assert out.err == ""


def test_cli_shows_progress(clean: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(clean) == 0
    assert "verified 25/25 entries" in capsys.readouterr().err


def test_cli_fails_a_tampered_log(audit_log: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    clean = _fill_clean(audit_log)
    clean.tamper("UPDATE audit_entries SET status = 500 WHERE idx = 12")
    assert _cli(clean, "--quiet") == 1
    err = capsys.readouterr().err
    assert "FAILED: first bad entry: 12" in err
    assert "column status disagrees" in err


def test_cli_checkpoint_file_and_export(
    clean: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "checkpoint-25.txt"
    saved.write_text(clean.notes()[25], encoding="utf-8")
    assert _cli(clean, "--quiet", "--checkpoint", str(saved)) == 0
    assert "(1 kept outside the database)" in capsys.readouterr().out

    export = _export(clean, tmp_path / "audit.jsonl")
    code = main(
        [
            "audit", "verify", "--export", str(export), "--checkpoint", str(saved),
            "--key", clean.verifier_text, "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.startswith("OK: 25 entries")

    short = tmp_path / "short.jsonl"
    short.write_bytes(b"".join(export.read_bytes().splitlines(keepends=True)[:20]))
    code = main(
        [
            "audit", "verify", "--export", str(short), "--checkpoint", str(saved),
            "--key", clean.verifier_text, "--quiet",
        ]
    )  # fmt: skip
    assert code == 1
    assert "first bad entry: 20" in capsys.readouterr().err


def test_cli_usage_errors(clean: AuditLog, tmp_path: Path) -> None:
    assert _cli(clean, "--quiet", "--checkpoint", str(tmp_path / "missing.txt")) == 2
    assert (
        main(["audit", "verify", "--database-url", clean.url, "--key", "not-a-key", "--quiet"]) == 2
    )


def test_checkpoints_from_before_origins_were_urls_keep_verifying(
    audit_log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log whose first checkpoints were signed under the old key name ``zhengfa-audit`` and
    old origin ``zhengfa-gateway/audit``, then (same key file) under the origin as key name:
    ``gateway audit verify`` with today's key text (GET /v1/audit/key) passes all of them."""
    legacy = CheckpointSigner.generate(LEGACY_CHECKPOINT_KEY_NAME)
    audit_log.fill(5)
    assert Checkpointer(audit_log.engine, legacy, LEGACY_AUDIT_ORIGIN, 3600).checkpoint_now() == 5
    today = legacy.renamed(DEFAULT_AUDIT_ORIGIN)
    audit_log.fill(3, start=5)
    assert Checkpointer(audit_log.engine, today, DEFAULT_AUDIT_ORIGIN, 3600).checkpoint_now() == 8
    notes = audit_log.notes()
    assert notes[5].startswith(f"{LEGACY_AUDIT_ORIGIN}\n5\n")
    assert f"\n— {LEGACY_CHECKPOINT_KEY_NAME} " in notes[5]
    assert notes[8].startswith(f"{DEFAULT_AUDIT_ORIGIN}\n8\n")
    assert f"\n— {DEFAULT_AUDIT_ORIGIN} " in notes[8]

    argv = ["audit", "verify", "--database-url", audit_log.url, "--quiet"]
    assert main([*argv, "--key", today.verifier_text()]) == 0
    assert "OK: 8 entries" in capsys.readouterr().out
    # The old names are accepted for this key only: another key under them is refused.
    stranger = CheckpointSigner.generate(DEFAULT_AUDIT_ORIGIN)
    assert main([*argv, "--key", stranger.verifier_text()]) == 1
    assert "FAILED" in capsys.readouterr().err
