"""Every delivery kind pushed over real HTTP to the sample systems, on SQLite and PostgreSQL.

The gateway's outbox pushes through the recipient's adapter (the write mapping of
adapters/agencies/*.yaml); the sample system keeps what it received. The expected native values
are written here by hand from sandbox/NATIVE.md, independently of the mapping files.
Deliveries are stored through the repository (see push_helpers): 换押 and 提请批准逮捕 cannot be
created through the API today.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.generator import Dataset
from sandbox.systems.court import PENALTY_CODES
from sandbox.systems.public_security import MEASURE_CODES
from tests.conftest import Gateway
from tests.deliveries.push_helpers import (
    AGENCY,
    Clock,
    first_record,
    pusher,
    received,
    run_once,
    sandbox_auth,
    state,
    store_delivery,
)

PDF = {"name": "起诉书.pdf", "media_type": "application/pdf", "content_base64": "JVBERi0xLjcK"}


def _day(value: str) -> str:
    return value.replace("-", "")


def _cn(value: str) -> str:
    year, month, day = value.split("-")
    return f"{year}年{month}月{day}日"


PRISON_PENALTY = {
    "PUBLIC_SURVEILLANCE": "GZ",
    "CRIMINAL_DETENTION": "JY",
    "FIXED_TERM": "YQ",
    "LIFE": "WQ",
    "DEATH_WITH_REPRIEVE": "SH",
    "DEATH_IMMEDIATE": "SX",
    "NONE": "NO",
}

Check = Callable[[dict[str, Any], dict[str, Any]], list[tuple[Any, Any]]]

#: (kind, sender kind, recipient kind, resource, native kind code, record checks).
CASES: list[tuple[str, str, str, str, str, Check]] = [
    ("arrest_request", "public_security", "procuratorate", "case", "TQPB",
     lambda d, r: [
         (d["content"]["caseId"], r["case_id"]),
         (d["content"]["policeCaseNumber"], r["police_case_number"]),
         (d["content"]["filingDate"], f"{r['filing_date']}T00:00:00+08:00"),
         (d["content"]["handlingAgencies"], r["handling_agencies"]),
         (d["content"]["sealedJuvenile"], r["has_sealed_juvenile"]),
         ([(a["fileName"], a["mimeType"], a["data"]) for a in d["attachments"]],
          [(PDF["name"], PDF["media_type"], PDF["content_base64"])]),
     ]),
    ("prosecution_transfer", "public_security", "procuratorate", "prosecution_transfer", "YSSC",
     lambda d, r: [
         (d["content"]["transferId"], r["transfer_id"]),
         (d["content"]["suspects"], [{"personId": p} for p in r["person_ids"]]),
         (d["content"]["transferDate"], f"{r['transfer_date']}T00:00:00+08:00"),
         (d["content"]["charges"], r["charges"]),
     ]),
    ("arrest_decision", "procuratorate", "public_security", "arrest_review", "DBJD",
     lambda d, r: [
         (d["WSNR"]["SCBH"], r["review_id"]),
         (d["WSNR"]["AJXXZJBH"], r["case_id"]),
         (d["WSNR"]["TQRQ"], _day(r["request_date"])),
         (d["WSNR"]["SCJD"], {"APPROVED": "1", "DISAPPROVED": "2"}[r["decision"]]),
         (d["WSNR"]["JCYDM"], r["procuratorate"]),
     ]),
    ("supplementary_investigation", "procuratorate", "public_security", "prosecution_transfer",
     "BCZC",
     lambda d, r: [
         (d["WSNR"]["YSBH"], r["transfer_id"]),
         (d["WSNR"]["RYBHJH"], ",".join(r["person_ids"])),
         (d["WSNR"]["YSRQ"], _day(r["transfer_date"])),
         (d["WSNR"]["SXZM"], ",".join(r["charges"])),
     ]),
    ("custody_transfer", "procuratorate", "public_security", "coercive_measure", "HY",
     lambda d, r: [
         (d["WSNR"]["CSBH"], r["measure_id"]),
         (d["WSNR"]["CSLXDM"], MEASURE_CODES[r["measure_type"]]),
         (d["WSNR"]["KSRQ"], _day(r["start_date"])),
     ]),
    ("judgment_execution", "court", "public_security", "judgment", "ZXTZ",
     lambda d, r: [
         (d["WSNR"]["PJSBH"], r["judgment_id"]),
         (d["WSNR"]["PJRQ"], _day(r["judgment_date"])),
         (d["WSNR"]["XFLX"], PENALTY_CODES[r["penalty_type"]]),
     ]),
    ("judgment_execution", "court", "prison", "judgment", "EXEC_NOTICE",
     lambda d, r: [
         (d["document"]["judgment_no"], r["judgment_id"]),
         (d["document"]["offender_ref"], r["defendant_id"]),
         (d["document"]["judged_at"], f"{r['judgment_date']} 00:00:00"),
         (d["document"]["sentence_type"], PRISON_PENALTY[r["penalty_type"]]),
         (d["document"]["term_months"], r["term_months"]),
     ]),
    ("judgment_execution", "court", "justice", "judgment", "02",
     lambda d, r: [
         (d["文书内容"]["文书编号"], r["judgment_id"]),
         (d["文书内容"]["判决日期"], _cn(r["judgment_date"])),
     ]),
    ("community_correction_entry", "court", "justice", "judgment", "01",
     lambda d, r: [
         (d["文书内容"]["文书编号"], r["judgment_id"]),
         (d["文书内容"]["人员编号"], r["defendant_id"]),
         (d["文书内容"]["生效日期"], _cn(r["effective_date"])),
     ]),
    ("indictment", "procuratorate", "court", "indictment", "QSS",
     lambda d, r: [
         (d["SD"]["WSNR"]["QSSID"], r["indictment_id"]),
         (d["SD"]["WSNR"]["BGRID"], ",".join(r["defendant_ids"])),
         (d["SD"]["WSNR"]["QSRQ"], r["indictment_date"]),
         (d["SD"]["WSNR"]["FYDM"], r["court"]),
     ]),
    ("prison_admission", "prison", "court", "sentence_execution", "SJHZ",
     lambda d, r: [
         (d["SD"]["WSNR"]["ZXID"], r["execution_id"]),
         (d["SD"]["WSNR"]["RJRQ"], r["admission_date"]),
         (d["SD"]["WSNR"]["JYZT"], {"IN_CUSTODY": "1", "RELEASED": "2", "PAROLED": "3"}[
             r["status"]]),
     ]),
    ("commutation_parole_proposal", "prison", "court", "commutation_parole", "JXJS",
     lambda d, r: [
         (d["SD"]["WSNR"]["SQID"], r["application_id"]),
         (d["SD"]["WSNR"]["SQLX"], {"COMMUTATION": "1", "PAROLE": "2"}[r["kind"]]),
         (d["SD"]["WSNR"]["SQRQ"], r["application_date"]),
     ]),
]  # fmt: skip

#: Native paths of the delivery's own fields: id, kind, sender, recipient, case number.
HEADER = {
    "public_security": (("SDBH",), ("WSLX",), ("FSDWDM",), ("JSDWDM",), ("AH",)),
    "procuratorate": (
        ("deliveryId",),
        ("documentType",),
        ("senderCode",),
        ("receiverCode",),
        ("caseNumber",),
    ),
    "court": (("SD", "SDBH"), ("SD", "WSLX"), ("SD", "FSDW"), ("SD", "JSDW"), ("SD", "AH")),
    "prison": (("delivery_no",), ("doc_type",), ("sender_code",), ("receiver_code",), ("case_no",)),
    "justice": (("送达编号",), ("文书类型",), ("发送单位",), ("接收单位",), ("案号",)),
}


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _record(dataset: Dataset, kind: str, resource: str) -> dict[str, Any]:
    if resource == "arrest_review":
        return first_record(dataset, resource, lambda r: r["decision"] is not None)
    if resource == "judgment":
        return first_record(dataset, resource, lambda r: r["effective_date"] is not None)
    return first_record(dataset, resource)


@pytest.fixture
def gw(exchange_gateway: Callable[..., Gateway], database_url: str) -> Gateway:
    return exchange_gateway(database_url)


def test_every_kind_is_pushed_in_the_recipients_native_format(
    gw: Gateway, dataset: Dataset, agency_urls: dict[str, str]
) -> None:
    stored = []
    factory = gw.client.app.state.runtime.session_factory  # type: ignore[attr-defined]
    for kind, sender, recipient, resource, code, check in CASES:
        record = _record(dataset, kind, resource)
        attachments = [PDF] if kind == "arrest_request" else []
        case_number = f"A640104{len(stored):016d}"
        delivery_id = store_delivery(
            factory,
            kind,
            sender,
            recipient,
            record,
            case_number=case_number,
            attachments=attachments,
        )
        stored.append((delivery_id, case_number, kind, sender, recipient, code, record, check))
    outbox = pusher(gw, Clock(), recheck=False)  # stored directly: the push mechanics only
    assert run_once(gw, outbox) + run_once(gw, outbox) == len(CASES)  # batches of 10
    for delivery_id, case_number, kind, sender, recipient, code, record, check in stored:
        status, events, outbox_state = state(gw, delivery_id)
        assert (status, outbox_state) == ("delivered", "done"), (kind, recipient, events)
        (got,) = received(agency_urls, recipient, delivery_id)
        document = got["document"]
        media = "application/xml" if recipient == "court" else "application/json"
        assert got["content_type"].startswith(media)
        header = [_at(document, path) for path in HEADER[recipient]]
        expected = [delivery_id, code, AGENCY[sender], AGENCY[recipient], case_number]
        assert header == expected, (kind, recipient)
        for actual, wanted in check(document, record):
            assert actual == wanted, (kind, recipient, actual, wanted)
        delivered = events[-1]
        assert delivered["type"] == "delivered"
        assert delivered["receipt"] == got["receipt_id"]  # the recipient's own receipt number
        assert delivered["audit_index"] is not None


def test_a_pushed_prosecution_transfer_moves_the_stage_at_the_procuratorate(
    gw: Gateway, dataset: Dataset, agency_urls: dict[str, str]
) -> None:
    record = first_record(dataset, "prosecution_transfer")
    factory = gw.client.app.state.runtime.session_factory  # type: ignore[attr-defined]
    delivery_id = store_delivery(
        factory, "prosecution_transfer", "public_security", "procuratorate", record
    )
    assert run_once(gw, pusher(gw, Clock(), recheck=False)) == 1
    url = agency_urls["procuratorate"]
    case = httpx.get(
        f"{url}/api/v2/cases/{record['case_id']}", headers=sandbox_auth("procuratorate", url)
    ).json()
    assert case == {
        "caseId": record["case_id"],
        "stage": "PROSECUTION_REVIEW",
        "stageChangedBy": delivery_id,
    }
