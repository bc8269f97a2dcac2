"""Loading and validating policy directories: precise errors, never a half-loaded set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy import PolicyError, PolicyProblem, load_policy_set
from gateway.policy.model import CaseBinding
from gateway.standard import Standard
from tests.policy.conftest import POLICIES, PolicyWriter, copy_policies, item, load, perm


def _problems(excinfo: pytest.ExceptionInfo[PolicyError]) -> list[PolicyProblem]:
    return list(excinfo.value.problems)


def _only(excinfo: pytest.ExceptionInfo[PolicyError], code: str) -> PolicyProblem:
    found = [p for p in _problems(excinfo) if p.code == code]
    assert found, f"no {code!r} problem in {excinfo.value}"
    return found[0]


def test_shipped_policies_load_without_warnings(standard: Standard) -> None:
    policy_set = load_policy_set(POLICIES)  # standard loaded from policies/standard
    assert policy_set.version.startswith("sha256:")
    assert len(policy_set.permissions) >= 30
    assert policy_set.warnings == ()
    assert policy_set.standard.version == standard.version
    assert all(f.startswith(("permissions/", "negative_list/")) for f in policy_set.files)


def test_version_covers_policy_files_and_standard(tmp_path: Path) -> None:
    root = copy_policies(tmp_path / "p")
    first = load_policy_set(root).version
    assert load_policy_set(root).version == first
    rules = root / "permissions" / "committee.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + "# comment\n", encoding="utf-8")
    second = load_policy_set(root).version
    assert second != first
    purposes = root / "standard" / "purposes.yaml"
    purposes.write_text(purposes.read_text(encoding="utf-8") + "# c\n", encoding="utf-8")
    assert load_policy_set(root).version != second


def test_tests_and_schema_folders_are_not_part_of_the_version(tmp_path: Path) -> None:
    root = copy_policies(tmp_path / "p")
    first = load_policy_set(root).version
    (root / "tests" / "extra.yaml").write_text("suite: x\n", encoding="utf-8")
    assert load_policy_set(root).version == first


def test_broken_yaml_reports_file_line_column(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        """\
        permissions:
          - id: a
            grantee: {kind: court
            resource: person
        """
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problem = _only(excinfo, "yaml")
    assert problem.file is not None
    assert problem.file.endswith("permissions/rules.yaml")
    assert problem.line is not None
    assert problem.line >= 3
    assert problem.column is not None
    assert "rules.yaml:" in str(excinfo.value)


def test_duplicate_yaml_key_is_an_error(standard: Standard, write_policies: PolicyWriter) -> None:
    root = write_policies(
        """\
        permissions:
          - id: a
            id: b
        """
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problem = _only(excinfo, "yaml")
    assert (problem.line, problem.column) == (3, 5)
    assert "duplicate key" in problem.message


def test_wrong_types_are_located_and_name_the_rule(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        """\
        permissions:
          - id: good.one
            grantee: {kind: court}
            resource: person
            fields: "*"
            purposes: [TRIAL]
            legal_basis: 依据
          - id: bad.one
            grantee: {kind: court}
            resource: person
            fields: all
            purposes: TRIAL
            case_binding: "yes"
            legal_basis: 依据
            colour: red
        """
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problems = _problems(excinfo)
    assert {p.rule_id for p in problems} == {"bad.one"}
    assert {p.code for p in problems} == {"schema"}
    by_line = {p.line: p for p in problems}
    assert set(by_line) == {11, 12, 13, 15}
    assert by_line[11].column == 13
    assert "fields" in by_line[11].message
    assert "purposes" in by_line[12].message
    assert "colour" in by_line[15].message


def test_missing_required_keys_and_grantee_shape(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        [
            {
                "id": "no.basis",
                "grantee": {"kind": "court"},
                "resource": "person",
                "fields": "*",
                "purposes": ["TRIAL"],
            },
            perm("both.grantees", grantee={"kind": "court", "agency": "FY640104"}),
        ]
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    messages = {p.rule_id: p.message for p in _problems(excinfo)}
    assert "legal_basis" in messages["no.basis"]
    assert "exactly one" in messages["both.grantees"]


@pytest.mark.parametrize(
    ("rule", "code", "needle"),
    [
        (perm("r", resource="persons"), "unknown-resource", "persons"),
        (perm("r", fields=["name", "nickname"]), "unknown-field", "nickname"),
        (perm("r", purposes=["TRIAL", "GOSSIP"]), "unknown-purpose", "GOSSIP"),
        (perm("r", grantee={"agency": "FY999999"}), "unknown-agency", "FY999999"),
        (perm("r", grantee={"kind": "army"}), "unknown-agency-kind", "army"),
        (
            perm("r", resource="technical_investigation", fields=["ti_id", "material_summary"]),
            "not-shared-field",
            "不予共享",
        ),
        (perm("r", condition="record.name =="), "cel-compile", "does not compile"),
        (perm("r", condition='record.nickname == "x"'), "cel-check", "nickname"),
        (perm("r", condition='request.colour == "x"'), "cel-check", "colour"),
        (perm("r", condition="frobnicate(request.purpose)"), "cel-check", "frobnicate"),
        (perm("r", condition="secret == 1"), "cel-check", "unknown variable"),
    ],
)
def test_unknown_names_and_bad_cel_in_permissions(
    standard: Standard,
    write_policies: PolicyWriter,
    rule: dict[str, object],
    code: str,
    needle: str,
) -> None:
    root = write_policies([rule])
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problem = _only(excinfo, code)
    assert needle in problem.message
    assert problem.rule_id == "r"
    assert problem.file is not None
    assert problem.line is not None
    assert problem.column is not None


@pytest.mark.parametrize(
    ("rule", "code", "needle"),
    [
        (item("n", resource="nothing"), "unknown-resource", "nothing"),
        (item("n", resource=["person", "nothing"]), "unknown-resource", "nothing"),
        (
            item("n", action="withhold_fields", fields=["name", "nickname"]),
            "unknown-field",
            "nickname",
        ),
        (
            item("n", resource="*", action="withhold_fields", fields=["name"]),
            "unknown-field",
            "every covered resource",
        ),
        (item("n", action="deny_request", condition="record.is_minor"), "cel-check", "record"),
        (item("n", condition="record.is_minor &&"), "cel-compile", "compile"),
        (
            item(
                "n",
                exceptions=[
                    {"id": "n.e", "condition": "record.shoe_size > 40", "legal_basis": "x"}
                ],
            ),
            "cel-check",
            "shoe_size",
        ),
        (item("n", action="mask_fields", fields=["name"]), "schema", "mask"),
        (item("n", action="withhold_fields", fields=["name"], conceal=True), "schema", "conceal"),
        (
            item("n", action="mask_fields", fields=["name"], mask={"kind": "keep"}),
            "schema",
            "first",
        ),
        (item("n", fields=["name"]), "schema", "fields"),
    ],
)
def test_negative_list_validation(
    standard: Standard,
    write_policies: PolicyWriter,
    rule: dict[str, object],
    code: str,
    needle: str,
) -> None:
    root = write_policies([], [rule])
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problem = _only(excinfo, code)
    assert needle in problem.message
    assert problem.rule_id in {"n", "n.e"}
    assert problem.line is not None


def test_cel_error_points_at_the_condition(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        """\
        permissions:
          - id: r
            grantee: {kind: court}
            resource: person
            fields: "*"
            purposes: [TRIAL]
            condition: record.name == ==
            legal_basis: 依据
        """
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    problem = _only(excinfo, "cel-compile")
    assert (problem.line, problem.column) == (7, 16)
    assert str(problem).startswith(f"{problem.file}:7:16: error [r]:")


def test_duplicate_ids_across_files_and_exceptions(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        files={
            "permissions/a.yaml": {"permissions": [perm("same.id")]},
            "permissions/b.yaml": {"permissions": [perm("other"), perm("same.id")]},
            "negative_list/c.yaml": {
                "negative_list": [
                    item(
                        "other",
                        condition="record.is_minor == true",
                        exceptions=[{"id": "same.id", "condition": "true", "legal_basis": "x"}],
                    )
                ]
            },
        }
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    dups = [p for p in _problems(excinfo) if p.code == "duplicate-id"]
    assert {p.rule_id for p in dups} == {"same.id", "other"}
    assert len(dups) == 3
    first = next(p for p in dups if p.file and p.file.endswith("b.yaml") and p.rule_id == "same.id")
    assert "a.yaml:" in first.message
    assert first.line is not None


def test_every_problem_is_reported_and_nothing_half_loads(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(
        [perm("ok.rule"), perm("bad.a", resource="nope"), perm("bad.b", purposes=["NOPE"])],
        [item("bad.c", condition="record.zzz == 1")],
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    assert {p.rule_id for p in _problems(excinfo)} == {"bad.a", "bad.b", "bad.c"}


def test_layout_problems(standard: Standard, write_policies: PolicyWriter, tmp_path: Path) -> None:
    root = write_policies([perm("a")], [])
    (root / "permissions" / "more.yml").write_text("permissions: []\n", encoding="utf-8")
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    assert _only(excinfo, "layout").message == "use the .yaml extension"
    shutil.rmtree(root / "negative_list")
    (root / "permissions" / "more.yml").unlink()
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    assert "missing" in _only(excinfo, "layout").message


def test_wrong_top_level_key(standard: Standard, write_policies: PolicyWriter) -> None:
    root = write_policies(files={"negative_list/x.yaml": {"permissions": [perm("a")]}})
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    assert {p.code for p in _problems(excinfo)} == {"schema"}


def test_broken_standard_is_reported_as_policy_error(tmp_path: Path) -> None:
    root = copy_policies(tmp_path / "p")
    (root / "standard" / "purposes.yaml").write_text("purposes: 3\n", encoding="utf-8")
    with pytest.raises(PolicyError) as excinfo:
        load_policy_set(root)
    assert excinfo.value.problems[0].code == "standard"


def test_case_binding_default_follows_needs_case(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    ps = load(
        write_policies(
            [
                perm("trial"),
                perm(
                    "oversight",
                    grantee={"agency": "ZF640000"},
                    resource="case",
                    fields=["case_id"],
                    purposes=["OVERSIGHT"],
                ),
                perm(
                    "prior",
                    resource="judgment",
                    purposes=["PRIOR_RECORD_CHECK"],
                    case_binding="request",
                    reach={"kind": "bound_case_persons", "reason": "前科审查"},
                ),
            ]
        ),
        standard,
    )
    assert ps.permission("trial").binding(True) is CaseBinding.RECORD
    assert ps.permission("oversight").binding(False) is CaseBinding.NONE
    assert ps.permission("prior").binding(True) is CaseBinding.REQUEST


def test_request_binding_needs_a_reach_and_a_reach_needs_persons(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    # A permission reaching beyond the bound case must say how far, and why.
    with pytest.raises(PolicyError) as without:
        load(
            write_policies(
                [perm("prior", resource="judgment", purposes=["PRIOR_RECORD_CHECK"],
                      case_binding="request")]
            ),
            standard,
        )  # fmt: skip
    assert "needs 'reach'" in str(without.value)
    with pytest.raises(PolicyError) as stray:
        load(
            write_policies([perm("trial", reach={"kind": "bound_case_persons", "reason": "x"})]),
            standard,
        )
    assert "only for case_binding 'request'" in str(stray.value)
    with pytest.raises(PolicyError) as no_person:
        load(
            write_policies(
                [perm("c", resource="case", purposes=["PRIOR_RECORD_CHECK"],
                      case_binding="request",
                      reach={"kind": "bound_case_persons", "reason": "x"})]
            ),
            standard,
        )  # fmt: skip
    assert no_person.value.problems[0].code == "reach-without-persons"


def test_rule_locations_are_recorded(shipped_engine: object) -> None:
    from gateway.policy import PolicyEngine

    assert isinstance(shipped_engine, PolicyEngine)
    loc = shipped_engine.policy_set.location("nl.juvenile.sealed-record.judicial-case-handling")
    assert loc is not None
    assert loc.file.endswith("negative_list/juveniles.yaml")
    assert loc.line is not None
    assert loc.line > 1
