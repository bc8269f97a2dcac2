"""The demo's delivery examples (协同办案): one working delivery per kind, each answered.

Each kind is sent by the demo client of its sender's kind, with its ``Idempotency-Key`` (run
again, the same delivery answers again), for a sample case at the stage the kind belongs to,
and every delivery passes the real policy checks. After each, the recipient's client answers
it (``POST /v1/deliveries/{id}/receipt``): the delivery's id is saved from the 201 under the
example's ``saves`` name and fills the ``{name}`` in the answer's path. The receipts verify
with the key of ``GET /v1/deliveries/key``.

The chain runs over three sample cases, not one: the sample systems' data is a snapshot, and
the gateway decides each hop for the stage and the parties the case's own systems report
(an arrest request needs a case under investigation, an execution notice one in execution);
see docs/deliveries.md.

* C00000023 (立案侦查, 兴庆区): 提请批准逮捕 → 批准逮捕决定.
* C00000016 (审查起诉, 兴庆区): 移送审查起诉 → 退回补充侦查.
* C00000020 (审判, 兴庆区): 提起公诉 → 换押 (the court to the 看守所).
* C00000055 (执行, 兴庆区 court, 银川监狱, 兴庆区司法局): 执行通知书 → 收监回执 → 提请减刑
  (to the 银川市中级人民法院, which rules on 刑更) → 入矫 (the parolee).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sandbox.generator import Dataset

__all__ = ["delivery_examples"]


def _headers(client: str, purpose: str, case_number: str | None) -> dict[str, str]:
    headers = {"X-Purpose": purpose, "X-Operator-Id": f"{client}-officer-01"}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
    return headers


def _deliver(
    kind: str,
    client: str,
    purpose: str,
    case_number: str,
    body: dict[str, Any],
    note: str,
) -> dict[str, Any]:
    return {
        "name": f"deliver-{kind.replace('_', '-')}",
        "client": client,
        "method": "POST",
        "path": "/v1/deliveries",
        "headers": {**_headers(client, purpose, case_number), "Idempotency-Key": f"demo-{kind}"},
        "body": {"kind": kind, **body},
        "expect_status": 201,
        "saves": kind,
        "note": note,
    }


def _answer(kind: str, client: str, purpose: str, note: str) -> dict[str, Any]:
    return {
        "name": f"answer-{kind.replace('_', '-')}",
        "client": client,
        "method": "POST",
        "path": f"/v1/deliveries/{{{kind}}}/receipt",
        "headers": _headers(client, purpose, None),
        "body": {"decision": "accepted"},
        "expect_status": 200,
        "note": note,
    }


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
    return [
        _deliver(
            "arrest_request",
            "public_security",
            "ARREST_REVIEW",
            investigating,
            {"to_agency": "JC640104", "record_id": "C00000023"},
            "提请批准逮捕: the police send their own case record (record_id, fetched from their "
            "system); the procuratorate must decide within 7 days (刑事诉讼法 第91条第3款)",
        ),
        _answer("arrest_request", "procuratorate", "ARREST_REVIEW", "签收: a signed receipt"),
        _deliver(
            "arrest_decision",
            "procuratorate",
            "ARREST_REVIEW",
            investigating,
            {"to_agency": "GA640104", "record_id": "AR0000002301"},
            "批准逮捕决定 back to the police (刑事诉讼法 第90条)",
        ),
        _answer("arrest_decision", "public_security", "ARREST_REVIEW", "签收"),
        _deliver(
            "prosecution_transfer",
            "public_security",
            "INVESTIGATION",
            in_review,
            {"to_agency": "JC640104", "record_id": transfer["transfer_id"]},
            "移送审查起诉 (起诉意见书); due in one month (刑事诉讼法 第172条第1款)",
        ),
        _answer("prosecution_transfer", "procuratorate", "PROSECUTION_REVIEW", "签收"),
        _deliver(
            "supplementary_investigation",
            "procuratorate",
            "PROSECUTION_REVIEW",
            in_review,
            {"to_agency": "GA640104", "record": returned},
            "退回补充侦查, inline; at most twice a case (刑事诉讼法 第175条第3款): "
            "a third is a 409",
        ),
        _answer("supplementary_investigation", "public_security", "INVESTIGATION", "签收"),
        _deliver(
            "indictment",
            "procuratorate",
            "PROSECUTION_REVIEW",
            at_trial,
            {"to_agency": "FY640104", "record_id": "IN0000002001"},
            "提起公诉 (起诉书); the court must judge within two months (刑事诉讼法 第208条第1款)",
        ),
        _answer("indictment", "court", "TRIAL", "签收 (受理)"),
        _deliver(
            "custody_transfer",
            "court",
            "TRIAL",
            at_trial,
            {"to_agency": "GA640104", "record": arrest},
            "换押: the court tells the 看守所 it now holds the defendant; the police receive the "
            "逮捕 record only (purpose CUSTODY_MANAGEMENT)",
        ),
        _answer("custody_transfer", "public_security", "CUSTODY_MANAGEMENT", "签收"),
        _deliver(
            "judgment_execution",
            "court",
            "SENTENCE_EXECUTION",
            executing,
            {"to_agency": "JY640001", "record_id": "JD0000005501"},
            "判决书与执行通知书 to 银川监狱; due 10 days after the judgment took effect "
            "(刑事诉讼法 第264条第1款): an old case, so it shows as overdue",
        ),
        _answer("judgment_execution", "prison", "SENTENCE_EXECUTION", "签收"),
        _deliver(
            "prison_admission",
            "prison",
            "SENTENCE_EXECUTION",
            executing,
            {"to_agency": "FY640104", "record_id": "SE0000005501"},
            "收监回执 back to the court that sent him",
        ),
        _answer("prison_admission", "court", "SENTENCE_EXECUTION", "签收"),
        _deliver(
            "commutation_parole_proposal",
            "prison",
            "COMMUTATION_PAROLE",
            executing,
            {"to_agency": "FY640100", "record_id": commutation},
            "减刑建议书 to the intermediate court that rules on 刑更 (刑事诉讼法 第273条第2款)",
        ),
        _answer("commutation_parole_proposal", "intermediate_court", "COMMUTATION_PAROLE", "签收"),
        _deliver(
            "community_correction_entry",
            "court",
            "COMMUNITY_CORRECTION",
            executing,
            {"to_agency": "SF640104", "record_id": "JD0000005501"},
            "入矫: the parolee's documents to the 司法局 (社区矫正法 第20条)",
        ),
        _answer("community_correction_entry", "justice", "COMMUNITY_CORRECTION", "签收"),
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
