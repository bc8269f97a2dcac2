"""Fixtures and options of the schema fuzz tests (tests/fuzz/test_schema_fuzz.py).

Example count per operation, from the first that is set:

* ``--fuzz-examples N`` or ``--fuzz-long`` (= 200) on the command line. Pytest only knows these
  options when ``tests/fuzz`` (or a file in it) is named on the command line, e.g.
  ``pytest tests/fuzz --fuzz-long``;
* ``GATEWAY_FUZZ_EXAMPLES=N`` in the environment (works however pytest is started);
* otherwise the CI default, :data:`CI_EXAMPLES`.

Generation is derandomized (the examples are a function of the test and the schema), so a CI
failure reproduces locally with the same command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import (
    IN_CI,
    POSTGRES_URL,
    Gateway,
    _postgres_available,
    postgres_schema,
    started_gateway,
)
from tests.exchange.conftest import (  # the five sample agency systems on loopback
    _exchange_overrides,
    _register_exchange_clients,
    agency_urls,
    dataset,
)

__all__ = ["agency_urls", "dataset"]

CI_EXAMPLES = 20
LONG_EXAMPLES = 200

# Fuzzing sends hundreds of requests per client within seconds and, in a long run, for longer
# than a token lives: lift the rate limit (its 429 has its own tests) and the token lifetime.
FUZZ_OVERRIDES = {
    "rate_limit_per_second": 1_000_000.0,
    "rate_limit_burst": 1_000_000,
    "token_ttl_seconds": 86_400,
    "token_max_lifetime_seconds": 86_400,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzz", "schema fuzzing (tests/fuzz)")
    group.addoption(
        "--fuzz-long",
        action="store_true",
        help=f"schema fuzzing: {LONG_EXAMPLES} examples per operation instead of {CI_EXAMPLES}",
    )
    group.addoption(
        "--fuzz-examples", type=int, default=None, help="schema fuzzing: examples per operation"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.fuzz.harness import STATUS_COUNTS

    if not STATUS_COUNTS:
        return
    terminalreporter.section("schema fuzzing: responses by operation and status")
    total = 0
    for label in sorted(STATUS_COUNTS):
        counts = STATUS_COUNTS[label]
        total += sum(counts.values())
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        terminalreporter.write_line(f"{label}  {shown}")
    terminalreporter.write_line(f"total requests: {total}")


@pytest.fixture(scope="session")
def fuzz_examples(pytestconfig: pytest.Config) -> int:
    explicit = pytestconfig.getoption("--fuzz-examples", default=None)
    if explicit:
        return int(explicit)
    if pytestconfig.getoption("--fuzz-long", default=False):
        return LONG_EXAMPLES
    from_env = os.environ.get("GATEWAY_FUZZ_EXAMPLES")
    return int(from_env) if from_env else CI_EXAMPLES


def _answer_server_errors(gateway: Gateway) -> Gateway:
    """Let an unhandled error come back as the 500 a client would get (problem+json, checked
    like any response) instead of raising in the test; its traceback is still logged."""
    gateway.client._transport.raise_server_exceptions = False  # type: ignore[attr-defined]
    return gateway


@contextmanager
def fuzz_database() -> Iterator[str | None]:
    """The production backend (PostgreSQL, a schema of its own) when reachable, else None
    (SQLite); under CI=true PostgreSQL is required."""
    problem = _postgres_available()
    if problem is None:
        with postgres_schema(POSTGRES_URL) as url:
            yield url
        return
    if IN_CI:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable: {problem} (CI=true)")
    yield None


@pytest.fixture(scope="module")
def fuzz_gateway(
    tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    """The gateway every read-only operation is fuzzed against, wired to the sample systems."""
    tmp = tmp_path_factory.mktemp("fuzz")
    overrides = _exchange_overrides(agency_urls, dict(FUZZ_OVERRIDES))
    with fuzz_database() as url, started_gateway(tmp, url, **overrides) as gateway:
        gateway.register("prometheus", "ZF640000", ["metrics:read"])
        gateway.register("court_reviewer", "FY640104", ["sharing:review"])
        yield _answer_server_errors(_register_exchange_clients(gateway))


@pytest.fixture(scope="module")
def admin_fuzz_gateway(
    tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    """A gateway of its own for the policy administration POSTs, which change its state."""
    tmp = tmp_path_factory.mktemp("fuzz-admin")
    overrides = _exchange_overrides(agency_urls, dict(FUZZ_OVERRIDES))
    with fuzz_database() as url, started_gateway(tmp, url, **overrides) as gateway:
        # maker-checker: a second administrator may approve the first one's candidates
        gateway.register("admin2", "ZF640000", ["policy:admin"])
        gateway.register("prometheus", "ZF640000", ["metrics:read"])
        gateway.register("court_reviewer", "FY640104", ["sharing:review"])
        yield _answer_server_errors(_register_exchange_clients(gateway))
