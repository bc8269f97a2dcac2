"""The ``gateway`` command: exit codes 0 ok, 1 failed, 2 usage or refused configuration."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.passwords import verify_secret
from gateway.cli import main
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.migrate import alembic_config
from gateway.settings import Settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_MODE", "test")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def migrated(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, _ = run(capsys, "db", "upgrade")
    assert code == 0
    return cli_env


def _add(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run(capsys, "clients", "add", *extra)


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    from sqlalchemy import text

    engine = create_db_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        with session_scope(make_session_factory(engine)) as session:
            result = session.execute(text("SELECT * FROM oauth_clients ORDER BY name"))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


# --- help and usage --------------------------------------------------------------------------


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for word in ("serve", "demo", "db", "clients", "keys", "exit codes", "GATEWAY_"):
        assert word in out


@pytest.mark.parametrize(
    "argv", [["clients", "--help"], ["clients", "add", "--help"], ["keys", "rotate", "--help"]]
)
def test_subcommand_help_exits_0(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "usage: gateway" in capsys.readouterr().out


def test_add_help_lists_the_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["clients", "add", "--help"])
    out = capsys.readouterr().out
    for scope in ("exchange", "policy:admin", "audit:read", "--force-combined-roles"):
        assert scope in out


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["clients"], ["clients", "add", "--name", "x"], ["db", "upgrade", "-x"]],
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_console_script_help() -> None:
    script = Path(sys.executable).with_name("gateway")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]
    result = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "exit codes" in result.stdout


# --- db upgrade ------------------------------------------------------------------------------


def test_db_upgrade(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(Settings())).get_current_head()
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0
    assert out.strip() == f"database at revision {head}"
    code, out, _ = run(capsys, "db", "upgrade")  # idempotent
    assert code == 0
    assert head in out


def test_db_upgrade_unreachable_database_exits_1(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GATEWAY_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    )
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 1
    assert err.startswith("gateway: cannot run the migrations: database postgresql+psycopg://")
    assert "127.0.0.1:1" in err  # which database it tried
    assert "Traceback" not in err


def test_invalid_setting_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN_TTL_SECONDS", "forever")
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 2
    assert "invalid GATEWAY_* settings" in err
    assert "token_ttl_seconds" in err


def test_undecodable_json_setting_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_SECRETS", "{not json")
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 2
    assert "GATEWAY_" in err


def test_clients_before_db_upgrade_exits_1(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _add(capsys, "--name", "court", "--agency", "FY640104", "--scopes", "exchange")
    assert code == 1
    # Which database, what may be wrong (the data is elsewhere), and what to run: never the
    # name of an internal function.
    assert f"the database sqlite:///{cli_env / 'cli.db'} has no gateway tables" in err
    assert "--data-dir DIR" in err
    assert "gateway db upgrade" in err
    assert "Traceback" not in err


# --- one way to find the data: --data-dir and GATEWAY_DATA_DIR -------------------------------


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No GATEWAY_* at all, in an empty working directory: as a newcomer's shell."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_data_dir_finds_the_same_database_as_serve(
    bare_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    data = bare_env / "demo-data"

    def cli(*argv: str) -> tuple[int, str, str]:
        if where == "env":
            monkeypatch.setenv("GATEWAY_DATA_DIR", str(data))
            return run(capsys, *argv)
        if where == "before":
            return run(capsys, "--data-dir", str(data), *argv)
        return run(capsys, *argv, "--data-dir", str(data))

    assert cli("db", "upgrade")[0] == 0
    code, out, _ = cli(
        "clients", "add", "--name", "court", "--agency", "FY640104", "--scopes", "exchange"
    )
    assert code == 0
    assert (data / "gateway.db").is_file()
    assert not (bare_env / "var").exists()  # nothing made in the default place
    code, out, _ = cli("clients", "list", "--json")
    assert [row["name"] for row in json.loads(out)] == ["court"]
    # serve reads the same settings: the app it would build uses that database.
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(data))
    assert Settings().resolved_database_url == f"sqlite:///{(data / 'gateway.db').resolve()}"


def test_data_dir_reaches_the_served_app(
    bare_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn builds the app from the environment: --data-dir is handed on to it."""
    seen: dict[str, Any] = {}

    def fake_run(*args: Any, **kwargs: Any) -> None:
        seen["data_dir"] = Settings().data_dir

    monkeypatch.setattr("gateway.cli_commands.uvicorn.run", fake_run)
    monkeypatch.setenv("GATEWAY_MODE", "demo")
    code, _, err = run(capsys, "--data-dir", str(bare_env / "elsewhere"), "serve")
    assert code == 0, err
    assert seen["data_dir"] == bare_env / "elsewhere"


# --- clients ---------------------------------------------------------------------------------


def test_clients_add_prints_the_secret_once(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _add(capsys, "--name", "court", "--agency", "FY640104", "--scopes", "exchange")
    assert code == 0
    issued = json.loads(out)
    assert issued["client_id"].startswith("gw-")
    assert issued["name"] == "court"
    assert issued["agency"] == "FY640104"
    assert issued["scopes"] == ["exchange"]
    secret = issued["client_secret"]
    assert len(secret) >= 43

    rows = _rows(migrated)
    assert len(rows) == 1
    assert secret not in json.dumps(rows, default=str)
    assert verify_secret(secret, rows[0]["secret_hash"])

    for argv in (("clients", "list"), ("clients", "list", "--json")):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert issued["client_id"] in out
        assert secret not in out
    code, out, _ = run(capsys, "clients", "list", "--json")
    listed = json.loads(out)
    assert listed == [
        {
            "client_id": issued["client_id"],
            "name": "court",
            "agency": "FY640104",
            "scopes": ["exchange"],
            "disabled": False,
            "rate_limit_per_second": None,
            "duties_combined": False,
        }
    ]
    # Neither the database file nor its WAL holds the secret in clear.
    for path in migrated.glob("cli.db*"):
        assert secret.encode() not in path.read_bytes()


def test_clients_add_with_rate_limit_and_comma_scopes(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _add(
        capsys,
        "--name", "watcher",
        "--agency", "ZF640000",
        "--scopes", "exchange,metrics:read",
        "--rate-limit", "5",
        "--burst", "10",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["scopes"] == ["exchange", "metrics:read"]
    row = _rows(migrated)[0]
    assert (row["rate_limit_per_second"], row["rate_limit_burst"]) == (5.0, 10)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agency", "court", "--scopes", "exchange"], "invalid agency code"),
        (["--agency", "FY64010", "--scopes", "exchange"], "invalid agency code"),
        (["--agency", "FY640104", "--scopes", "root"], "unknown scope"),
        (["--agency", "ZF640000", "--scopes", "policy:admin", "audit:read"], "--force-combined"),
        (["--agency", "FY640104", "--scopes", "exchange", "--rate-limit", "0"], "positive"),
    ],
)
def test_clients_add_refused_exits_2(
    migrated: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _add(capsys, "--name", "bad-one", *argv)
    assert code == 2
    assert message in err
    assert err.startswith("gateway: ")
    assert out == ""  # no secret printed
    assert _rows(migrated) == []  # nothing half-written


@pytest.mark.parametrize(
    "scopes",
    [["policy:admin", "audit:read"], ["exchange", "policy:admin"], ["exchange", "audit:read"]],
)
def test_combined_roles_only_when_forced_recorded_and_audited(
    migrated: Path, capsys: pytest.CaptureFixture[str], scopes: list[str]
) -> None:
    argv = ["--name", "super", "--agency", "ZF640000", "--scopes", *scopes]
    code, out, err = _add(capsys, *argv)
    assert (code, out) == (2, "")
    assert "separation of duties" in err
    assert _rows(migrated) == []
    code, out, err = _add(capsys, *argv, "--force-combined-roles")
    assert code == 0
    issued = json.loads(out)
    assert issued["scopes"] == sorted(scopes)
    assert issued["duties_combined"] is True
    assert "across the separation of duties (forced)" in err
    assert _rows(migrated)[0]["duties_combined"] in (True, 1)
    entry = _audit_entry(migrated, issued["audit_index"])
    assert (entry["kind"], entry["requester"]["client_id"]) == ("client_admin", issued["client_id"])
    assert entry["action"]["action"] == "register"
    assert entry["action"]["duties_combined"] is True
    assert entry["action"]["scopes"] == sorted(scopes)
    assert entry["action"]["operator"]
    code, out, _ = run(capsys, "clients", "list")
    assert "(duties combined, forced)" in out


def _audit_entry(tmp_path: Path, index: int) -> dict[str, Any]:
    from gateway.audit.service import AuditService

    engine = create_db_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        return AuditService(engine).entry(index).document
    finally:
        engine.dispose()


def test_every_registration_is_audited_first(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _add(capsys, "--name", "court", "--agency", "FY640104", "--scopes", "exchange")
    assert code == 0
    issued = json.loads(out)
    entry = _audit_entry(migrated, issued["audit_index"])
    assert entry["action"]["duties_combined"] is False
    assert entry["action"]["name"] == "court"


def test_duplicate_and_invalid_names_exit_2(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--agency", "FY640104", "--scopes", "exchange"]
    assert _add(capsys, "--name", "court", *argv)[0] == 0
    code, _, err = _add(capsys, "--name", "court", *argv)
    assert code == 2
    assert "exists already" in err
    code, _, err = _add(capsys, "--name", "Court System", *argv)
    assert code == 2
    assert "invalid client name" in err
    assert len(_rows(migrated)) == 1


def test_clients_disable(migrated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _add(capsys, "--name", "court", "--agency", "FY640104", "--scopes", "exchange")
    client_id = json.loads(out)["client_id"]
    _add(capsys, "--name", "police", "--agency", "GA640104", "--scopes", "exchange")

    code, out, _ = run(capsys, "clients", "disable", "court")
    assert code == 0
    assert client_id in out
    code, _, _ = run(capsys, "clients", "disable", client_id)  # by id, again: still fine
    assert code == 0
    code, out, _ = run(capsys, "clients", "list", "--json")
    states = {row["name"]: row["disabled"] for row in json.loads(out)}
    assert states == {"court": True, "police": False}
    code, out, _ = run(capsys, "clients", "list")
    assert "disabled" in out
    assert "enabled" in out

    code, _, err = run(capsys, "clients", "disable", "nobody")
    assert code == 2
    assert "no client" in err


# --- keys rotate -----------------------------------------------------------------------------


def test_keys_rotate(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_env / "keys" / "signing-keys.json"
    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0
    first = json.loads(path.read_text())["active"]
    assert first in out
    assert str(path) in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0
    document = json.loads(path.read_text())
    assert document["active"] != first
    assert document["active"] in out
    assert [key["kid"] for key in document["keys"]] == [first, document["active"]]
    assert document["keys"][0]["retired_at"] is not None


def test_keys_rotate_takes_the_algorithm_from_the_settings_or_alg(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cli_env / "keys" / "signing-keys.json"
    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0
    assert "new RS256 signing key" in out  # the default
    monkeypatch.setenv("GATEWAY_TOKEN_SIGNING_ALG", "ES256")
    assert run(capsys, "keys", "rotate")[0] == 0
    assert run(capsys, "keys", "rotate", "--alg", "Ed25519")[0] == 0
    keys = json.loads(path.read_text())["keys"]
    assert [(key["kty"], key["alg"]) for key in keys] == [
        ("RSA", "RS256"),
        ("EC", "ES256"),
        ("OKP", "Ed25519"),
    ]
    monkeypatch.setenv("GATEWAY_TOKEN_SIGNING_ALG", "HS256")
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 2
    assert "GATEWAY_" in err
    assert "token_signing_alg" in err


def test_keys_rotate_failure_exits_1(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = cli_env / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("GATEWAY_KEYS_PATH", str(blocker / "keys.json"))
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 1
    assert "key rotation failed" in err


def test_keys_rotate_refuses_a_corrupt_key_file(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_env / "keys" / "signing-keys.json"
    path.parent.mkdir()
    path.write_text("{oops")
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 1
    assert "cannot read signing keys" in err
    assert path.read_text() == "{oops"  # left alone for the operator to inspect


# --- serve refuses before binding ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal that did not happen must fail the test, not start a server."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("uvicorn.run was called")

    monkeypatch.setattr("gateway.cli_commands.uvicorn.run", refuse)


def test_serve_refuses_production_defaults(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_MODE", "production")
    monkeypatch.delenv("GATEWAY_DATABASE_URL")
    code, _, err = run(capsys, "serve")
    assert code == 2
    assert "GATEWAY_DATABASE_URL" in err
    assert "GATEWAY_ISSUER" in err


def test_serve_with_several_workers_needs_redis(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "serve", "--workers", "2")
    assert code == 2
    assert "GATEWAY_REDIS_URL" in err


def test_gateway_script_is_installed() -> None:
    assert shutil.which("gateway") or Path(sys.executable).with_name("gateway").exists()


# --- db upgrade: the reviewed import and the application role --------------------------------


def _policy_state(tmp_path: Path) -> dict[str, Any]:
    from gateway.policy.store import PolicyRepository
    from gateway.policy.versions import summary

    engine = create_db_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        with session_scope(make_session_factory(engine)) as session:
            repository = PolicyRepository(session)
            [version] = repository.versions()
            return summary(repository.state(version))
    finally:
        engine.dispose()


def test_db_upgrade_records_that_the_deployment_reviewed_the_files(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "db", "upgrade", "--policy-files-reviewed")
    assert code == 0, out
    assert "imported the shipped policy files as sha256:" in out
    assert "reviewed by the deployment" in out
    state = _policy_state(cli_env)
    assert (state["status"], state["kind"]) == ("approved", "initial")
    assert state["reviewer"] == "deployment:db-upgrade"
    code, out, _ = run(capsys, "db", "upgrade", "--policy-files-reviewed")  # again
    assert code == 0
    assert "nothing recorded" in out


def test_db_upgrade_marks_an_unreviewed_import_reviewed(
    migrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.policy.versions import bootstrap
    from gateway.standard import load_standard

    settings = Settings()
    engine = create_db_engine(settings.resolved_database_url)
    try:  # what the first start does: import the files, unreviewed
        standard = load_standard(settings.policy_dir / "standard")
        assert bootstrap(engine, standard, settings.policy_dir).imported
    finally:
        engine.dispose()
    assert _policy_state(migrated)["status"] == "imported"
    code, out, _ = run(capsys, "db", "upgrade", "--policy-files-reviewed")
    assert code == 0
    assert "recorded that the deployment reviewed the initial import" in out
    state = _policy_state(migrated)
    assert (state["status"], state["reviewer"]) == ("approved", "deployment:db-upgrade")


@pytest.mark.postgres
def test_db_upgrade_grants_the_application_role(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    from tests.conftest import APP_ROLE, as_app_role

    monkeypatch.setenv("GATEWAY_DATABASE_URL", as_app_role(postgres_url))
    monkeypatch.setenv("GATEWAY_MIGRATION_DATABASE_URL", postgres_url)
    code, _, err = run(capsys, "db", "upgrade", "--app-role", "postgres")
    assert code == 2
    assert "superuser" in err
    code, out, _ = run(capsys, "db", "upgrade", "--app-role", APP_ROLE)
    assert code == 0, out
    assert f"granted the application role {APP_ROLE}" in out
    _, out, _ = _add(capsys, "--name", "court", "--agency", "FY640104", "--scopes", "exchange")
    assert json.loads(out)["client_id"]  # the application role registers clients
    engine = create_db_engine(as_app_role(postgres_url))
    try:
        with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entries"))
    finally:
        engine.dispose()


# --- start-up ----------------------------------------------------------------------------------


def test_the_parser_loads_without_the_web_stack_or_the_database() -> None:
    """``gateway --help`` and argument errors import the parser alone: a command's modules
    are imported when it runs (start-up 2 s before, ~0.05 s now; docs/performance.md)."""
    probe = (
        "import sys, gateway.cli as c; c.build_parser(); "
        "print(','.join(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'starlette', "
        "'pydantic_settings', 'joserfc', 'gateway.policy', 'gateway.app') if m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_the_parsers_algorithms_are_the_key_stores() -> None:
    from gateway import cli
    from gateway.auth.keys import SIGNING_ALGORITHMS

    assert cli.SIGNING_ALGORITHMS == SIGNING_ALGORITHMS
