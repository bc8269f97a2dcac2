"""The console's pages over HTTP: scopes, CSRF, the API's independence from sessions, and the
administrators' and regulators' work through the same services as the API."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import create_engine, text

from gateway.audit.checkpoint import open_checkpoint, parse_verifier
from gateway.audit.merkle import leaf_hash, verify_inclusion
from gateway.console import templating
from tests.console.conftest import FILE, Console, csrf_of, current_text, propose, review


def _entries(console: Console, where: str) -> list[tuple[object, ...]]:
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text(f"SELECT kind, client_id, status, leaf FROM audit_entries WHERE {where}")  # noqa: S608 - the tests' own literals
                ).all()
            ]
    finally:
        engine.dispose()


def test_without_a_session_every_page_sends_to_sign_in(console: Console) -> None:
    client = console.browser()
    for path in ("/console/", "/console/policies", "/console/audit", "/console/audit/entries/0"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/console/signin"


def test_a_regulator_cannot_open_admin_pages(console: Console) -> None:
    regulator = console.signed_in("wang")
    for path in ("/console/policies", "/console/policies/propose"):
        page = regulator.get(path)
        assert page.status_code == 403, path
        assert "无权访问" in page.text
        assert "policy:admin" in page.text
        assert page.headers["x-audit-index"].isdigit()
    refusals = _entries(console, "client_id = 'user:wang' AND status = 403")
    assert {r[0] for r in refusals} == {"policy_admin"}
    admin = console.signed_in("zhang")
    assert admin.get("/console/audit").status_code == 403
    assert regulator.get("/console/audit").status_code == 200


def test_a_session_cookie_never_authorizes_the_api(console: Console) -> None:
    admin = console.signed_in("zhang")
    regulator = console.signed_in("wang")
    assert admin.get("/v1/admin/policies/versions").status_code == 401
    assert regulator.get("/v1/audit/entries").status_code == 401
    assert regulator.get("/v1/me").status_code == 401


def test_forms_without_the_csrf_token_are_refused(console: Console) -> None:
    admin = console.signed_in("zhang")
    page = admin.get("/console/policies/propose")
    body = {"file": FILE, "text": "x", "comment": "c"}
    for token in (None, "forged-token"):
        data = dict(body, **({"csrf_token": token} if token else {}))
        refused = admin.post("/console/policies/propose", data=data)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    # Another session's token is not this one's.
    other = console.signed_in("li")
    stolen = csrf_of(other.get("/console/policies/propose").text)
    assert (
        admin.post("/console/policies/propose", data=dict(body, csrf_token=stolen)).status_code
        == 403
    )
    assert csrf_of(page.text) != stolen
    assert admin.post("/console/signout", data={}).status_code == 403


def test_sign_out_ends_the_session_for_good(console: Console) -> None:
    admin = console.signed_in("zhang")
    cookie = admin.cookies.get("zf_console_session")
    token = csrf_of(admin.get("/console/").text)
    assert admin.post("/console/signout", data={"csrf_token": token}).status_code == 200
    replay = console.browser().get(
        "/console/", headers={"cookie": f"zf_console_session={cookie}"}, follow_redirects=False
    )
    assert replay.status_code == 303


def test_an_invalid_proposal_shows_file_line_and_column(console: Console) -> None:
    admin = console.signed_in("zhang")
    original = current_text(admin)
    broken = original.replace("resource: case\n", "resource: no_such_resource\n", 1)
    assert broken != original
    answer = propose(admin, broken, "把案件换成不存在的资源")
    assert answer.status_code == 422
    where = re.search(r'<code class="where">([^<]+)</code>', answer.text)
    assert where, answer.text
    assert re.fullmatch(r"permissions/court\.yaml:\d+:\d+", where.group(1))
    assert "no_such_resource" in answer.text  # the editor keeps what was typed


def test_propose_then_a_second_admin_approves(console: Console) -> None:
    zhang, li = console.signed_in("zhang"), console.signed_in("li")
    original = current_text(zhang)
    changed = original.replace("description: 法院", "description: 人民法院", 1)
    assert changed != original
    submitted = propose(zhang, changed, "说明改为人民法院")
    assert submitted.status_code == 201, submitted.text
    version_id = re.search(r"(sha256:[0-9a-f]{64})", submitted.text).group(1)  # type: ignore[union-attr]
    assert "策略测试：通过" in submitted.text
    page = zhang.get(f"/console/policies/versions/{version_id}")
    assert page.status_code == 200
    assert "人民法院" in page.text
    assert 'class="add"' in page.text
    # Maker-checker: the author cannot approve it …
    own = zhang.post(
        f"/console/policies/versions/{version_id}/review",
        data={"csrf_token": csrf_of(page.text), "verdict": "approve", "comment": "自己批准"},
    )
    assert own.status_code == 403
    assert "不能审核自己提出的候选版本" in own.text
    assert own.headers["x-audit-index"].isdigit()
    assert console.client.app.state.runtime.policy.current.version != version_id  # type: ignore[attr-defined]
    # … another administrator can.
    other = li.get(f"/console/policies/versions/{version_id}")
    done = li.post(
        f"/console/policies/versions/{version_id}/review",
        data={"csrf_token": csrf_of(other.text), "verdict": "approve", "comment": "同意"},
    )
    assert done.status_code == 200, done.text
    assert "已批准" in done.text
    assert "发布生效" in done.text
    assert console.client.app.state.runtime.policy.current.version == version_id  # type: ignore[attr-defined]
    # The same audit entries as the API's: submit by zhang, the refusal, approve by li.
    actions = _entries(console, "kind = 'policy_admin'")
    leaves = [(r[1], bytes(r[3])) for r in actions]  # type: ignore[arg-type]
    assert any(c == "user:zhang" and b'"action":"submit"' in leaf for c, leaf in leaves)
    assert any(c == "user:zhang" and b'"action":"refused"' in leaf for c, leaf in leaves)
    assert any(c == "user:li" and b'"action":"approve"' in leaf for c, leaf in leaves)
    # The API sees the person as the approver.
    token = console.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(console.api_clients["admin"].client_id, console.api_clients["admin"].client_secret),
    ).json()["access_token"]
    listing = console.client.get(
        "/v1/admin/policies/versions", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert listing["publications"][0]["published_by"] == "user:li"


def test_impact_replay_fragment(console: Console) -> None:
    zhang = console.signed_in("zhang")
    in_force = console.client.app.state.runtime.policy.current.version  # type: ignore[attr-defined]
    page = zhang.get(f"/console/policies/versions/{in_force}")
    fragment = zhang.post(
        f"/console/policies/versions/{in_force}/impact", data={"csrf_token": csrf_of(page.text)}
    )
    assert fragment.status_code == 200
    assert "回放" in fragment.text
    assert "data-chart" in fragment.text


def test_rules_in_force_with_their_legal_basis(console: Console) -> None:
    zhang = console.signed_in("zhang")
    lists = zhang.get("/console/policies")
    assert lists.status_code == 200
    assert "fy.trial.case-file" in lists.text
    assert "刑事诉讼法 第186条" in lists.text
    rule = zhang.get("/console/policies/rules/fy.trial.case-file")
    assert rule.status_code == 200
    assert "法律依据" in rule.text
    assert "刑事诉讼法 第186条" in rule.text
    assert re.search(r"permissions/court\.yaml:\d+:\d+", rule.text)
    assert zhang.get("/console/policies/rules/nope").status_code == 404


def test_an_audit_query_is_itself_audited_and_its_proof_verifies(console: Console) -> None:
    wang = console.signed_in("wang")
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    refused = wang.get("/console/audit?search=1&requester_agency=bad")
    assert refused.status_code == 422
    found = wang.get("/console/audit?search=1&decision=allow")
    assert found.status_code == 200
    assert 'id="entries"' in found.text
    assert _entries(console, "kind = 'audit_query' AND client_id = 'user:wang' AND status = 200")
    runtime.checkpointer.checkpoint_now()
    assert wang.get("/console/audit/entries/0").status_code == 200
    proof = wang.get("/console/audit/entries/0/proof").json()
    verifier = parse_verifier(proof["verifier_key"])
    checkpoint = open_checkpoint(proof["checkpoint"], [verifier])
    assert checkpoint.size == proof["tree_size"]
    verify_inclusion(
        leaf_hash(base64.b64decode(proof["leaf"])),
        proof["index"],
        proof["tree_size"],
        [base64.b64decode(h) for h in proof["hashes"]],
        checkpoint.root,
    )
    assert wang.get("/console/audit/entries/99999").status_code == 404


def test_missing_assets_are_named_with_the_command_to_run(
    console: Console, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(templating, "STATIC_DIR", templating.Path(str(tmp_path)))
    page = console.signed_in("wang").get("/console/")
    assert page.status_code == 200
    assert "scripts/console-assets.sh" in page.text
    assert "vendor/htmx.min.js" not in page.text


def test_insecure_cookies_only_when_asked_and_only_on_loopback(tmp_path: object) -> None:
    from pathlib import Path

    from starlette.requests import Request

    from gateway.console.sessions import cookie_secure
    from gateway.settings import Settings, SettingsError

    def request(url: str) -> Request:
        scheme, _, rest = url.partition("://")
        host = rest.split("/")[0]
        return Request(
            {
                "type": "http",
                "scheme": scheme,
                "server": (host, 80),
                "path": "/",
                "headers": [(b"host", host.encode())],
                "query_string": b"",
            }
        )

    dev = Settings(
        mode="test", data_dir=Path(str(tmp_path)), console_insecure_loopback_cookies=True
    )
    assert not cookie_secure(request("http://127.0.0.1:8000"), dev)
    assert cookie_secure(request("http://gateway.example"), dev)
    assert cookie_secure(request("http://127.0.0.1:8000"), Settings(mode="test"))
    production = Settings(console_insecure_loopback_cookies=True)
    with pytest.raises(SettingsError, match="CONSOLE_INSECURE_LOOPBACK_COOKIES"):
        production.check_production_ready()


def test_sign_in_work_and_sign_out_on_each_database(console_any_db: Console) -> None:
    """On PostgreSQL the gateway runs as the application role: its grants cover the console's
    tables (a TOTP step recorded, a code marked used, a session ended)."""
    console = console_any_db
    secret = console.totp_secrets["zhao"]
    assert secret is not None
    from gateway.auth.totp import _key, totp

    zhao = console.browser()
    done = console.sign_in(zhao, "zhao", totp=totp(_key(secret)))
    assert done.status_code == 200, done.text
    page = zhao.get("/console/audit?search=1&decision=allow")
    assert page.status_code == 200
    assert 'id="entries"' in page.text
    signed_out = zhao.post("/console/signout", data={"csrf_token": csrf_of(page.text)})
    assert signed_out.status_code == 200
    assert zhao.get("/console/audit", follow_redirects=False).status_code == 303


def test_a_second_account_of_the_proposer_cannot_approve(console: Console) -> None:
    """Attacker review: two-person approval was per account. zhang's second account (the
    same person id) is refused as zhang is, through the service the API uses; li approves."""
    from gateway.auth.users import UserService
    from gateway.db import create_db_engine, make_session_factory, session_scope
    from tests.console.conftest import PASSWORD, TOTP

    engine = create_db_engine(console.settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            _, secret = UserService(session).add(
                username="zhang2",
                display_name="张管理（第二账号）",
                agency="ZF640000",
                scopes=["policy:admin"],
                password=PASSWORD,
                totp=True,
                person_id="zhang",  # the person id zhang's account got (its user name)
            )
    finally:
        engine.dispose()
    assert secret is not None
    TOTP.secrets["zhang2"] = secret
    zhang, second = console.signed_in("zhang"), console.signed_in("zhang2")
    original = current_text(zhang)
    submitted = propose(
        zhang, original.replace("description: 法院", "description: 法院。", 1), "改"
    )
    assert submitted.status_code == 201, submitted.text
    version_id = re.search(r"(sha256:[0-9a-f]{64})", submitted.text).group(1)  # type: ignore[union-attr]
    refused = review(second, version_id, "approve", "换号批准")
    assert refused.status_code == 403, refused.text
    assert "同一人" in refused.text
    assert refused.headers["x-audit-index"].isdigit()
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.policy.current.version != version_id
    li = console.signed_in("li")
    done = review(li, version_id, "approve", "同意")
    assert done.status_code == 200, done.text
    assert runtime.policy.current.version == version_id
