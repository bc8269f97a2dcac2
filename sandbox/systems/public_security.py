"""Sample police (公安) system: pinyin-initial column names, ``yyyyMMdd`` dates, "1"/"0"
flags, "" for null, lists joined with ",", envelope ``{"code", "msg", "data"}``, API key in
``X-Api-Key``. See NATIVE.md for the full mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.applications import Starlette

from sandbox.generator import Dataset, Record
from sandbox.systems.auth import Credentials, api_key
from sandbox.systems.common import (
    DEFAULT_INDEX_LIMIT,
    NativeRecord,
    NativeResource,
    Renderer,
    SystemSpec,
    break_id_number,
    build_app,
    flag,
    json_bytes,
    opt_text,
    set_field,
    strings,
    text,
)
from sandbox.systems.inbound import Header, InboundSpec

API_KEY_HEADER: Final = "X-Api-Key"
STAGE_CODES: Final = {
    "INVESTIGATION": "10",
    "ARREST_REVIEW": "20",
    "PROSECUTION_REVIEW": "30",
    "TRIAL": "40",
    "EXECUTION": "50",
    "CLOSED": "90",
}
#: 密级: 0 非密, 1 秘密, 2 机密, 3 绝密.
SECRECY_CODES: Final = {"NONE": "0", "MIMI": "1", "JIMI": "2", "JUEMI": "3"}
ROLE_CODES: Final = {
    "SUSPECT": "01",
    "DEFENDANT": "02",
    "VICTIM": "03",
    "WITNESS": "04",
    "INFORMANT": "05",
}
MEASURE_CODES: Final = {
    "ARREST": "301",
    "SUMMONS": "302",
    "DETENTION": "303",
    "BAIL": "304",
    "RESIDENTIAL_SURVEILLANCE": "305",
    "DESIGNATED_RESIDENTIAL_SURVEILLANCE": "307",
}
TI_CODES: Final = {
    "COMMUNICATIONS_INTERCEPT": "01",
    "LOCATION_TRACKING": "02",
    "RECORD_MONITORING": "03",
    "CONTROLLED_DELIVERY": "04",
    "PREMISES_MONITORING": "05",
    "COVERT_INVESTIGATION": "06",
}
#: 审查起诉结果: 1 提起公诉, 2 退回补充侦查, 3 不起诉 ("" while under review).
OUTCOME_CODES: Final = {"INDICTED": "1", "RETURNED": "2", "NOT_PROSECUTED": "3"}


def _day(value: str | None) -> str:
    """ISO date → ``yyyyMMdd``; None → ""."""
    return value.replace("-", "") if value else ""


def _flag(record: Record, key: str) -> str:
    return "1" if flag(record, key) else "0"


def case_to_native(r: Record) -> NativeRecord:
    """case → AJXX row."""
    return {
        "XXZJBH": text(r, "case_id"),
        "AJBH": text(r, "police_case_number"),
        "AJMC": text(r, "case_name"),
        "AJLBDM": text(r, "case_category"),
        "LASJ": _day(text(r, "filing_date")),
        "XZQHDM": text(r, "division"),
        "AJZT": STAGE_CODES[text(r, "stage")],
        "BLDWDM": ",".join(strings(r, "handling_agencies")),
        "FYAH": opt_text(r, "court_case_number") or "",
        "MJ": SECRECY_CODES[text(r, "secrecy_mark")],
        "JYAQ": text(r, "brief"),
        "FCBZ": _flag(r, "has_sealed_juvenile"),
        "BGKSL": _flag(r, "closed_trial"),
        "GZMM": _flag(r, "work_secret"),
    }


def person_to_native(r: Record) -> NativeRecord:
    """person → RYXX row."""
    return {
        "RYBH": text(r, "person_id"),
        "AJXXZJBH": text(r, "case_id"),
        "XM": text(r, "name"),
        "XBDM": text(r, "sex"),
        "MZDM": text(r, "ethnicity"),
        "GMSFHM": text(r, "id_number"),
        "CSRQ": _day(text(r, "birth_date")),
        "HJXZQHDM": text(r, "domicile_division"),
        "HJDZ": text(r, "domicile_address"),
        "XZZ": text(r, "address"),
        "XZZXZQHDM": text(r, "residence_division"),
        "LXDH": text(r, "phone"),
        "JKZK": opt_text(r, "health_status") or "",
        "RYLX": ROLE_CODES[text(r, "role")],
        "SFWCN": _flag(r, "is_minor"),
        "SFFC": _flag(r, "juvenile_record_sealed"),
        "SFBHZR": _flag(r, "protected_witness"),
        "SFXQBHR": _flag(r, "sexual_offence_victim"),
    }


def measure_to_native(r: Record) -> NativeRecord:
    """coercive_measure → QZCS row."""
    return {
        "CSBH": text(r, "measure_id"),
        "AJXXZJBH": text(r, "case_id"),
        "RYBH": text(r, "person_id"),
        "CSLXDM": MEASURE_CODES[text(r, "measure_type")],
        "JDJG": text(r, "decided_by"),
        "KSRQ": _day(text(r, "start_date")),
        "JSRQ": _day(opt_text(r, "end_date")),
        "JYCS": opt_text(r, "custody_place") or "",
    }


def transfer_to_native(r: Record) -> NativeRecord:
    """prosecution_transfer → YSQS row."""
    return {
        "YSBH": text(r, "transfer_id"),
        "AJXXZJBH": text(r, "case_id"),
        "RYBHJH": ",".join(strings(r, "person_ids")),
        "YSRQ": _day(text(r, "transfer_date")),
        "JSJCY": text(r, "receiving_procuratorate"),
        "SXZM": ",".join(strings(r, "charges")),
        "SCJG": OUTCOME_CODES.get(opt_text(r, "review_outcome") or "", ""),
        "JDRQ": _day(opt_text(r, "outcome_date")),
        "QSYJ": text(r, "opinion"),
    }


def ti_to_native(r: Record) -> NativeRecord:
    """technical_investigation → JZCS row."""
    return {
        "JZBH": text(r, "ti_id"),
        "AJXXZJBH": text(r, "case_id"),
        "MBRYBH": text(r, "target_person_id"),
        "CSLB": TI_CODES[text(r, "measure_type")],
        "PZWH": text(r, "approval_number"),
        "PZJG": text(r, "approved_by"),
        "PZRQ": _day(text(r, "approval_date")),
        "KSRQ": _day(text(r, "start_date")),
        "JSRQ": _day(text(r, "end_date")),
        "YCCS": str(r["extension_count"]),
        "SSRY": opt_text(r, "operative_identity") or "",
        "JSFF": opt_text(r, "technical_method") or "",
        "CLZY": text(r, "material_summary"),
    }


def _bad_id(record: NativeRecord) -> None:
    record["GMSFHM"] = break_id_number(str(record["GMSFHM"]))


RESOURCES: Final = (
    NativeResource(
        "case",
        "/api/v1/ajxx",
        {"AJBH": "police_case_number", "FYAH": "court_case_number"},
        case_to_native,
        set_field("AJLBDM", "999999"),
    ),
    NativeResource(
        "person",
        "/api/v1/ryxx",
        {"AJXXZJBH": "case_id", "GMSFHM": "id_number"},
        person_to_native,
        _bad_id,
    ),
    NativeResource(
        "coercive_measure",
        "/api/v1/qzcs",
        {"AJXXZJBH": "case_id", "RYBH": "person_id"},
        measure_to_native,
        set_field("CSLXDM", "399"),
    ),
    NativeResource(
        "prosecution_transfer",
        "/api/v1/ysqs",
        {"AJXXZJBH": "case_id"},
        transfer_to_native,
        set_field("JSJCY", "JC999999"),
    ),
    NativeResource(
        "technical_investigation",
        "/api/v1/jzcs",
        {"AJXXZJBH": "case_id"},
        ti_to_native,
        set_field("CSLB", "99"),
    ),
)


def _page(_: str, rows: Sequence[NativeRecord], next_after: str | None) -> bytes:
    return json_bytes({"code": 0, "msg": "ok", "data": {"rows": rows, "next": next_after or ""}})


RENDERER: Final = Renderer(
    media_type="application/json;charset=UTF-8",
    one=lambda _, row: json_bytes({"code": 0, "msg": "ok", "data": row}),
    page=_page,
    error=lambda status, msg: json_bytes({"code": status, "msg": msg, "data": None}),
)
#: 送达接收: a delivery is {"SDBH": <delivery id>, "WSLX", "FSDWDM", "JSDWDM", "AJBH", "WSNR",
#: "FJ"}; the answer names the 签收编号 (NATIVE.md).
INBOUND: Final = InboundSpec(
    path="/api/v1/sdjs",
    xml=False,
    id_path=("SDBH",),
    answer=lambda receipt: json_bytes({"code": 0, "msg": "ok", "data": {"QSBH": receipt}}),
    receipt_prefix="GAQS",
    world=Header(
        ("WSLX",),
        ("JSDWDM",),
        ("AH",),
        {
            "DBJD": "arrest_decision",
            "BCZC": "supplementary_investigation",
            "HY": "custody_transfer",
            "ZXTZ": "judgment_execution",
            "RJCS": "community_correction_entry",  # 入矫's 抄送
        },
        frozenset({"RJCS"}),
    ),
)
SPEC: Final = SystemSpec("public_security", RESOURCES, RENDERER, "rows", 20, 500, inbound=INBOUND)


def create_app(
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
) -> Starlette:
    """Police system app; clients send ``X-Api-Key: <credentials.secret>``."""
    return build_app(
        SPEC,
        dataset,
        api_key(API_KEY_HEADER, credentials.secret),
        faults_enabled=faults_enabled,
        index_limit=index_limit,
    )
