"""``gateway policy validate|test|diff|explain``: output and exit codes (0 ok, 1 fail, 2 usage)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gateway.policy.cli import main, register_policy_commands
from tests.policy.conftest import POLICIES, copy_policies


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "validate", str(POLICIES), "--strict")
    assert code == 0
    assert "ok" in out
    assert "sha256:" in out
    code, out, _ = _run(capsys, "validate", str(POLICIES), "--json")
    assert code == 0
    assert json.loads(out)["warnings"] == 0


def test_validate_invalid_prints_file_line_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = copy_policies(tmp_path / "p")
    rules = root / "permissions" / "committee.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace("resource: case", "resource: casefile"),
        encoding="utf-8",
    )
    code, _, err = _run(capsys, "validate", str(root))
    assert code == 1
    line = next(x for x in err.splitlines() if "unknown resource" in x)
    assert line.startswith(f"{rules}:")
    assert "[zf.oversight.case-statistics]" in line
    file_part, lineno, column = line.split(": ")[0].rsplit(":", 2)
    assert file_part == str(rules)
    assert lineno.isdigit()
    assert column.isdigit()


def test_validate_strict_fails_on_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = copy_policies(tmp_path / "p")
    rules = root / "permissions" / "committee.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8") + "    valid_until: 2020-01-01\n", encoding="utf-8"
    )
    code, _, err = _run(capsys, "validate", str(root))
    assert code == 0
    assert "warning [zf.supervised-case.judgment]" in err  # the file's last rule
    code, _, err = _run(capsys, "validate", str(root), "--strict")
    assert code == 1
    assert "error [zf.supervised-case.judgment]" in err


def test_test_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "test", str(POLICIES))
    assert code == 0
    assert out.strip().splitlines()[-1].endswith("passed, 0 failed")
    root = copy_policies(tmp_path / "p")
    suite = root / "tests" / "flows.yaml"
    suite.write_text(
        suite.read_text(encoding="utf-8").replace("outcome: not_found", "outcome: deny"),
        encoding="utf-8",
    )
    code, out, _ = _run(capsys, "test", str(root))
    assert code == 1
    assert "FAIL" in out
    assert out.strip().endswith("1 failed")


def test_diff_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = copy_policies(tmp_path / "p")
    (root / "permissions" / "committee.yaml").unlink()
    code, out, _ = _run(capsys, "diff", str(POLICIES), str(root))
    assert code == 0
    assert "- zf.oversight.case-statistics" in out
    code, out, _ = _run(capsys, "diff", str(POLICIES), str(root), "--json")
    assert json.loads(out)["removed"] == [
        "zf.oversight.case-statistics",
        "zf.oversight.ti-approvals",
        "zf.supervised-case.arrest-review",
        "zf.supervised-case.case",
        "zf.supervised-case.coercive-measure",
        "zf.supervised-case.judgment",
        "zf.supervised-case.person",
    ]


def test_explain_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    req = tmp_path / "req.json"
    req.write_text(
        json.dumps(
            {
                "requester_agency": "ZF640000",
                "resource": "person",
                "purpose": "OVERSIGHT",
                "approval_reference": "宁政法督〔2025〕3号",
                "time": "2025-06-01T10:00:00+08:00",
                "case": {
                    "case_id": "C1",
                    "handling_agencies": ["GA640104"],
                    "stage": "TRIAL",
                    "secrecy_mark": "NONE",
                },
                "fields": ["person_id", "name"],
            }
        )
    )
    records = tmp_path / "records.json"
    flags = {
        "role": "DEFENDANT",
        "is_minor": True,
        "protected_witness": False,
        "sexual_offence_victim": False,
    }
    records.write_text(
        json.dumps(
            [
                {
                    "person_id": "P1",
                    "case_id": "C1",
                    "name": "甲",
                    "juvenile_record_sealed": True,
                    **flags,
                },
                {
                    "person_id": "P2",
                    "case_id": "C1",
                    "name": "乙",
                    "juvenile_record_sealed": False,
                    **flags,
                },
            ]
        )
    )
    code, out, _ = _run(
        capsys, "explain", "--request", str(req), "--records", str(records), "--dir", str(POLICIES)
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["decision"]["outcome"] == "allow"
    assert [r["released"] for r in doc["records"]] == [False, True]
    assert doc["records"][0]["conceal"] is True
    assert doc["records"][0]["rule_ids"] == ["nl.juvenile.sealed-record"]


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "/nonexistent/dir"],
        ["test", "/nonexistent/dir"],
        ["diff", str(POLICIES), "/nonexistent/dir"],
        ["explain", "--request", "/nonexistent.json"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, _ = _run(capsys, *argv)
    assert code == 2


def test_explain_bad_json_and_bad_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = _run(capsys, "explain", "--request", str(bad))
    assert code == 2
    assert f"{bad}:1:2" in err
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        json.dumps({"requester_agency": "XX000000", "resource": "case", "purpose": "TRIAL"})
    )
    code, _, err = _run(capsys, "explain", "--request", str(unknown), "--dir", str(POLICIES))
    assert code == 2
    assert "unknown agency" in err


def test_register_into_an_existing_parser() -> None:
    parser = argparse.ArgumentParser(prog="gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")
    register_policy_commands(sub)
    args = parser.parse_args(["policy", "validate", "somewhere", "--strict"])
    assert args.dir == "somewhere"
    assert args.strict
    assert callable(args.func)


def _write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# 政法委's 挂牌督办 is no 第286条 exception: a sealed defendant's judgment is not there for it.
_JUDGMENT_REQUEST = {
    "requester_agency": "ZF640000",
    "resource": "judgment",
    "purpose": "OVERSIGHT",
    "approval_reference": "宁政法督〔2025〕1号",
    "time": "2025-06-01T10:00:00+08:00",
    "case": {
        "case_id": "C1",
        "handling_agencies": ["FY640104"],
        "secrecy_mark": "NONE",
        "stage": "TRIAL",
    },
    "fields": ["judgment_id", "defendant_id"],
}


def _defendant(sealed: bool) -> dict[str, object]:
    return {
        "person_id": "P1",
        "case_id": "C1",
        "role": "DEFENDANT",
        "is_minor": True,
        "juvenile_record_sealed": sealed,
        "protected_witness": False,
        "sexual_offence_victim": False,
    }


def test_explain_takes_subjects(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    req = _write_json(tmp_path / "req.json", _JUDGMENT_REQUEST)
    records = _write_json(
        tmp_path / "records.json",
        [{"judgment_id": "J1", "case_id": "C1", "defendant_id": "P1", "defendant_name": "甲"}],
    )

    def explain(*extra: str) -> dict[str, object]:
        code, out, err = _run(
            capsys, "explain", "--request", str(req), "--records", str(records), *extra,
            "--dir", str(POLICIES),
        )  # fmt: skip
        assert code == 0, err
        [record] = json.loads(out)["records"]
        assert isinstance(record, dict)
        return record

    sealed = _write_json(tmp_path / "sealed.json", {"person": [_defendant(True)]})
    ordinary = _write_json(tmp_path / "ordinary.json", {"person": [_defendant(False)]})
    hidden = explain("--subjects", str(sealed))
    assert (hidden["released"], hidden["conceal"]) == (False, True)
    assert hidden["rule_ids"] == ["nl.juvenile.sealed-record"]
    shown = explain("--subjects", str(ordinary))
    assert shown["released"] is True
    # Without the defendant's record the judgment cannot be checked: concealed, no rule.
    unchecked = explain()
    assert (unchecked["released"], unchecked["conceal"]) == (False, True)
    assert unchecked["rule_ids"] == []


@pytest.mark.parametrize(
    ("subjects", "request_case", "problem"),
    [
        ({"spaceship": [{"id": "X"}]}, True, "subjects: unknown resource type 'spaceship'"),
        (
            {"person": [{"case_id": "C1"}]},
            True,
            "subjects.person: every record needs its person_id",
        ),
        ({"case_persons": [_defendant(False)]}, False, "case_persons needs a request with a case"),
        ({"person": {"person_id": "P1"}}, True, "subjects.person must be a list of records"),
        (["P1"], True, "subjects must be an object"),
    ],
    ids=[
        "unknown-resource",
        "record-without-id",
        "case-persons-without-case",
        "not-a-list",
        "list",
    ],
)
def test_explain_refuses_bad_subjects(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    subjects: object,
    request_case: bool,
    problem: str,
) -> None:
    request = dict(_JUDGMENT_REQUEST)
    if not request_case:
        request.pop("case")
    req = _write_json(tmp_path / "req.json", request)
    bad = _write_json(tmp_path / "subjects.json", subjects)
    code, out, err = _run(
        capsys, "explain", "--request", str(req), "--subjects", str(bad), "--dir", str(POLICIES)
    )
    assert code == 2
    assert out == ""
    assert err.startswith(f"gateway policy explain: {bad}: ")
    assert problem in err
    assert "Traceback" not in err


def test_explain_subjects_that_are_not_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    req = _write_json(tmp_path / "req.json", _JUDGMENT_REQUEST)
    bad = tmp_path / "subjects.json"
    bad.write_text('{"person": [\n  {"person_id": }]}', encoding="utf-8")
    code, _, err = _run(capsys, "explain", "--request", str(req), "--subjects", str(bad))
    assert code == 2
    assert f"{bad}:2:" in err
