"""One case from investigation along the chain, against sample systems that share one world.

As in the demo (``serve-all``), the five sample systems share one dataset and a received
delivery moves its case on (sandbox/world.py). Each hop is sent through the API with the real
policy checks, pushed, and answered. The walk shows how far one case gets today: 提请批准逮捕 →
批准逮捕决定, then 移送审查起诉 is refused, because the procuratorate's purpose for it is not
valid at the stage the case is in until that very delivery is received (docs/deliveries.md,
"Not one case, four"). The gateway's case cache is switched off here (a test's monkeypatch,
not a product setting) so the case as the police system reports it is read on every hop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import AGENCY_KINDS, create_app
from tests.conftest import Gateway
from tests.deliveries.push_helpers import Clock, pusher, run_once, sandbox_auth, state
from tests.exchange.conftest import CREDENTIALS

POLICE_NUMBER = "A6401040000002024112156"  # C00000023, 立案侦查 in 兴庆区


@pytest.fixture
def world_urls() -> Iterator[dict[str, str]]:
    """The five systems over one fresh dataset that received deliveries move on."""
    dataset = Dataset(2021, 300)
    with contextlib.ExitStack() as stack:
        urls = {}
        for kind in AGENCY_KINDS:
            app = create_app(kind, dataset, CREDENTIALS)
            app.state.world = dataset
            urls[kind] = stack.enter_context(serve_in_thread(app))
        yield urls


def _police_case(urls: dict[str, str]) -> dict[str, Any]:
    url = urls["public_security"]
    answer = httpx.get(f"{url}/api/v1/ajxx/C00000023", headers=sandbox_auth("public_security", url))
    data: dict[str, Any] = answer.json()["data"]
    return data


def test_one_case_travels_until_the_prosecution_transfer(
    exchange_gateway: Callable[..., Gateway],
    world_urls: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.exchange.upstream._CASE_CACHE_SECONDS", 0.0)
    gw = exchange_gateway(upstream_urls=world_urls)  # its "police" client is GA640104
    # The API stamps rows with the real time: the pusher's clock runs a little ahead of it.
    outbox = pusher(gw, Clock(datetime.now(UTC) + timedelta(minutes=1)))

    def send(client: str, purpose: str, key: str, body: dict[str, Any]) -> httpx.Response:
        headers = {
            **gw.auth(client),
            "X-Purpose": purpose,
            "X-Operator-Id": "officer-01",
            "X-Case-Number": quote(POLICE_NUMBER),
            "Idempotency-Key": key,
        }
        return gw.client.post("/v1/deliveries", headers=headers, json=body)

    def hop(client: str, purpose: str, body: dict[str, Any], answerer: str, under: str) -> None:
        sent = send(client, purpose, f"walk-{body['kind']}", body)
        assert sent.status_code == 201, sent.text
        delivery_id = sent.json()["id"]
        assert run_once(gw, outbox) == 1
        assert state(gw, delivery_id)[0] == "delivered"
        headers = {**gw.auth(answerer), "X-Purpose": under, "X-Operator-Id": "officer-02"}
        answer = gw.client.post(
            f"/v1/deliveries/{delivery_id}/receipt",
            headers=headers,
            json={"decision": "accepted"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "accepted"

    assert (_police_case(world_urls)["AJZT"], _police_case(world_urls)["BLDWDM"]) == (
        "10",
        "GA640104,JC640104",
    )
    hop(
        "police",
        "ARREST_REVIEW",
        {"kind": "arrest_request", "to_agency": "JC640104", "record_id": "C00000023"},
        "procuratorate",
        "ARREST_REVIEW",
    )
    assert _police_case(world_urls)["AJZT"] == "20"  # ARREST_REVIEW, as the police now report
    hop(
        "procuratorate",
        "ARREST_REVIEW",
        {"kind": "arrest_decision", "to_agency": "GA640104", "record_id": "AR0000002301"},
        "police",
        "ARREST_REVIEW",
    )
    assert _police_case(world_urls)["AJZT"] == "10"  # back to INVESTIGATION
    transfer = {
        "transfer_id": "PT0000002301",
        "case_id": "C00000023",
        "person_ids": ["P0000002301"],
        "transfer_date": "2025-01-10",
        "receiving_procuratorate": "JC640104",
        "charges": ["诈骗罪"],
        "review_outcome": None,
        "outcome_date": None,
        "opinion": "犯罪嫌疑人涉嫌诈骗罪，犯罪事实清楚，证据确实、充分，依法移送审查起诉。",
    }
    refused = send(
        "police",
        "INVESTIGATION",
        "walk-prosecution_transfer",
        {"kind": "prosecution_transfer", "to_agency": "JC640104", "record": transfer},
    )
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["rule_ids"] == ["jc.prosecution-review.transfer"]
    assert "valid in stages PROSECUTION_REVIEW, TRIAL" in problem["detail"]
    assert "the case is in stage INVESTIGATION" in problem["detail"]
    assert run_once(gw, outbox) == 0  # nothing stored, nothing pushed
    assert _police_case(world_urls)["AJZT"] == "10"
