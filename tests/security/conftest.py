"""Fixtures of the attack matrix (docs/security.md, "Attack matrix").

* ``sec``: one gateway for the whole package, wired over real loopback HTTP to the five
  sample agency systems, with the standard test clients, the exchange clients and a second
  policy administrator. Tests that change state (disable a client, spend a rate limit)
  register a fresh client of their own and change only that one; nothing is ever published.
* ``live``: the gateway app served by a REAL uvicorn server (httptools and uvloop, as
  ``gateway serve`` runs it; lifespan on) on a free loopback port, for the attacks that only
  exist on the wire (request smuggling, oversize headers): tests talk to it over raw sockets.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gateway.app import create_app
from gateway.auth.clients import IssuedCredentials
from gateway.auth.keys import KeyStore
from gateway.migrate import upgrade
from gateway.settings import Settings
from sandbox.generator import Dataset
from sandbox.systems import AGENCY_KINDS
from tests.conftest import Gateway, make_settings, postgres_schema, started_gateway
from tests.exchange.conftest import CREDENTIALS, EXCHANGE_CLIENTS, agency_urls, dataset
from tests.served import serve_app

__all__ = ["agency_urls", "dataset"]

COURT_CASE = "(2024)宁0104刑初465号"  # C00000020, at trial, handled by court FY640104
SEALED_PERSON = "P0000000301"  # sealed juvenile record in C00000003 (closed)
MISSING_PERSON = "P0000000399"  # same length, does not exist
LIVE_MAX_BODY = 4096

SECURITY_CLIENTS: dict[str, tuple[str, list[str]]] = {
    **EXCHANGE_CLIENTS,
    "approver": ("ZF640000", ["policy:admin"]),
}


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def exchange_overrides(urls: dict[str, str], **overrides: Any) -> dict[str, Any]:
    return {
        "upstream_urls": {**urls, **overrides.pop("upstream_urls", {})},
        "upstream_secrets": {kind: CREDENTIALS.secret for kind in AGENCY_KINDS},
        **overrides,
    }


def register(
    gateway: Gateway, name: str, agency: str, scopes: list[str], **kw: Any
) -> IssuedCredentials:
    """Register a client while the gateway serves. SQLite refuses a write transaction whose
    snapshot another connection (the audit writer) has just overtaken ("database is locked",
    at once, without waiting): try again."""
    for attempt in range(5):
        try:
            return gateway.register(name, agency, scopes, **kw)
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


@contextmanager
def security_gateway(tmp: Path, urls: dict[str, str], **overrides: Any) -> Iterator[Gateway]:
    with started_gateway(tmp, **exchange_overrides(urls, **overrides)) as gateway:
        for name, (agency, scopes) in SECURITY_CLIENTS.items():
            register(gateway, name, agency, scopes)
        yield gateway


@pytest.fixture(scope="package")
def sec(tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]) -> Iterator[Gateway]:
    with security_gateway(tmp_path_factory.mktemp("security"), agency_urls) as gateway:
        yield gateway


@contextmanager
def backend_security_gateway(
    request: pytest.FixtureRequest, tmp: Path, urls: dict[str, str], **overrides: Any
) -> Iterator[Gateway]:
    """``security_gateway`` on the backend named by ``request.param`` (sqlite, postgresql):
    on PostgreSQL the gateway runs as the application role, as in production."""
    if request.param == "sqlite":
        with security_gateway(tmp, urls, **overrides) as gateway:
            yield gateway
        return
    server: str = request.getfixturevalue("postgres_server")
    with (
        postgres_schema(server) as url,
        security_gateway(tmp, urls, database_url=url, **overrides) as gateway,
    ):
        yield gateway


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def both(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    agency_urls: dict[str, str],
) -> Iterator[Gateway]:
    """One gateway per module on each backend, for the rows that involve the database."""
    with backend_security_gateway(
        request, tmp_path_factory.mktemp(f"both-{request.param}"), agency_urls
    ) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def sealed_case_number(dataset: Dataset) -> str:
    number: str = dataset.case(3).case["court_case_number"]
    return number


# --- a real server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveGateway:
    settings: Settings
    port: int


@contextmanager
def serve_gateway(settings: Settings) -> Iterator[int]:
    """The gateway app as ``gateway serve`` configures uvicorn: httptools, uvloop."""
    with serve_app(
        create_app(settings),
        http="httptools",
        loop="uvloop",
        proxy_headers=True,
        server_header=False,
    ) as port:
        yield port


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("live")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'gateway.db'}", max_body_bytes=LIVE_MAX_BODY)
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    with serve_gateway(settings) as port:
        yield LiveGateway(settings, port)
