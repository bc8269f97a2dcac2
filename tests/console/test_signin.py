"""Signing in to the console: authorization code with PKCE, password and TOTP, cookies,
throttling and the audit of failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import create_engine, text

from gateway.auth.totp import _key, totp
from gateway.auth.users import UserService
from gateway.db import make_session_factory, session_scope
from tests.console.conftest import (
    BASE,
    PASSWORD,
    TOTP,
    Console,
    hidden_fields,
    start_console,
)


def _set_cookies(response: object) -> dict[str, str]:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return {h.split("=", 1)[0]: h for h in headers}


def test_sign_in_opens_a_session_with_strict_cookie(console: Console) -> None:
    client = console.browser()
    page = client.get("/console/signin", follow_redirects=False)
    assert page.status_code == 303
    target = urlsplit(page.headers["location"])
    query = parse_qs(target.query)
    assert target.path == "/oauth/authorize"
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    pkce = _set_cookies(page)["zf_console_pkce"].lower()
    assert "httponly" in pkce
    assert "secure" in pkce
    assert "samesite=strict" in pkce
    form_page = client.get(page.headers["location"])
    form = hidden_fields(form_page.text)
    form.update(username="zhang", password=PASSWORD, totp=TOTP.code("zhang"))
    answer = client.post("/oauth/authorize", data=form, follow_redirects=False)
    assert answer.status_code == 303
    callback = urlsplit(answer.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{BASE}/console/callback"
    assert parse_qs(callback.query)["state"] == query["state"]
    done = client.get(answer.headers["location"], follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/"
    session = _set_cookies(done)["zf_console_session"]
    cookie = SimpleCookie(session)["zf_console_session"]
    assert cookie["httponly"]
    assert cookie["secure"]
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/console"
    home = client.get("/console/")
    assert home.status_code == 200
    assert "张管理" in home.text
    assert 'lang="zh-CN"' in home.text
    assert "default-src 'self'" in home.headers["content-security-policy"]


def test_the_code_is_good_once(console: Console) -> None:
    client = console.browser()
    page = client.get("/console/signin")
    form = hidden_fields(page.text)
    form.update(username="zhang", password=PASSWORD, totp=TOTP.code("zhang"))
    answer = client.post("/oauth/authorize", data=form, follow_redirects=False)
    callback = answer.headers["location"]
    pkce = client.cookies.get("zf_console_pkce")
    assert client.get(callback, follow_redirects=False).status_code == 303
    # The code presented again, with the right state and verifier.
    again = console.browser().get(
        callback, headers={"cookie": f"zf_console_pkce={pkce}"}, follow_redirects=False
    )
    assert again.status_code == 400
    assert "授权码无效" in again.text


def test_a_code_without_the_verifier_is_refused(console: Console) -> None:
    """An attacker who intercepts the redirect has the code but not the PKCE verifier (it is in
    the victim's httpOnly cookie)."""
    victim, attacker = console.browser(), console.browser()
    page = victim.get("/console/signin")
    form = hidden_fields(page.text)
    form.update(username="zhang", password=PASSWORD, totp=TOTP.code("zhang"))
    callback = victim.post("/oauth/authorize", data=form, follow_redirects=False)
    start = attacker.get("/console/signin", follow_redirects=False)  # the attacker's own state
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    code = parse_qs(urlsplit(callback.headers["location"]).query)["code"][0]
    stolen = attacker.get(
        "/console/callback?" + urlencode({"code": code, "state": state}), follow_redirects=False
    )
    assert stolen.status_code == 400
    assert "PKCE" in stolen.text
    assert attacker.get("/console/", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_user_get_one_answer(console: Console) -> None:
    client = console.browser()
    wrong = console.sign_in(client, "zhang", "not the password at all")
    unknown = console.sign_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名、密码或动态口令不正确" in wrong.text
    assert "用户名、密码或动态口令不正确" in unknown.text
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_failed_sign_ins_are_audited_like_token_failures(console: Console) -> None:
    client = console.browser()
    console.sign_in(client, "zhang", "wrong password 1")
    console.sign_in(client, "zhang", "wrong password 2")
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    for future in runtime.console.sign_in_failures.flush(everything=True):
        future.result(timeout=10)
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT client_id, requester_agency, status, leaf FROM audit_entries "
                    "WHERE kind = 'token'"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    client_id, agency, status, leaf = rows[0]
    assert (client_id, agency, status) == ("user:zhang", "ZF640000", 401)
    assert b"POST /oauth/authorize" in bytes(leaf)
    assert b'"count":2' in bytes(leaf)


def test_totp_is_required_and_good_once(console: Console) -> None:
    secret = console.totp_secrets["zhao"]
    assert secret is not None
    client = console.browser()
    assert console.sign_in(client, "zhao", totp="").status_code == 401  # no code
    assert console.sign_in(client, "zhao", totp="000000").status_code in (200, 401)
    code = totp(_key(secret), time.time())
    ok = console.sign_in(client, "zhao", totp=code)
    assert ok.status_code == 200
    assert "赵双因素" in ok.text
    replay = console.sign_in(console.browser(), "zhao", totp=code)
    assert replay.status_code == 401


def test_sign_in_is_throttled(tmp_path: object) -> None:
    from pathlib import Path

    from tests.console.conftest import start_console

    gen = start_console(
        Path(str(tmp_path)), token_rate_limit_per_second=0.01, token_rate_limit_burst=2
    )
    console = next(gen)
    try:
        client = console.browser()
        statuses = [
            console.sign_in(client, "li", "wrong wrong wrong").status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        limited = console.sign_in(client, "li", PASSWORD)
        assert limited.status_code == 429
        assert "尝试次数过多" in limited.text
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        gen.close()


def test_the_form_needs_its_csrf_cookie(console: Console) -> None:
    client = console.browser()
    page = client.get("/console/signin")
    form = hidden_fields(page.text)
    form.update(username="zhang", password=PASSWORD, totp=TOTP.code("zhang"))
    fresh = console.browser()  # another browser: no CSRF cookie
    refused = fresh.post("/oauth/authorize", data=form, follow_redirects=False)
    assert refused.status_code == 403
    assert "location" not in refused.headers


def test_authorize_refuses_other_clients_and_redirects(console: Console) -> None:
    client = console.browser()
    base = {
        "response_type": "code",
        "client_id": "console",
        "redirect_uri": f"{BASE}/console/callback",
        "state": "s1",
        "code_challenge": "A" * 43,
        "code_challenge_method": "S256",
    }
    for bad in ({"redirect_uri": "https://evil.example/cb"}, {"client_id": "police"}):
        answer = client.get("/oauth/authorize", params={**base, **bad}, follow_redirects=False)
        assert answer.status_code == 400
        assert "location" not in answer.headers
    plain = client.get(
        "/oauth/authorize",
        params={**base, "code_challenge_method": "plain"},
        follow_redirects=False,
    )
    assert plain.status_code == 303
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    assert client.get("/oauth/authorize", params=base).status_code == 200


def test_the_token_endpoint_stays_client_credentials_only(console: Console) -> None:
    answer = console.client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "x", "code_verifier": "y" * 43},
        auth=(console.api_clients["admin"].client_id, console.api_clients["admin"].client_secret),
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_the_sign_in_entry_names_the_scopes_the_session_holds(console: Console) -> None:
    """A ``scope`` parameter is not honoured: the session holds the user's scopes, and the
    sign-in's audit entry says so (it named the asked-for scopes while the session held all)."""
    client = console.browser()
    page = client.get("/console/signin", follow_redirects=False)
    form = hidden_fields(client.get(page.headers["location"] + "&scope=audit%3Aread").text)
    form.update(username="zhang", password=PASSWORD, totp=TOTP.code("zhang"))
    done = client.post("/oauth/authorize", data=form)
    assert str(done.url) == f"{BASE}/console/", done.url
    assert client.get("/console/policies").status_code == 200  # what zhang's session holds
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            leaves = conn.execute(
                text("SELECT leaf FROM audit_entries WHERE kind = 'access' ORDER BY idx")
            ).scalars()
            entries = [json.loads(bytes(leaf)) for leaf in leaves]
    finally:
        engine.dispose()
    (sign_in,) = [e for e in entries if (e.get("action") or {}).get("action") == "console_sign_in"]
    assert sign_in["action"]["scopes"] == ["policy:admin"]


def _started(tmp_path: object, **overrides: object) -> tuple[Console, Iterator[Console]]:
    gen = start_console(Path(str(tmp_path)), **overrides)
    return next(gen), gen


def test_a_third_party_cannot_lock_a_user_out(tmp_path: object) -> None:
    """Attacker review: wrong passwords in a user's name from one address locked the user out
    everywhere. Now they throttle that address (for that name, and for every name), not the
    user at theirs."""
    console, gen = _started(
        tmp_path,
        token_rate_limit_per_second=0.01,
        token_rate_limit_burst=2,
        token_source_rate_limit_per_second=0.01,
        token_source_rate_limit_burst=4,
    )
    try:
        attacker = console.browser("10.0.0.66")
        guesses = [
            console.sign_in(attacker, "wang", f"guess {i} wrong").status_code for i in range(3)
        ]
        assert guesses == [401, 401, 429]
        # Brute force stays limited: from that address even the right password waits.
        assert console.sign_in(attacker, "wang", PASSWORD).status_code == 429
        # Other names from the same address: the per-address limit (4 attempts in all).
        assert console.sign_in(attacker, "sun", "wrong wrong").status_code == 429
        wang = console.browser("10.0.0.7")
        done = console.sign_in(wang, "wang")
        assert done.status_code == 200, done.text
        assert str(done.url) == f"{BASE}/console/"
    finally:
        gen.close()


def test_guessing_from_many_addresses_leaves_password_and_totp(tmp_path: object) -> None:
    """Many addresses guessing at one name: past the per-name limit only the right password
    with a TOTP code passes (a lock the user still opens); without TOTP, the name waits."""
    console, gen = _started(
        tmp_path,
        console_signin_user_rate_limit_per_second=0.01,
        console_signin_user_rate_limit_burst=3,
    )
    try:
        for name in ("zhao", "wang"):
            statuses = [
                console.sign_in(console.browser(f"10.0.1.{i}"), name, "wrong guess!").status_code
                for i in range(4)
            ]
            assert statuses == [401, 401, 401, 429], name
        user = console.browser("10.0.2.1")
        assert console.sign_in(user, "zhao", "wrong guess!", totp="").status_code == 429
        assert console.sign_in(user, "zhao", PASSWORD, totp="").status_code == 429
        assert console.sign_in(user, "zhao", PASSWORD, totp="000000").status_code == 429
        done = console.sign_in(user, "zhao", PASSWORD)  # with the current code
        assert done.status_code == 200, done.text
        assert str(done.url) == f"{BASE}/console/"
        # wang has no TOTP: the right password answers as a wrong one while the name is hot.
        assert console.sign_in(console.browser("10.0.2.2"), "wang").status_code == 429
    finally:
        gen.close()


def _add_admin_without_totp(console: Console) -> None:
    engine = create_engine(console.settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            UserService(session).add(
                username="chen",
                display_name="陈管理",
                agency="ZF640000",
                scopes=["policy:admin"],
                password=PASSWORD,
            )
    finally:
        engine.dispose()


def test_an_administrator_signs_in_only_with_totp_enrolled(tmp_path: object) -> None:
    console, gen = _started(tmp_path)
    try:
        assert console.settings.console_admin_totp_required  # the default
        _add_admin_without_totp(console)
        client = console.browser()
        assert console.sign_in(client, "chen", "not the password").status_code == 401
        refused = console.sign_in(client, "chen")
        assert refused.status_code == 403
        assert "须启用动态口令" in refused.text
        assert "gateway users totp" in refused.text
        assert client.get("/console/", follow_redirects=False).status_code == 303
    finally:
        gen.close()
    console, gen = _started(Path(str(tmp_path)) / "optional", console_admin_totp_required=False)
    try:
        _add_admin_without_totp(console)
        assert console.sign_in(console.browser(), "chen").status_code == 200
    finally:
        gen.close()
