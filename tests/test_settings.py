"""Settings come from GATEWAY_* variables; outside demo mode placeholders are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic_settings
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.keys import KeyStore
from gateway.settings import Mode, Settings, SettingsError


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment: no GATEWAY_* from the outside, data in tmp_path."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    return monkeypatch


def _production_ready(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every value production needs, set properly."""
    from gateway.audit.checkpoint import load_or_create_signer

    env.setenv("GATEWAY_DATABASE_URL", "postgresql+psycopg://gateway@db.internal/gateway")
    env.setenv("GATEWAY_ISSUER", "https://gateway.zhengfa.example.gov.cn/")
    KeyStore(tmp_path / "keys" / "signing-keys.json", token_ttl_seconds=300).ensure()
    load_or_create_signer(tmp_path / "keys" / "checkpoint.key", "zhengfa-audit")


def _problems(settings: Settings) -> str:
    with pytest.raises(SettingsError) as caught:
        settings.check_production_ready()
    return str(caught.value)


def test_production_refuses_the_defaults(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.mode is Mode.PRODUCTION  # production unless told otherwise
    message = _problems(settings)
    assert message.startswith("refusing to start outside demo mode")
    assert "GATEWAY_DATABASE_URL" in message
    assert "GATEWAY_ISSUER" in message
    assert "gateway keys rotate" in message
    assert "GATEWAY_KEYS_PATH" in message


def test_production_accepts_a_complete_configuration(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _production_ready(env, tmp_path)
    settings = Settings()
    settings.check_production_ready()
    assert settings.issuer == "https://gateway.zhengfa.example.gov.cn"  # trailing slash dropped


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("GATEWAY_ISSUER", "http://gateway.example.gov.cn", "https://"),
        ("GATEWAY_ISSUER", "http://127.0.0.1:8000", "GATEWAY_ISSUER"),
        ("GATEWAY_UPSTREAM_SECRETS", '{"court": "changeme"}', "GATEWAY_UPSTREAM_SECRETS[court]"),
        ("GATEWAY_UPSTREAM_SECRETS", '{"prison": " CHANGE-ME "}', "[prison] is a placeholder"),
        ("GATEWAY_UPSTREAM_SECRETS", '{"police": ""}', "[police] is a placeholder"),
        ("GATEWAY_UPSTREAM_SECRETS", '{"justice": "TODO"}', "[justice] is a placeholder"),
        ("GATEWAY_EXTERNAL_ISSUER", "https://idp.example", "GATEWAY_EXTERNAL_JWKS_URL"),
        ("GATEWAY_EXTERNAL_JWKS_URL", "https://idp.example/jwks", "GATEWAY_EXTERNAL_ISSUER"),
        ("GATEWAY_KEYS_PATH", "/nonexistent/keys.json", "/nonexistent/keys.json"),
    ],
)
def test_production_refuses_one_bad_value(
    env: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, named: str
) -> None:
    _production_ready(env, tmp_path)
    env.setenv(variable, value)
    message = _problems(Settings())
    assert named in message
    assert message.count("\n  - ") == 1, message  # exactly the one problem


def test_real_upstream_secret_is_accepted_and_never_shown(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _production_ready(env, tmp_path)
    env.setenv("GATEWAY_UPSTREAM_SECRETS", '{"court": "s3cr3t-ZX81-long-value"}')
    settings = Settings()
    settings.check_production_ready()
    assert settings.upstream_secrets["court"].get_secret_value() == "s3cr3t-ZX81-long-value"
    assert "s3cr3t-ZX81" not in repr(settings)
    assert "s3cr3t-ZX81" not in str(settings.model_dump())


@pytest.mark.parametrize("mode", ["demo", "test"])
def test_demo_and_test_modes_accept_the_defaults(env: pytest.MonkeyPatch, mode: str) -> None:
    env.setenv("GATEWAY_MODE", mode)
    env.setenv("GATEWAY_UPSTREAM_SECRETS", '{"court": "changeme"}')
    settings = Settings()
    assert settings.is_demo
    settings.check_production_ready()  # does not raise


def test_the_app_refuses_to_start_in_production_with_defaults(
    env: pytest.MonkeyPatch,
) -> None:
    app = create_app(Settings(log_level="WARNING"))
    with pytest.raises(SettingsError, match="GATEWAY_DATABASE_URL"), TestClient(app):
        pass


def test_only_the_gateway_prefix_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("GATEWAY_TOKEN_TTL_SECONDS", "120")
    env.setenv("TOKEN_TTL_SECONDS", "999")
    env.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    settings = Settings()
    assert settings.token_ttl_seconds == 120
    assert settings.database_url is None
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'gateway.db').resolve()}"
    assert settings.resolved_keys_path == tmp_path / "keys" / "signing-keys.json"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_MODE", "staging"),
        ("GATEWAY_TOKEN_TTL_SECONDS", "10"),
        ("GATEWAY_TOKEN_TTL_SECONDS", "a while"),
        ("GATEWAY_MAX_BODY_BYTES", "10"),
        ("GATEWAY_RATE_LIMIT_PER_SECOND", "0"),
        ("GATEWAY_CLIENT_CACHE_SECONDS", "-1"),
        ("GATEWAY_UPSTREAM_SECRETS", "not json"),
        ("GATEWAY_PORT", "70000"),
    ],
)
def test_invalid_values_are_refused(env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    env.setenv(variable, value)
    # Undecodable JSON in a complex field fails in pydantic-settings' env source instead.
    with pytest.raises((ValidationError, pydantic_settings.SettingsError)):
        Settings()


def test_settings_are_frozen(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.issuer = "https://elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    "origin", ["https://gateway.example.gov.cn/audit", "gateway example/audit", "a+b/audit", ""]
)
def test_audit_origin_must_be_a_schema_less_key_name(origin: str) -> None:
    with pytest.raises(ValidationError, match=r"audit origin|audit_origin"):
        Settings(audit_origin=origin)


def test_previous_audit_origins_are_accepted_after_the_current_one() -> None:
    settings = Settings(audit_origin="gateway.example.gov.cn/audit")
    assert settings.accepted_audit_origins == [
        "gateway.example.gov.cn/audit",
        "zhengfa-gateway/audit",
    ]
    assert settings.checkpoint_key_names[-1] == "zhengfa-audit"
