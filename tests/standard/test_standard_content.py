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
            "has_sealed_juvenile",
            "closed_trial",
            "work_secret",
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
            "domicile_address",
            "address",
            "residence_division",
            "phone",
            "health_status",
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
            "review_outcome",
            "outcome_date",
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
            "second_instance_basis",
            "executing_agency",
            "execution_notice_date",
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
        {"case_id", "person_id", "court_case_number"},
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
            "approval_date",
            "start_date",
            "end_date",
            "extension_count",
            "operative_identity",
            "technical_method",
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
    "JC640200": "石嘴山市人民检察院",
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
    courts = {a.code: a.court_code for a in standard.agencies if a.kind == "court"}
    assert courts == {
        "FY640104": "宁0104",
        "FY640105": "宁0105",
        "FY640302": "宁0302",
        "FY640100": "宁01",
    }
    stationed = {a.code: a.stationed_procuratorate for a in standard.agencies if a.kind == "prison"}
    assert stationed == {"JY640001": "JC640100", "JY640002": "JC640200"}


ALL_STAGES = {
    "INVESTIGATION",
    "ARREST_REVIEW",
    "PROSECUTION_REVIEW",
    "TRIAL",
    "EXECUTION",
    "CLOSED",
}


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
        "CUSTODY_MANAGEMENT": True,
        "EXECUTION_SUPERVISION": True,
        "INVESTIGATION": True,
        "CASE_FILING_SUPERVISION": True,
        "INVESTIGATION_SUPERVISION": True,
        "PROTEST": True,
        "TRIAL_SUPERVISION": True,
        "OVERSIGHT": False,
        "STATISTICS": False,
    }


def test_purposes_bind_to_case_stages(standard: Standard) -> None:
    stages = {p.code: set(p.stages) for p in standard.purposes}
    # 刑事诉讼法: arrest review before trial; execution after the judgment takes effect
    # (第259条, 第264条); 抗诉 against a judgment not yet effective (第228条, 第230条), 审判监督
    # against an effective one (第254条).
    assert "EXECUTION" not in stages["ARREST_REVIEW"]
    assert stages["SENTENCE_EXECUTION"] == {"EXECUTION"}
    assert stages["PROTEST"] == {"TRIAL"}
    assert stages["TRIAL_SUPERVISION"] == {"EXECUTION", "CLOSED"}
    assert stages["OVERSIGHT"] == stages["STATISTICS"] == ALL_STAGES
    for purpose in standard.purposes:
        assert set(purpose.stages) <= ALL_STAGES, purpose.code
        assert purpose.legal_basis.strip(), purpose.code
    stationed = {p.code for p in standard.purposes if p.stationed_supervision}
    assert stationed == {"EXECUTION_SUPERVISION", "COMMUTATION_PAROLE"}


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
    codes = {c: n for c, n in standard.code_table("division").codes.items() if c[:2] == "64"}
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


def test_the_whole_national_division_table(standard: Standard) -> None:
    table = standard.code_table("division")
    codes = table.codes
    # Every province-level division (31 provinces, autonomous regions and municipalities,
    # Taiwan, Hong Kong and Macau), and counties of other provinces a suspect may come from.
    provinces = {c for c in codes if c.endswith("0000")}
    assert len(provinces) == 34
    assert {"110000", "650000", "710000", "810000", "820000"} <= provinces
    assert codes["110105"] == "朝阳区"
    assert codes["620102"] == "城关区"
    assert codes["659011"] == "新星市"
    assert len(codes) > 3000
    for code in codes:
        assert code[:2] + "0000" in codes, code  # every division lies in a province
    assert "429000" not in codes  # a grouping of county-level cities, not a division
    assert "民政部" in table.source
    assert table.edition is not None
    assert "2021" in table.edition


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
        ("secrecy_mark", {"NONE", "MIMI", "JIMI", "JUEMI"}),
        (
            "community_correction_type",
            {"PUBLIC_SURVEILLANCE", "PROBATION", "PAROLE", "TEMPORARY_OUTSIDE_EXECUTION"},
        ),
        ("community_correction_status", {"ACTIVE", "COMPLETED", "REVOKED"}),
        (
            "coercive_measure_type",
            {
                "SUMMONS",
                "BAIL",
                "RESIDENTIAL_SURVEILLANCE",
                "DESIGNATED_RESIDENTIAL_SURVEILLANCE",
                "DETENTION",
                "ARREST",
            },
        ),
        ("commutation_parole_kind", {"COMMUTATION", "PAROLE"}),
        ("commutation_parole_ruling", {"PENDING", "APPROVED", "REJECTED"}),
        ("verdict", {"GUILTY", "NOT_GUILTY", "EXEMPT"}),
        (
            "penalty_type",
            {
                "PUBLIC_SURVEILLANCE",
                "CRIMINAL_DETENTION",
                "FIXED_TERM",
                "LIFE",
                "DEATH_WITH_REPRIEVE",
                "DEATH_IMMEDIATE",
                "NONE",
            },
        ),
        ("execution_status", {"IN_CUSTODY", "RELEASED", "PAROLED"}),
        (
            "technical_investigation_measure",
            {
                "COMMUNICATIONS_INTERCEPT",
                "LOCATION_TRACKING",
                "RECORD_MONITORING",
                "PREMISES_MONITORING",
                "COVERT_INVESTIGATION",
                "CONTROLLED_DELIVERY",
            },
        ),
        ("prosecution_review_outcome", {"INDICTED", "RETURNED", "NOT_PROSECUTED"}),
        ("second_instance_basis", {"APPEAL", "PROTEST"}),
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
    measures = standard.code_table("coercive_measure_type")
    penalties = standard.code_table("penalty_type")
    assert measures.label("DETENTION") == "刑事拘留"
    assert penalties.label("CRIMINAL_DETENTION") == "拘役"
    assert not set(measures.codes) & set(penalties.codes)  # no code means two things
    assert measures.label("DESIGNATED_RESIDENTIAL_SURVEILLANCE") == "指定居所监视居住"
    assert penalties.label("DEATH_WITH_REPRIEVE") == "死刑缓期二年执行"
    assert penalties.label("DEATH_IMMEDIATE") == "死刑立即执行"
    secrecy = standard.code_table("secrecy_mark")
    # Pinyin codes, so that no English word reverses the Chinese order of levels.
    assert secrecy.codes == {"NONE": "非密", "MIMI": "秘密", "JIMI": "机密", "JUEMI": "绝密"}
    ti = standard.code_table("technical_investigation_measure")
    assert ti.label("RECORD_MONITORING") == "记录监控"
    assert ti.label("PREMISES_MONITORING") == "场所监控"
    assert standard.code_table("case_category").label("050200") == "盗窃案"
    assert standard.resource("judgment").field("summary").label == "判决主文"
    office = standard.resource("community_correction").field("supervising_office")
    assert office.label == "执行地社区矫正机构"


def test_protection_choices(standard: Standard) -> None:
    person = standard.resource("person")
    id_number = person.field("id_number")
    # GB/T 43697: data about one person is generally not 重要数据; PIPL 第28条 still makes it
    # sensitive personal information.
    assert (id_number.grade, id_number.sharing) == (Grade.GENERAL, SharingClass.CONDITIONAL)
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


def test_grades_and_sensitivity_follow_gb_t_43697_and_pipl(standard: Standard) -> None:
    # Data about one person or one case is 一般 (GB/T 43697-2024); a criminal record is
    # sensitive personal information whatever its grade (个人信息保护法 第28条).
    for name in ("person", "judgment", "indictment", "arrest_review", "coercive_measure"):
        for spec in standard.resource(name).fields:
            assert spec.grade is Grade.GENERAL, (name, spec.name)
    for name, field in (
        ("judgment", "verdict"),
        ("indictment", "charges"),
        ("prosecution_transfer", "charges"),
        ("arrest_review", "decision"),
        ("coercive_measure", "measure_type"),
        ("person", "role"),
        ("person", "health_status"),
    ):
        spec = standard.resource(name).field(field)
        assert spec.personal_info, (name, field)
        assert spec.sensitive, (name, field)


def test_conditional_fields_name_their_conditions(standard: Standard) -> None:
    ids = {c.id for c in standard.conditions}
    for resource in standard.resources:
        for spec in resource.fields:
            if spec.sharing is SharingClass.CONDITIONAL:
                assert spec.conditions, (resource.name, spec.name)
                assert set(spec.conditions) <= ids, (resource.name, spec.name)
            else:
                assert not spec.conditions, (resource.name, spec.name)
    purposes = {p.code for p in standard.purposes}
    for condition in standard.conditions:
        assert set(condition.purposes) <= purposes, condition.id


def test_flow_parties_and_issuing_courts(standard: Standard) -> None:
    parties = {(r.name, f.name) for r in standard.resources for f in r.fields if f.party}
    assert {
        ("judgment", "court"),
        ("judgment", "executing_agency"),
        ("judgment", "court_case_number"),
        ("sentence_execution", "prison"),
        ("community_correction", "supervising_office"),
        ("commutation_parole", "court_case_number"),
        ("indictment", "court"),
    } <= parties
    assert standard.resource("judgment").field("court_case_number").issued_by == "court"
