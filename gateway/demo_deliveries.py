"""The demo's delivery examples (协同办案): one working delivery per kind, each answered.

Each kind is sent by the demo client of its sender's kind, with its ``Idempotency-Key`` (run
again, the same delivery answers again), for a sample case at the stage the kind belongs to,
and every delivery passes the real policy checks. After each, the recipient's client answers
it (``POST /v1/deliveries/{id}/receipt``): the delivery's id is saved from the 201 under the
example's ``saves`` name and fills the ``{name}`` in the answer's path. The receipts verify
with the key of ``GET /v1/deliveries/key``.

The chain runs over four sample cases, not one: the gateway decides each hop for the stage
and the parties the case's own systems report, and what a delivery carries as a read by its
recipient. The demo's sample systems move a case on when they receive a delivery (NATIVE.md),
but 移送审查起诉 and 提起公诉 are refused before their own receipt could move the case: the
recipient's purpose (PROSECUTION_REVIEW, TRIAL) is not valid at the stage the case is in
until then, and the court does not yet handle the case; see docs/deliveries.md.

* C00000023 (立案侦查, 兴庆区): 提请批准逮捕 → 批准逮捕决定.
* C00000016 (审查起诉, 兴庆区): 移送审查起诉 → 退回补充侦查.
* C00000020 (审判, 兴庆区): 提起公诉 → 换押 (the court to the 看守所).
* C00000055 (执行, 兴庆区 court, 银川监狱, 兴庆区司法局): 执行通知书 → 收监回执 → 提请减刑
  (to the 银川市中级人民法院, which rules on 刑更) → 入矫 (the parolee).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sandbox.generator import Dataset

__all__ = ["delivery_examples"]


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

    def examples(self) -> list[dict[str, Any]]:
        name = self.kind.replace("_", "-")
        sent = {
            "name": f"deliver-{name}",
            "client": self.sender,
            "method": "POST",
            "path": "/v1/deliveries",
            "headers": {
                **_headers(self.sender, self.purpose, self.case_number),
                "Idempotency-Key": f"demo-{self.kind}",
            },
            "body": {"kind": self.kind, **self.body},
            "expect_status": 201,
            "saves": self.kind,
            "note": self.note,
        }
        answer = {
            "name": f"answer-{name}",
            "client": self.recipient,
            "method": "POST",
            "path": f"/v1/deliveries/{{{self.kind}}}/receipt",
            "headers": _headers(self.recipient, self.answered_under, None),
            "body": {"decision": "accepted"},
            "expect_status": 200,
            "note": "签收 by the recipient: the delivery with its signed receipt",
        }
        return [sent, answer]


def delivery_examples(data: Dataset) -> list[dict[str, Any]]:
    """The delivery examples (see module docstring), in the order they must run."""
    investigating = str(data.case(23).case["police_case_number"])
    in_review = str(data.case(16).case["police_case_number"])
    at_trial = str(data.case(20).case["court_case_number"])
    executing = str(data.case(55).case["court_case_number"])
    transfer = dict(data.case(16).prosecution_transfer[1])
    returned = {**transfer, "review_outcome": "RETURNED", "outcome_date": "2025-01-20"}
    arrest = dict(data.case(20).coercive_measure[1])  # 逮捕, 银川市看守所
    commutation = data.case(55).commutation_parole[0]["application_id"]
    hops = [
        _Hop(
            "arrest_request",
            "public_security",
            "ARREST_REVIEW",
            investigating,
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
            investigating,
            {"to_agency": "GA640104", "record_id": "AR0000002301"},
            "批准逮捕决定 back to the police (刑事诉讼法 第90条)",
            "public_security",
            "ARREST_REVIEW",
        ),
        _Hop(
            "prosecution_transfer",
            "public_security",
            "INVESTIGATION",
            in_review,
            {"to_agency": "JC640104", "record_id": transfer["transfer_id"]},
            "移送审查起诉 (起诉意见书); due in one month (刑事诉讼法 第172条第1款)",
            "procuratorate",
            "PROSECUTION_REVIEW",
        ),
        _Hop(
            "supplementary_investigation",
            "procuratorate",
            "PROSECUTION_REVIEW",
            in_review,
            {"to_agency": "GA640104", "record": returned},
            "退回补充侦查, inline; at most twice a case (刑事诉讼法 第175条第3款): "
            "a third is a 409",
            "public_security",
            "INVESTIGATION",
        ),
        _Hop(
            "indictment",
            "procuratorate",
            "PROSECUTION_REVIEW",
            at_trial,
            {"to_agency": "FY640104", "record_id": "IN0000002001"},
            "提起公诉 (起诉书); the court must judge within two months (刑事诉讼法 第208条第1款)",
            "court",
            "TRIAL",
        ),
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
        _Hop(
            "community_correction_entry",
            "court",
            "COMMUNITY_CORRECTION",
            executing,
            {"to_agency": "SF640104", "record_id": "JD0000005501"},
            "入矫: the parolee's documents to the 司法局 (社区矫正法 第20条)",
            "justice",
            "COMMUNITY_CORRECTION",
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
            "name": "deliveries-inbound",
            "client": "public_security",
            "method": "GET",
            "path": "/v1/deliveries?role=inbound",
            "headers": _headers("public_security", "INVESTIGATION", None),
            "expect_status": 200,
            "note": "what the police received, with each receipt",
        },
    ]
