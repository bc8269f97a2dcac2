"""The exchange API end to end: token → headers → policy → real agency systems → audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from gateway.audit.service import AuditService
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers

CourtCase = "(2024)宁0104刑初465号"  # C00000020: at trial, FY640104 handles it


@pytest.fixture
def gw(shared_exchange_gateway: Gateway) -> Gateway:
    return shared_exchange_gateway


def _entry(gateway: Gateway, response: Any) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    service = AuditService(gateway.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(index).document


def _case(dataset: Dataset, index: int) -> dict[str, Any]:
    return dataset.case(index).case


@pytest.mark.parametrize(
    ("client", "purpose", "case_index", "resource", "record_id", "owner"),
    [
        # court reads the police case file and the suspect for trial
        ("court", "TRIAL", 20, "case", "C00000020", "public_security"),
        ("court", "TRIAL", 20, "person", "P0000002001", "public_security"),
        # court reads the indictment (procuratorate)
        ("court", "TRIAL", 20, "indictment", "IN0000002001", "procuratorate"),
        # prison receives the judgment it executes (court, XML upstream)
        ("prison", "SENTENCE_EXECUTION", 2, "judgment", "JD0000000201", "court"),
        # procuratorate supervises execution in prison and in community corrections
        (
            "procuratorate",
            "EXECUTION_SUPERVISION",
            1,
            "sentence_execution",
            "SE0000000101",
            "prison",
        ),
        (
            "procuratorate",
            "EXECUTION_SUPERVISION",
            6,
            "community_correction",
            "CC0000000601",
            "justice",
        ),
        # community corrections receives the judgment
        ("justice", "COMMUNITY_CORRECTION", 6, "judgment", "JD0000000601", "court"),
    ],
)
def test_every_agency_answers_through_the_gateway(
    gw: Gateway,
    dataset: Dataset,
    client: str,
    purpose: str,
    case_index: int,
    resource: str,
    record_id: str,
    owner: str,
) -> None:
    case_number = _case(dataset, case_index)["court_case_number"]
    response = gw.client.get(
        f"/v1/resources/{resource}/{record_id}",
        headers=exchange_headers(gw, client, purpose, case_number),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    id_field = gw.client.app.state.runtime.standard.resource(resource).id_field  # type: ignore[attr-defined]
    assert body["record"][id_field] == record_id
    assert body["resource"] == resource
    entry = _entry(gw, response)
    assert entry["decision"] == "allow"
    assert entry["owner_agency"] == owner
    assert entry["record_ids"] == [record_id]
    assert entry["purpose"] == purpose
    assert entry["case_number"] == case_number
    assert entry["fields"]["released"] == sorted(body["record"])
    assert entry["upstream"]["status"] == 200
    assert entry["rule_ids"]
    # the audit log holds field names, never values
    leaf_text = str(entry)
    for name in ("name", "id_number", "address", "phone", "case_name", "brief", "defendant_name"):
        value = body["record"].get(name)
        if isinstance(value, str):
            assert value not in leaf_text


def test_fields_selects_a_subset(gw: Gateway) -> None:
    response = gw.client.get(
        "/v1/resources/case/C00000020?fields=case_id,case_name,stage",
        headers=exchange_headers(gw, "court", "TRIAL", CourtCase),
    )
    assert response.status_code == 200
    assert set(response.json()["record"]) == {"case_id", "case_name", "stage"}


def test_search_with_keyset_pagination(gw: Gateway, dataset: Dataset) -> None:
    case_number = _case(dataset, 20)["court_case_number"]
    headers = exchange_headers(gw, "court", "TRIAL", case_number)
    seen: list[str] = []
    url = "/v1/resources/person?case_id=C00000020&limit=1"
    while True:
        response = gw.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(r["person_id"] for r in body["records"])
        assert "X-Audit-Index" in response.headers
        if body["next_cursor"] is None:
            break
        url = f"/v1/resources/person?case_id=C00000020&limit=1&cursor={body['next_cursor']}"
    expected = [p["person_id"] for p in dataset.case(20).person]
    assert seen == sorted(expected)


def test_case_binding_failure_is_denied(gw: Gateway, dataset: Dataset) -> None:
    other = _case(dataset, 2)  # handled by FY640105, not by our court FY640104
    response = gw.client.get(
        "/v1/resources/case/C00000002",
        headers=exchange_headers(gw, "court", "TRIAL", other["court_case_number"]),
    )
    assert response.status_code == 403
    assert "case" in response.json()["detail"]
    assert _entry(gw, response)["decision"] == "deny"


def test_default_deny(gw: Gateway, dataset: Dataset) -> None:
    response = gw.client.get(
        "/v1/resources/technical_investigation/TI0000000701",
        headers=exchange_headers(
            gw, "prison", "SENTENCE_EXECUTION", _case(dataset, 7)["court_case_number"]
        ),
    )
    assert response.status_code == 403
    entry = _entry(gw, response)
    assert entry["decision"] == "deny"
    assert entry["upstream"]["status"] is None  # refused before any call for data


def test_sealed_juvenile_record_neither_confirmed_nor_denied(gw: Gateway, dataset: Dataset) -> None:
    # 挂牌督办 of a case with a sealed juvenile: the committee is neither a judicial organ
    # handling the case nor a unit querying under state rules (刑事诉讼法 第286条).
    case = _case(dataset, 3)
    headers = exchange_headers(gw, "committee", "OVERSIGHT", case["court_case_number"])
    headers["X-Approval-Reference"] = quote("宁政法督〔2025〕3号")
    sealed = gw.client.get("/v1/resources/person/P0000000301", headers=headers)
    missing = gw.client.get("/v1/resources/person/P0000000399", headers=headers)
    assert sealed.status_code == missing.status_code == 404
    strip = ("request_id", "instance", "detail")
    assert {k: v for k, v in sealed.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }
    assert sealed.json()["detail"].replace("P0000000301", "X") == missing.json()["detail"].replace(
        "P0000000399", "X"
    )
    assert sealed.headers["content-type"] == missing.headers["content-type"]
    # the audit log still records the truth
    assert _entry(gw, sealed)["decision"] == "deny"
    assert _entry(gw, missing)["decision"] == "allow"


def test_exception_lifts_the_sealed_record_for_trial(gw: Gateway, dataset: Dataset) -> None:
    # The case is closed now: the procuratorate's 审判监督 is the judicial case handling of it.
    case = _case(dataset, 3)
    response = gw.client.get(
        "/v1/resources/judgment/JD0000000301",
        headers=exchange_headers(
            gw, "procuratorate", "TRIAL_SUPERVISION", case["court_case_number"]
        ),
    )
    assert response.status_code == 200, response.text
    assert response.json()["record"]["defendant_id"] == "P0000000301"
    sealed = dataset.get("person", "P0000000301")
    assert sealed is not None
    assert sealed["juvenile_record_sealed"] is True  # the judgment is about a sealed person


def test_the_corrections_office_receives_the_whole_judgment(gw: Gateway, dataset: Dataset) -> None:
    # 社区矫正法 第20条: the 司法局 receives the judgment (the police do not list it; the
    # court's 执行通知书 makes it a party).
    case = _case(dataset, 6)  # in execution: community corrections by SF640104
    response = gw.client.get(
        "/v1/resources/judgment/JD0000000601",
        headers=exchange_headers(gw, "justice", "COMMUNITY_CORRECTION", case["court_case_number"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["record"]["summary"]  # the whole judgment, 判决主文 included


def test_masked_and_withheld_fields_are_listed(gw: Gateway, dataset: Dataset) -> None:
    case = _case(dataset, 2)  # prison JY640001 executes it
    response = gw.client.get(
        "/v1/resources/person/P0000000201",
        headers=exchange_headers(gw, "prison", "SENTENCE_EXECUTION", case["court_case_number"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["masked"] or body["withheld"]
    for name in body["masked"]:
        assert name in body["record"]
    for name in body["withheld"]:
        assert name not in body["record"]
    entry = _entry(gw, response)
    assert entry["fields"]["masked"] == body["masked"]
    assert entry["fields"]["withheld"] == body["withheld"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "field"),
    [
        ("/v1/resources/no_such_type/X1", {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"}, 404, None),
        ("/v1/resources/case/C00000020", {"X-Operator-Id": "o1"}, 400, None),
        ("/v1/resources/case/C00000020", {"X-Purpose": "FUN", "X-Operator-Id": "o1"}, 400, None),
        ("/v1/resources/case/C00000020", {"X-Purpose": "TRIAL"}, 400, None),
        (
            "/v1/resources/case/bad..id!",
            {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"},
            422,
            "record_id",
        ),
        (
            "/v1/resources/case?case_name=x",
            {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"},
            422,
            "case_name",
        ),
        (
            "/v1/resources/case/C00000020?fields=nope",
            {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"},
            422,
            "fields",
        ),
    ],
)
def test_bad_requests_are_refused_and_audited(
    gw: Gateway, path: str, headers: dict[str, str], status: int, field: str | None
) -> None:
    response = gw.client.get(path, headers={**gw.auth("court"), **headers})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in {e["field"] for e in response.json()["errors"]}
    entry = _entry(gw, response)
    assert entry["status"] == status
    assert entry["decision"] == "invalid"


def test_raw_utf8_case_number_gets_400(gw: Gateway) -> None:
    headers: dict[str, str | bytes] = {**gw.auth("court"), "X-Purpose": "TRIAL"}
    headers["X-Operator-Id"] = "o1"
    headers["X-Case-Number"] = CourtCase.encode("utf-8")  # what curl sends: raw UTF-8 bytes
    response = gw.client.get("/v1/resources/case/C00000020", headers=headers)
    assert response.status_code == 400
    assert "percent-encoded" in response.json()["detail"]
    assert "X-Audit-Index" in response.headers


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_unauthenticated_requests_are_refused_and_audited_in_aggregate(
    gw: Gateway, token: str | None
) -> None:
    """No accountable caller: no entry of its own (a flood would fill the log), counted in
    the anonymous aggregate of its source and route instead."""
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    runtime.anonymous.flush(everything=True)
    headers = {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for _ in range(3):
        response = gw.client.get("/v1/resources/case/C00000020", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "X-Audit-Index" not in response.headers
    [written] = runtime.anonymous.flush(everything=True)
    document = AuditService(runtime.engine).entry(written.result(timeout=30)).document
    assert document["kind"] == "anonymous"
    assert document["requester"] == {"agency": None, "client_id": None, "operator_id": None}
    aggregate = document["aggregate"]
    assert aggregate["route"] == "GET /v1/resources/{resource}/{record_id}"
    assert (aggregate["source"], aggregate["count"]) == ("testclient", 3)
    assert aggregate["statuses"] == {"401": 3}
    assert document["decision"] == "invalid"


def test_wrong_scope_is_refused_and_audited(gw: Gateway) -> None:
    response = gw.client.get(
        "/v1/resources/case/C00000020",
        headers={**gw.auth("regulator"), "X-Purpose": "TRIAL", "X-Operator-Id": "o1"},
    )
    assert response.status_code == 403
    assert "insufficient_scope" in response.headers["www-authenticate"]
    assert "X-Audit-Index" in response.headers


def test_audit_unavailable_fails_closed(exchange_gateway: Callable[..., Gateway]) -> None:
    gw = exchange_gateway()
    gw.client.app.state.runtime.audit_writer.stop()  # type: ignore[attr-defined]
    response = gw.client.get(
        "/v1/resources/case/C00000020",
        headers=exchange_headers(gw, "court", "TRIAL", CourtCase),
    )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "case_name" not in response.text
    assert "X-Audit-Index" not in response.headers


def test_catalog_serves_the_standard(gw: Gateway) -> None:
    response = gw.client.get("/v1/catalog", headers=gw.auth("court"))
    assert response.status_code == 200
    catalog = response.json()
    resources = {r["name"]: r for r in catalog["resources"]}
    assert {"case", "person", "judgment", "technical_investigation"} <= set(resources)
    id_number = next(f for f in resources["person"]["fields"] if f["name"] == "id_number")
    assert id_number["personal_info"] is True
    assert id_number["grade"] in {"核心", "重要", "一般"}
    assert id_number["sharing"] in {"无条件", "有条件", "不予共享"}
    assert "TRIAL" in {p["code"] for p in catalog["purposes"]}
    assert gw.client.get("/v1/catalog").status_code == 401
    assert gw.client.get("/v1/catalog", headers=gw.auth("regulator")).status_code == 403


def test_state_secret_case_is_concealed_for_fetch_and_search(
    exchange_gateway: Callable[..., Gateway], dataset: Dataset
) -> None:
    gateway = exchange_gateway()
    gateway.register("court_xixia", "FY640105", ["exchange"])  # handles case 13
    case = _case(dataset, 13)
    assert case["secrecy_mark"] != "NONE"
    headers = exchange_headers(gateway, "court_xixia", "TRIAL", case["court_case_number"])
    fetched = gateway.client.get("/v1/resources/person/P0000001301", headers=headers)
    assert fetched.status_code == 404
    searched = gateway.client.get("/v1/resources/person?case_id=C00000013", headers=headers)
    assert searched.status_code == 200
    body = searched.json()
    assert body["records"] == []
    assert body["next_cursor"] is None
    entry = _entry(gateway, searched)
    assert entry["decision"] == "deny"
    assert entry["record_ids"]  # the audit log records what was concealed
    assert entry["fields"]["released"] == []
