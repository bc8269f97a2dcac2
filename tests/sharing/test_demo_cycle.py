"""The demo's conditional-sharing cycle (demo.json ``sharing_cycle``) runs as it promises."""

from __future__ import annotations

from collections.abc import Callable

from gateway.demo import DEMO_CLIENTS
from gateway.sharing.demo import CYCLE_CASE_NUMBER, sharing_cycle
from sandbox.generator import DEFAULT_SEED, Dataset
from tests.conftest import Gateway


def test_the_demo_cycle_gets_every_status_it_promises(
    exchange_gateway: Callable[..., Gateway],
) -> None:
    gateway = exchange_gateway()
    for name, (agency, scopes) in DEMO_CLIENTS.items():
        if name not in gateway.clients:
            gateway.register(name, agency, [str(s) for s in scopes])
    case = Dataset(DEFAULT_SEED, 300).case(6).case
    assert (case["case_id"], case["court_case_number"]) == ("C00000006", CYCLE_CASE_NUMBER)
    saved: dict[str, str] = {}
    steps = sharing_cycle()
    assert [s["name"] for s in steps][:2] == ["sharing-refused", "sharing-apply"]
    for step in steps:
        headers = {**step["headers"], **gateway.auth(step["client"])}
        response = gateway.client.request(
            step["method"], step["path"].format(**saved), headers=headers, json=step.get("body")
        )
        assert response.status_code == step["expect_status"], (step["name"], response.text)
        if "saves" in step:
            saved[step["saves"]] = response.json()["id"]
        if step["name"] == "sharing-released":
            body = response.json()
            assert body["record"]["summary"]
            assert len(body["grant_ids"]) == 1
    # Every agency that owns a resource has its reviewer, never with exchange.
    reviewers = {k: v for k, v in DEMO_CLIENTS.items() if k.endswith("_reviewer")}
    assert {k.removesuffix("_reviewer") for k in reviewers} == {
        "public_security", "procuratorate", "court", "prison", "justice",
    }  # fmt: skip
    assert all([str(s) for s in scopes] == ["sharing:review"] for _, scopes in reviewers.values())
