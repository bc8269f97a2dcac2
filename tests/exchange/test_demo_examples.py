"""Every example the demo prints in demo.json gets the status it promises."""

from __future__ import annotations

from collections.abc import Callable

from gateway.demo import DEMO_CLIENTS
from gateway.demo_examples import demo_examples
from tests.conftest import Gateway


def test_every_demo_example_gets_its_expected_status(
    exchange_gateway: Callable[..., Gateway],
) -> None:
    gateway = exchange_gateway()
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
    for example in sorted(examples, key=lambda e: e["client"] == "regulator"):
        if example["client"] == "regulator":
            runtime.checkpointer.checkpoint_now()
        headers = dict(example["headers"])
        if example["client"] is not None:
            headers.update(gateway.auth(example["client"]))
        response = gateway.client.request(example["method"], example["path"], headers=headers)
        assert response.status_code == example["expect_status"], (example["name"], response.text)
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
