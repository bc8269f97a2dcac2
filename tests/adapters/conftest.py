"""Shared helpers of the adapter tests: agency configs, mock upstreams, the real sandbox.

The sandbox fixtures start the five sample agency systems once per session, each with
uvicorn on a free loopback port (``serve_in_thread``), with fault switches enabled: a test
asks for a fault by setting :attr:`FaultInjector.fault`, which adds ``X-Sandbox-Fault`` to
the requests of that adapter only. Fixture names are prefixed (``sandbox_…``, ``agency_…``)
so that the modules under ``tests/sandbox`` keep their own ``dataset`` fixtures.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
import pytest
from httpx_aiohttp.httpx2 import AiohttpTransport

from adapters.base import Adapter
from adapters.config import AgencyConfig, load_agency_configs
from adapters.mapped import MappedAdapter
from adapters.registry import build_adapters
from gateway.standard import Standard, load_standard
from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import AGENCY_KINDS, Credentials, create_app

REPO = Path(__file__).resolve().parents[2]
AGENCIES_DIR = REPO / "adapters" / "agencies"
STANDARD_DIR = REPO / "policies" / "standard"
SANDBOX_CASES = 300
SANDBOX_SEED = 2021
SANDBOX_CREDENTIALS = Credentials(secret="adapter-test-secret-7f3a", client_id="gateway")
#: GATEWAY_UPSTREAM_SECRETS as a deployment would give it: one credential per agency kind.
SANDBOX_SECRETS = {kind: SANDBOX_CREDENTIALS.secret for kind in AGENCY_KINDS}

Handler = Callable[[httpx2.Request], Any]


class FaultInjector(httpx2.AsyncBaseTransport):
    """The production aiohttp transport, plus ``X-Sandbox-Fault: <fault>`` when set."""

    def __init__(self) -> None:
        # plain http on loopback: no CA bundle to load (that costs ~60 ms per transport)
        self.inner = AiohttpTransport(trust_env=False, verify=False)
        self.fault: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.fault is not None:
            request.headers["X-Sandbox-Fault"] = self.fault
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTransport(httpx2.MockTransport):
    """A MockTransport that counts and keeps the requests it was handed."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx2.Request] = []

        async def counted(request: httpx2.Request) -> Any:
            self.requests.append(request)
            result = handler(request)
            if hasattr(result, "__await__"):
                result = await result
            return result

        super().__init__(counted)

    @property
    def calls(self) -> int:
        return len(self.requests)


@pytest.fixture(scope="session")
def agencies_dir() -> Path:
    return AGENCIES_DIR


@pytest.fixture(scope="session")
def sandbox_secrets() -> dict[str, str]:
    return dict(SANDBOX_SECRETS)


@pytest.fixture(scope="session")
def standard() -> Standard:
    return load_standard(STANDARD_DIR)


@pytest.fixture(scope="session")
def agency_configs() -> dict[str, AgencyConfig]:
    return load_agency_configs(AGENCIES_DIR)


@pytest.fixture(scope="session")
def sandbox_dataset() -> Dataset:
    return Dataset(SANDBOX_SEED, SANDBOX_CASES)


@pytest.fixture(scope="session")
def sandbox_urls(sandbox_dataset: Dataset) -> Iterator[dict[str, str]]:
    """Base URL of each of the five sample systems, served over real loopback HTTP."""
    with contextlib.ExitStack() as stack:
        urls = {
            kind: stack.enter_context(
                serve_in_thread(
                    create_app(kind, sandbox_dataset, SANDBOX_CREDENTIALS, faults_enabled=True)
                )
            )
            for kind in AGENCY_KINDS
        }
        yield urls


SandboxAdapters = Callable[..., tuple[dict[str, Adapter], dict[str, FaultInjector]]]


@pytest.fixture
async def sandbox_adapters(
    sandbox_urls: dict[str, str], agency_configs: dict[str, AgencyConfig]
) -> AsyncIterator[SandboxAdapters]:
    """Factory: adapters from an agency directory against the sandbox, with fault injectors.

    ``sandbox_adapters(directory=AGENCIES_DIR, secrets=SANDBOX_SECRETS, base_urls=…,
    **connection_changes)`` → (adapters, injectors); every adapter is closed after the test.
    """
    made: list[Adapter] = []

    def factory(
        directory: Path = AGENCIES_DIR,
        *,
        secrets: Mapping[str, str] = SANDBOX_SECRETS,
        base_urls: Mapping[str, str] | None = None,
        **connection: Any,
    ) -> tuple[dict[str, Adapter], dict[str, FaultInjector]]:
        urls = {**sandbox_urls, **(base_urls or {})}
        loaded = agency_configs if directory == AGENCIES_DIR else load_agency_configs(directory)
        configs = {
            kind: with_connection(config.with_overrides(urls.get(kind)), **connection)
            for kind, config in loaded.items()
        }
        injectors = {kind: FaultInjector() for kind in configs}
        adapters = build_adapters(directory, secrets=secrets, transports=injectors, configs=configs)
        made.extend(adapters.values())
        return adapters, injectors

    yield factory
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def agency_adapters(
    sandbox_adapters: SandboxAdapters,
) -> tuple[dict[str, Adapter], dict[str, FaultInjector]]:
    """Adapters built from ``adapters/agencies`` against the sandbox, with fault injectors."""
    return sandbox_adapters()


def with_connection(config: AgencyConfig, **changes: Any) -> AgencyConfig:
    """``config`` with some connection settings changed (timeouts, retries, circuit…)."""
    if not changes:
        return config
    connection = type(config.connection).model_validate(
        {**config.connection.model_dump(), **changes}
    )
    return config.model_copy(update={"connection": connection})


MockUpstream = Callable[[Handler], CountingTransport]
MockAdapter = Callable[..., tuple[MappedAdapter, CountingTransport]]


@pytest.fixture
def mock_upstream() -> MockUpstream:
    """Factory: a counting ``httpx2.MockTransport`` around ``handler``."""
    return CountingTransport


@pytest.fixture
async def mock_adapter() -> AsyncIterator[MockAdapter]:
    """Factory: a MappedAdapter of ``config`` whose upstream is ``handler`` (no network).

    ``mock_adapter(config, handler, secrets=…, **connection_changes)``; closed after the test.
    """
    made: list[MappedAdapter] = []

    def factory(
        config: AgencyConfig,
        handler: Handler,
        *,
        secrets: Mapping[str, str] | None = None,
        **connection: Any,
    ) -> tuple[MappedAdapter, CountingTransport]:
        transport = CountingTransport(handler)
        adapter = MappedAdapter(
            with_connection(config, base_url="http://agency.test", **connection),
            secrets if secrets is not None else SANDBOX_SECRETS,
            transport=transport,
        )
        made.append(adapter)
        return adapter, transport

    yield factory
    for adapter in made:
        await adapter.aclose()
