"""Shared gateways: an app start costs about a second, so read-mostly tests share one.

Tests that change state on a shared gateway register their own client first (a
fresh name) and change only that one. Top-level test modules import these
fixtures by name.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.keys import KeyStore
from gateway.migrate import upgrade
from tests.conftest import STANDARD_TEST_CLIENTS, Gateway, make_settings


@contextmanager
def started_gateway(
    tmp: Path, database_url: str | None = None, **overrides: Any
) -> Iterator[Gateway]:
    """What ``make_gateway`` builds, for any fixture scope."""
    settings = make_settings(tmp, database_url or f"sqlite:///{tmp / 'gateway.db'}", **overrides)
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    gateway = Gateway(settings=settings, client=TestClient(create_app(settings)))
    for name, (agency, scopes) in STANDARD_TEST_CLIENTS.items():
        gateway.register(name, agency, scopes)
    with gateway.client:
        yield gateway


@contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL server, as a URL (like conftest's postgres_url)."""
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


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="package")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A started SQLite gateway shared by the auth tests: change only clients you register."""
    with started_gateway(tmp_path_factory.mktemp("shared-gateway")) as gateway:
        yield gateway


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def backend_started_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[Gateway]:
    """A started gateway on the backend named by ``request.param`` (see ``BACKENDS``)."""
    tmp = tmp_path_factory.mktemp(f"backend-{request.param}")
    if request.param == "sqlite":
        with started_gateway(tmp, **overrides) as gateway:
            yield gateway
        return
    server: str = request.getfixturevalue("postgres_server")
    with postgres_schema(server) as url, started_gateway(tmp, url, **overrides) as gateway:
        yield gateway


@pytest.fixture(scope="package", params=BACKENDS)
def backend_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Like ``shared_gateway``, once per database backend."""
    with backend_started_gateway(request, tmp_path_factory) as gateway:
        yield gateway
