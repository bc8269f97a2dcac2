"""A gateway on the sample systems, with a reviewer client per owning agency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import agency_urls, dataset, exchange_gateway

__all__ = ["agency_urls", "dataset", "exchange_gateway"]

REVIEWERS: dict[str, tuple[str, list[str]]] = {
    "court_reviewer": ("FY640104", ["sharing:review"]),
    "court_reviewer_xixia": ("FY640105", ["sharing:review"]),
    "procuratorate_reviewer": ("JC640104", ["sharing:review"]),
}
# C00000006: in execution (兴庆区); the procuratorate supervises the execution. Its judgment's
# 判决主文 (summary) is 有条件 and no rule releases it to EXECUTION_SUPERVISION.
CASE_INDEX = 6
JUDGMENT = "JD0000000601"
OTHER_JUDGMENT = "JD0000000602"


def case_number(data: Dataset, index: int = CASE_INDEX) -> str:
    return str(data.case(index).case["court_case_number"])


def exchange_headers(
    gateway: Gateway, client: str, number: str, purpose: str = "EXECUTION_SUPERVISION"
) -> dict[str, str]:
    return {
        **gateway.auth(client),
        "X-Purpose": purpose,
        "X-Operator-Id": f"{client}-officer-01",
        "X-Case-Number": quote(number, safe="()"),
    }


def application(**overrides: Any) -> dict[str, Any]:
    return {
        "resource": "judgment",
        "fields": ["summary"],
        "record_ids": None,
        "reason": "刑罚执行监督需核对判决主文",
        "days": 5,
        **overrides,
    }


@pytest.fixture
def sharing_gateway(exchange_gateway: Callable[..., Gateway]) -> Callable[..., Gateway]:
    def factory(database_url: str | None = None, **overrides: Any) -> Gateway:
        gateway = exchange_gateway(database_url, **overrides)
        for name, (agency, scopes) in REVIEWERS.items():
            gateway.register(name, agency, scopes)
        return gateway

    return factory
