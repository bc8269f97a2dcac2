"""Shared fixtures: a database per backend, and a running gateway app on it.

Every test that takes ``database_url`` runs on SQLite and on PostgreSQL. The
PostgreSQL server is GATEWAY_TEST_POSTGRES_URL (default: the local trust-auth
server, database ``test``); each test gets its own schema, dropped afterwards.
Under CI=true an unreachable PostgreSQL fails the run instead of skipping.

On PostgreSQL, ``database_url`` is the owner's URL (the migrations, and tests that inspect
or tamper with the tables as a database administrator would); a gateway started from
:func:`make_settings` runs as the application role :data:`APP_ROLE`, which may not rewrite
history (``gateway db upgrade --app-role``), as in production.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth import passwords
from gateway.auth.clients import ClientService, IssuedCredentials
from gateway.auth.keys import KeyStore
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.migrate import upgrade
from gateway.settings import Mode, Settings

POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
# The role gateways under test run as on PostgreSQL (made once per server, no superuser).
APP_ROLE = "gateway_test_app"
TEST_ISSUER = "http://testserver"
AGENCY_KINDS = ("public_security", "procuratorate", "court", "prison", "justice")
# Tests that do not exchange data still start every adapter: give them credentials and an
# address where nothing listens (the discard port), so a stray call fails fast.
UNREACHABLE_UPSTREAMS = {kind: "http://127.0.0.1:9" for kind in AGENCY_KINDS}
DUMMY_UPSTREAM_SECRETS = {kind: f"test-secret-{kind}" for kind in AGENCY_KINDS}


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return str(exc).splitlines()[0]
    return None


def ensure_app_role(server: str) -> None:
    """Create :data:`APP_ROLE` (LOGIN, not a superuser) unless it exists; safe to race."""
    engine = create_engine(server)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB "
                    "NOCREATEROLE NOBYPASSRLS; EXCEPTION WHEN duplicate_object OR "
                    "unique_violation THEN NULL; END $$"
                )
            )
    finally:
        engine.dispose()


def as_app_role(url: str) -> str:
    """The same database and schema, as the application role (SQLite: unchanged)."""
    if not url.startswith("postgresql"):
        return url
    return make_url(url).set(username=APP_ROLE).render_as_string(hide_password=False)


# Client secrets are hashed at a test cost: scrypt n=2**10 (~1 ms) instead of production's
# n=2**14 (~45 ms). The suite registers thousands of clients, and scrypt was a fifth of its
# time. Still scrypt, with its salt and its format; a check follows each stored hash's own
# parameters, so nothing else changes. tests/auth/test_passwords.py checks the production
# cost (fixture ``production_secret_cost``).
PRODUCTION_SCRYPT_N = passwords._N
TEST_SCRYPT_N = 2**10


@pytest.fixture(scope="session", autouse=True)
def _test_secret_cost() -> Iterator[None]:
    passwords._N = TEST_SCRYPT_N
    yield
    passwords._N = PRODUCTION_SCRYPT_N


@pytest.fixture
def production_secret_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash client secrets at the production cost in this test."""
    monkeypatch.setattr(passwords, "_N", PRODUCTION_SCRYPT_N)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {problem}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    ensure_app_role(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    with postgres_schema(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# Tests send many requests from one address ("testclient") within seconds: the per-source
# limits of anonymous requests and of the token endpoint are lifted here; their own tests
# (tests/security/test_rate_limit.py, tests/auth/test_token_throttle.py) set them low.
SOURCE_LIMITS_LIFTED: dict[str, Any] = {
    "anonymous_rate_limit_per_second": 100_000.0,
    "anonymous_rate_limit_burst": 100_000,
    "token_source_rate_limit_per_second": 100_000.0,
    "token_source_rate_limit_burst": 100_000,
    "token_rate_limit_per_second": 100_000.0,
    "token_rate_limit_burst": 100_000,
}


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings of a test gateway; on PostgreSQL it runs as :data:`APP_ROLE` and migrates as
    the owner (``database_url``)."""
    values: dict[str, Any] = {
        "mode": Mode.TEST,
        "data_dir": tmp_path,
        "database_url": database_url,
        "issuer": TEST_ISSUER,
        "log_json": True,
        "log_level": "WARNING",
        "client_cache_seconds": 0.0,
        "upstream_urls": UNREACHABLE_UPSTREAMS,
        "upstream_secrets": DUMMY_UPSTREAM_SECRETS,
        # The outbox pusher changes a delivery's status and events behind a test's back:
        # tests of the push start it (delivery_push_enabled=True) or drive run_once.
        "delivery_push_enabled": False,
        **SOURCE_LIMITS_LIFTED,
    }
    if database_url is not None and database_url.startswith("postgresql"):
        values.update(
            database_url=as_app_role(database_url),
            migration_database_url=database_url,
            database_app_role=APP_ROLE,
        )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Gateway:
    """A migrated database, keys, registered clients and a started app."""

    settings: Settings
    client: TestClient
    clients: dict[str, IssuedCredentials] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, name: str, scope: str | None = None) -> str:
        key = f"{name}:{scope}"
        if key not in self._tokens:
            cred = self.clients[name]
            form = {"grant_type": "client_credentials"}
            if scope:
                form["scope"] = scope
            response = self.client.post(
                "/oauth/token", data=form, auth=(cred.client_id, cred.client_secret)
            )
            assert response.status_code == 200, response.text
            self._tokens[key] = response.json()["access_token"]
        return self._tokens[key]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(name)}"}

    def register(self, name: str, agency: str, scopes: list[str], **kw: Any) -> IssuedCredentials:
        cred = register_client(self.settings, name, agency, scopes, **kw)  # as the app role
        self.clients[name] = cred
        return cred


def register_client(
    settings: Settings, name: str, agency: str, scopes: list[str], **kw: Any
) -> IssuedCredentials:
    """Register a client the way ``gateway clients add`` does."""
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return ClientService(session).register(name=name, agency=agency, scopes=scopes, **kw)
    finally:
        engine.dispose()


# A fresh SQLite database is a copy of one this process migrated (with the real migrations)
# at its first use: the migrations took ~0.15 s of every test gateway's start. PostgreSQL
# schemas are migrated each time (a schema cannot be copied).
_MIGRATED_SQLITE: list[Path] = []


def migrate_database(settings: Settings) -> None:
    """The schema at head in ``settings``' database, as ``gateway db upgrade`` makes it."""
    url = settings.resolved_migration_database_url
    target = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or target.exists():
        upgrade(settings)
        return
    if not _MIGRATED_SQLITE:
        template = Path(tempfile.mkdtemp(prefix="gateway-template-")) / "gateway.db"
        atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
        upgrade(make_settings(template.parent, f"sqlite:///{template}"))
        # Every connection closed: the log was checkpointed into the file and removed.
        assert not template.with_name("gateway.db-wal").exists()
        _MIGRATED_SQLITE.append(template)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MIGRATED_SQLITE[0], target)


# One signing-key file per test process (of the key store's default algorithm, the one
# started_gateway's ensure() makes), copied into each test gateway's data directory:
# generating an RSA key takes ~0.5 s, and the suite starts a gateway ~1,000 times. Real keys
# all the same; the tests of the key store itself and of rotation make their own.
_SEEDED_KEY_FILE: list[str] = []


def seed_signing_keys(settings: Settings) -> None:
    """Give ``settings``' data directory this process's test signing key, unless it has one."""
    path = settings.resolved_keys_path
    if path.exists():
        return
    if not _SEEDED_KEY_FILE:
        with tempfile.TemporaryDirectory() as scratch:
            made = Path(scratch) / "keys.json"
            KeyStore(made, token_ttl_seconds=settings.token_ttl_seconds).ensure()
            _SEEDED_KEY_FILE.append(made.read_text())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(_SEEDED_KEY_FILE[0])


@contextmanager
def started_gateway(
    tmp: Path, database_url: str | None = None, **overrides: Any
) -> Iterator[Gateway]:
    """What ``make_gateway`` builds, for any fixture scope (an app start costs ~1 s)."""
    settings = make_settings(tmp, database_url or f"sqlite:///{tmp / 'gateway.db'}", **overrides)
    migrate_database(settings)
    seed_signing_keys(settings)  # the app loads it (KeyStore.ensure() would only load it too)
    gateway = Gateway(settings=settings, client=TestClient(create_app(settings)))
    for name, (agency, scopes) in STANDARD_TEST_CLIENTS.items():
        gateway.register(name, agency, scopes)
    with gateway.client:
        yield gateway


@contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server, as a URL; dropped afterwards."""
    ensure_app_role(server)
    schema = f"gw_test_{secrets.token_hex(6)}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


STANDARD_TEST_CLIENTS: dict[str, tuple[str, list[str]]] = {
    "police": ("GA640104", ["exchange"]),
    "court": ("FY640104", ["exchange"]),
    "regulator": ("ZF640000", ["audit:read"]),
    "admin": ("ZF640000", ["policy:admin"]),
}


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Factory: started gateways for this test, stopped after it."""
    with contextlib.ExitStack() as stack:

        def factory(database_url: str | None = None, **overrides: Any) -> Gateway:
            return stack.enter_context(started_gateway(tmp_path, database_url, **overrides))

        yield factory


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway], database_url: str) -> Gateway:
    """A started gateway on each database backend."""
    return make_gateway(database_url)


@pytest.fixture
def sqlite_gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    """A started gateway on SQLite only, for behaviour that does not depend on the backend."""
    return make_gateway()
