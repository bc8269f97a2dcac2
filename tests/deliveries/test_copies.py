"""Copies (抄送) over HTTP, on SQLite and PostgreSQL.

The court sends 判决书与执行通知书 of (2020)宁0104刑初1277号 (C00000055, 执行) to 银川监狱 and
copies them to the procuratorate that supervises the execution (刑事诉讼法 第276条). Each copy
is its own delivery: stored with the main one, in the request's one audit entry, pushed, seen
by its recipient and the sender only, answered by no one, counted in no figure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.deliveries.models import Delivery, DeliveryOutbox
from gateway.policy.bundle import bundle_from_directory, load_bundle
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import Clock, pusher, received, run_once, runtime, state
from tests.deliveries.test_api import _counts, _entry, _headers
from tests.policy.conftest import POLICIES

EXECUTING = "(2020)宁0104刑初1277号"  # C00000055: FY640104, JC640104 and GA640104 handle it


@pytest.fixture
def gw(exchange_gateway: Callable[..., Gateway], database_url: str) -> Gateway:
    return exchange_gateway(database_url)


def _body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "judgment_execution",
        "to_agency": "JY640001",
        "record_id": "JD0000005501",
        "copies": ["JC640104"],
        **changes,
    }


def _send(gw: Gateway, body: Any, key: str = "copy-1") -> Any:
    headers = _headers(gw, "court", "SENTENCE_EXECUTION", EXECUTING, key)
    return gw.client.post("/v1/deliveries", json=body, headers=headers)


def _read(gw: Gateway, client: str, purpose: str, path: str) -> Any:
    return gw.client.get(path, headers=_headers(gw, client, purpose, None))


def _rows(gw: Gateway) -> list[Delivery]:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.session_factory() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.copy_of.is_(None))))


def test_a_copy_is_its_own_delivery_stored_audited_and_pushed_with_the_main_one(
    gw: Gateway, agency_urls: dict[str, str]
) -> None:
    created = _send(gw, _body())
    assert created.status_code == 201, created.text
    main = created.json()
    assert main["copy_of"] is None
    assert main["status"] == "pending"
    ((copy_ref),) = main["copies"]
    assert (copy_ref["to_agency"], copy_ref["status"]) == ("JC640104", "pending")
    copy_id = copy_ref["id"]
    # One request, one audit entry, naming both deliveries.
    entry = _entry(gw, created)
    assert entry["record_ids"] == [main["id"], copy_id]
    assert entry["decision"] == "allow"
    assert "dl.judgment-execution.copy" in entry["rule_ids"]
    assert "jc.execution-supervision.judgment-document" in entry["rule_ids"]
    copy_row, main_row = _rows(gw)
    assert (copy_row.id, copy_row.copy_of, main_row.copy_of) == (copy_id, main["id"], None)
    assert copy_row.content == main_row.content
    assert copy_row.content_sha256 == main_row.content_sha256
    assert (copy_row.kind, copy_row.from_agency, copy_row.case_number) == (
        "judgment_execution",
        "FY640104",
        EXECUTING,
    )
    assert main_row.due_at is not None
    assert copy_row.due_at is None
    # The outbox pushes each, under its own id, once.
    outbox = pusher(gw, Clock(datetime.now(UTC) + timedelta(minutes=1)))
    assert run_once(gw, outbox) == 2
    assert run_once(gw, outbox) == 0
    assert state(gw, copy_id)[0::2] == ("delivered", "done")
    (pushed,) = received(agency_urls, "procuratorate", copy_id)
    assert pushed["document"]["documentType"] == "CSZX"  # 抄送: the procuratorate's own code
    assert pushed["document"]["content"]["summary"].startswith("被告人高志俊犯抢劫罪")
    # The same key and body: the same delivery, its copy with it, nothing new.
    again = _send(gw, _body())
    assert again.status_code == 201
    assert again.json()["id"] == main["id"]
    assert [c["id"] for c in again.json()["copies"]] == [copy_id]
    assert len(_rows(gw)) == 2
    # The copy's recipient and the sender see it; the main recipient and anyone else: 404.
    seen = _read(gw, "procuratorate", "EXECUTION_SUPERVISION", f"/v1/deliveries/{copy_id}")
    assert seen.status_code == 200, seen.text
    copy = seen.json()
    assert (copy["copy_of"], copy["status"], copy["due_at"], copy["copies"]) == (
        main["id"],
        "delivered",
        None,
        [],
    )
    court = _read(gw, "court", "SENTENCE_EXECUTION", f"/v1/deliveries/{copy_id}")
    assert court.status_code == 200
    for client, purpose in (("prison", "SENTENCE_EXECUTION"), ("justice", "COMMUNITY_CORRECTION")):
        hidden = _read(gw, client, purpose, f"/v1/deliveries/{copy_id}")
        missing = _read(gw, client, purpose, "/v1/deliveries/DL000000000000000000000000")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"].replace(copy_id, "X") == missing.json()["detail"].replace(
            "DL000000000000000000000000", "X"
        )
    main_path = f"/v1/deliveries/{main['id']}"
    hidden_main = _read(gw, "procuratorate", "EXECUTION_SUPERVISION", main_path)
    assert hidden_main.status_code == 404  # a copy shows no more than the copy
    inbound = _read(gw, "procuratorate", "EXECUTION_SUPERVISION", "/v1/deliveries?role=inbound")
    assert [d["id"] for d in inbound.json()["deliveries"]] == [copy_id]
    # No answer to a copy: 409, nothing changed; the main delivery is answered as ever.
    answer = gw.client.post(
        f"/v1/deliveries/{copy_id}/receipt",
        headers=_headers(gw, "procuratorate", "EXECUTION_SUPERVISION", None),
        json={"decision": "accepted"},
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["copy_of"] == main["id"]
    assert state(gw, copy_id)[0] == "delivered"
    # No deadline to extend.
    extended = gw.client.post(
        f"/v1/deliveries/{copy_id}/extensions",
        headers=_headers(gw, "court", "SENTENCE_EXECUTION", None),
        json={"extension": "x", "reason": "r"},
    )
    assert extended.status_code == 422
    # The figures: the copy is no unanswered delivery of the procuratorate's.
    rows = _read(gw, "court", "SENTENCE_EXECUTION", "/v1/deliveries/stats").json()["figures"]
    assert {(r["agency"], r["kind"]) for r in rows} == {("JY640001", "judgment_execution")}
    mine = _read(gw, "procuratorate", "EXECUTION_SUPERVISION", "/v1/deliveries/stats")
    assert mine.json()["figures"] == []
    overdue = _read(
        gw, "procuratorate", "EXECUTION_SUPERVISION", "/v1/deliveries?role=inbound&overdue=true"
    )
    assert overdue.json()["deliveries"] == []


@pytest.mark.parametrize(
    ("copies", "field", "reason"),
    [
        ("JC640104", "copies", "a list"),
        (["XX000000"], "copies[0]", "not an agency"),
        (["JY640001"], "copies[0]", "the recipient already receives"),
        (["FY640104"], "copies[0]", "does not copy itself"),
        (["JC640104", "JC640104"], "copies[1]", "listed twice"),
        (["JC640104", "GA640104"], "copies[1]", "is copied to: procuratorate"),
        ([7], "copies[0]", "not an agency"),
    ],
)
def test_bad_copies_are_refused_naming_the_copy_and_nothing_is_stored(
    gw: Gateway, copies: Any, field: str, reason: str
) -> None:
    before = _counts(gw)
    refused = _send(gw, _body(copies=copies))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert errors[0]["field"] == field, errors
    assert reason in errors[0]["reason"], errors
    assert _counts(gw) == before
    assert _entry(gw, refused)["decision"] == "invalid"


def test_a_copy_its_agency_may_not_receive_refuses_the_whole_request(
    gw: Gateway, dataset: Dataset
) -> None:
    """JC640105 (西夏区) neither handles the case nor is stationed at the prison: refused,
    whole, before anything is stored; being named a copy makes it no party."""
    before = _counts(gw)
    refused = _send(gw, _body(copies=["JC640104", "JC640105"]))
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert (problem["copy"], problem["to_agency"]) == ("copies[1]", "JC640105")
    assert "copies[1] (JC640105)" in problem["detail"]
    assert _counts(gw) == before  # no main delivery, no copy
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.session_factory() as session:
        assert session.scalars(select(DeliveryOutbox)).all() == []
    assert _entry(gw, refused)["decision"] == "deny"


def test_a_copy_is_refused_with_the_field_when_its_agency_may_not_receive_it_whole(
    gw: Gateway,
) -> None:
    """The negative list withholds the 判决主文 from procuratorates (a test rule): the copy to
    the procuratorate is refused naming ``summary``, and nothing is stored, not even the main
    delivery to the prison, which the rule does not touch."""
    files = bundle_from_directory(POLICIES)
    files["negative_list/test_no_summary.yaml"] = _NO_SUMMARY_FOR_THE_PROCURATORATE
    rt = runtime(gw)
    rt.policy.current = load_bundle(files, rt.standard, run_tests=False).engine
    before = _counts(gw)
    refused = _send(gw, _body(), key="copy-field")
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert (problem["copy"], problem["to_agency"]) == ("copies[0]", "JC640104")
    assert "summary" in problem["fields"]
    assert "refused, not stripped" in problem["detail"]
    assert _counts(gw) == before


_NO_SUMMARY_FOR_THE_PROCURATORATE = """\
description: 测试：判决主文不再提供给检察院。
negative_list:
  - id: nl.test.no-summary-for-the-procuratorate
    description: 判决主文不提供给检察院（测试用）。
    resource: judgment
    condition: request.requester_kind == "procuratorate"
    action: withhold_fields
    fields: [summary]
    legal_basis: 测试
"""


def test_each_copy_is_decided_again_for_its_own_recipient_before_its_push(
    gw: Gateway, agency_urls: dict[str, str]
) -> None:
    """The negative list is tightened for the procuratorate after the request: the outbox
    decides each stored delivery again for ITS recipient. The prison's goes; the copy does not
    (failed, nothing sent); the tightening that does not touch the prison leaves it alone."""
    created = _send(gw, _body(), key="copy-recheck")
    assert created.status_code == 201, created.text
    main_id = created.json()["id"]
    (copy_ref,) = created.json()["copies"]
    files = bundle_from_directory(POLICIES)
    files["negative_list/test_no_summary.yaml"] = _NO_SUMMARY_FOR_THE_PROCURATORATE
    rt = runtime(gw)
    rt.policy.current = load_bundle(files, rt.standard, run_tests=False).engine
    outbox = pusher(gw, Clock(datetime.now(UTC) + timedelta(minutes=1)))
    assert run_once(gw, outbox) == 1  # the main delivery only
    assert state(gw, main_id)[0] == "delivered"
    status, events, _ = state(gw, copy_ref["id"])
    assert status == "failed"
    assert events[-1]["type"] == "failed"
    assert received(agency_urls, "procuratorate", copy_ref["id"]) == []
