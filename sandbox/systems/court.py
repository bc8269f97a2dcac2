"""Sample court (法院) system: XML with pinyin-initial element names, ``yyyy-MM-dd`` dates,
GA 240.20-style penalty codes, empty elements for null, API key in ``X-Court-Key``.
See NATIVE.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from xml.etree import ElementTree as ET

from starlette.applications import Starlette

from sandbox.generator import Dataset, Record
from sandbox.systems.auth import Credentials, api_key
from sandbox.systems.common import (
    DEFAULT_INDEX_LIMIT,
    NativeRecord,
    NativeResource,
    Renderer,
    SystemSpec,
    build_app,
    number,
    opt_text,
    set_field,
    text,
)
from sandbox.systems.inbound import Header, InboundSpec

API_KEY_HEADER: Final = "X-Court-Key"
VERDICT_CODES: Final = {"GUILTY": "1", "NOT_GUILTY": "2", "EXEMPT": "3"}
#: GA 240.20-2000 处理方式 codes: 106 死刑缓期二年执行, 107 死刑立即执行; NONE → 000.
PENALTY_CODES: Final = {
    "PUBLIC_SURVEILLANCE": "101",
    "CRIMINAL_DETENTION": "102",
    "FIXED_TERM": "103",
    "LIFE": "104",
    "DEATH_WITH_REPRIEVE": "106",
    "DEATH_IMMEDIATE": "107",
    "NONE": "000",
}
#: 二审启动方式: 1 上诉, 2 抗诉 (empty for a first-instance judgment).
SECOND_INSTANCE_CODES: Final = {"APPEAL": "1", "PROTEST": "2"}


def _int(value: int | None) -> str:
    return "" if value is None else str(value)


def judgment_to_native(r: Record) -> NativeRecord:
    """judgment → <Judgment> children (element name → text, "" for null)."""
    return {
        "WSID": text(r, "judgment_id"),
        "AJID": text(r, "case_id"),
        "AH": text(r, "court_case_number"),
        "FYDM": text(r, "court"),
        "BGRID": text(r, "defendant_id"),
        "BGRXM": text(r, "defendant_name"),
        "PJJG": VERDICT_CODES[text(r, "verdict")],
        "XFLX": PENALTY_CODES[text(r, "penalty_type")],
        "XQ": _int(number(r, "term_months")),
        "HXQ": _int(number(r, "probation_months")),
        "PJRQ": text(r, "judgment_date"),
        "SXRQ": opt_text(r, "effective_date") or "",
        "ESQD": SECOND_INSTANCE_CODES.get(opt_text(r, "second_instance_basis") or "", ""),
        "ZXJG": opt_text(r, "executing_agency") or "",
        "ZXTZRQ": opt_text(r, "execution_notice_date") or "",
        "PJZY": text(r, "summary"),
    }


RESOURCES: Final = (
    NativeResource(
        "judgment",
        "/court/judgments",
        {"AJID": "case_id", "AH": "court_case_number", "BGRID": "defendant_id"},
        judgment_to_native,
        set_field("PJJG", "9"),
    ),
)


def _judgment(parent: ET.Element, record: NativeRecord) -> None:
    element = ET.SubElement(parent, "Judgment")
    for key, value in record.items():
        ET.SubElement(element, key).text = str(value) if value not in (None, "") else None


def _document(code: int, message: str) -> ET.Element:
    root = ET.Element("Response")
    ET.SubElement(root, "Code").text = str(code)
    ET.SubElement(root, "Message").text = message
    return root


def _bytes(root: ET.Element) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode()
    )


def _one(_: str, record: NativeRecord) -> bytes:
    root = _document(0, "ok")
    _judgment(root, record)
    return _bytes(root)


def _page(_: str, records: Sequence[NativeRecord], next_after: str | None) -> bytes:
    root = _document(0, "ok")
    judgments = ET.SubElement(root, "Judgments")
    for record in records:
        _judgment(judgments, record)
    ET.SubElement(root, "NextAfter").text = next_after
    return _bytes(root)


RENDERER: Final = Renderer(
    media_type="application/xml",
    one=_one,
    page=_page,
    error=lambda status, message: _bytes(_document(status, message)),
)


def _receipt(receipt: str) -> bytes:
    root = _document(0, "ok")
    ET.SubElement(root, "QSBH").text = receipt
    return _bytes(root)


#: 送达接收: <SD><SDBH>delivery id</SDBH>…<WSNR>record</WSNR><FJ><WJ>…</WJ></FJ></SD>.
INBOUND: Final = InboundSpec(
    path="/court/deliveries",
    xml=True,
    id_path=("SD", "SDBH"),
    answer=_receipt,
    receipt_prefix="FYQS",
    world=Header(
        ("SD", "WSLX"),
        ("SD", "JSDW"),
        ("SD", "AH"),
        {"QSS": "indictment", "SJHZ": "prison_admission", "JXJS": "commutation_parole_proposal"},
    ),
)
SPEC: Final = SystemSpec("court", RESOURCES, RENDERER, "count", 20, 100, inbound=INBOUND)


def create_app(
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
) -> Starlette:
    """Court app; clients send ``X-Court-Key: <credentials.secret>``."""
    return build_app(
        SPEC,
        dataset,
        api_key(API_KEY_HEADER, credentials.secret),
        faults_enabled=faults_enabled,
        index_limit=index_limit,
    )
