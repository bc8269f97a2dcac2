"""The reviewers' conditional-sharing inbox: the owning agency's reviewer answers, through the
sharing service (the API's rules and audit entries)."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from tests.console.conftest import Console, csrf_of, insert_application


def _application(console: Console, *, overdue: bool = False) -> str:
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    return insert_application(runtime.session_factory, overdue=overdue)


def _answer(client: object, app_id: str, **form: str) -> object:
    page = client.get("/console/sharing")  # type: ignore[attr-defined]
    return client.post(  # type: ignore[attr-defined]
        f"/console/sharing/{app_id}/answer", data={"csrf_token": csrf_of(page.text), **form}
    )


def test_the_owning_agency_reviews_with_deadlines(console: Console) -> None:
    approve_id, refuse_id = _application(console), _application(console)
    late_id = _application(console, overdue=True)
    sun = console.signed_in("sun")
    inbox = sun.get("/console/sharing")
    assert inbox.status_code == 200
    for app_id in (approve_id, refuse_id, late_id):
        assert f'id="app-{app_id}"' in inbox.text
    assert inbox.text.count("已超期") >= 2  # the filter link and the late application
    overdue = sun.get("/console/sharing?status=overdue").text
    assert late_id in overdue
    assert approve_id not in overdue
    assert _answer(sun, approve_id, verdict="approve", reason="同意", days="40").status_code == 422
    approved = _answer(sun, approve_id, verdict="approve", reason="同意", days="10")
    assert approved.status_code == 200, approved.text
    assert "已批准" in approved.text
    granted = sun.get("/console/sharing?status=approved").text
    assert approve_id in granted
    assert "立即撤销授权" in granted
    revoked = _answer(sun, approve_id, verdict="revoke", reason="案件已撤销")
    assert revoked.status_code == 200, revoked.text
    assert "已撤销" in revoked.text
    assert _answer(sun, approve_id, verdict="revoke", reason="再撤").status_code == 409
    assert _answer(sun, refuse_id, verdict="refuse", reason="").status_code == 422
    refused = _answer(sun, refuse_id, verdict="refuse", reason="与本案无关")
    assert refused.status_code == 200
    assert "已拒绝" in refused.text
    again = _answer(sun, refuse_id, verdict="approve", reason="改为同意", days="5")
    assert again.status_code == 409
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT client_id, status, leaf FROM audit_entries WHERE kind = 'sharing'")
            ).all()
    finally:
        engine.dispose()
    actions = [(r[0], r[1], json.loads(bytes(r[2]))["action"]["action"]) for r in rows]
    assert ("user:sun", 200, "approve") in actions
    assert ("user:sun", 200, "list") in actions  # the inbox itself, as the API's listing
    assert ("user:sun", 409, "refused") in actions
    assert any(a[0] == "user:sun" and a[2] == "refuse" for a in actions)


def test_only_the_owning_agency_answers(console: Console) -> None:
    app_id = _application(console)
    zhou = console.signed_in("zhou")  # a reviewer of the court: the applicant's own agency
    assert app_id not in zhou.get("/console/sharing").text
    answer = _answer(zhou, app_id, verdict="approve", reason="自己批准", days="5")
    assert answer.status_code == 403
    assert answer.headers["x-audit-index"].isdigit()
    assert console.signed_in("zhang").get("/console/sharing").status_code == 403
