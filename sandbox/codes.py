"""Code tables and reference data used by the synthetic-data generator.

Every code here is a STANDARD code (the unified sharing standard's values), not a native one:
native systems translate them in ``sandbox.systems``. The agency codes and names are
exactly those of ``docs/standard-outline.md``.
"""

from __future__ import annotations

from typing import Final, NamedTuple

#: Reference date of every dataset: nothing happens after it, statuses are computed at it.
AS_OF_ISO: Final = "2024-12-31"

STAGES: Final = (
    "INVESTIGATION",
    "ARREST_REVIEW",
    "PROSECUTION_REVIEW",
    "TRIAL",
    "EXECUTION",
    "CLOSED",
)
PERSON_ROLES: Final = ("SUSPECT", "DEFENDANT", "VICTIM", "WITNESS", "INFORMANT")
MEASURE_TYPES: Final = {
    "SUMMONS": "拘传",
    "BAIL": "取保候审",
    "RESIDENTIAL_SURVEILLANCE": "监视居住（住处执行）",
    "DESIGNATED_RESIDENTIAL_SURVEILLANCE": "指定居所监视居住",
    "DETENTION": "刑事拘留",
    "ARREST": "逮捕",
}
ARREST_DECISIONS: Final = ("APPROVED", "DISAPPROVED")
VERDICTS: Final = ("GUILTY", "NOT_GUILTY", "EXEMPT")
PENALTY_TYPES: Final = {
    "PUBLIC_SURVEILLANCE": "管制",
    "CRIMINAL_DETENTION": "拘役",
    "FIXED_TERM": "有期徒刑",
    "LIFE": "无期徒刑",
    "DEATH_WITH_REPRIEVE": "死刑缓期二年执行",
    "DEATH_IMMEDIATE": "死刑立即执行",
    "NONE": "无",
}
EXECUTION_STATUSES: Final = ("IN_CUSTODY", "RELEASED", "PAROLED")
COMMUTATION_KINDS: Final = ("COMMUTATION", "PAROLE")
RULINGS: Final = ("PENDING", "APPROVED", "REJECTED")
CORRECTION_TYPES: Final = (
    "PUBLIC_SURVEILLANCE",
    "PROBATION",
    "PAROLE",
    "TEMPORARY_OUTSIDE_EXECUTION",
)
CORRECTION_STATUSES: Final = ("ACTIVE", "COMPLETED", "REVOKED")
SECRECY_MARKS: Final = {
    "NONE": "非密",
    "MIMI": "秘密",
    "JIMI": "机密",
    "JUEMI": "绝密",
}
TI_MEASURE_TYPES: Final = (
    "COMMUNICATIONS_INTERCEPT",
    "LOCATION_TRACKING",
    "RECORD_MONITORING",
    "PREMISES_MONITORING",
    "COVERT_INVESTIGATION",
    "CONTROLLED_DELIVERY",
)
PROSECUTION_OUTCOMES: Final = ("INDICTED", "RETURNED", "NOT_PROSECUTED")
SECOND_INSTANCE_BASES: Final = ("APPEAL", "PROTEST")

#: GB/T 2261.1 sex codes used by the generator (0 未知 and 9 未说明 are never generated).
SEX_MALE: Final = "1"
SEX_FEMALE: Final = "2"
#: GB/T 3304 ethnicity codes with Ningxia-like weights (汉 ~62 %, 回 ~36 %).
ETHNICITY_WEIGHTS: Final = {"01": 62, "03": 36, "02": 1, "11": 1}

#: GB/T 2260 county-level divisions of Ningxia (64) and their prefecture names.
PREFECTURES: Final = {
    "6401": "银川市",
    "6402": "石嘴山市",
    "6403": "吴忠市",
    "6404": "固原市",
    "6405": "中卫市",
}
DIVISIONS: Final = {
    "640104": "兴庆区",
    "640105": "西夏区",
    "640106": "金凤区",
    "640121": "永宁县",
    "640122": "贺兰县",
    "640181": "灵武市",
    "640202": "大武口区",
    "640205": "惠农区",
    "640221": "平罗县",
    "640302": "利通区",
    "640303": "红寺堡区",
    "640323": "盐池县",
    "640324": "同心县",
    "640381": "青铜峡市",
    "640402": "原州区",
    "640422": "西吉县",
    "640423": "隆德县",
    "640424": "泾源县",
    "640425": "彭阳县",
    "640502": "沙坡头区",
    "640521": "中宁县",
    "640522": "海原县",
}

#: Counties outside Ningxia where some persons' household registration (户籍) is: GB/T 2260
#: codes with their province, prefecture and county names. They live in Ningxia (现住址).
OUT_OF_PROVINCE: Final = {
    "620102": ("甘肃省", "兰州市", "城关区"),
    "610112": ("陕西省", "西安市", "未央区"),
    "150602": ("内蒙古自治区", "鄂尔多斯市", "东胜区"),
    "410102": ("河南省", "郑州市", "中原区"),
    "500103": ("重庆市", "", "渝中区"),
    "510104": ("四川省", "成都市", "锦江区"),
    "632801": ("青海省", "海西蒙古族藏族自治州", "格尔木市"),
    "650102": ("新疆维吾尔自治区", "乌鲁木齐市", "天山区"),
}
OUT_OF_PROVINCE_RATE: Final = 0.12
#: Health statuses recorded for some suspects (医疗健康信息, 个人信息保护法 第28条).
HEALTH_STATUSES: Final = ("患有高血压", "患有糖尿病", "患有严重心脏病，需保外就医")

#: Agencies of the outline (code = kind prefix + division).
AGENCIES: Final = {
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
#: Case divisions, i.e. the three districts that have a full chain of agencies.
CASE_DIVISIONS: Final = ("640104", "640105", "640302")
CASE_DIVISION_WEIGHTS: Final = (45, 30, 25)
PRISONS: Final = ("JY640001", "JY640002")
#: 派驻监所检察: the procuratorate stationed at each prison.
STATIONED_PROCURATORATES: Final = {"JY640001": "JC640100", "JY640002": "JC640200"}
#: Community-corrections offices (执行地社区矫正机构) that are agencies of the outline.
CORRECTION_OFFICES: Final = {"640104": "SF640104", "640105": "SF640105", "640302": "SF640302"}
INTERMEDIATE_COURT: Final = "FY640100"
CITY_PROCURATORATE: Final = "JC640100"
#: Court codes used in 案号 (province abbreviation + division digits).
COURT_CASE_CODES: Final = {
    "FY640104": "宁0104",
    "FY640105": "宁0105",
    "FY640302": "宁0302",
    "FY640100": "宁01",
}
#: Abbreviations used in procuratorate document numbers (宁银兴检刑诉〔2021〕123号).
PROCURATORATE_ABBREVIATIONS: Final = {
    "JC640104": "宁银兴检",
    "JC640105": "宁银西检",
    "JC640302": "宁吴利检",
    "JC640100": "宁银检",
}
#: Prefecture-level police bureaus that approve technical investigation (刑诉法 第150条 requires
#: approval at 设区的市级 or above). NOT agencies of the outline: they appear only as
#: ``technical_investigation.approved_by``.
TI_APPROVERS: Final = {"640104": "GA640100", "640105": "GA640100", "640302": "GA640300"}
TI_APPROVAL_PREFIX: Final = {"GA640100": "银公技审", "GA640300": "吴公技审"}
DETENTION_CENTRES: Final = {
    "640104": "银川市看守所",
    "640105": "银川市看守所",
    "640302": "吴忠市看守所",
}
#: Sub-unit suffixes of 12-digit police unit codes (division + 6 digits), 000000 = the bureau.
POLICE_SUBUNITS: Final = ("000000", "010000", "510000", "520000", "530000", "540000")


class Category(NamedTuple):
    """Profile of a case category: how the synthetic flow of such a case looks."""

    name: str
    charge: str
    weight: int  # relative frequency among ordinary (non-special) cases
    min_term: int  # months of 有期徒刑 when sentenced to a fixed term
    max_term: int
    serious_rate: float  # share tried first instance by the intermediate court
    victims: tuple[int, int]
    sexual: bool


#: A REPRESENTATIVE subset of 6-digit case-category codes in the GA 240.1-2000 layout
#: (2-digit class, 2-digit middle class, 2-digit minor class). Only these few are generated;
#: the codes follow the layout but were not checked one by one against the official table.
CASE_CATEGORIES: Final = {
    "050200": Category("盗窃案", "盗窃罪", 30, 6, 48, 0.0, (1, 2), False),
    "050300": Category("诈骗案", "诈骗罪", 18, 6, 120, 0.05, (1, 3), False),
    "040200": Category("故意伤害案", "故意伤害罪", 12, 6, 84, 0.08, (1, 1), False),
    "020710": Category("危险驾驶案", "危险驾驶罪", 14, 0, 0, 0.0, (0, 0), False),
    "060110": Category("寻衅滋事案", "寻衅滋事罪", 6, 6, 60, 0.0, (1, 2), False),
    "060701": Category("贩卖毒品案", "贩卖毒品罪", 7, 12, 180, 0.3, (0, 0), False),
    "050100": Category("抢劫案", "抢劫罪", 4, 36, 180, 0.15, (1, 1), False),
    "040300": Category("强奸案", "强奸罪", 2, 36, 144, 0.1, (1, 1), True),
    "040100": Category("故意杀人案", "故意杀人罪", 1, 120, 180, 1.0, (1, 1), False),
    "040520": Category("猥亵儿童案", "猥亵儿童罪", 0, 12, 120, 0.0, (1, 1), True),
    "060150": Category("非法获取国家秘密案", "非法获取国家秘密罪", 0, 12, 84, 0.0, (0, 0), False),
}
CATEGORY_DRUGS: Final = "060701"
CATEGORY_RAPE: Final = "040300"
CATEGORY_CHILD_MOLESTATION: Final = "040520"
CATEGORY_STATE_SECRETS: Final = "060150"
CATEGORY_DANGEROUS_DRIVING: Final = "020710"

#: Agency kind per 2-letter agency-code prefix.
AGENCY_KIND_BY_PREFIX: Final = {
    "GA": "public_security",
    "JC": "procuratorate",
    "FY": "court",
    "JY": "prison",
    "SF": "justice",
    "ZF": "committee",
}
