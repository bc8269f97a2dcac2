"""A delivery waiting in the outbox leaves only if the policy IN FORCE still allows it.

Found by an attacker review: after an emergency freeze (the deny-all set in force), a delivery
created before it was still pushed on the outbox's next pass, up to the last retry.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import received, run_once, runtime, state
from tests.deliveries.test_api import _body, _case_number, _headers


def test_a_delivery_queued_before_a_freeze_is_not_pushed_after_it(
    exchange_gateway: Callable[..., Gateway],
    database_url: str,
    dataset: Dataset,
    agency_urls: dict[str, str],
) -> None:
    gw = exchange_gateway(database_url)  # the app's pusher is off: the test drives it
    gw.register("admin1", "ZF640000", ["policy:admin"])
    headers = _headers(gw, "procuratorate", "PROSECUTION_REVIEW", _case_number(dataset), "k-f")
    created = gw.client.post(
        "/v1/deliveries", content=orjson.dumps(_body(dataset)), headers=headers
    )
    assert created.status_code == 201, created.text
    delivery_id = created.json()["id"]
    frozen = gw.client.post(
        "/v1/admin/policies/freeze", json={"comment": "incident"}, headers=gw.auth("admin1")
    )
    assert frozen.status_code in (200, 201), frozen.text

    assert run_once(gw, runtime(gw).outbox) == 0
    status, events, outbox = state(gw, delivery_id)
    assert (status, outbox) == ("failed", "dead")
    assert [e["type"] for e in events] == ["created", "push_attempt", "failed"]
    assert events[-1]["audit_index"] is not None
    assert received(agency_urls, "court", delivery_id) == []
