"""Every console refusal is an audit entry, as the API's are (attacker review: a malformed
version id, an incomplete review form, a malformed application id or verdict, a malformed
audit index, a missing CSRF token and a sign-out were answered without one)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import create_engine, text

from tests.console.conftest import Console, csrf_of

VERSION = "sha256:" + "0" * 64
APP_ID = "00000000-0000-4000-8000-000000000000"


def _entry(console: Console, index: str) -> dict[str, Any]:
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            kind, client_id, status, leaf = conn.execute(
                text("SELECT kind, client_id, status, leaf FROM audit_entries WHERE idx = :i"),
                {"i": int(index)},
            ).one()
    finally:
        engine.dispose()
    return {"kind": kind, "client_id": client_id, "status": status, **json.loads(bytes(leaf))}


def _refused(console: Console, answer: Any, status: int, kind: str, user: str) -> None:
    assert answer.status_code == status, answer.text
    index = answer.headers.get("x-audit-index", "")
    assert index.isdigit(), dict(answer.headers)
    entry = _entry(console, index)
    assert (entry["kind"], entry["client_id"], entry["status"]) == (kind, f"user:{user}", status)
    assert entry["action"]["action"] == "refused"
    assert entry["action"]["route"].startswith(answer.request.method + " /console/")


def test_admin_page_refusals_are_audited(console: Console) -> None:
    zhang = console.signed_in("zhang")
    _refused(console, zhang.get("/console/policies/versions/v1"), 404, "policy_admin", "zhang")
    csrf = csrf_of(zhang.get("/console/policies").text)
    incomplete = zhang.post(
        f"/console/policies/versions/{VERSION}/review",
        data={"csrf_token": csrf, "verdict": "maybe", "comment": ""},
    )
    _refused(console, incomplete, 422, "policy_admin", "zhang")
    assert "无法审核" in incomplete.text
    unknown = zhang.get(f"/console/policies/versions/{VERSION}")  # the service's 404
    _refused(console, unknown, 404, "policy_admin", "zhang")
    no_comment = zhang.post(
        "/console/policies/propose",
        data={"csrf_token": csrf, "file": "permissions/court.yaml", "text": "x", "comment": ""},
    )
    _refused(console, no_comment, 422, "policy_admin", "zhang")
    no_csrf = zhang.post(f"/console/policies/versions/{VERSION}/review", data={})
    _refused(console, no_csrf, 403, "policy_admin", "zhang")
    freeze = zhang.post("/console/policies/freeze", data={"csrf_token": csrf, "comment": ""})
    _refused(console, freeze, 422, "policy_admin", "zhang")


def test_reviewer_and_regulator_refusals_are_audited(console: Console) -> None:
    sun = console.signed_in("sun")
    csrf = csrf_of(sun.get("/console/sharing").text)
    bad_id = sun.post("/console/sharing/not-an-id/answer", data={"csrf_token": csrf})
    _refused(console, bad_id, 404, "sharing", "sun")
    no_verdict = sun.post(f"/console/sharing/{APP_ID}/answer", data={"csrf_token": csrf})
    _refused(console, no_verdict, 422, "sharing", "sun")
    bad_days = sun.post(
        f"/console/sharing/{APP_ID}/answer",
        data={"csrf_token": csrf, "verdict": "approve", "reason": "ok", "days": "many"},
    )
    _refused(console, bad_days, 422, "sharing", "sun")
    wang = console.signed_in("wang")
    _refused(console, wang.get("/console/audit/entries/x1"), 404, "audit_query", "wang")
    _refused(console, wang.get("/console/audit/entries/-1/proof"), 404, "audit_query", "wang")


def test_sign_out_is_audited(console: Console) -> None:
    wang = console.signed_in("wang")
    csrf = csrf_of(wang.get("/console/").text)
    refused = wang.post("/console/signout", data={"csrf_token": "forged"})
    _refused(console, refused, 403, "access", "wang")
    assert wang.get("/console/", follow_redirects=False).status_code == 200  # still signed in
    assert wang.post("/console/signout", data={"csrf_token": csrf}).status_code == 200
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            leaves = conn.execute(
                text("SELECT leaf FROM audit_entries WHERE client_id = 'user:wang' ORDER BY idx")
            ).scalars()
            actions = [json.loads(bytes(leaf)).get("action") or {} for leaf in leaves]
    finally:
        engine.dispose()
    assert actions[-1] == {"action": "console_sign_out"}
    assert wang.get("/console/", follow_redirects=False).status_code == 303


def test_anonymous_console_refusals_are_counted(console: Console) -> None:
    client = console.browser()
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    assert client.get("/console/callback?state=x&code=y").status_code == 400
    assert client.get("/console/policies", follow_redirects=False).status_code == 303
    counted = {
        route: bucket.statuses
        for interval in runtime.anonymous._buckets.values()
        for (_, route), bucket in interval.items()
    }
    assert counted["GET /console/callback"]["400"] == 1, counted
    assert counted["GET /console/policies"]["401"] == 1, counted
