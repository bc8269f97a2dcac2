"""Record and filter validation against the shipped standard."""

from __future__ import annotations

import pytest

from gateway.standard import (
    FieldViolation,
    Standard,
    compile_record_validators,
    record_validator,
    validate_filter_value,
    validate_record,
)


def test_every_resource_type_has_a_valid_sample(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    assert set(valid_records) == {r.name for r in standard.resources}
    for name, record in valid_records.items():
        assert validate_record(standard, name, record) == [], name


def _violations(standard: Standard, resource: str, record: dict[str, object]) -> dict[str, str]:
    return {v.field: v.reason for v in validate_record(standard, resource, record)}


@pytest.mark.parametrize(
    ("resource", "field", "value", "reason"),
    [
        ("person", "sex", 1, "expected a string, got integer"),
        ("person", "sex", "3", "not a code of table 'sex'"),
        ("person", "ethnicity", "3", "not a code of table 'ethnicity'"),
        ("person", "ethnicity", "99", "not a code of table 'ethnicity'"),
        ("person", "id_number", "110105194912310021", "check character does not match"),
        ("person", "id_number", "11010519491231002x", "citizen ID must be"),
        ("person", "birth_date", "1949-02-30", "not a real calendar date"),
        ("person", "birth_date", "1949/12/31", "expected an ISO date"),
        ("person", "domicile_division", "640199", "not a division"),
        ("person", "phone", "12345", "does not match the field's pattern"),
        ("person", "is_minor", "false", "expected a boolean, got string"),
        ("person", "is_minor", 0, "expected a boolean, got integer"),
        ("person", "name", "", "empty string"),
        ("person", "name", "张" * 65, "longer than 64 characters"),
        ("person", "person_id", "人员1", "does not match the field's pattern"),
        ("case", "police_case_number", "A6401040000002021130042", "month must be 01-12"),
        ("case", "court_case_number", "(２０２１)宁0104刑初123号", "non-ASCII digits"),
        ("case", "court_case_number", "(2021)宁0104民初123号", "unknown case type code"),
        ("case", "court_case_number", "(2021)宁0104刑初123", "must end with 号"),
        ("case", "secrecy_mark", "SECRET", "not a code of table 'secrecy_mark'"),
        ("case", "court_case_number", "(2021)宁9904刑初1号", "names no known court"),
        ("case", "court_case_number", "(2021)兵0104刑初1号", "names no known court"),
        ("case", "secrecy_mark", "secret", "not a code of table 'secrecy_mark'"),
        ("judgment", "penalty_type", "DEATH_SUSPENDED", "not a code of table 'penalty_type'"),
        ("judgment", "verdict", "CONVICTED", "not a code of table 'verdict'"),
        (
            "community_correction",
            "supervising_office",
            "兴庆区凤凰北街司法所",
            "not an agency of kind 'justice'",
        ),
        (
            "community_correction",
            "supervising_office",
            "JY640001",
            "not an agency of kind 'justice'",
        ),
        ("case", "stage", "trial", "not a code of table 'case_stage'"),
        ("case", "handling_agencies", "GA640104", "expected an array, got string"),
        ("case", "handling_agencies", [], "required list is empty"),
        ("case", "handling_agencies", ["GA640104", "GA999999"], "item 1: unknown agency code"),
        ("case", "handling_agencies", ["GA640104", None], "item 1 is null"),
        ("judgment", "term_months", True, "expected an integer, got boolean"),
        ("judgment", "term_months", 18.0, "expected an integer, got number"),
        ("judgment", "term_months", -1, "less than the minimum 0"),
        ("judgment", "probation_months", 61, "greater than the maximum 60"),
        ("indictment", "court", "JC640104", "not an agency of kind 'court'"),
        ("sentence_execution", "prison", "FY640104", "not an agency of kind 'prison'"),
        ("indictment", "charges", ["盗窃罪", 1], "item 1: expected a string, got integer"),
        (
            "commutation_parole",
            "court_case_number",
            "(2022)宁01刑更045号",
            "expected a case number",
        ),
    ],
)
def test_invalid_values_are_reported(
    standard: Standard,
    valid_records: dict[str, dict[str, object]],
    resource: str,
    field: str,
    value: object,
    reason: str,
) -> None:
    record = valid_records[resource]
    record[field] = value
    violations = validate_record(standard, resource, record)
    assert [v.field for v in violations] == [field]
    assert reason in violations[0].reason


def test_reasons_do_not_echo_personal_values(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["person"]
    record["id_number"] = "110105194912310021"
    record["phone"] = "1380000000x"
    record["name"] = "王" * 65
    for violation in validate_record(standard, "person", record):
        assert "110105194912310021" not in violation.reason
        assert "1380000000x" not in violation.reason
        assert "王王" not in violation.reason


def test_missing_and_null_required_fields(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["person"]
    del record["name"]
    record["juvenile_record_sealed"] = None
    assert validate_record(standard, "person", record) == [
        FieldViolation("name", "required field is missing or null"),
        FieldViolation("juvenile_record_sealed", "required field is missing or null"),
    ]


def test_optional_fields_may_be_absent_or_null(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["judgment"]
    for field in ("penalty_type", "term_months", "probation_months", "effective_date"):
        record[field] = None
    del record["summary"]
    assert validate_record(standard, "judgment", record) == []


def test_unknown_fields_are_reported_after_known_fields(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["case"]
    record["XM"] = "张某"
    record["stage"] = "UNKNOWN"
    assert [(v.field, v.reason) for v in validate_record(standard, "case", record)] == [
        ("stage", "not a code of table 'case_stage'"),
        ("XM", "unknown field"),
    ]


def test_unknown_resource_type_raises_key_error(standard: Standard) -> None:
    with pytest.raises(KeyError):
        validate_record(standard, "vehicle", {})


def test_validators_are_compiled_once(standard: Standard) -> None:
    validators = compile_record_validators(standard)
    assert compile_record_validators(standard) is validators
    assert record_validator(standard, "person") is validators["person"]
    assert set(validators) == {r.name for r in standard.resources}


@pytest.mark.parametrize(
    ("resource", "field", "value"),
    [
        ("person", "id_number", "440524188001010014"),
        ("person", "case_id", "C-2021-0001"),
        ("case", "police_case_number", "A6401040000002021030042"),
        ("case", "court_case_number", "（2021）宁0104刑初123号"),
        ("judgment", "defendant_id", "P-0001"),
    ],
)
def test_valid_filter_values(standard: Standard, resource: str, field: str, value: object) -> None:
    assert validate_filter_value(standard, resource, field, value) is None


@pytest.mark.parametrize(
    ("resource", "field", "value", "reason"),
    [
        ("person", "id_number", "440524188001010015", "check character does not match"),
        ("person", "id_number", None, "filter value is null"),
        ("person", "id_number", 440524188001010014, "expected a string"),
        ("person", "name", "张某", "field is not filterable"),
        ("person", "shoe_size", "42", "unknown field"),
        ("case", "court_case_number", "(2021)宁0104刑初１２３号", "non-ASCII digits"),
        ("case", "case_id", "C-1", "field is not filterable"),
    ],
)
def test_invalid_filter_values(
    standard: Standard, resource: str, field: str, value: object, reason: str
) -> None:
    message = validate_filter_value(standard, resource, field, value)
    assert message is not None
    assert reason in message


def test_filter_on_unknown_resource_raises_key_error(standard: Standard) -> None:
    with pytest.raises(KeyError):
        validate_filter_value(standard, "vehicle", "plate", "宁A12345")


def test_ti_approver_may_be_a_city_bureau_outside_the_gateway(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["technical_investigation"]
    for approver in ("GA640100", "GA640300"):  # 银川市/吴忠市公安局: not gateway agencies
        assert approver not in {a.code for a in standard.agencies}
        record["approved_by"] = approver
        assert validate_record(standard, "technical_investigation", record) == []
    record["approved_by"] = "JC640104"
    assert [v.field for v in validate_record(standard, "technical_investigation", record)] == [
        "approved_by"
    ]


def test_pending_records_leave_decision_fields_null(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    review = valid_records["arrest_review"]
    review.update(decision=None, decision_date=None, reason=None)
    assert validate_record(standard, "arrest_review", review) == []
    application = valid_records["commutation_parole"]
    application.update(ruling="PENDING", ruling_date=None)
    assert validate_record(standard, "commutation_parole", application) == []


def test_commutation_parole_takes_the_xinggeng_case_number(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["commutation_parole"]
    record.update(kind="PAROLE", reduction_months=None, court_case_number="(2023)宁01刑更2999号")
    assert validate_record(standard, "commutation_parole", record) == []


@pytest.mark.parametrize(
    ("verdict", "penalty", "term", "probation"),
    [
        ("GUILTY", "DEATH_WITH_REPRIEVE", None, None),  # 死刑缓期二年执行
        ("GUILTY", "DEATH_IMMEDIATE", None, None),  # 死刑立即执行, a code of its own
        ("GUILTY", "LIFE", None, None),
        ("GUILTY", "CRIMINAL_DETENTION", 4, 6),  # 拘役 with probation
        ("GUILTY", "PUBLIC_SURVEILLANCE", 12, None),
        ("EXEMPT", "NONE", None, None),
        ("NOT_GUILTY", "NONE", None, None),
    ],
)
def test_judgment_outcomes(
    standard: Standard,
    valid_records: dict[str, dict[str, object]],
    verdict: str,
    penalty: str,
    term: int | None,
    probation: int | None,
) -> None:
    record = valid_records["judgment"]
    record.update(
        verdict=verdict, penalty_type=penalty, term_months=term, probation_months=probation
    )
    assert validate_record(standard, "judgment", record) == []


def test_a_judgments_case_number_is_its_courts(
    standard: Standard, valid_records: dict[str, dict[str, object]]
) -> None:
    record = valid_records["judgment"]
    record["court"] = "FY640105"  # the 案号 says 宁0104: 兴庆区 court, not 西夏区
    violations = validate_record(standard, "judgment", record)
    assert [(v.field, v.reason) for v in violations] == [
        ("court_case_number", "the court code does not agree with the issuing court court")
    ]
    record.update(court="FY640100", court_case_number="(2022)宁01刑终45号")  # 二审: 中院
    assert validate_record(standard, "judgment", record) == []


@pytest.mark.parametrize(
    "number",
    [
        "(2021)京0105刑初1号",  # another province's basic court (GB/T 2260 110105)
        "(2021)甘01刑初1号",  # another province's intermediate court (620100)
        "(2021)宁刑终1号",  # the high court
        "(2021)最高法刑核1号",
        "（2021）宁0104刑更1号",  # full-width parentheses
    ],
)
def test_case_numbers_of_courts_anywhere_are_valid(
    standard: Standard, valid_records: dict[str, dict[str, object]], number: str
) -> None:
    record = valid_records["case"]
    record["court_case_number"] = number
    assert validate_record(standard, "case", record) == []
