"""The whole cycle: refused, applied for, approved, released (naming the grant), revoked,
refused again; each step an audit entry."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.sharing.conftest import (
    JUDGMENT,
    OTHER_JUDGMENT,
    application,
    case_number,
    exchange_headers,
)


def test_the_whole_cycle(
    sharing_gateway: Callable[..., Gateway], database_url: str, dataset: Dataset
) -> None:
    gw = sharing_gateway(database_url)
    http = gw.client
    number = case_number(dataset)
    headers = exchange_headers(gw, "procuratorate", number)
    fetch = f"/v1/resources/judgment/{JUDGMENT}?fields=summary,judgment_date"

    before = http.get(fetch, headers=headers)
    assert before.status_code == 200, before.text
    assert "summary" not in before.json()["record"]
    assert "summary" in before.json()["withheld"]
    assert "grant_ids" not in before.json()

    applied = http.post("/v1/sharing/applications", headers=headers, json=application())
    assert applied.status_code == 201, applied.text
    app = applied.json()
    assert app["status"] == "pending"
    assert app["owner_agency"] == "FY640104"
    assert app["due_at"].endswith("Z")
    assert "X-Audit-Index" in applied.headers
    app_id = app["id"]

    mine = http.get("/v1/sharing/applications?role=mine&status=pending", headers=headers)
    assert [a["id"] for a in mine.json()["applications"]] == [app_id]
    review = http.get(
        "/v1/sharing/applications?role=review", headers=gw.auth("court_reviewer")
    ).json()["applications"]
    assert [a["id"] for a in review] == [app_id]

    # Still withheld while pending.
    assert "summary" not in http.get(fetch, headers=headers).json()["record"]

    approved = http.post(
        f"/v1/sharing/applications/{app_id}/approve",
        headers=gw.auth("court_reviewer"),
        json={"comment": "同意", "days": 3},
    )
    assert approved.status_code == 200, approved.text
    grant = approved.json()["grant"]
    assert approved.json()["status"] == "approved"
    assert approved.json()["granted_days"] == 3

    after = http.get(fetch, headers=headers)
    assert after.status_code == 200, after.text
    body = after.json()
    assert body["record"]["summary"]
    assert body["grant_ids"] == [grant["id"]]
    assert "summary" not in body["withheld"]

    # Exactly its scope: another purpose, or a search of the case, uses no grant.
    other_purpose = exchange_headers(gw, "procuratorate", number, "COMMUTATION_PAROLE")
    assert "summary" not in http.get(fetch, headers=other_purpose).json().get("record", {})
    other_record = http.get(
        f"/v1/resources/judgment/{OTHER_JUDGMENT}?fields=summary", headers=headers
    )
    assert other_record.json()["record"]["summary"]  # a whole-case grant: every record

    revoked = http.post(
        f"/v1/sharing/applications/{app_id}/revoke",
        headers=gw.auth("court_reviewer"),
        json={"reason": "监督已完成"},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    again = http.get(fetch, headers=headers)
    assert "summary" not in again.json()["record"]
    assert "grant_ids" not in again.json()

    # The regulator sees every step in the audit log.
    entries = http.get("/v1/audit/entries?kind=sharing", headers=gw.auth("regulator")).json()[
        "entries"
    ]
    actions = [(e.get("action") or {}).get("action") for e in entries if e["kind"] == "sharing"]
    assert {"apply", "approve", "revoke"} <= set(actions)
    used = http.get("/v1/audit/entries?kind=exchange", headers=gw.auth("regulator")).json()
    assert any((e.get("action") or {}).get("grant_ids") == [grant["id"]] for e in used["entries"])
