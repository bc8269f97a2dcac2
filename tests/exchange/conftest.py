"""A gateway wired to the five sample agency systems over real loopback HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import AGENCY_KINDS, Credentials, create_app
from tests.conftest import Gateway, started_gateway

SANDBOX_SEED = 2021
SANDBOX_CASES = 300
CREDENTIALS = Credentials(secret="exchange-test-secret-19c2", client_id="gateway")

EXCHANGE_CLIENTS: dict[str, tuple[str, list[str]]] = {
    "procuratorate": ("JC640104", ["exchange"]),
    "prison": ("JY640001", ["exchange"]),
    "justice": ("SF640104", ["exchange"]),
    "police_xixia": ("GA640105", ["exchange"]),
    "committee": ("ZF640000", ["exchange"]),
}


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return Dataset(SANDBOX_SEED, SANDBOX_CASES)


@pytest.fixture(scope="session")
def agency_urls(dataset: Dataset) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                serve_in_thread(create_app(kind, dataset, CREDENTIALS, faults_enabled=True))
            )
            for kind in AGENCY_KINDS
        }


def _exchange_overrides(agency_urls: dict[str, str], overrides: dict[str, Any]) -> dict[str, Any]:
    urls = {**agency_urls, **overrides.pop("upstream_urls", {})}
    secrets = {kind: CREDENTIALS.secret for kind in AGENCY_KINDS}
    return {"upstream_urls": urls, "upstream_secrets": secrets, **overrides}


def _register_exchange_clients(gateway: Gateway) -> Gateway:
    for name, (agency, scopes) in EXCHANGE_CLIENTS.items():
        gateway.register(name, agency, scopes)
    return gateway


@pytest.fixture
def exchange_gateway(
    make_gateway: Callable[..., Gateway], agency_urls: dict[str, str]
) -> Callable[..., Gateway]:
    """Factory: a started gateway (this test only) whose adapters talk to the sample systems."""

    def factory(database_url: str | None = None, **overrides: Any) -> Gateway:
        gateway = make_gateway(database_url, **_exchange_overrides(agency_urls, overrides))
        return _register_exchange_clients(gateway)

    return factory


@pytest.fixture(scope="module")
def shared_exchange_gateway(
    tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    """One gateway for a module's read-only tests (an app start costs about a second)."""
    with started_gateway(
        tmp_path_factory.mktemp("exchange"), **_exchange_overrides(agency_urls, {})
    ) as gateway:
        yield _register_exchange_clients(gateway)


def exchange_headers(
    gateway: Gateway,
    client: str,
    purpose: str,
    case_number: str | None = None,
    operator: str = "officer-7",
) -> dict[str, str]:
    headers = {**gateway.auth(client), "X-Purpose": purpose, "X-Operator-Id": operator}
    if case_number is not None:
        headers["X-Case-Number"] = quote(case_number, safe="()")
    return headers
