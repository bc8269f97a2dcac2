"""The information-flow suite: the live gateway against an independent oracle (tests/infoflow).

Example count, from the first that is set:

* ``--infoflow-examples N`` or ``--infoflow-long`` on the command line (pytest knows these
  options when ``tests/infoflow`` is named on the command line, e.g.
  ``pytest tests/infoflow --infoflow-long``);
* ``GATEWAY_INFOFLOW_EXAMPLES=N`` in the environment;
* otherwise the CI default, :data:`CI_EXAMPLES`.

Each example sends one to four requests (a fetch, its missing twin, a search and the pages
after it); the run's request count and outcomes are printed at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, started_gateway
from tests.exchange.conftest import _exchange_overrides, agency_urls, dataset
from tests.infoflow.oracle import Oracle

__all__ = ["agency_urls", "dataset"]

CI_EXAMPLES = 400
LONG_EXAMPLES = 10_000
POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
#: Responses by kind of request and outcome, for the summary (and docs/security.md).
TALLY: Counter[str] = Counter()

OVERRIDES = {
    "rate_limit_per_second": 1_000_000.0,
    "rate_limit_burst": 1_000_000,
    "token_ttl_seconds": 86_400,
    "token_max_lifetime_seconds": 86_400,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infoflow", "information-flow property suite (tests/infoflow)")
    group.addoption(
        "--infoflow-long",
        action="store_true",
        help=f"information flow: {LONG_EXAMPLES} examples instead of {CI_EXAMPLES}",
    )
    group.addoption("--infoflow-examples", type=int, default=None, help="examples to draw")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section("information flow: requests by kind and expected outcome")
    for label in sorted(TALLY):
        if label != "requests":
            terminalreporter.write_line(f"{label}: {TALLY[label]}")
    terminalreporter.write_line(f"total requests: {TALLY['requests']}")


@pytest.fixture(scope="session")
def infoflow_examples(pytestconfig: pytest.Config) -> int:
    explicit = pytestconfig.getoption("--infoflow-examples", default=None)
    if explicit:
        return int(explicit)
    if pytestconfig.getoption("--infoflow-long", default=False):
        return LONG_EXAMPLES
    from_env = os.environ.get("GATEWAY_INFOFLOW_EXAMPLES")
    return int(from_env) if from_env else CI_EXAMPLES


@pytest.fixture(scope="module")
def oracle(dataset: Any) -> Oracle:
    found = Oracle(dataset, POLICY_DIR)
    assert not found.unknown_items, (
        f"the negative list and the oracle disagree on items {sorted(found.unknown_items)}: "
        "restate each new item in tests/infoflow/oracle.py"
    )
    return found


@pytest.fixture(scope="module")
def flow_gateway(
    tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    """A gateway on the sample systems with an exchange client for every agency."""
    overrides = _exchange_overrides(agency_urls, dict(OVERRIDES))
    with started_gateway(tmp_path_factory.mktemp("infoflow"), **overrides) as gateway:
        standard = gateway.client.app.state.runtime.standard  # type: ignore[attr-defined]
        for agency in standard.agencies:
            gateway.register(agency.code.lower(), agency.code, ["exchange"])
        gateway.client._transport.raise_server_exceptions = False  # type: ignore[attr-defined]
        yield gateway
