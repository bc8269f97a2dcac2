"""The shipped standard matches docs/standard-outline.md and carries the real code values."""

from __future__ import annotations

import pytest

from gateway.standard import Grade, SharingClass, Standard

# Names fixed by docs/standard-outline.md: (owner, id field, fields in order, filterable).
OUTLINE: dict[str, tuple[str, str, list[str], set[str]]] = {
    "case": (
        "public_security",
        "case_id",
        [
            "case_id",
            "police_case_number",
            "case_name",
            "case_category",
            "filing_date",
            "division",
            "stage",
            "handling_agencies",
            "court_case_number",
            "secrecy_mark",
            "brief",
        ],
        {"police_case_number", "court_case_number"},
    ),
    "person": (
        "public_security",
        "person_id",
        [
            "person_id",
            "case_id",
            "name",
            "sex",
            "ethnicity",
            "id_number",
            "birth_date",
            "domicile_division",
            "address",
            "phone",
            "role",
            "is_minor",
            "juvenile_record_sealed",
            "protected_witness",
            "sexual_offence_victim",
        ],
        {"case_id", "id_number"},
    ),
    "coercive_measure": (
        "public_security",
        "measure_id",
        [
            "measure_id",
            "case_id",
            "person_id",
            "measure_type",
            "decided_by",
            "start_date",
            "end_date",
            "custody_place",
        ],
        {"case_id", "person_id"},
    ),
    "arrest_review": (
        "procuratorate",
        "review_id",
        [
            "review_id",
            "case_id",
            "person_id",
            "request_date",
            "decision",
            "decision_date",
            "procuratorate",
            "reason",
        ],
        {"case_id", "person_id"},
    ),
    "prosecution_transfer": (
        "public_security",
        "transfer_id",
        [
            "transfer_id",
            "case_id",
            "person_ids",
            "transfer_date",
            "receiving_procuratorate",
            "charges",
            "opinion",
        ],
        {"case_id"},
    ),
    "indictment": (
        "procuratorate",
        "indictment_id",
        [
            "indictment_id",
            "case_id",
            "document_number",
            "defendant_ids",
            "charges",
            "indictment_date",
            "court",
        ],
        {"case_id"},
    ),
    "judgment": (
        "court",
        "judgment_id",
        [
            "judgment_id",
            "case_id",
            "court_case_number",
            "court",
            "defendant_id",
            "defendant_name",
            "verdict",
            "penalty_type",
            "term_months",
            "probation_months",
            "judgment_date",
            "effective_date",
            "summary",
        ],
        {"case_id", "court_case_number", "defendant_id"},
    ),
    "sentence_execution": (
        "prison",
        "execution_id",
        [
            "execution_id",
            "case_id",
            "person_id",
            "court_case_number",
            "prison",
            "admission_date",
            "sentence_start",
            "sentence_end",
            "status",
        ],
        {"case_id", "person_id", "court_case_number"},
    ),
    "commutation_parole": (
        "prison",
        "application_id",
        [
            "application_id",
            "case_id",
            "person_id",
            "kind",
            "application_date",
            "reduction_months",
            "court_case_number",
            "ruling",
            "ruling_date",
        ],
        {"case_id", "person_id"},
    ),
    "community_correction": (
        "justice",
        "correction_id",
        [
            "correction_id",
            "case_id",
            "person_id",
            "correction_type",
            "start_date",
            "end_date",
            "supervising_office",
            "division",
            "status",
        ],
        {"case_id", "person_id"},
    ),
    "technical_investigation": (
        "public_security",
        "ti_id",
        [
            "ti_id",
            "case_id",
            "target_person_id",
            "measure_type",
            "approval_number",
            "approved_by",
            "start_date",
            "end_date",
            "material_summary",
        ],
        {"case_id"},
    ),
}

AGENCIES = {
    "GA640104": "银川市公安局兴庆区分局",
    "GA640105": "银川市公安局西夏区分局",
    "GA640302": "吴忠市公安局利通区分局",
    "JC640104": "银川市兴庆区人民检察院",
    "JC640105": "银川市西夏区人民检察院",
    "JC640302": "吴忠市利通区人民检察院",
    "JC640100": "银川市人民检察院",
    "FY640104": "银川市兴庆区人民法院",
    "FY640105": "银川市西夏区人民法院",
    "FY640302": "吴忠市利通区人民法院",
    "FY640100": "银川市中级人民法院",
    "JY640001": "宁夏回族自治区银川监狱",
    "JY640002": "宁夏回族自治区石嘴山监狱",
    "SF640104": "银川市兴庆区司法局",
    "SF640105": "银川市西夏区司法局",
    "SF640302": "吴忠市利通区司法局",
    "ZF640000": "宁夏回族自治区党委政法委",
}


@pytest.mark.parametrize("name", sorted(OUTLINE))
def test_resource_matches_outline(standard: Standard, name: str) -> None:
    owner, id_field, fields, filterable = OUTLINE[name]
    resource = standard.resource(name)
    assert resource.owner == owner
    assert resource.id_field == id_field
    assert list(resource.field_names) == fields
    assert set(resource.filterable_fields) == filterable


def test_no_resource_beyond_outline(standard: Standard) -> None:
    assert {r.name for r in standard.resources} == set(OUTLINE)


def test_agency_kinds_and_agencies_match_outline(standard: Standard) -> None:
    assert [k.code for k in standard.agency_kinds] == [
        "public_security",
        "procuratorate",
        "court",
        "prison",
        "justice",
        "committee",
    ]
    assert {a.code: a.name for a in standard.agencies} == AGENCIES


def test_purposes_match_outline(standard: Standard) -> None:
    needs_case = {p.code: p.needs_case for p in standard.purposes}
    assert needs_case == {
        "ARREST_REVIEW": True,
        "PROSECUTION_REVIEW": True,
        "TRIAL": True,
        "PRIOR_RECORD_CHECK": True,
        "SENTENCE_EXECUTION": True,
        "COMMUNITY_CORRECTION": True,
        "COMMUTATION_PAROLE": True,
        "EXECUTION_SUPERVISION": True,
        "INVESTIGATION": True,
        "OVERSIGHT": False,
        "STATISTICS": False,
    }


def test_sex_codes_gb_t_2261_1(standard: Standard) -> None:
    assert standard.code_table("sex").codes == {
        "0": "未知的性别",
        "1": "男性",
        "2": "女性",
        "9": "未说明的性别",
    }


def test_ethnicity_codes_gb_t_3304(standard: Standard) -> None:
    codes = standard.code_table("ethnicity").codes
    assert len(codes) == 58
    assert [f"{i:02d}" for i in range(1, 57)] + ["97", "98"] == list(codes)
    assert codes["01"] == "汉族"
    assert codes["03"] == "回族"
    assert codes["04"] == "藏族"
    assert codes["56"] == "基诺族"
    assert codes["98"] == "外国血统中国籍人士"
    assert len(set(codes.values())) == 58


def test_ningxia_divisions_gb_t_2260(standard: Standard) -> None:
    codes = standard.code_table("division").codes
    assert codes["640000"] == "宁夏回族自治区"
    assert {c for c in codes if c.endswith("00") and c != "640000"} == {
        "640100",
        "640200",
        "640300",
        "640400",
        "640500",
    }
    counties = {c for c in codes if not c.endswith("00")}
    assert len(counties) == 22
    assert {"640104", "640106", "640181", "640303", "640425", "640522"} <= counties
    for county in counties:
        assert county[:4] + "00" in codes


@pytest.mark.parametrize(
    ("table", "codes"),
    [
        (
            "case_stage",
            {
                "INVESTIGATION",
                "ARREST_REVIEW",
                "PROSECUTION_REVIEW",
                "TRIAL",
                "EXECUTION",
                "CLOSED",
            },
        ),
        ("arrest_decision", {"APPROVED", "DISAPPROVED"}),
        ("secrecy_mark", {"NONE", "SECRET", "CONFIDENTIAL", "TOP_SECRET"}),
        (
            "community_correction_type",
            {"PUBLIC_SURVEILLANCE", "PROBATION", "PAROLE", "TEMPORARY_OUTSIDE_EXECUTION"},
        ),
        ("community_correction_status", {"ACTIVE", "COMPLETED", "REVOKED"}),
        (
            "coercive_measure_type",
            {"SUMMONS", "BAIL", "RESIDENTIAL_SURVEILLANCE", "CRIMINAL_DETENTION", "ARREST"},
        ),
        ("commutation_parole_kind", {"COMMUTATION", "PAROLE"}),
        ("commutation_parole_ruling", {"PENDING", "APPROVED", "REJECTED"}),
        ("verdict", {"GUILTY", "NOT_GUILTY", "EXEMPT"}),
        (
            "penalty_type",
            {"PUBLIC_SURVEILLANCE", "CRIMINAL_DETENTION", "FIXED_TERM", "LIFE", "DEATH", "NONE"},
        ),
        ("execution_status", {"IN_CUSTODY", "RELEASED", "PAROLED"}),
        (
            "technical_investigation_measure",
            {
                "COMMUNICATIONS_INTERCEPT",
                "LOCATION_TRACKING",
                "ELECTRONIC_SURVEILLANCE",
                "CONTROLLED_DELIVERY",
            },
        ),
        (
            "case_category",
            {
                "020710",
                "040100",
                "040200",
                "040300",
                "040520",
                "050100",
                "050200",
                "050300",
                "060110",
                "060150",
                "060701",
            },
        ),
    ],
)
def test_project_code_tables(standard: Standard, table: str, codes: set[str]) -> None:
    assert set(standard.code_table(table).codes) == codes


def test_every_code_table_states_its_source(standard: Standard) -> None:
    for table in standard.code_tables:
        assert table.source.strip(), table.id
    category = standard.code_table("case_category")
    assert "代表性子集" in category.source
    assert "未逐一核对 GA 240.1" in category.source


def test_chinese_labels_of_renamed_codes(standard: Standard) -> None:
    assert standard.code_table("coercive_measure_type").label("CRIMINAL_DETENTION") == "刑事拘留"
    assert standard.code_table("penalty_type").label("CRIMINAL_DETENTION") == "拘役"
    assert standard.code_table("secrecy_mark").label("SECRET") == "秘密"
    assert standard.code_table("secrecy_mark").label("CONFIDENTIAL") == "机密"
    assert standard.code_table("secrecy_mark").label("TOP_SECRET") == "绝密"
    assert standard.code_table("case_category").label("050200") == "盗窃案"


def test_protection_choices(standard: Standard) -> None:
    person = standard.resource("person")
    id_number = person.field("id_number")
    assert (id_number.grade, id_number.sharing) == (Grade.IMPORTANT, SharingClass.CONDITIONAL)
    assert id_number.personal_info
    assert id_number.sensitive
    for flag in (
        "is_minor",
        "juvenile_record_sealed",
        "protected_witness",
        "sexual_offence_victim",
    ):
        spec = person.field(flag)
        assert spec.required, flag
        assert spec.sensitive, flag
    material = standard.resource("technical_investigation").field("material_summary")
    assert (material.grade, material.sharing) == (Grade.CORE, SharingClass.NOT_SHARED)
    assert material.basis is not None
    assert "第152条" in material.basis
    assert standard.resource("technical_investigation").grade is Grade.CORE
    secrecy = standard.resource("case").field("secrecy_mark")
    assert secrecy.required
    assert secrecy.code_table == "secrecy_mark"


def test_every_field_is_consistently_classified(standard: Standard) -> None:
    for resource in standard.resources:
        for spec in resource.fields:
            if spec.sensitive:
                assert spec.personal_info, (resource.name, spec.name)
            if spec.sharing is SharingClass.NOT_SHARED:
                assert spec.basis, (resource.name, spec.name)
            if resource.name != "case" and spec.name == "case_id":
                assert spec.required, resource.name
                assert spec.filterable, resource.name
