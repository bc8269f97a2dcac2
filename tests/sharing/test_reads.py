"""Reading applications and the figures is an access: audited before it is answered, and a
reviewer sees its own agency's figures only (``gateway.sharing.reads``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.audit.service import AuditService
from gateway.audit.writer import AuditUnavailable
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.sharing.conftest import application, case_number, exchange_headers

APPS = "/v1/sharing/applications"


@pytest.fixture
def gw(sharing_gateway: Callable[..., Gateway]) -> Gateway:
    return sharing_gateway()


def _apply(gw: Gateway, dataset: Dataset) -> dict[str, Any]:
    headers = exchange_headers(gw, "procuratorate", case_number(dataset))
    response = gw.client.post(APPS, headers=headers, json=application())
    assert response.status_code == 201, response.text
    return dict(response.json())


def _entry(gw: Gateway, response: Any) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    service = AuditService(gw.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(index).document


def test_every_read_is_an_entry_naming_what_was_shown(gw: Gateway, dataset: Dataset) -> None:
    app = _apply(gw, dataset)
    applicant = exchange_headers(gw, "procuratorate", case_number(dataset))
    reads = {
        "read": gw.client.get(f"{APPS}/{app['id']}", headers=gw.auth("court_reviewer")),
        "list": gw.client.get(f"{APPS}?role=mine", headers=applicant),
        "stats": gw.client.get("/v1/sharing/stats", headers=gw.auth("regulator")),
    }
    for action, response in reads.items():
        assert response.status_code == 200, response.text
        entry = _entry(gw, response)
        assert (entry["kind"], entry["decision"], entry["status"]) == ("sharing", "allow", 200)
        assert entry["action"]["action"] == action
    read = _entry(gw, reads["read"])
    assert read["record_ids"] == [app["id"]]
    assert (read["requester"]["agency"], read["owner_agency"]) == ("FY640104", "FY640104")
    assert read["case_number"] == case_number(dataset)
    listed = _entry(gw, reads["list"])
    assert listed["record_ids"] == [app["id"]]
    assert listed["action"] == {"action": "list", "role": "mine", "status": None}


@pytest.mark.parametrize("path", ["{apps}/{id}", "{apps}?role=review", "/v1/sharing/stats"])
def test_nothing_is_answered_when_the_read_cannot_be_audited(
    gw: Gateway, dataset: Dataset, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    app = _apply(gw, dataset)
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]

    async def down(draft: Any) -> int:
        raise AuditUnavailable("down")

    monkeypatch.setattr(runtime.sharing.audit, "append", down)
    response = gw.client.get(
        path.format(apps=APPS, id=app["id"]), headers=gw.auth("court_reviewer")
    )
    assert response.status_code == 503, response.text
    # A problem only: nothing of the application or the figures.
    assert set(response.json()) <= {"type", "title", "status", "detail", "instance", "request_id"}
    for shown in (case_number(dataset), app["reason"], "FY640104"):
        assert shown not in response.text


def test_a_reviewer_sees_its_own_agencys_figures_and_a_regulator_all(
    gw: Gateway, dataset: Dataset
) -> None:
    _apply(gw, dataset)  # to the court of 兴庆区 (FY640104)
    owners = {
        client: [
            a["owner_agency"]
            for a in gw.client.get("/v1/sharing/stats", headers=gw.auth(client)).json()["agencies"]
        ]
        for client in ("regulator", "court_reviewer", "court_reviewer_xixia")
    }
    assert owners == {
        "regulator": ["FY640104"],
        "court_reviewer": ["FY640104"],
        "court_reviewer_xixia": [],  # another court's reviewer learns nothing of it
    }
