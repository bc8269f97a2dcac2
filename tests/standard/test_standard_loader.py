"""Loader: the shipped standard loads; broken files give errors naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.standard import StandardError, load_standard


def _line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not found in {path}")


def _load_error(directory: Path) -> StandardError:
    with pytest.raises(StandardError) as info:
        load_standard(directory)
    return info.value


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_standard_loads(standard_dir: Path) -> None:
    standard = load_standard(standard_dir)
    assert standard.info.id == "zhengfa-sharing-standard"
    assert standard.version.startswith("sha256:")
    assert len(standard.version) == len("sha256:") + 64
    assert standard.resource("case").id_field == "case_id"
    assert standard.purpose("ARREST_REVIEW").needs_case is True
    assert standard.agency("FY640104").kind == "court"
    assert standard.code_table("sex").label("1") == "男性"


def test_lookups_raise_key_error_for_unknown_names(standard_dir: Path) -> None:
    standard = load_standard(standard_dir)
    for lookup in (standard.resource, standard.purpose, standard.agency, standard.code_table):
        with pytest.raises(KeyError):
            lookup("no-such-thing")


def test_version_is_stable_and_content_sensitive(standard_copy: Path, standard_dir: Path) -> None:
    first = load_standard(standard_copy).version
    assert load_standard(standard_copy).version == first
    assert first == load_standard(standard_dir).version
    # Line endings are canonicalised: CRLF gives the same digest.
    purposes = standard_copy / "purposes.yaml"
    purposes.write_bytes(purposes.read_bytes().replace(b"\n", b"\r\n"))
    assert load_standard(standard_copy).version == first
    # Any content change changes the version, even a comment.
    with purposes.open("a", encoding="utf-8") as handle:
        handle.write("# 注释\n")
    assert load_standard(standard_copy).version != first


def test_broken_yaml_names_file_and_line(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "case.yaml"
    _replace(path, "  - name: filing_date\n", "  - name: [filing_date\n")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line is not None
    assert err.line >= _line_of(path, "name: [filing_date")
    assert "YAML syntax error" in err.message
    assert str(path) in str(err)


def test_unknown_code_table_names_file_and_line(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "person.yaml"
    _replace(path, "code_table: ethnicity", "code_table: nationality")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line == _line_of(path, "code_table: nationality")
    assert err.column == 17  # the value after "    code_table: "
    assert "unknown code table 'nationality'" in err.message


def test_duplicate_field_names_file_and_line(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "judgment.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text
        + "  - name: verdict\n"
        + "    type: string\n"
        + "    label: 重复\n"
        + "    description: 重复字段\n"
        + "    grade: 一般\n"
        + "    sharing: 无条件\n"
        + "    personal_info: false\n"
        + "    required: false\n",
        encoding="utf-8",
    )
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line == _line_of(path, "- name: verdict", occurrence=2)
    first = _line_of(path, "- name: verdict")
    assert f"duplicate field 'verdict' (first defined on line {first})" == err.message


def test_duplicate_yaml_key_is_an_error(standard_copy: Path) -> None:
    path = standard_copy / "code_tables" / "sex.yaml"
    _replace(path, '  "9": 未说明的性别\n', '  "9": 未说明的性别\n  "1": 男\n')
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line == _line_of(path, '"1": 男', occurrence=2)
    assert "duplicate key '1'" in err.message


def test_invalid_enum_value_is_located(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "case.yaml"
    _replace(path, "    grade: 一般\n", "    grade: 机密\n")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line == _line_of(path, "grade: 机密")
    assert err.message.startswith("fields[")
    assert ".grade (field " in err.message
    assert "Input should be '核心', '重要' or '一般'" in err.message


def test_not_shared_field_needs_basis(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "technical_investigation.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("    basis: ")
    end = text.index("\n", start) + 1
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line == _line_of(path, "- name: material_summary")
    assert "legal basis" in err.message


def test_unknown_owner_kind(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "arrest_review.yaml"
    _replace(path, "owner: procuratorate", "owner: police")
    err = _load_error(standard_copy)
    assert (err.file, err.line) == (str(path), _line_of(path, "owner: police"))
    assert "unknown owner agency kind 'police'" in err.message


def test_agency_prefix_must_match_kind(standard_copy: Path) -> None:
    path = standard_copy / "agencies.yaml"
    _replace(path, "{code: FY640104, kind: court", "{code: FY640104, kind: procuratorate")
    err = _load_error(standard_copy)
    assert (err.file, err.line) == (str(path), _line_of(path, "code: FY640104"))
    assert "must start with 'JC'" in err.message


def test_agency_division_must_be_in_division_table(standard_copy: Path) -> None:
    path = standard_copy / "agencies.yaml"
    _replace(path, 'division: "640302"}', 'division: "640399"}')
    err = _load_error(standard_copy)
    assert (err.file, err.line) == (str(path), _line_of(path, "640399"))
    assert "not in code table 'division'" in err.message


def test_code_must_match_code_pattern(standard_copy: Path) -> None:
    path = standard_copy / "code_tables" / "ethnicity.yaml"
    _replace(path, '  "03": 回族\n', '  "3": 回族\n')
    err = _load_error(standard_copy)
    assert (err.file, err.line) == (str(path), _line_of(path, '"3": 回族'))
    assert "does not match code_pattern" in err.message


def test_unquoted_numeric_keys_are_read_as_written(standard_copy: Path) -> None:
    path = standard_copy / "code_tables" / "ethnicity.yaml"
    text = path.read_text(encoding="utf-8").replace('  "01": 汉族', "  01: 汉族")
    path.write_text(text, encoding="utf-8")
    assert load_standard(standard_copy).code_table("ethnicity").label("01") == "汉族"


def test_aliases_are_rejected(standard_copy: Path) -> None:
    path = standard_copy / "code_tables" / "sex.yaml"
    _replace(path, "name: 人的性别代码", "name: &n 人的性别代码\ndescription: *n")
    err = _load_error(standard_copy)
    assert (err.file, err.line) == (str(path), _line_of(path, "description: *n"))
    assert "aliases are not allowed" in err.message


def test_file_stem_must_match_id(standard_copy: Path) -> None:
    (standard_copy / "code_tables" / "sex.yaml").rename(
        standard_copy / "code_tables" / "gender.yaml"
    )
    err = _load_error(standard_copy)
    assert err.file == str(standard_copy / "code_tables" / "gender.yaml")
    assert "must match the file name 'gender'" in err.message


def test_missing_and_unexpected_files(standard_copy: Path) -> None:
    (standard_copy / "purposes.yaml").unlink()
    (standard_copy / "extra.yaml").write_text("a: 1\n", encoding="utf-8")
    err = _load_error(standard_copy)
    messages = {(p.file, p.message) for p in err.problems}
    assert (str(standard_copy / "purposes.yaml"), "required file is missing") in messages
    assert (
        str(standard_copy / "extra.yaml"),
        "unexpected file in the standard directory",
    ) in messages


def test_every_resource_except_case_needs_case_id(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "indictment.yaml"
    _replace(path, "  - name: case_id\n", "  - name: case_ref\n")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert "needs 'case_id'" in err.message


def test_all_problems_are_reported(standard_copy: Path) -> None:
    person = standard_copy / "resources" / "person.yaml"
    _replace(person, "code_table: sex", "code_table: gender")
    judgment = standard_copy / "resources" / "judgment.yaml"
    _replace(judgment, "agency_kind: court", "agency_kind: tribunal")
    err = _load_error(standard_copy)
    located = {(p.file, p.line) for p in err.problems}
    assert (str(person), _line_of(person, "code_table: gender")) in located
    assert (str(judgment), _line_of(judgment, "agency_kind: tribunal")) in located


def test_missing_directory() -> None:
    err = _load_error(Path("/nonexistent/standard"))
    assert err.message == "standard directory not found"


# -- references to subjects (refers_to, mirrors) ----------------------------------------------


@pytest.mark.parametrize(
    ("resource", "old", "new", "needle", "message"),
    [
        (
            "judgment",
            "    refers_to: person\n",
            "    refers_to: defendant\n",
            "refers_to: defendant",
            "unknown resource type 'defendant'",
        ),
        (
            "judgment",
            "  - name: judgment_id\n    type: string\n",
            "  - name: judgment_id\n    type: string\n    refers_to: case\n",
            "refers_to: case",  # the first one in the file: the id field's
            "the id field cannot refer elsewhere",
        ),
        (
            "indictment",
            "    refers_to: case\n",
            "",
            "- name: case_id",
            "'case_id' must declare refers_to: case",
        ),
        (
            "judgment",
            "mirrors: {via: defendant_id, field: name}",
            "mirrors: {via: court, field: name}",
            "mirrors: {via: court",
            "'court' is not a single-valued refers_to field of 'judgment'",
        ),
        (
            "judgment",
            "mirrors: {via: defendant_id, field: name}",
            "mirrors: {via: defendant, field: name}",
            "mirrors: {via: defendant,",
            "'defendant' is not a single-valued refers_to field of 'judgment'",
        ),
        (
            "judgment",
            "mirrors: {via: defendant_id, field: name}",
            "mirrors: {via: defendant_id, field: nickname}",
            "field: nickname",
            "'person' has no field 'nickname'",
        ),
    ],
    ids=[
        "unknown-resource",
        "id-field",
        "case-id-without-refers-to",
        "via-not-a-reference",
        "via-missing",
        "mirrored-field-missing",
    ],
)
def test_reference_problems_name_file_and_line(
    standard_copy: Path, resource: str, old: str, new: str, needle: str, message: str
) -> None:
    path = standard_copy / "resources" / f"{resource}.yaml"
    _replace(path, old, new)
    err = _load_error(standard_copy)
    [problem] = err.problems
    assert (problem.file, problem.line) == (str(path), _line_of(path, needle))
    assert message in problem.message
    assert str(problem).startswith(f"{path}:{problem.line}:")


def test_mirrors_through_a_list_reference_is_refused(standard_copy: Path) -> None:
    # Which of the listed persons would the field repeat? Only a single-valued reference says.
    path = standard_copy / "resources" / "indictment.yaml"
    _replace(
        path,
        "  - name: charges\n",
        "  - name: defendant_names\n    type: string\n    list: true\n"
        "    mirrors: {via: defendant_ids, field: name}\n"
        "    label: 被告人姓名\n    description: 姓名\n"
        "    grade: 重要\n    sharing: 有条件\n    conditions: [case-handling]\n"
        "    personal_info: true\n    required: false\n"
        "  - name: charges\n",
    )
    err = _load_error(standard_copy)
    [problem] = err.problems
    assert (problem.file, problem.line) == (str(path), _line_of(path, "via: defendant_ids"))
    assert "'defendant_ids' is not a single-valued refers_to field" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  - name: judgment_date\n    type: date\n",
            "  - name: judgment_date\n    type: date\n    refers_to: case\n",
            "refers_to is only allowed on string fields",
        ),
        (
            "    refers_to: person\n",
            "    refers_to: person\n    mirrors: {via: case_id, field: case_id}\n",
            "either refers to a subject or mirrors one of its fields",
        ),
    ],
    ids=["not-a-string", "refers-and-mirrors"],
)
def test_reference_field_shapes_are_checked(
    standard_copy: Path, old: str, new: str, message: str
) -> None:
    path = standard_copy / "resources" / "judgment.yaml"
    _replace(path, old, new)
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert err.line is not None
    assert message in err.message


def test_references_of_the_shipped_standard(standard_dir: Path) -> None:
    standard = load_standard(standard_dir)
    judgment = standard.resource("judgment")
    assert {(f.name, f.refers_to) for f in judgment.references} == {
        ("case_id", "case"),
        ("defendant_id", "person"),
    }
    mirror = judgment.field("defendant_name").mirrors
    assert mirror is not None
    assert (mirror.via, mirror.field) == ("defendant_id", "name")
    indictment = standard.resource("indictment")
    assert [f.name for f in indictment.references if f.is_list] == ["defendant_ids"]
    # Every resource but the case itself refers to its case.
    for resource in standard.resources:
        refs = {f.name: f.refers_to for f in resource.references}
        assert refs.get("case_id") == (None if resource.name == "case" else "case")


def test_a_purpose_without_stages_is_an_error(standard_copy: Path) -> None:
    path = standard_copy / "purposes.yaml"
    _replace(path, "    stages: [EXECUTION, CLOSED]\n", "")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert "stages" in err.message
    assert "Field required" in err.message


def test_a_purpose_stage_must_be_a_case_stage(standard_copy: Path) -> None:
    path = standard_copy / "purposes.yaml"
    _replace(path, "    stages: [TRIAL]\n", "    stages: [SENTENCING]\n")
    err = _load_error(standard_copy)
    assert err.line == _line_of(path, "stages: [SENTENCING]")
    assert "stage 'SENTENCING' is not in code table 'case_stage'" in err.message


def test_a_conditional_field_names_known_conditions(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "person.yaml"
    _replace(path, "conditions: [case-handling, execution]", "conditions: [case-handling, whim]")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert "unknown sharing condition 'whim'" in err.message


def test_a_conditional_field_without_conditions_is_an_error(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "person.yaml"
    _replace(path, "    conditions: [case-handling, execution]\n", "")
    err = _load_error(standard_copy)
    assert "a 有条件 field names the sharing conditions" in err.message


def test_a_condition_names_known_purposes(standard_copy: Path) -> None:
    path = standard_copy / "conditions.yaml"
    _replace(path, "purposes: [PRIOR_RECORD_CHECK]", "purposes: [PRIOR_RECORD_CHECK, GOSSIP]")
    err = _load_error(standard_copy)
    assert err.file == str(path)
    assert "purpose 'GOSSIP' is not a purpose of the standard" in err.message


def test_a_court_code_must_read_as_the_courts_division(standard_copy: Path) -> None:
    path = standard_copy / "agencies.yaml"
    _replace(path, "court_code: 宁0105}", "court_code: 宁0104}")
    err = _load_error(standard_copy)
    assert err.line == _line_of(path, "FY640105")
    assert "court code '宁0104' does not read as the court's division '640105'" in err.message


def test_a_stationed_procuratorate_is_a_procuratorate(standard_copy: Path) -> None:
    path = standard_copy / "agencies.yaml"
    _replace(path, "stationed_procuratorate: JC640200", "stationed_procuratorate: FY640104")
    err = _load_error(standard_copy)
    assert "stationed_procuratorate is for prisons, and names a procuratorate" in err.message


def test_issued_by_names_a_court_field(standard_copy: Path) -> None:
    path = standard_copy / "resources" / "judgment.yaml"
    _replace(path, "    issued_by: court\n", "    issued_by: defendant_id\n")
    err = _load_error(standard_copy)
    assert "'defendant_id' is not a single court agency_code field of 'judgment'" in err.message


def test_conditions_file_is_required(standard_copy: Path) -> None:
    (standard_copy / "conditions.yaml").unlink()
    err = _load_error(standard_copy)
    assert "required file is missing" in err.message


def test_the_same_files_give_the_same_loaded_standard(standard_copy: Path) -> None:
    """A load is remembered by directory and content; any change loads afresh, and a load
    with problems is never remembered."""
    first = load_standard(standard_copy)
    assert load_standard(standard_copy) is first
    info = standard_copy / "standard.yaml"
    original = info.read_text(encoding="utf-8")
    info.write_text(original + "\n# a comment changes the digest\n", encoding="utf-8")
    changed = load_standard(standard_copy)
    assert changed is not first
    assert changed.version != first.version
    info.write_text(original + "\nbroken: [\n", encoding="utf-8")
    _load_error(standard_copy)
    _load_error(standard_copy)  # refused again, not answered from memory
    info.write_text(original, encoding="utf-8")
    assert load_standard(standard_copy) is first
