"""The delivery routes over HTTP, on SQLite and PostgreSQL (issue 15).

A gateway wired to the sample agency systems; the procuratorate sends an indictment (提起公诉)
of a case at trial to the court that handles it, inline.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import func, select

from gateway.audit.checkpoint import parse_verifier
from gateway.audit.service import AuditService
from gateway.audit.writer import AuditUnavailable
from gateway.deliveries.models import Delivery, DeliveryEvent, DeliveryIdempotency
from gateway.deliveries.receipts import open_receipt
from sandbox.generator import Dataset
from tests.conftest import Gateway

CASE = 20  # C00000020: at trial, FY640104 handles it; JC640104 prosecutes it


@pytest.fixture
def gw(exchange_gateway: Callable[..., Gateway], database_url: str) -> Gateway:
    return exchange_gateway(database_url)


def _headers(
    gw: Gateway, client: str, purpose: str, case_number: str | None, key: str | None = None
) -> dict[str, str]:
    headers = {**gw.auth(client), "X-Purpose": purpose, "X-Operator-Id": "officer-7"}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _case_number(dataset: Dataset) -> str:
    number = dataset.case(CASE).case["court_case_number"]
    assert isinstance(number, str)
    return number


def _indictment(dataset: Dataset) -> dict[str, Any]:
    return copy.deepcopy(dict(dataset.case(CASE).indictment[0]))


def _body(dataset: Dataset, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "indictment",
        "to_agency": "FY640104",
        "record": _indictment(dataset),
        **changes,
    }


def _send(gw: Gateway, dataset: Dataset, body: Any, key: str | None = "k-1", **kw: Any) -> Any:
    headers = _headers(
        gw,
        kw.get("client", "procuratorate"),
        kw.get("purpose", "PROSECUTION_REVIEW"),
        kw.get("case_number", _case_number(dataset)),
        key,
    )
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return gw.client.post("/v1/deliveries", content=content, headers=headers)


def _counts(gw: Gateway) -> tuple[int, int, int]:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)) or 0,
            session.scalar(select(func.count()).select_from(DeliveryEvent)) or 0,
            session.scalar(select(func.count()).select_from(DeliveryIdempotency)) or 0,
        )


def _entry(gw: Gateway, response: Any) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    service = AuditService(gw.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(index).document


def test_create_replay_conflict_read_list_answer(gw: Gateway, dataset: Dataset) -> None:
    created = _send(gw, dataset, _body(dataset))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert created.headers["Location"] == f"/v1/deliveries/{doc['id']}"
    assert set(doc) == {
        "id", "kind", "from_agency", "to_agency", "case_number", "status", "created_at",
        "due_at", "content_sha256", "events", "receipt", "copy_of", "copies",
    }  # fmt: skip
    assert doc["copy_of"] is None
    assert doc["copies"] == []
    assert (doc["kind"], doc["from_agency"], doc["to_agency"], doc["status"]) == (
        "indictment",
        "JC640104",
        "FY640104",
        "pending",
    )
    assert doc["due_at"] is not None
    entry = _entry(gw, created)
    assert entry["kind"] == "delivery"
    assert doc["events"][0]["type"] == "created"
    assert doc["events"][0]["audit_index"] == int(created.headers["X-Audit-Index"])
    assert _counts(gw) == (1, 1, 1)

    # Replay: the same delivery again; nothing new stored.
    again = _send(gw, dataset, _body(dataset))
    assert again.status_code == 201, again.text
    # The same document, whether rendered in the creating transaction or read back.
    assert again.json() == doc
    assert _counts(gw) == (1, 1, 1)
    # Conflicting replay: 409, nothing stored.
    other = _body(dataset)
    other["record"]["charges"] = other["record"].get("charges")
    other["attachments"] = []
    conflict = _send(gw, dataset, other)
    assert conflict.status_code == 409, conflict.text
    assert conflict.headers["content-type"] == "application/problem+json"
    assert _counts(gw) == (1, 1, 1)

    # Sender and recipient see it; the list shows it by role.
    for client, purpose in (("procuratorate", "PROSECUTION_REVIEW"), ("court", "TRIAL")):
        seen = gw.client.get(
            f"/v1/deliveries/{doc['id']}", headers=_headers(gw, client, purpose, None)
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["id"] == doc["id"]
    inbound = gw.client.get(
        "/v1/deliveries?role=inbound", headers=_headers(gw, "court", "TRIAL", None)
    )
    assert [d["id"] for d in inbound.json()["deliveries"]] == [doc["id"]]
    outbound = gw.client.get(
        "/v1/deliveries?role=inbound", headers=_headers(gw, "procuratorate", "TRIAL", None)
    )
    assert outbound.json() == {"deliveries": [], "next_cursor": None}

    # The sender may not answer; the recipient's return needs a reason.
    url = f"/v1/deliveries/{doc['id']}/receipt"
    by_sender = gw.client.post(
        url,
        json={"decision": "accepted"},
        headers=_headers(gw, "procuratorate", "PROSECUTION_REVIEW", None),
    )
    assert by_sender.status_code == 403
    no_reason = gw.client.post(
        url, json={"decision": "returned"}, headers=_headers(gw, "court", "TRIAL", None)
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"
    answered = gw.client.post(
        url, json={"decision": "accepted"}, headers=_headers(gw, "court", "TRIAL", None)
    )
    assert answered.status_code == 200, answered.text
    result = answered.json()
    assert result["status"] == "accepted"
    twice = gw.client.post(
        url, json={"decision": "accepted"}, headers=_headers(gw, "court", "TRIAL", None)
    )
    assert twice.status_code == 409

    # The receipt verifies with the public key, and binds what was decided.
    key = gw.client.get("/v1/deliveries/key")
    assert key.status_code == 200
    receipt = open_receipt(result["receipt"], [parse_verifier(key.text.strip())])
    assert (receipt.delivery_id, receipt.decision) == (doc["id"], "accepted")
    assert receipt.content_sha256 == doc["content_sha256"]
    assert receipt.audit_index == int(answered.headers["X-Audit-Index"])

    stats = gw.client.get("/v1/deliveries/stats", headers=_headers(gw, "court", "TRIAL", None))
    assert stats.status_code == 200, stats.text
    [row] = stats.json()["figures"]
    assert (row["agency"], row["kind"], row["answered"]) == ("FY640104", "indictment", 1)


def test_a_third_party_gets_the_same_404_as_for_a_missing_delivery(
    gw: Gateway, dataset: Dataset
) -> None:
    created = _send(gw, dataset, _body(dataset))
    assert created.status_code == 201, created.text
    delivery_id = created.json()["id"]
    missing_id = "DL" + "0" * 24
    answers = []
    for target in (delivery_id, missing_id):
        for path in (f"/v1/deliveries/{target}", f"/v1/deliveries/{target}/receipt"):
            headers = _headers(gw, "prison", "SENTENCE_EXECUTION", None)
            if path.endswith("receipt"):
                response = gw.client.post(path, json={"decision": "accepted"}, headers=headers)
            else:
                response = gw.client.get(path, headers=headers)
            body = response.json()
            answers.append(
                (path.endswith("receipt"), response.status_code, body["title"],
                 body["detail"].replace(target, "<id>"))
            )  # fmt: skip
    assert {a[1] for a in answers} == {404}
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]


def _arrest_request(dataset: Dataset, **changes: Any) -> tuple[dict[str, Any], str]:
    # 提请批准逮捕 of a case under investigation (C00000023, GA640104 and JC640104 handle it).
    record = {**dataset.case(23).case, **changes}
    body = {"kind": "arrest_request", "to_agency": "JC640104", "record": record}
    return body, record["police_case_number"]


@pytest.mark.parametrize("sealed", [False, True])
def test_an_arrest_request_delivers_the_case_without_its_decision_only_flag(
    gw: Gateway, dataset: Dataset, sealed: bool
) -> None:
    """The standard defines the delivered case record without ``has_sealed_juvenile`` (a
    不予共享 flag kept for the gateway's decisions, ``decision_only``): the flag is decided on,
    then left out of the content. A sealed case's name and brief reach the procuratorate for
    审查逮捕 by the judicial case-handling exception (刑事诉讼法 第286条第2款)."""
    body, number = _arrest_request(dataset, has_sealed_juvenile=sealed)
    created = _send(
        gw, dataset, body, key="a-1", client="police", purpose="ARREST_REVIEW", case_number=number
    )
    assert created.status_code == 201, created.text
    delivered = {k: v for k, v in body["record"].items() if k != "has_sealed_juvenile"}
    content = orjson.dumps({"record": delivered, "attachments": []}, option=orjson.OPT_SORT_KEYS)
    assert created.json()["content_sha256"] == hashlib.sha256(content).hexdigest()
    entry = _entry(gw, created)
    released = entry["fields"]["released"]
    assert "has_sealed_juvenile" not in released
    assert {"case_name", "brief"} <= set(released)
    if sealed:
        assert "nl.juvenile.sealed-case-details.judicial-case-handling" in entry["rule_ids"]
    assert _counts(gw) == (1, 1, 1)


def test_content_the_negative_list_withholds_is_refused_and_nothing_is_written(
    gw: Gateway, dataset: Dataset
) -> None:
    # A case its owner marks as a work secret is withheld whole (nl.work-secret.case-record):
    # leaving out the decision-only flag opens nothing else; nothing is stored.
    body, number = _arrest_request(dataset, work_secret=True)
    refused = _send(
        gw, dataset, body, key="a-1", client="police", purpose="ARREST_REVIEW", case_number=number
    )
    assert refused.status_code == 403, refused.text
    assert "nl.work-secret.case-record" in refused.json()["rule_ids"]
    assert _counts(gw) == (0, 0, 0)
    assert _entry(gw, refused)["decision"] == "deny"


def test_a_recipient_outside_the_case_is_refused(gw: Gateway, dataset: Dataset) -> None:
    # FY640105 does not handle the case, which is already at trial: an indictment naming it
    # does not move the case, so FY640105 is no party and may not receive it (moves.py).
    record = {**_indictment(dataset), "court": "FY640105"}
    refused = _send(gw, dataset, _body(dataset, to_agency="FY640105", record=record))
    assert refused.status_code == 403, refused.text
    assert "FY640105" in refused.json()["detail"]
    assert _counts(gw) == (0, 0, 0)
    assert _entry(gw, refused)["decision"] == "deny"


def test_a_record_naming_another_recipient_is_not_sent(gw: Gateway, dataset: Dataset) -> None:
    # The indictment names FY640104 as its court: it does not go to FY640105 instead.
    refused = _send(gw, dataset, _body(dataset, to_agency="FY640105"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "record.court", "reason": "names another court agency, not FY640105"}
    ]
    assert _counts(gw) == (0, 0, 0)
    assert _entry(gw, refused)["decision"] == "invalid"


@pytest.mark.parametrize(
    ("change", "status", "names"),
    [
        ({"kind": "nope"}, 422, "kind"),
        ({"to_agency": "JY640001"}, 422, "to_agency"),
        ({"record": {"indictment_id": 1}}, 422, "record."),
        ({"attachments": [{"name": "a.pdf", "media_type": "application/pdf",
                           "content_base64": "aGVsbG8="}]}, 422, "attachments"),
        ({"surprise": 1}, 422, "surprise"),
        ({"record_id": "IN0000009999", "record": ...}, 422, "record_id"),
        ({"record_id": "IN0000002101", "record": ...}, 422, "record_id"),
        ({"record_id": "bad id!", "record": ...}, 422, "record_id"),
        ({"kind": "arrest_request"}, 403, ""),
    ],
)  # fmt: skip
def test_bad_input_is_a_4xx_naming_the_field_with_nothing_written(
    gw: Gateway, dataset: Dataset, change: dict[str, Any], status: int, names: str
) -> None:
    body = {k: v for k, v in {**_body(dataset), **change}.items() if v is not ...}
    response = _send(gw, dataset, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if names:
        fields = [e["field"] for e in response.json().get("errors", [])]
        assert any(f.startswith(names) for f in fields), response.json()
    assert "X-Audit-Index" in response.headers
    assert _counts(gw) == (0, 0, 0)


@pytest.mark.parametrize(
    ("key", "purpose", "case", "status", "header"),
    [
        (None, "PROSECUTION_REVIEW", True, 400, "Idempotency-Key"),
        ("k", "PROSECUTION_REVIEW", False, 400, "X-Case-Number"),
        ("k", None, True, 400, "X-Purpose"),
        ("k", "TRIAL", True, 403, None),
    ],
)
def test_bad_headers_are_refused_with_nothing_written(
    gw: Gateway,
    dataset: Dataset,
    key: str | None,
    purpose: str | None,
    case: bool,
    status: int,
    header: str | None,
) -> None:
    headers = _headers(
        gw, "procuratorate", purpose or "X", _case_number(dataset) if case else None, key
    )
    if purpose is None:
        del headers["X-Purpose"]
    response = gw.client.post(
        "/v1/deliveries", content=orjson.dumps(_body(dataset)), headers=headers
    )
    assert response.status_code == status, response.text
    if header is not None:
        assert response.json()["header"] == header
    assert _counts(gw) == (0, 0, 0)


def test_custody_transfer_reaches_the_detention_centre_and_nothing_more(
    gw: Gateway, dataset: Dataset
) -> None:
    """换押: the court that took the case sends the 看守所 (GA640104) the 逮捕 record it holds
    the defendant under (CUSTODY_MANAGEMENT). A bail record is no custody and is refused; the
    police cannot use the purpose to read the case or its persons."""
    arrest = dict(dataset.case(CASE).coercive_measure[1])
    assert arrest["measure_type"] == "ARREST"
    body = {"kind": "custody_transfer", "to_agency": "GA640104", "record": arrest}
    created = _send(gw, dataset, body, key="hy-1", client="court", purpose="TRIAL")
    assert created.status_code == 201, created.text
    assert "ga.custody-management.coercive-measure" in _entry(gw, created)["rule_ids"]
    bail = {**arrest, "measure_type": "BAIL", "custody_place": None}
    bail_body = {**body, "record": bail}
    refused = _send(gw, dataset, bail_body, key="hy-2", client="court", purpose="TRIAL")
    assert refused.status_code == 403, refused.text
    assert _counts(gw) == (1, 1, 1)
    headers = _headers(gw, "police", "CUSTODY_MANAGEMENT", _case_number(dataset))
    for path in (
        "/v1/resources/case/C00000020",
        "/v1/resources/person?case_id=C00000020",
        "/v1/resources/indictment?case_id=C00000020",
    ):
        assert gw.client.get(path, headers=headers).status_code == 403, path
    custody = gw.client.get("/v1/resources/coercive_measure?case_id=C00000020", headers=headers)
    assert custody.status_code == 200, custody.text


def test_a_third_supplementary_investigation_in_a_case_is_a_409(
    gw: Gateway, dataset: Dataset
) -> None:
    """补充侦查以二次为限 (刑事诉讼法 第175条第3款): the procuratorate returns C00000016 (under
    审查起诉, GA640104 and JC640104 handle it) to the police twice; a third is refused 409
    naming the limit, nothing stored. One the police 退回 does not count."""
    transfer = dict(dataset.case(16).prosecution_transfer[1])
    number = dataset.case(16).case["police_case_number"]

    def send(i: int) -> Any:
        record = {**transfer, "opinion": f"第{i}次退回补充侦查"}
        body = {"kind": "supplementary_investigation", "to_agency": "GA640104", "record": record}
        return _send(gw, dataset, body, key=f"bc-{i}", case_number=number)

    first = send(1)
    assert first.status_code == 201, first.text
    # The police return (退回) the first: it was never received as made.
    returned = gw.client.post(
        f"/v1/deliveries/{first.json()['id']}/receipt",
        json={"decision": "returned", "reason": "文书不全"},
        headers=_headers(gw, "police", "INVESTIGATION", None),
    )
    assert returned.status_code == 200, returned.text
    for i in (2, 3):
        assert send(i).status_code == 201
    third = send(4)
    assert third.status_code == 409, third.text
    problem = third.json()
    assert (problem["limit"], problem["made"]) == (2, 2)
    assert "补充侦查以二次为限" in problem["detail"]
    assert _counts(gw)[0] == 3
    assert _entry(gw, third)["decision"] == "invalid"
    # A replay of a delivery already made still answers it (the limit counts new ones).
    assert send(3).status_code == 201


def test_a_sender_the_flow_makes_a_party_may_send_and_no_other(
    gw: Gateway, dataset: Dataset
) -> None:
    """收监回执: the police's case record does not know the prison (C00000055 went to
    JY640001); the prison's own execution record makes it a party, so it sends. Another prison
    is refused in the words for a case it does not handle, nothing stored."""
    record = dict(dataset.case(55).sentence_execution[0])
    body = {"kind": "prison_admission", "to_agency": "FY640104", "record": record}
    number = dataset.case(55).case["court_case_number"]
    gw.register("other_prison", "JY640002", ["exchange"])
    refused = _send(gw, dataset, body, key="sj-1", client="other_prison",
                    purpose="SENTENCE_EXECUTION", case_number=number)  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert "handles no case" in refused.json()["detail"]
    assert _counts(gw) == (0, 0, 0)
    created = _send(gw, dataset, body, key="sj-1", client="prison",
                    purpose="SENTENCE_EXECUTION", case_number=number)  # fmt: skip
    assert created.status_code == 201, created.text


def test_listing_pages_and_rejects_bad_queries(gw: Gateway, dataset: Dataset) -> None:
    ids = []
    for i in range(3):
        record = _indictment(dataset)
        response = _send(gw, dataset, {**_body(dataset), "record": record}, key=f"page-{i}")
        assert response.status_code == 201, response.text
        if response.json()["id"] not in ids:
            ids.append(response.json()["id"])
    headers = _headers(gw, "procuratorate", "PROSECUTION_REVIEW", None)
    seen: list[str] = []
    url = "/v1/deliveries?role=outbound&limit=1"
    while True:
        page = gw.client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        seen += [d["id"] for d in page.json()["deliveries"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        url = f"/v1/deliveries?role=outbound&limit=1&cursor={cursor}"
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 3
    for query, name in (
        ("", "role"),
        ("role=sideways", "role"),
        ("role=inbound&status=lost", "status"),
        ("role=inbound&overdue=maybe", "overdue"),
        ("role=inbound&limit=0", "limit"),
        ("role=inbound&cursor=xyz", "cursor"),
        ("role=inbound&sort=id", "sort"),
    ):
        bad = gw.client.get(f"/v1/deliveries?{query}", headers=headers)
        assert bad.status_code == 422, (query, bad.text)
        assert bad.json()["errors"][0]["field"] == name


def test_nothing_is_stored_or_answered_when_the_audit_log_is_down(
    gw: Gateway, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]

    async def down(draft: Any) -> int:
        raise AuditUnavailable("down")

    monkeypatch.setattr(runtime.deliveries.audit, "append", down)
    response = _send(gw, dataset, _body(dataset))
    assert response.status_code == 503, response.text
    assert "X-Audit-Index" not in response.headers
    assert _counts(gw) == (0, 0, 0)
    monkeypatch.undo()
    created = _send(gw, dataset, _body(dataset))
    assert created.status_code == 201, created.text
    monkeypatch.setattr(runtime.deliveries.audit, "append", down)
    url = f"/v1/deliveries/{created.json()['id']}/receipt"
    answered = gw.client.post(
        url, json={"decision": "accepted"}, headers=_headers(gw, "court", "TRIAL", None)
    )
    assert answered.status_code == 503
    monkeypatch.undo()
    seen = gw.client.get(
        f"/v1/deliveries/{created.json()['id']}", headers=_headers(gw, "court", "TRIAL", None)
    )
    assert (seen.json()["status"], seen.json()["receipt"]) == ("pending", None)


def test_a_delivery_by_record_id_carries_the_senders_own_record(
    gw: Gateway, dataset: Dataset
) -> None:
    body = {"kind": "indictment", "to_agency": "FY640104", "record_id": "IN0000002001"}
    created = _send(gw, dataset, body, key="by-id")
    assert created.status_code == 201, created.text
    inline = orjson.dumps({"record": _indictment(dataset), "attachments": []},
                          option=orjson.OPT_SORT_KEYS)  # fmt: skip

    assert created.json()["content_sha256"] == hashlib.sha256(inline).hexdigest()
    # Another procuratorate, which does not handle the case, gets nothing fetched.
    gw.register("jc_other", "JC640105", ["exchange"])
    refused = _send(gw, dataset, body, key="by-id", client="jc_other")
    assert refused.status_code == 403, refused.text
    assert _counts(gw) == (1, 1, 1)


def test_a_sender_outside_the_case_learns_nothing_of_it(gw: Gateway, dataset: Dataset) -> None:
    """Another procuratorate names a case it does not handle (one the court handles), then a
    case number that exists nowhere: the same refusal, nothing stored, both audited."""
    gw.register("other_procuratorate", "JC640105", ["exchange"])
    missing = "(2024)宁0104刑初99999号"
    answers = [
        _send(gw, dataset, _body(dataset), key=f"k-{i}", client="other_procuratorate",
              case_number=number)
        for i, number in enumerate((_case_number(dataset), missing))
    ]  # fmt: skip
    for response in answers:
        assert response.status_code == 403, response.text
        assert _entry(gw, response)["decision"] == "deny"
    real, absent = (r.json() for r in answers)
    assert real["detail"].replace(_case_number(dataset), missing) == absent["detail"]
    assert {k: v for k, v in real.items() if k not in ("detail", "instance", "request_id")} == {
        k: v for k, v in absent.items() if k not in ("detail", "instance", "request_id")
    }
    assert _counts(gw) == (0, 0, 0)
