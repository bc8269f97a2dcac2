"""Policy test suites: the shipped suite passes; failures are clear; bad files are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

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


_SEALED_DEFENDANT = (
    "{person_id: P1, case_id: C1, role: DEFENDANT, is_minor: true, juvenile_record_sealed: true,"
    " protected_witness: false, sexual_offence_victim: false}"
)
# 政法委's 挂牌督办 is no 第286条 exception: a sealed defendant's judgment is not there for it.
_SUPERVISED_JUDGMENT = (
    "    request: {requester_agency: ZF640000, resource: judgment, purpose: OVERSIGHT,\n"
    "              approval_reference: 宁政法督〔2025〕1号,\n"
    "              case: {case_id: C1, handling_agencies: [FY640104], secrecy_mark: NONE,\n"
    "                     stage: TRIAL},\n"
    "              fields: [judgment_id, defendant_id]}\n"
    "    records: [{judgment_id: J1, case_id: C1, defendant_id: P1, defendant_name: 甲}]\n"
)


def _judgment_case(name: str, expect_record: str, subjects: str | None = None) -> str:
    text = f"  - name: {name}\n" + _SUPERVISED_JUDGMENT
    if subjects is not None:
        text += f"    subjects: {subjects}\n"
    return text + f"    expect:\n      outcome: allow\n      records: [{expect_record}]\n"


def test_a_case_takes_subject_records(shipped_engine: PolicyEngine, tmp_path: Path) -> None:
    # The record is concealed for its defendant (sealed), not for anything of its own; without
    # the subject it is concealed as unresolved, so the rule id tells the two apart.
    concealed = "{released: false, conceal: true, rule_ids: [nl.juvenile.sealed-record]}"
    ordinary = _SEALED_DEFENDANT.replace(
        "juvenile_record_sealed: true", "juvenile_record_sealed: false"
    )
    suite = tmp_path / "subjects.yaml"
    suite.write_text(
        "suite: subjects\ntime: '2025-06-01T10:00:00+08:00'\ncases:\n"
        + _judgment_case("sealed defendant", concealed, f"{{person: [{_SEALED_DEFENDANT}]}}")
        + _judgment_case(
            "ordinary defendant",
            "{released: true, values: {judgment_id: J1, defendant_id: P1}}",
            f"{{person: [{ordinary}]}}",
        )
        + _judgment_case("no subjects given", concealed),
        encoding="utf-8",
    )
    result = run_suite(shipped_engine, suite)
    report = result.format()
    assert (result.passed, result.failed) == (2, 1), report
    failure = next(line for line in report.splitlines() if line.startswith("FAIL"))
    assert failure.endswith("no subjects given")
    assert "rule_ids" in report


@pytest.mark.parametrize(
    ("subjects", "problem"),
    [
        ("{spaceship: [{id: X}]}", "unknown resource type 'spaceship'"),
        (
            "{person: [{case_id: C1, name: 甲}]}",
            "subjects.person: every record needs its person_id",
        ),
        ("{case: [{case_id: 7}]}", "subjects.case: every record needs its case_id"),
    ],
    ids=["unknown-resource", "record-without-id", "id-not-a-string"],
)
def test_bad_subjects_in_a_case_are_failures(
    shipped_engine: PolicyEngine, tmp_path: Path, subjects: str, problem: str
) -> None:
    suite = tmp_path / "bad-subjects.yaml"
    suite.write_text(
        "suite: x\ncases:\n  - name: y\n" + _SUPERVISED_JUDGMENT + f"    subjects: {subjects}\n"
        "    expect: {outcome: allow}\n",
        encoding="utf-8",
    )
    result = run_suite(shipped_engine, suite)
    assert result.failed == 1
    [failure] = [line for line in result.format().splitlines() if line.startswith("  - ")]
    assert failure.endswith(problem)


def test_case_persons_need_a_case_in_the_request(
    shipped_engine: PolicyEngine, tmp_path: Path
) -> None:
    def run(case: str) -> str:
        suite = tmp_path / "case-persons.yaml"
        suite.write_text(
            "suite: x\ncases:\n  - name: y\n"
            "    request: {requester_agency: FY640104, resource: judgment,"
            f" purpose: PRIOR_RECORD_CHECK, filters: {{defendant_id: P1}}{case}}}\n"
            f"    subjects: {{case_persons: [{_SEALED_DEFENDANT}]}}\n"
            "    expect: {outcome: allow}\n",
            encoding="utf-8",
        )
        return run_suite(shipped_engine, suite).format()

    assert "subjects.case_persons needs a request with a case" in run("")
    with_case = run(
        ", case: {case_id: C1, handling_agencies: [FY640104], secrecy_mark: NONE, stage: TRIAL}"
    )
    assert with_case.splitlines()[-1] == "1 passed, 0 failed", with_case
