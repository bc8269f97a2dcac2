"""Regulators' statistics and export in the console: the audit service's answers, each query
an audit entry written before the answer."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

from sqlalchemy import create_engine, text

from tests.console.conftest import Console, insert_application


def _queries(console: Console) -> list[str]:
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT leaf FROM audit_entries WHERE kind = 'audit_query' "
                    "AND client_id = 'user:wang' AND status = 200"
                )
            ).all()
    finally:
        engine.dispose()
    return [json.loads(bytes(r[0]))["action"]["route"] for r in rows]


def _denied(console: Console, client_id: str, status: int, detail: str | None = None) -> None:
    """An exchange entry of the police (GA640104), denied."""
    from gateway.audit.entry import AuditKind, Decision, EntryDraft

    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    runtime.audit_writer.append_blocking(
        EntryDraft(
            kind=AuditKind.EXCHANGE,
            client_id=client_id,
            requester_agency="GA640104",
            decision=Decision.DENY,
            status=status,
            resource="person",
            purpose="INVESTIGATION",
            detail=detail,
        )
    )


def test_stats_by_agency_over_time_with_charts(console: Console) -> None:
    console.signed_in("zhang")  # an entry of ZF640000
    wang = console.signed_in("wang")
    page = wang.get("/console/audit/stats?group=requester&interval=day")
    assert page.status_code == 200, page.text
    assert 'id="requests-chart"' in page.text
    assert 'id="denials-chart"' in page.text
    # The two sign-ins: entries of ZF640000 and JC640000, today.
    assert "ZF640000" in page.text
    assert "JC640000" in page.text
    assert "/console/audit/stats" in _queries(console)
    assert 'id="sharing-stats"' in page.text or "尚无申请" in page.text
    bad = wang.get("/console/audit/stats?group=nope")
    assert bad.status_code == 422
    assert bad.headers["x-audit-index"].isdigit()


def test_export_csv_and_jsonl(console: Console) -> None:
    zhang = console.signed_in("zhang")  # an entry of ZF640000
    wang = console.signed_in("wang")
    exported = wang.get("/console/audit/export?format=csv&requester_agency=ZF640000")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows
    assert {r["requester_agency"] for r in rows} == {"ZF640000"}
    lines = wang.get("/console/audit/export?format=jsonl").text.splitlines()
    assert all(json.loads(line)["index"] >= 0 for line in lines)
    assert _queries(console).count("/console/audit/export") == 2
    assert wang.get("/console/audit/export?format=xml").status_code == 422
    assert zhang.get("/console/audit/export").status_code == 403


def test_alerts_name_a_probing_caller(console: Console) -> None:
    for _ in range(3):  # a caller refused three times out of three
        _denied(console, "probe-client", 403)
    wang = console.signed_in("wang")
    page = wang.get("/console/audit/alerts?threshold=0.5&min_requests=3")
    assert page.status_code == 200, page.text
    assert "probe-client" in page.text
    assert "GA640104" in page.text
    assert "/console/audit/alerts" in _queries(console)
    assert "probe-client" not in wang.get("/console/audit/alerts?min_requests=4").text
    bad = wang.get("/console/audit/alerts?threshold=2")
    assert bad.status_code == 422
    assert bad.headers["x-audit-index"].isdigit()


def test_stats_show_overdue_sharing_answers(console: Console) -> None:
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    insert_application(runtime.session_factory, overdue=True)
    page = console.signed_in("wang").get("/console/audit/stats")
    assert page.status_code == 200
    row = page.text.split('id="sharing-stats"')[1].split("</tr>")[1]
    assert "GA640104" in row
    assert "<td>1</td><td>0</td><td>1</td>" in row  # one application, none answered, 1 overdue


def test_stats_count_and_chart_concealments(console: Console) -> None:
    """Concealed requests (denials answered "not found") have their own figure and chart: two
    concealed and one plain denial of the police are 3 denials, 2 of them concealed."""
    from gateway.audit.entry import CONCEALED
    from gateway.exchange import reads as exchange

    assert exchange.CONCEALED == CONCEALED  # what the exchange writes is what is counted
    for status, detail in ((404, CONCEALED), (404, f"{CONCEALED} (upstream)"), (403, "denied")):
        _denied(console, "police-system", status, detail)
    page = console.signed_in("wang").get("/console/audit/stats?group=requester&interval=day")
    assert page.status_code == 200, page.text
    match = re.search(r"id=\"concealments-chart\"[^>]*data-chart='([^']*)'", page.text)
    assert match, page.text
    chart = json.loads(unescape(match.group(1)))
    police = [s for s in chart["series"] if s["name"] == "GA640104"]
    assert [sum(s["values"]) for s in police] == [2]
    row = re.search(r"<td>GA640104</td><td>3</td><td>3</td><td>2</td>", page.text)
    assert row, page.text
