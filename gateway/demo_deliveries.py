"""The demo's delivery examples (协同办案): one working delivery per kind, each answered.

Each kind is sent by the demo client of its sender's kind, with its ``Idempotency-Key`` (run
again, the same delivery answers again), for a sample case at the stage the kind belongs to,
and every delivery passes the real policy checks. After each, the recipient's client answers
it (``POST /v1/deliveries/{id}/receipt``): the delivery's id is saved from the 201 under the
example's ``saves`` name and fills the ``{name}`` in the answer's path. The receipts verify
with the key of ``GET /v1/deliveries/key``.

One case travels the whole chain: C00000023 (林平等2人诈骗案, 兴庆区), from 提请批准逮捕 to 入矫.
The demo's sample systems share one world (``serve-all``): a system that receives a delivery
moves the case on (NATIVE.md), and the gateway decides each hop for its recipient as the step
leaves the case (gateway/deliveries/moves.py, docs/deliveries.md):

* C00000023: 提请批准逮捕 → 批准逮捕决定 → 移送审查起诉 → 退回补充侦查 → 移送审查起诉 again →
  提起公诉 (the court gives the case its 案号) → 入矫 (a suspended sentence: the 司法局).

The kinds a custodial sentence needs run on two other sample cases, already at their stage:

* C00000020 (审判): 换押 (the court to the 看守所).
* C00000055 (执行, 银川监狱): 执行通知书 → 收监回执 → 提请减刑 (to the 银川市中级人民法院,
  which rules on 刑更).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sandbox.generator import Dataset
from sandbox.records import case_index_of
from sandbox.world import court_case_number_for

__all__ = ["delivery_examples", "walked_case_records"]


def _headers(client: str, purpose: str, case_number: str | None) -> dict[str, str]:
    headers = {"X-Purpose": purpose, "X-Operator-Id": f"{client}-officer-01"}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
    return headers


@dataclass(frozen=True)
class _Hop:
    """One delivery and its answer: who sends what, under which purpose, and who answers."""

    kind: str
    sender: str  # the demo client
    purpose: str
    case_number: str
    body: dict[str, Any]  # to_agency and record or record_id
    note: str
    recipient: str  # the demo client that answers
    answered_under: str
    step: str = ""  # tells apart two deliveries of one kind ("-2")

    def examples(self) -> list[dict[str, Any]]:
        name = self.kind.replace("_", "-") + self.step
        saves = self.kind + self.step.replace("-", "_")
        sent = {
            "name": f"deliver-{name}",
            "client": self.sender,
            "method": "POST",
            "path": "/v1/deliveries",
            "headers": {
                **_headers(self.sender, self.purpose, self.case_number),
                "Idempotency-Key": f"demo-{self.kind}{self.step}",
            },
            "body": {"kind": self.kind, **self.body},
            "expect_status": 201,
            "saves": saves,
            "note": self.note,
        }
        answer = {
            "name": f"answer-{name}",
            "client": self.recipient,
            "method": "POST",
            "path": f"/v1/deliveries/{{{saves}}}/receipt",
            "headers": _headers(self.recipient, self.answered_under, None),
            "body": {"decision": "accepted"},
            "expect_status": 200,
            "note": "签收 by the recipient: the delivery with its signed receipt",
        }
        return [sent, answer]


def walked_case_records(data: Dataset) -> dict[str, dict[str, Any]]:
    """The records C00000023's agencies send along the chain, inline (see module docstring)."""
    transfer = {
        "transfer_id": "PT0000002301",
        "case_id": "C00000023",
        "person_ids": ["P0000002301"],
        "transfer_date": "2025-01-10",
        "receiving_procuratorate": "JC640104",
        "charges": ["诈骗罪"],
        "review_outcome": None,
        "outcome_date": None,
        "opinion": "犯罪嫌疑人涉嫌诈骗罪，犯罪事实清楚，证据确实、充分，依法移送审查起诉。",
    }
    index = case_index_of("case", "C00000023")
    assert index is not None
    court_number = court_case_number_for(index, "FY640104")  # given when the court takes it
    return {
        "transfer": transfer,
        "returned": {**transfer, "review_outcome": "RETURNED", "outcome_date": "2025-02-01"},
        "again": {**transfer, "transfer_id": "PT0000002302", "transfer_date": "2025-02-20"},
        "indictment": {
            "indictment_id": "IN0000002301",
            "case_id": "C00000023",
            "document_number": "宁银兴检刑诉〔2025〕101号",
            "defendant_ids": ["P0000002301"],
            "charges": ["诈骗罪"],
            "indictment_date": "2025-03-20",
            "court": "FY640104",
        },
        "judgment": {
            "judgment_id": "JD0000002301",
            "case_id": "C00000023",
            "court_case_number": court_number,
            "court": "FY640104",
            "defendant_id": "P0000002301",
            "defendant_name": str(data.case(23).person[0]["name"]),
            "verdict": "GUILTY",
            "penalty_type": "FIXED_TERM",
            "term_months": 10,
            "probation_months": 12,
            "judgment_date": "2025-05-06",
            "effective_date": "2025-05-17",
            "second_instance_basis": None,
            "executing_agency": "SF640104",
            "execution_notice_date": "2025-05-19",
            "summary": "被告人林平犯诈骗罪，判处有期徒刑10个月，缓刑1年。",
        },
    }


def _chain(data: Dataset) -> list[_Hop]:
    """C00000023 from 提请批准逮捕 to 入矫, every hop on the one case."""
    case = str(data.case(23).case["police_case_number"])
    records = walked_case_records(data)
    return [
        _Hop(
            "arrest_request",
            "public_security",
            "ARREST_REVIEW",
            case,
            {"to_agency": "JC640104", "record_id": "C00000023"},
            "提请批准逮捕: the police send their own case record (record_id, fetched from their "
            "system); the procuratorate must decide within 7 days (刑事诉讼法 第91条第3款)",
            "procuratorate",
            "ARREST_REVIEW",
        ),
        _Hop(
            "arrest_decision",
            "procuratorate",
            "ARREST_REVIEW",
            case,
            {"to_agency": "GA640104", "record_id": "AR0000002301"},
            "批准逮捕决定 back to the police (刑事诉讼法 第90条)",
            "public_security",
            "ARREST_REVIEW",
        ),
        _Hop(
            "prosecution_transfer",
            "public_security",
            "INVESTIGATION",
            case,
            {"to_agency": "JC640104", "record": records["transfer"]},
            "移送审查起诉 (起诉意见书), inline; decided for the procuratorate as at 审查起诉, the "
            "stage it puts the case in; due in one month (刑事诉讼法 第172条第1款)",
            "procuratorate",
            "PROSECUTION_REVIEW",
        ),
        _Hop(
            "supplementary_investigation",
            "procuratorate",
            "PROSECUTION_REVIEW",
            case,
            {"to_agency": "GA640104", "record": records["returned"]},
            "退回补充侦查: the case is back in 侦查; at most twice a case "
            "(刑事诉讼法 第175条第3款): a third is a 409",
            "public_security",
            "INVESTIGATION",
        ),
        _Hop(
            "prosecution_transfer",
            "public_security",
            "INVESTIGATION",
            case,
            {"to_agency": "JC640104", "record": records["again"]},
            "移送审查起诉 again, after the supplementary investigation (刑事诉讼法 第175条第3款)",
            "procuratorate",
            "PROSECUTION_REVIEW",
            step="-2",
        ),
        _Hop(
            "indictment",
            "procuratorate",
            "PROSECUTION_REVIEW",
            case,
            {"to_agency": "FY640104", "record": records["indictment"]},
            "提起公诉 (起诉书): the court the indictment names becomes a party by it; it "
            "must judge within two months (刑事诉讼法 第208条第1款)",
            "court",
            "TRIAL",
        ),
        _Hop(
            "community_correction_entry",
            "court",
            "COMMUNITY_CORRECTION",
            case,
            {
                "to_agency": "SF640104",
                "record": records["judgment"],
                "copies": ["JC640104", "GA640104"],
            },
            "入矫: a suspended sentence; the judgment to the 司法局 within 5 days of taking effect "
            "(社区矫正法 第20条): an old date, so it shows as overdue. Copied (抄送) to the "
            "procuratorate and the police, as the article says "
            "(同时抄送人民检察院和执行地公安机关): each copy its own delivery, decided for its "
            "recipient, pushed, needing no answer",
            "justice",
            "COMMUNITY_CORRECTION",
        ),
    ]


def delivery_examples(data: Dataset) -> list[dict[str, Any]]:
    """The delivery examples (see module docstring), in the order they must run."""
    at_trial = str(data.case(20).case["court_case_number"])
    executing = str(data.case(55).case["court_case_number"])
    arrest = dict(data.case(20).coercive_measure[1])  # 逮捕, 银川市看守所
    commutation = data.case(55).commutation_parole[0]["application_id"]
    hops = [
        *_chain(data),
        _Hop(
            "custody_transfer",
            "court",
            "TRIAL",
            at_trial,
            {"to_agency": "GA640104", "record": arrest},
            "换押: the court tells the 看守所 it now holds the defendant; the police receive the "
            "逮捕 record only (purpose CUSTODY_MANAGEMENT)",
            "public_security",
            "CUSTODY_MANAGEMENT",
        ),
        _Hop(
            "judgment_execution",
            "court",
            "SENTENCE_EXECUTION",
            executing,
            {"to_agency": "JY640001", "record_id": "JD0000005501"},
            "判决书与执行通知书 to 银川监狱; due 10 days after the judgment took effect "
            "(刑事诉讼法 第264条第1款): an old case, so it shows as overdue",
            "prison",
            "SENTENCE_EXECUTION",
        ),
        _Hop(
            "prison_admission",
            "prison",
            "SENTENCE_EXECUTION",
            executing,
            {"to_agency": "FY640104", "record_id": "SE0000005501"},
            "收监回执 back to the court that sent him",
            "court",
            "SENTENCE_EXECUTION",
        ),
        _Hop(
            "commutation_parole_proposal",
            "prison",
            "COMMUTATION_PAROLE",
            executing,
            {"to_agency": "FY640100", "record_id": commutation},
            "减刑建议书 to the intermediate court that rules on 刑更 (刑事诉讼法 第273条第2款)",
            "intermediate_court",
            "COMMUTATION_PAROLE",
        ),
    ]
    return [
        *(example for hop in hops for example in hop.examples()),
        {
            "name": "receipt-key",
            "client": None,
            "method": "GET",
            "path": "/v1/deliveries/key",
            "headers": {},
            "expect_status": 200,
            "note": "public: the receipt verifier key (C2SP signed-note, Ed25519)",
        },
        {
            "name": "copies-inbound-procuratorate",
            "client": "procuratorate",
            "method": "GET",
            "path": "/v1/deliveries?role=inbound&kind=community_correction_entry",
            "headers": _headers("procuratorate", "EXECUTION_SUPERVISION", None),
            "expect_status": 200,
            "note": "the procuratorate's copy (抄送) of the 入矫: delivered, copy_of the main one, "
            "no deadline, no answer asked",
        },
        {
            "name": "deliveries-inbound",
            "client": "public_security",
            "method": "GET",
            "path": "/v1/deliveries?role=inbound",
            "headers": _headers("public_security", "INVESTIGATION", None),
            "expect_status": 200,
            "note": "what the police received, with each receipt",
        },
    ]
