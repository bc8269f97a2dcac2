"""People of the console: registration rules, authorization codes with PKCE, the CLI."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.auth.user_models import AuthorizationCode
from gateway.auth.users import (
    CodeRefused,
    UserError,
    UserService,
    pkce_challenge,
)
from gateway.cli import main
from gateway.db import create_db_engine, make_session_factory, session_scope, utcnow
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.conftest import make_settings

PASSWORD = "long enough password"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    upgrade(settings)
    return settings


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _add(service: UserService, name: str = "zhang", **kw: object) -> None:
    values: dict[str, object] = {
        "username": name,
        "display_name": "张三",
        "agency": "ZF640000",
        "scopes": ["policy:admin"],
        "password": PASSWORD,
        **kw,
    }
    service.add(**values)  # type: ignore[arg-type]


def test_rfc7636_appendix_b_challenge() -> None:
    assert pkce_challenge(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": ["exchange"]}, "a person may hold only"),
        ({"scopes": ["policy:admin", "audit:read"]}, "separation of duties"),
        ({"password": "short"}, "at least 12"),
        ({"agency": "court"}, "agency code"),
        ({"username": "Bad Name"}, "user name"),
    ],
)
def test_registration_rules(db: Session, change: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        _add(UserService(db), **change)


def test_passwords_are_stored_as_scrypt_hashes(db: Session) -> None:
    service = UserService(db)
    _add(service)
    row = service.get("zhang")
    assert row is not None
    assert row.password_hash.startswith("scrypt$")
    assert PASSWORD not in row.password_hash
    with pytest.raises(UserError, match="exists already"):
        _add(service)


def _code(service: UserService, **kw: object) -> str:
    values: dict[str, object] = {
        "client_id": "console",
        "username": "zhang",
        "redirect_uri": "https://gw/console/callback",
        "code_challenge": pkce_challenge(VERIFIER),
        "scopes": ["policy:admin"],
        **kw,
    }
    return service.issue_code(**values)  # type: ignore[arg-type]


def _redeem(service: UserService, code: str, **kw: object) -> object:
    values: dict[str, object] = {
        "client_id": "console",
        "redirect_uri": "https://gw/console/callback",
        "code_verifier": VERIFIER,
        **kw,
    }
    return service.redeem_code(code, **values)  # type: ignore[arg-type]


def test_codes_are_redeemed_once_with_the_verifier(db: Session) -> None:
    service = UserService(db)
    _add(service)
    grant = _redeem(service, _code(service))
    assert grant.username == "zhang"
    assert grant.agency == "ZF640000"
    used = _code(service)
    _redeem(service, used)
    with pytest.raises(CodeRefused, match="used"):
        _redeem(service, used)
    for bad, match in (
        ({"code_verifier": "x" * 43}, "PKCE"),
        ({"redirect_uri": "https://evil/cb"}, "redirect"),
        ({"client_id": "other"}, "client"),
    ):
        with pytest.raises(CodeRefused, match=match):
            _redeem(service, _code(service), **bad)
    old = _code(service, now=utcnow() - timedelta(minutes=5))
    with pytest.raises(CodeRefused, match="expired"):
        _redeem(service, old)
    with pytest.raises(CodeRefused, match="unknown"):
        _redeem(service, "never-issued")


def test_cli_adds_lists_and_disables_users(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in (
        ("GATEWAY_MODE", "test"),
        ("GATEWAY_DATABASE_URL", settings.resolved_database_url),
    ):
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = ["users", "add", "--username", "wang", "--name", "王五", "--agency", "JC640000"]
    args += ["--person-id", "JC-0042"]
    assert main([*args, "--scopes", "audit:read", "--totp", "--password-stdin"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["username"] == "wang"
    assert added["otpauth_uri"].startswith("otpauth://totp/")
    assert main(["users", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["scopes"] == ["audit:read"]
    assert listed[0]["person_id"] == "JC-0042"
    assert listed[0]["totp"] is True
    assert main(["users", "disable", "wang"]) == 0
    assert main(["users", "list"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["disabled"] is True
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main([*args[:3], "li", *args[4:], "--scopes", "audit:read", "--password-stdin"]) == 2


def _cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODE", "test")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.resolved_database_url)
    if settings.migration_database_url:
        monkeypatch.setenv("GATEWAY_MIGRATION_DATABASE_URL", settings.migration_database_url)
    if settings.database_app_role:
        monkeypatch.setenv("GATEWAY_DATABASE_APP_ROLE", settings.database_app_role)


def test_cli_enrols_administrators_in_totp_and_says_how(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """policy:admin signs in only with TOTP (the default): ``users add`` enrols the account
    without --totp and says what to do with the secret; ``users totp`` enrols any account."""
    _cli_env(settings, monkeypatch)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = ["users", "add", "--username", "zhang", "--name", "张三", "--agency", "ZF640000"]
    assert main([*args, "--person-id", "ZF-7", "--scopes", "policy:admin", "--password-stdin"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["otpauth_uri"].startswith("otpauth://totp/")
    assert "authenticator app" in added["enrol"]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = ["users", "add", "--username", "wang", "--name", "王五", "--agency", "JC640000"]
    assert main([*args, "--person-id", "JC-1", "--scopes", "audit:read", "--password-stdin"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "totp_secret" not in plain
    assert plain["enrol"] == "no TOTP: `gateway users totp wang` enrols one"
    assert main(["users", "totp", "wang"]) == 0
    enrolled = json.loads(capsys.readouterr().out)
    assert enrolled["totp_secret"] != added["totp_secret"]
    assert main(["users", "list"]) == 0
    assert [u["totp"] for u in json.loads(capsys.readouterr().out)] == [True, True]
    assert main(["users", "totp", "nobody"]) == 2
    # --person-id is required: the two-person rule compares persons.
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    with pytest.raises(SystemExit):
        main(["users", "add", "--username", "li", "--name", "李", "--agency", "ZF640000",
              "--scopes", "audit:read", "--password-stdin"])  # fmt: skip


def test_cli_prunes_used_codes_and_ended_sessions_as_the_owner(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The application role has no DELETE (tests/security/test_database_roles.py): ``users
    prune`` deletes as the tables' owner what is used, ended or expired, and nothing live."""
    from gateway.console.models import ConsoleSession
    from gateway.console.sessions import SessionStore

    settings = make_settings(tmp_path, database_url)
    upgrade(settings)
    _cli_env(settings, monkeypatch)
    engine = create_db_engine(settings.resolved_database_url)
    long_ago = utcnow() - timedelta(days=3)
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            service = UserService(session)
            _add(service)
            used, live = _code(service), _code(service)
            _code(service, now=long_ago)  # expired three days ago
            _redeem(service, used)
        with session_scope(factory) as session:
            session.execute(
                update(AuthorizationCode)
                .values(used_at=long_ago)
                .where(AuthorizationCode.used_at.is_not(None))
            )
        store = SessionStore(factory, 60)
        ended, _ = store.start("zhang")
        kept, _ = store.start("zhang")
        ended_row = store.find(ended)
        assert ended_row is not None
        store.end(ended_row.session_hash)
        with session_scope(factory) as session:
            session.execute(
                update(ConsoleSession)
                .values(ended_at=long_ago)
                .where(ConsoleSession.ended_at.is_not(None))
            )
        assert main(["users", "prune"]) == 0
        assert json.loads(capsys.readouterr().out) == {
            "authorization_codes": 2,
            "console_sessions": 1,
        }
        assert store.find(kept) is not None
        with session_scope(factory) as session:
            grant = _redeem(UserService(session), live)
            assert getattr(grant, "username", None) == "zhang"
        assert main(["users", "prune"]) == 0  # nothing more
        assert json.loads(capsys.readouterr().out)["authorization_codes"] == 0
    finally:
        engine.dispose()
