"""Every example the demo prints in demo.json gets the status it promises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.audit.checkpoint import parse_verifier
from gateway.deliveries.receipts import open_receipt
from gateway.demo import DEMO_CLIENTS
from gateway.demo_examples import demo_examples
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import Clock, pusher, run_once, world_systems
from tests.exchange.conftest import SANDBOX_CASES, SANDBOX_SEED


@pytest.fixture
def world_urls() -> Iterator[dict[str, str]]:
    """As in the demo (``serve-all``): the sample systems share one world that received
    deliveries move on, so the demo's one case can travel the whole chain."""
    with world_systems(Dataset(SANDBOX_SEED, SANDBOX_CASES)) as urls:
        yield urls


def test_every_demo_example_gets_its_expected_status(
    exchange_gateway: Callable[..., Gateway], world_urls: dict[str, str]
) -> None:
    gateway = exchange_gateway(upstream_urls=world_urls)
    # As the demo's pusher does when woken: each delivery reaches its recipient's system.
    outbox = pusher(gateway, Clock(datetime.now(UTC) + timedelta(minutes=1)))
    for name, (agency, scopes) in DEMO_CLIENTS.items():
        if name not in gateway.clients:
            gateway.register(name, agency, [str(s) for s in scopes])
    examples = demo_examples()
    names = [e["name"] for e in examples]
    assert len(names) == len(set(names))
    exchange = [e for e in examples if e["path"].startswith("/v1/resources/")]
    owners = {e["path"].split("/")[3].split("?")[0] for e in exchange}
    assert len(owners) >= 5  # at least five resource types
    runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    saved: dict[str, str] = {}
    receipts: list[str] = []
    for example in sorted(examples, key=lambda e: e["client"] == "regulator"):
        if example["client"] == "regulator":
            runtime.checkpointer.checkpoint_now()
        headers = dict(example["headers"])
        if example["client"] is not None:
            headers.update(gateway.auth(example["client"]))
        response = gateway.client.request(
            example["method"],
            example["path"].format(**saved),
            headers=headers,
            json=example.get("body"),
        )
        assert response.status_code == example["expect_status"], (example["name"], response.text)
        if "saves" in example:
            saved[example["saves"]] = response.json()["id"]
            copies = example["body"].get("copies", [])
            assert run_once(gateway, outbox) == 1 + len(copies), example["name"]
        if example["path"].endswith("/receipt"):
            receipts.append(response.json()["receipt"])
        if example["path"].startswith("/v1/resources/"):
            assert "X-Audit-Index" in response.headers
        if "expect_masked" in example:
            body = response.json()
            assert sorted(body["masked"]) == example["expect_masked"], body
            record = body["record"]
            assert record["birth_date"].isdigit()  # the year only
            assert "*" in record["id_number"]
            assert record["address"] == "***"
    served = {
        runtime.standard.resource(e["path"].split("/")[3].split("?")[0]).owner
        for e in exchange
        if e["expect_status"] == 200
    }
    assert served == {"public_security", "procuratorate", "court", "prison", "justice"}
    _every_kind_delivered_and_receipted(gateway, examples, receipts)
    _the_copies_were_delivered(gateway, examples, saved)


def _the_copies_were_delivered(
    gateway: Gateway, examples: list[dict[str, Any]], saved: dict[str, str]
) -> None:
    """The 入矫 went with its copies (社区矫正法 第20条: 同时抄送人民检察院和执行地公安机关):
    each its own delivery to its agency, delivered by the outbox, no answer or deadline."""
    entry = next(e for e in examples if e["name"] == "deliver-community-correction-entry")
    assert entry["body"]["copies"] == ["JC640104", "GA640104"]
    main_id = saved["community_correction_entry"]
    court = {**gateway.auth("court"), "X-Purpose": "COMMUNITY_CORRECTION", "X-Operator-Id": "o"}
    main = gateway.client.get(f"/v1/deliveries/{main_id}", headers=court).json()
    assert main["status"] == "accepted"
    assert main["copy_of"] is None
    assert sorted(c["to_agency"] for c in main["copies"]) == ["GA640104", "JC640104"]
    for client, agency, purpose in (
        ("procuratorate", "JC640104", "EXECUTION_SUPERVISION"),
        ("public_security", "GA640104", "COMMUNITY_CORRECTION"),
    ):
        headers = {**gateway.auth(client), "X-Purpose": purpose, "X-Operator-Id": "o"}
        listed = gateway.client.get(
            "/v1/deliveries?role=inbound&kind=community_correction_entry", headers=headers
        )
        assert listed.status_code == 200, listed.text
        (copy,) = listed.json()["deliveries"]
        assert (copy["to_agency"], copy["copy_of"]) == (agency, main_id)
        assert copy["status"] == "delivered"
        assert copy["due_at"] is None
        assert copy["receipt"] is None
        assert copy["content_sha256"] == main["content_sha256"]
        assert any(e["type"] == "delivered" for e in copy["events"])


def _every_kind_delivered_and_receipted(
    gateway: Gateway, examples: list[dict[str, Any]], receipts: list[str]
) -> None:
    """One delivery per kind of the standard, each sent with its Idempotency-Key by the client
    of its sender's kind, each answered; every receipt verifies with the published key."""
    runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    sent = [e for e in examples if e["path"] == "/v1/deliveries" and e["method"] == "POST"]
    assert {e["body"]["kind"] for e in sent} == {k.code for k in runtime.standard.deliveries}
    # One case travels the whole chain, every hop on its one 案号 and answered (issue 15).
    first = sent[0]["headers"]["X-Case-Number"]
    chain = [e["body"]["kind"] for e in sent if e["headers"]["X-Case-Number"] == first]
    assert chain == [
        "arrest_request",
        "arrest_decision",
        "prosecution_transfer",
        "supplementary_investigation",
        "prosecution_transfer",
        "indictment",
        "community_correction_entry",
    ]
    for example in sent:
        assert example["headers"]["Idempotency-Key"]
        kind = runtime.standard.delivery_kind(example["body"]["kind"])
        assert DEMO_CLIENTS[example["client"]][0] in {
            a.code for a in runtime.standard.agencies if a.kind in kind.senders
        }
    key = gateway.client.get("/v1/deliveries/key").text.strip()
    opened = [open_receipt(r, [parse_verifier(key)]) for r in receipts]
    assert sorted(r.kind for r in opened) == sorted(e["body"]["kind"] for e in sent)
    assert {r.decision for r in opened} == {"accepted"}
