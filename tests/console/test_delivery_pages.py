"""Deliveries in the console: a reviewer reads their agency's deliveries read-only, through
DeliveryService.handle (the API's audit entries and 404s); a regulator sees every agency's
overdue figures; nobody else sees any."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from gateway.audit.writer import AuditUnavailable
from tests.console.conftest import Console, insert_delivery

COURT, POLICE, PROCURATORATE = "FY640104", "GA640104", "JC640104"


def add_delivery(
    console: Console,
    sender: str,
    recipient: str,
    *,
    overdue: bool = False,
    kind: str = "indictment",
) -> str:
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    return insert_delivery(runtime.session_factory, sender, recipient, overdue=overdue, kind=kind)


def delivery_entries(console: Console, client_id: str) -> list[dict[str, Any]]:
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT leaf FROM audit_entries WHERE kind = 'delivery' AND client_id = :c"),
                {"c": client_id},
            ).all()
    finally:
        engine.dispose()
    return [json.loads(bytes(r[0])) for r in rows]


def test_a_reviewer_reads_its_agency_deliveries_audited(console_any_db: Console) -> None:
    console = console_any_db  # SQLite and PostgreSQL
    late = add_delivery(console, PROCURATORATE, COURT, overdue=True)
    fresh = add_delivery(console, PROCURATORATE, COURT)
    sent = add_delivery(console, COURT, POLICE)
    zhou = console.signed_in("zhou")  # sharing:review of the court
    assert delivery_entries(console, "user:zhou") == []
    blank = zhou.get("/console/deliveries")
    assert blank.status_code == 200
    assert "请选择查阅用途" in blank.text
    assert delivery_entries(console, "user:zhou") == []  # nothing read, nothing recorded
    inbound = zhou.get("/console/deliveries?purpose=TRIAL&role=inbound").text
    assert f'id="delivery-{late}"' in inbound
    assert f'id="delivery-{fresh}"' in inbound
    assert sent not in inbound
    assert "not shown" not in inbound
    overdue = zhou.get("/console/deliveries?purpose=TRIAL&role=inbound&overdue=true").text
    assert f'id="delivery-{late}"' in overdue
    assert fresh not in overdue
    assert "已超期" in overdue
    outbound = zhou.get("/console/deliveries?purpose=TRIAL&role=outbound").text
    assert f'id="delivery-{sent}"' in outbound
    assert late not in outbound
    one = zhou.get(f"/console/deliveries/{late}?purpose=TRIAL")
    assert one.status_code == 200, one.text
    assert "<td>发出</td>" in one.text  # the event history
    assert "尚未签收或退回" in one.text
    assert "not shown" not in one.text
    entries = delivery_entries(console, "user:zhou")
    assert [e["action"]["event"] for e in entries] == ["listed", "listed", "listed", "read"]
    assert {e["purpose"] for e in entries} == {"TRIAL"}
    assert {e["requester"]["operator_id"] for e in entries} == {"user:zhou"}
    assert set(entries[0]["record_ids"]) == {late, fresh}  # the deliveries shown
    assert entries[-1]["record_ids"] == [late]


def test_another_agency_sees_nothing_of_a_delivery(console_any_db: Console) -> None:
    console = console_any_db  # SQLite and PostgreSQL
    delivery = add_delivery(console, PROCURATORATE, COURT, overdue=True)
    sun = console.signed_in("sun")  # sharing:review of the police: not a party
    for role in ("inbound", "outbound"):
        for overdue in ("", "true"):
            page = sun.get(
                f"/console/deliveries?purpose=INVESTIGATION&role={role}&overdue={overdue}"
            )
            assert page.status_code == 200
            assert delivery not in page.text
            assert "没有符合条件的送达" in page.text
    theirs = sun.get(f"/console/deliveries/{delivery}?purpose=INVESTIGATION")
    missing = sun.get(f"/console/deliveries/DL{'0' * 24}?purpose=INVESTIGATION")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text.replace(delivery, "X") == missing.text.replace(f"DL{'0' * 24}", "X")
    assert theirs.headers["x-audit-index"].isdigit()
    refused = [e for e in delivery_entries(console, "user:sun") if e["status"] == 404]
    assert len(refused) == 2
    assert refused[0]["decision"] == "deny"


def test_only_reviewers_open_the_deliveries_pages(console: Console) -> None:
    delivery = add_delivery(console, PROCURATORATE, COURT)
    for name in ("wang", "zhang"):  # a regulator and an administrator
        client = console.signed_in(name)
        for path in (
            "/console/deliveries?purpose=TRIAL",
            f"/console/deliveries/{delivery}?purpose=TRIAL",
        ):
            page = client.get(path)
            assert page.status_code == 403, (name, path)
            assert "sharing:review" in page.text
            assert delivery not in page.text
    zhou = console.signed_in("zhou")
    assert zhou.get(f"/console/deliveries/{delivery}").status_code == 422  # no purpose
    assert zhou.get(f"/console/deliveries/{delivery}?purpose=NOPE").status_code == 422
    assert console.browser().get("/console/deliveries").url.path == "/oauth/authorize"


def test_a_regulator_sees_every_agency_overdue_deliveries(console: Console) -> None:
    add_delivery(console, PROCURATORATE, COURT, overdue=True)
    add_delivery(console, PROCURATORATE, COURT, overdue=True)
    add_delivery(console, COURT, POLICE, overdue=True, kind="judgment_execution")
    add_delivery(console, COURT, POLICE, kind="judgment_execution")
    wang = console.signed_in("wang")  # audit:read of JC640000: a party of none of them
    page = wang.get("/console/audit/stats")
    assert page.status_code == 200, page.text
    assert 'id="overdue-chart"' in page.text
    table = page.text.split('id="delivery-stats"')[1].split("</table>")[0]
    assert (
        "<tr><td>FY640104</td><td>提起公诉（indictment）</td><td>2</td><td>0</td><td>2</td>"
        in table
    )
    assert (
        "<tr><td>GA640104</td><td>判决/裁定及执行通知书（judgment_execution）</td><td>2</td><td>0</td><td>1</td>"
        in table
    )
    [entry] = delivery_entries(console, "user:wang")
    assert entry["purpose"] == "OVERSIGHT"
    assert entry["action"] == {"event": "stats", "agencies": "all"}
    assert entry["status"] == 200
    # A reviewer has no statistics page (its own agency's figures are GET /v1/deliveries/stats).
    assert console.signed_in("zhou").get("/console/audit/stats").status_code == 403


def test_nothing_is_shown_when_the_audit_log_is_down(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = add_delivery(console, PROCURATORATE, COURT)
    zhou, wang = console.signed_in("zhou"), console.signed_in("wang")
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]

    async def down(draft: Any) -> int:
        raise AuditUnavailable("down")

    monkeypatch.setattr(runtime.deliveries.audit, "append", down)
    for client, path in (
        (zhou, "/console/deliveries?purpose=TRIAL"),
        (zhou, f"/console/deliveries/{delivery}?purpose=TRIAL"),
    ):
        page = client.get(path)
        assert page.status_code == 503, (path, page.text)
        assert delivery not in page.text.replace(f"/console/deliveries/{delivery}", "")
        assert "x-audit-index" not in page.headers
    # The statistics page shows no delivery figures either (the one writer is down).
    stats = wang.get("/console/audit/stats")
    assert stats.status_code == 503
    assert 'id="delivery-stats"' not in stats.text


_AGENCIES = (COURT, POLICE, PROCURATORATE)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(_AGENCIES), st.sampled_from(_AGENCIES)).filter(
            lambda p: p[0] != p[1]
        ),
        max_size=4,  # at most 40 deliveries: one listing page (50) holds them all
    ),
    viewer=st.sampled_from(["sun", "zhou"]),
    role=st.sampled_from(["inbound", "outbound"]),
)
def test_listings_match_an_independent_oracle(
    console: Console, pairs: list[tuple[str, str]], viewer: str, role: str
) -> None:
    made = {
        add_delivery(console, sender, recipient): (sender, recipient) for sender, recipient in pairs
    }
    agency = {"sun": POLICE, "zhou": COURT}[viewer]
    # The oracle: inbound = sent to the viewer's agency, outbound = sent by it.
    expected = {
        d
        for d, (sender, recipient) in made.items()
        if (recipient if role == "inbound" else sender) == agency
    }
    page = console.signed_in(viewer).get(f"/console/deliveries?purpose=TRIAL&role={role}").text
    shown = {d for d in made if f'id="delivery-{d}"' in page}
    assert shown == expected
