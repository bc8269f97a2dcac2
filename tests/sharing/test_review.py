"""Applications refused with the field named, review by the owning agency only, bad input,
expiry with a controlled clock, revocation with requests in flight, and the statistics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.sharing.conftest import JUDGMENT, application, case_number, exchange_headers

APPS = "/v1/sharing/applications"


def _apply(gw: Gateway, dataset: Dataset, **overrides: Any) -> dict[str, Any]:
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    response = gw.client.post(APPS, headers=headers, json=application(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert "Traceback" not in response.text
    assert "X-Audit-Index" in response.headers  # an identified caller's refusal is an entry
    return body


@pytest.fixture
def gw(sharing_gateway: Callable[..., Gateway]) -> Gateway:
    return sharing_gateway()


def test_fields_that_cannot_be_applied_for_are_named(gw: Gateway, dataset: Dataset) -> None:
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    # judgment_date is 无条件 and already released to the supervising procuratorate.
    body = _problem(
        gw.client.post(
            APPS, headers=headers, json=application(fields=["summary", "judgment_date"])
        ),
        422,
    )
    assert body["errors"] == [{"field": "judgment_date", "reason": "already released to you"}]
    # A 不予共享 field (person.photo-like fields differ by resource: find one in the standard).
    standard = gw.client.app.state.runtime.standard  # type: ignore[attr-defined]
    never = [
        (r.name, f.name)
        for r in standard.resources
        for f in r.fields
        if f.sharing.value == "不予共享"
    ]
    assert never
    resource, name = never[0]
    body = _problem(
        gw.client.post(APPS, headers=headers, json=application(resource=resource, fields=[name])),
        422,
    )
    assert {"field": name, "reason": "不予共享: never shared"} in body["errors"]
    # On the negative list for this requester: a person's health outside the lifted purposes.
    police_case = exchange_headers(gw, "procuratorate", case_number(dataset), "PROSECUTION_REVIEW")
    body = _problem(
        gw.client.post(
            APPS,
            headers={
                **police_case,
                "X-Case-Number": exchange_headers(
                    gw, "procuratorate", str(dataset.case(144).case["police_case_number"])
                )["X-Case-Number"],
            },
            json=application(resource="person", fields=["health_status"]),
        ),
        422,
    )
    assert body["errors"] == [
        {"field": "health_status", "reason": "on the negative list for this request"}
    ]


def test_bad_input_is_refused_precisely(gw: Gateway, dataset: Dataset) -> None:
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    for bad in (
        application(fields=[]),
        application(days=0),
        application(days=10_000),
        application(reason=""),
        application(reason="a\x00b"),
        application(record_ids=[]),
        application(record_ids=["../etc"]),
        {**application(), "extra": 1},
        application(fields=["no_such_field"]),
        application(days=91),
    ):
        response = gw.client.post(APPS, headers=headers, json=bad)
        _problem(response, 422)
    _problem(gw.client.post(APPS, headers=headers, content=b"{not json"), 422)
    no_case = {k: v for k, v in headers.items() if k != "X-Case-Number"}
    _problem(gw.client.post(APPS, headers=no_case, json=application()), 400)
    _problem(
        gw.client.post(APPS, headers=headers, json=application(resource="no_such_resource")), 404
    )
    # A case the requester does not handle answers like a case that is not there.
    elsewhere = exchange_headers(
        gw, "procuratorate", str(dataset.case(2).case["court_case_number"])
    )
    response = gw.client.post(APPS, headers=elsewhere, json=application())
    assert response.status_code in (403, 404), response.text
    # Scopes: a reviewer cannot apply; an applicant cannot answer; both 403.
    _problem(gw.client.post(APPS, headers=gw.auth("court_reviewer"), json=application()), 403)
    app_id = _apply(gw, dataset)["id"]
    _problem(gw.client.post(f"{APPS}/{app_id}/approve", headers=headers, json={"days": 1}), 403)
    reviewer = gw.auth("court_reviewer")
    _problem(gw.client.post(f"{APPS}/{app_id}/approve", headers=reviewer, json={"days": 6}), 422)
    _problem(gw.client.post(f"{APPS}/{app_id}/refuse", headers=reviewer, json={}), 422)
    _problem(gw.client.post(f"{APPS}/{app_id}/refuse", headers=reviewer, json={"reason": ""}), 422)
    _problem(gw.client.get(f"{APPS}?role=someone", headers=reviewer), 422)
    _problem(gw.client.get(f"{APPS}?role=review&status=lost", headers=reviewer), 422)
    _problem(gw.client.get(f"{APPS}/not-an-id", headers=reviewer), 422)
    missing = "00000000-0000-4000-8000-000000000000"
    _problem(gw.client.get(f"{APPS}/{missing}", headers=reviewer), 404)
    # Nothing to revoke while pending.
    _problem(gw.client.post(f"{APPS}/{app_id}/revoke", headers=reviewer, json={}), 409)


def test_only_the_owning_agencys_reviewers_answer(gw: Gateway, dataset: Dataset) -> None:
    app = _apply(gw, dataset)
    other = gw.auth("court_reviewer_xixia")  # a court, but not the owning one
    body = _problem(
        gw.client.post(f"{APPS}/{app['id']}/approve", headers=other, json={"days": 1}), 403
    )
    assert "FY640104" in body["detail"]
    _problem(gw.client.post(f"{APPS}/{app['id']}/refuse", headers=other, json={"reason": "x"}), 403)
    assert gw.client.get(f"{APPS}?role=review", headers=other).json()["applications"] == []
    _problem(gw.client.get(f"{APPS}/{app['id']}", headers=other), 404)
    # The applicant's own agency's reviewer: not the owner, and self-review besides.
    own = gw.auth("procuratorate_reviewer")
    _problem(gw.client.post(f"{APPS}/{app['id']}/approve", headers=own, json={"days": 1}), 403)
    # The regulator sees it; the owner refuses it with reasons the applicant reads.
    seen = gw.client.get(f"{APPS}/{app['id']}", headers=gw.auth("regulator"))
    assert seen.status_code == 200
    refused = gw.client.post(
        f"{APPS}/{app['id']}/refuse",
        headers=gw.auth("court_reviewer"),
        json={"reason": "与执行监督无关"},
    )
    assert refused.status_code == 200, refused.text
    mine = gw.client.get(
        f"{APPS}/{app['id']}", headers=exchange_headers(gw, "procuratorate", case_number(dataset))
    ).json()
    assert mine["status"] == "refused"
    assert mine["refusal_reason"] == "与执行监督无关"
    # Answered once only.
    _problem(
        gw.client.post(
            f"{APPS}/{app['id']}/approve", headers=gw.auth("court_reviewer"), json={"days": 1}
        ),
        409,
    )


def test_self_review_is_refused(gw: Gateway, dataset: Dataset) -> None:
    # The procuratorate applies for its own agency's indictment field: its reviewer may not
    # answer its own agency's application.
    gw.register("police_reviewer", "GA640104", ["sharing:review"])
    gw.register("police_applicant", "GA640104", ["exchange"])
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    app = _apply(gw, dataset)
    # Make the application the police's own (as if the police applied to itself).
    from sqlalchemy import update

    from gateway.db import session_scope
    from gateway.sharing.models import SharingApplication

    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(SharingApplication)
            .where(SharingApplication.id == app["id"])
            .values(requester_agency="GA640104", owner_agency="GA640104")
        )
    body = _problem(
        gw.client.post(
            f"{APPS}/{app['id']}/approve", headers=gw.auth("police_reviewer"), json={"days": 1}
        ),
        403,
    )
    assert "self-review" in body["detail"]


def test_a_grant_expires_on_time_with_a_controlled_clock(gw: Gateway, dataset: Dataset) -> None:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    grants = runtime.sharing.grants
    now = [datetime.now(UTC)]
    grants.clock = lambda: now[0]
    app = _apply(gw, dataset, days=2)
    gw.client.post(
        f"{APPS}/{app['id']}/approve", headers=gw.auth("court_reviewer"), json={"days": 1}
    )
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    fetch = f"/v1/resources/judgment/{JUDGMENT}?fields=summary"
    assert "summary" in gw.client.get(fetch, headers=headers).json()["record"]
    now[0] += timedelta(days=1) - timedelta(seconds=1)
    assert "summary" in gw.client.get(fetch, headers=headers).json()["record"]
    now[0] += timedelta(seconds=1)  # the window is [from, until): over
    after = gw.client.get(fetch, headers=headers)
    assert after.status_code == 403 or "summary" not in after.json()["record"], after.text
    assert gw.client.get(f"{APPS}/{app['id']}", headers=headers).json()["status"] == "expired"
    # The expiry is an audit entry, written once (by the follower's next pass).
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    expired: list[dict[str, Any]] = []
    while not expired and datetime.now(UTC) < deadline:
        entries = gw.client.get(
            "/v1/audit/entries?kind=sharing", headers=gw.auth("regulator")
        ).json()["entries"]
        expired = [e for e in entries if (e.get("action") or {}).get("action") == "expire"]
        threading.Event().wait(0.2)
    assert len(expired) == 1
    assert expired[0]["action"]["application_id"] == app["id"]


def test_revocation_while_requests_are_in_flight(gw: Gateway, dataset: Dataset) -> None:
    """A request decided under a grant that is revoked before it answers releases nothing."""
    app = _apply(gw, dataset)
    gw.client.post(
        f"{APPS}/{app['id']}/approve", headers=gw.auth("court_reviewer"), json={"days": 1}
    )
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    fetch = f"/v1/resources/judgment/{JUDGMENT}?fields=summary"
    adapters = runtime.exchange.adapters
    original = adapters.fetch
    entered, release = threading.Event(), threading.Event()

    async def slow_fetch(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return await original(*args, **kwargs)

    adapters.fetch = slow_fetch
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(gw.client.get(fetch, headers=headers)))
    worker.start()
    assert entered.wait(10)
    revoked = gw.client.post(
        f"{APPS}/{app['id']}/revoke", headers=gw.auth("court_reviewer"), json={"reason": "撤回"}
    )
    assert revoked.status_code == 200, revoked.text
    release.set()
    worker.join(10)
    adapters.fetch = original
    in_flight = results[0]
    assert in_flight.status_code == 403, in_flight.text
    assert "summary" not in in_flight.text or "grant" in in_flight.json()["detail"]
    assert in_flight.json()["grant_ids"] == [app_grant(gw, app["id"])]
    after = gw.client.get(fetch, headers=headers)
    assert after.status_code == 403, after.text  # summary alone: nothing may be released


def app_grant(gw: Gateway, app_id: str) -> str:
    body = gw.client.get(f"{APPS}/{app_id}", headers=gw.auth("regulator")).json()
    return str(body["grant"]["id"])


def test_stats_per_owning_agency(gw: Gateway, dataset: Dataset) -> None:
    first, second, third = (_apply(gw, dataset) for _ in range(3))
    reviewer = gw.auth("court_reviewer")
    gw.client.post(f"{APPS}/{first['id']}/approve", headers=reviewer, json={"days": 1})
    gw.client.post(f"{APPS}/{second['id']}/refuse", headers=reviewer, json={"reason": "无关"})
    stats = gw.client.get("/v1/sharing/stats", headers=gw.auth("regulator"))
    assert stats.status_code == 200, stats.text
    (court,) = stats.json()["agencies"]
    assert court["owner_agency"] == "FY640104"
    assert court["applications"] == 3
    assert court["counts"] == {"approved": 1, "pending": 1, "refused": 1}
    assert court["answered"] == 2
    assert court["refusal_rate"] == 0.5
    assert court["overdue"] == 0
    assert court["median_seconds_to_answer"] is not None
    assert third["status"] == "pending"
    _problem(
        gw.client.get(
            "/v1/sharing/stats",
            headers=exchange_headers(gw, "procuratorate", case_number(dataset)),
        ),
        403,
    )


def test_an_unanswered_application_past_its_due_date_is_overdue_for_everyone(
    gw: Gateway, dataset: Dataset
) -> None:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    app = _apply(gw, dataset)
    assert app["overdue"] is False
    due = datetime.fromisoformat(app["due_at"].replace("Z", "+00:00"))
    runtime.sharing.grants.clock = lambda: due + timedelta(seconds=1)
    applicant = exchange_headers(gw, "procuratorate", case_number(dataset))
    for headers in (applicant, gw.auth("court_reviewer"), gw.auth("regulator")):
        seen = gw.client.get(f"{APPS}/{app['id']}", headers=headers).json()
        assert (seen["status"], seen["overdue"]) == ("pending", True)
    role = {"procuratorate": "mine", "court_reviewer": "review", "regulator": "review"}
    for client, listed in role.items():
        headers = applicant if client == "procuratorate" else gw.auth(client)
        page = gw.client.get(f"{APPS}?role={listed}&status=overdue", headers=headers).json()
        assert [a["id"] for a in page["applications"]] == [app["id"]], client
    (court,) = gw.client.get("/v1/sharing/stats", headers=gw.auth("regulator")).json()["agencies"]
    assert court["overdue"] == 1
    # Answered late: still counted overdue, and the answer time is in the statistics.
    answered = gw.client.post(
        f"{APPS}/{app['id']}/refuse", headers=gw.auth("court_reviewer"), json={"reason": "逾期"}
    ).json()
    assert (answered["status"], answered["overdue"]) == ("refused", True)
    (court,) = gw.client.get("/v1/sharing/stats", headers=gw.auth("regulator")).json()["agencies"]
    assert (court["overdue"], court["refusal_rate"]) == (1, 1.0)
    assert court["median_seconds_to_answer"] > 5 * 86_400 - 1
