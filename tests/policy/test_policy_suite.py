"""Policy test suites: the shipped suite passes; failures are clear; bad files are reported."""

from __future__ import annotations

from pathlib import Path

from gateway.policy import PolicyEngine, run_suite
from tests.policy.conftest import POLICIES


def test_shipped_suite_passes(shipped_engine: PolicyEngine) -> None:
    result = run_suite(shipped_engine, POLICIES / "tests")
    assert result.ok, result.format()
    assert result.passed >= 15
    assert result.format().splitlines()[-1] == f"{result.passed} passed, 0 failed"


def test_shipped_suite_covers_the_required_kinds(shipped_engine: PolicyEngine) -> None:
    text = (POLICIES / "tests" / "flows.yaml").read_text(encoding="utf-8")
    for needle in (
        "outcome: allow",
        "outcome: deny",
        "withheld_fields",
        "masked_fields",
        "outcome: not_found",
        "conceal: true",
        "case binding",
        "judicial-case-handling",
    ):
        assert needle in text, needle


def test_failures_name_file_line_and_what_differs(
    shipped_engine: PolicyEngine, tmp_path: Path
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        """\
suite: wrong expectations
time: "2025-06-01T10:00:00+08:00"
cases:
  - name: expects allow but gets default deny
    request: {requester_agency: JY640001, resource: arrest_review, purpose: SENTENCE_EXECUTION}
    expect: {outcome: allow}
  - name: wrong fields and values
    request:
      requester_agency: JC640104
      resource: person
      purpose: EXECUTION_SUPERVISION
      case: {case_id: C1, handling_agencies: [JC640104], stage: EXECUTION, secrecy_mark: NONE}
      fields: [person_id, id_number]
    records:
      - {person_id: P1, case_id: C1, id_number: "11010519491231002X", role: CONVICT,
         is_minor: false, juvenile_record_sealed: false, protected_witness: false,
         sexual_offence_victim: false}
    expect:
      outcome: allow
      permitted_fields: [person_id, name]
      records:
        - {released: true, values: {id_number: "11010519491231002X"}, masked_fields: []}
  - name: passes
    request: {requester_agency: ZF640000, resource: case, purpose: OVERSIGHT, fields: [stage]}
    expect: {outcome: allow, permitted_fields: [stage]}
""",
        encoding="utf-8",
    )
    result = run_suite(shipped_engine, suite)
    assert (result.passed, result.failed) == (1, 2)
    report = result.format()
    assert f"FAIL {suite}:4 wrong expectations: expects allow" in report
    assert "outcome: expected allow, got deny (reason: default deny" in report
    assert f"FAIL {suite}:7 " in report
    assert (
        "permitted_fields: expected ['name', 'person_id'], got ['id_number', 'person_id']" in report
    )
    assert (
        "record[0] values.id_number: expected '11010519491231002X', got '110105********002X'"
        in report
    )
    assert "record[0] masked_fields" in report
    assert report.splitlines()[-1] == "1 passed, 2 failed"


def test_malformed_suite_files_are_failures(shipped_engine: PolicyEngine, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "suite: x\ncases:\n  - name: y\n    expect: {outcome: maybe}\n"
    )
    (tmp_path / "b.yaml").write_text("suite: [\n")
    result = run_suite(shipped_engine, tmp_path)
    assert result.failed == 2
    assert not result.ok
    report = result.format()
    assert "a.yaml:4:" in report
    assert "outcome" in report
    assert "b.yaml" in report


def test_bad_request_in_a_case(shipped_engine: PolicyEngine, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "suite: x\ncases:\n  - name: y\n    request: {requester_agency: XX000000, resource: case,"
        " purpose: TRIAL}\n    expect: {outcome: deny}\n"
    )
    result = run_suite(shipped_engine, tmp_path / "c.yaml")
    assert result.failed == 1
    assert "unknown agency" in result.format()
