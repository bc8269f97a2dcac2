"""The app's own outbox pusher: started by the lifespan, woken by a new delivery, retrying.

A delivery created through ``POST /v1/deliveries`` (the procuratorate's 提起公诉 to the court,
as in test_api.py) reaches the sample court's system without anyone driving the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import received, set_fault, state
from tests.deliveries.test_api import _body, _send


def _until(predicate: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


def test_a_new_delivery_wakes_the_pusher(
    exchange_gateway: Callable[..., Gateway],
    database_url: str,
    dataset: Dataset,
    agency_urls: dict[str, str],
) -> None:
    # A poll interval far longer than the test: only the wake-up can deliver it in time.
    gw = exchange_gateway(
        database_url, delivery_push_enabled=True, delivery_push_interval_seconds=60
    )
    created = _send(gw, dataset, _body(dataset), key="wake-1")
    assert created.status_code == 201, created.text
    delivery_id = created.json()["id"]
    _until(lambda: state(gw, delivery_id)[0] == "delivered", 5)
    assert len(received(agency_urls, "court", delivery_id)) == 1
    document = received(agency_urls, "court", delivery_id)[0]["document"]
    assert document["SD"]["WSNR"]["QSSID"] == _body(dataset)["record"]["indictment_id"]


def test_the_pusher_retries_until_the_recipient_is_back(
    exchange_gateway: Callable[..., Gateway],
    dataset: Dataset,
    agency_urls: dict[str, str],
) -> None:
    gw = exchange_gateway(
        delivery_push_enabled=True,
        delivery_push_interval_seconds=0.05,
        delivery_push_backoff_seconds=0.1,
    )
    set_fault(agency_urls, "court", "status=503")
    try:
        created = _send(gw, dataset, _body(dataset), key="retry-1")
        assert created.status_code == 201, created.text
        delivery_id = created.json()["id"]

        def failures() -> int:
            return sum(e["type"] == "push_failed" for e in state(gw, delivery_id)[1])

        _until(lambda: failures() >= 2, 5)
    finally:
        set_fault(agency_urls, "court", "")
    _until(lambda: state(gw, delivery_id)[0] == "delivered", 5)
    assert len(received(agency_urls, "court", delivery_id)) == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_the_pusher_runs_only_when_enabled(
    exchange_gateway: Callable[..., Gateway],
    dataset: Dataset,
    enabled: bool,
) -> None:
    gw = exchange_gateway(delivery_push_enabled=enabled, delivery_push_interval_seconds=0.05)
    created = _send(gw, dataset, _body(dataset), key=f"enabled-{enabled}")
    delivery_id = created.json()["id"]
    time.sleep(0.5)
    assert state(gw, delivery_id)[0] == ("delivered" if enabled else "pending")
