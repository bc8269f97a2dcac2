"""Extending a delivery's statutory deadline over HTTP: ``POST /v1/deliveries/{id}/extensions``.

The indictment (提起公诉) gives the court two months to judge, at most three, and three more
with the higher court's approval (刑事诉讼法 第208条第1款): the court, which bears the duty,
extends; no one else does, and nothing is written on a refusal.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.test_api import _body, _counts, _entry, _headers, _send


@pytest.fixture
def gw(exchange_gateway: Any, database_url: str) -> Gateway:
    gateway: Gateway = exchange_gateway(database_url)
    return gateway


def _created(gw: Gateway, dataset: Dataset) -> dict[str, Any]:
    created = _send(gw, dataset, _body(dataset))
    assert created.status_code == 201, created.text
    document: dict[str, Any] = created.json()
    return document


def _extend(gw: Gateway, delivery_id: str, body: Any, client: str = "court") -> Any:
    purpose = {"court": "TRIAL", "procuratorate": "PROSECUTION_REVIEW"}.get(
        client, "SENTENCE_EXECUTION"
    )
    headers = _headers(gw, client, purpose, None)
    url = f"/v1/deliveries/{delivery_id}/extensions"
    if isinstance(body, bytes):
        return gw.client.post(url, content=body, headers=headers)
    return gw.client.post(url, json=body, headers=headers)


def _due(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["due_at"])


def test_the_court_extends_by_what_the_law_allows_once_each(gw: Gateway, dataset: Dataset) -> None:
    doc = _created(gw, dataset)
    first = _extend(gw, doc["id"], {"extension": "up_to_three_months", "reason": "案情复杂"})
    assert first.status_code == 200, first.text
    extended = first.json()
    assert _due(extended) > _due(doc)
    event = extended["events"][-1]
    assert event["type"] == "extended"
    assert event["audit_index"] == int(first.headers["X-Audit-Index"])
    assert event["extension"] == "up_to_three_months"
    assert event["basis"] == "刑事诉讼法 第208条第1款"
    assert event["reason"] == "案情复杂"
    assert event["due_at"] == extended["due_at"]
    entry = _entry(gw, first)
    assert (entry["kind"], entry["decision"]) == ("delivery", "allow")
    assert entry["action"] == {
        "event": "extended",
        "delivery": doc["id"],
        "extension": "up_to_three_months",
    }

    # The second extension the law allows moves the deadline again; the first cannot repeat.
    second = _extend(
        gw, doc["id"], {"extension": "higher_court_approval", "reason": "经上一级人民法院批准"}
    )
    assert second.status_code == 200, second.text
    assert _due(second.json()) > _due(extended)
    before = _counts(gw)
    again = _extend(gw, doc["id"], {"extension": "up_to_three_months", "reason": "再次"})
    assert again.status_code == 422, again.text
    assert again.json()["errors"][0]["field"] == "extension"
    assert "already applied" in again.json()["detail"]
    assert _counts(gw) == before
    assert _entry(gw, again)["decision"] == "invalid"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        ([], "body"),
        ({"reason": "x"}, "extension"),
        ({"extension": "", "reason": "x"}, "extension"),
        ({"extension": "up_to_three_months"}, "reason"),
        ({"extension": "up_to_three_months", "reason": "   "}, "reason"),
        ({"extension": "up_to_three_months", "reason": "x" * 501}, "reason"),
        ({"extension": "up_to_three_months", "reason": "x", "due_at": "2099-01-01"}, "due_at"),
        ({"extension": "forever", "reason": "x"}, "extension"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field_with_nothing_written(
    gw: Gateway, dataset: Dataset, body: Any, field: str
) -> None:
    doc = _created(gw, dataset)
    before = _counts(gw)
    response = _extend(gw, doc["id"], body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert _counts(gw) == before
    after = gw.client.get(
        f"/v1/deliveries/{doc['id']}", headers=_headers(gw, "court", "TRIAL", None)
    ).json()
    assert after["due_at"] == doc["due_at"]


def test_only_the_duty_bearer_extends_and_a_third_party_sees_nothing(
    gw: Gateway, dataset: Dataset
) -> None:
    doc = _created(gw, dataset)
    body = {"extension": "up_to_three_months", "reason": "x"}
    before = _counts(gw)
    sender = _extend(gw, doc["id"], body, client="procuratorate")
    assert sender.status_code == 403, sender.text
    assert "only the recipient" in sender.json()["detail"]
    # A third party: the same 404 as for a delivery that does not exist.
    missing_id = "DL" + "0" * 24
    answers = []
    for target in (doc["id"], missing_id):
        response = _extend(gw, target, body, client="prison")
        problem = response.json()
        answers.append(
            (response.status_code, problem["title"], problem["detail"].replace(target, "<id>"))
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert _counts(gw) == before


def test_an_answered_delivery_is_not_extended(gw: Gateway, dataset: Dataset) -> None:
    doc = _created(gw, dataset)
    answered = gw.client.post(
        f"/v1/deliveries/{doc['id']}/receipt",
        json={"decision": "accepted"},
        headers=_headers(gw, "court", "TRIAL", None),
    )
    assert answered.status_code == 200, answered.text
    before = _counts(gw)
    response = _extend(gw, doc["id"], {"extension": "up_to_three_months", "reason": "x"})
    assert response.status_code == 409, response.text
    assert "already accepted" in response.json()["detail"]
    assert _counts(gw) == before


def test_a_deadline_that_has_passed_is_not_extended(gw: Gateway, dataset: Dataset) -> None:
    """Extended afterwards, a late answer would count as on time: the overdue figures would
    lose it. An extension is made before the deadline runs out."""
    doc = _created(gw, dataset)
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    due = _due(doc)
    runtime.deliveries.clock = lambda: due + timedelta(seconds=1)
    before = _counts(gw)
    response = _extend(gw, doc["id"], {"extension": "up_to_three_months", "reason": "x"})
    assert response.status_code == 409, response.text
    assert "deadline passed" in response.json()["detail"]
    assert _counts(gw) == before
    runtime.deliveries.clock = lambda: due - timedelta(seconds=1)
    assert (
        _extend(gw, doc["id"], {"extension": "up_to_three_months", "reason": "x"}).status_code
        == 200
    )
