"""One case from investigation to 入矫, against sample systems that share one world.

As in the demo (``serve-all``), the five sample systems share one dataset and a received
delivery moves its case on (sandbox/world.py). Each hop is sent through the API with the real
policy checks, pushed, and answered: 提请批准逮捕 → 批准逮捕决定 → 移送审查起诉 → 退回补充侦查 →
移送审查起诉 again → 提起公诉 → 入矫. A delivery is decided for its recipient as the step leaves
the case (gateway/deliveries/moves.py): at the stage it moves to, the recipient a party because
the delivered record names it. The gateway's case cache (30 s) stays on: a delivery that
reached its recipient, or was answered, drops its case from it, so each hop is decided on the
case as the police system reports it after the last one (checked after each hop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from gateway.demo_deliveries import walked_case_records
from gateway.policy.bundle import bundle_from_directory, load_bundle
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import (
    Clock,
    pusher,
    received,
    run_once,
    runtime,
    sandbox_auth,
    state,
    sticky_fault,
    world_systems,
)
from tests.policy.conftest import POLICIES

POLICE_NUMBER = "A6401040000002024112156"  # C00000023, 立案侦查 in 兴庆区


@pytest.fixture
def world_dataset() -> Dataset:
    return Dataset(2021, 300)


@pytest.fixture
def world_urls(world_dataset: Dataset) -> Iterator[dict[str, str]]:
    """The five systems over one fresh dataset that received deliveries move on."""
    with world_systems(world_dataset) as urls:
        yield urls


def _police_case(urls: dict[str, str]) -> dict[str, Any]:
    url = urls["public_security"]
    answer = httpx.get(f"{url}/api/v1/ajxx/C00000023", headers=sandbox_auth("public_security", url))
    data: dict[str, Any] = answer.json()["data"]
    return data


class _Walk:
    """Sends, pushes and answers deliveries of case C00000023 through the gateway."""

    def __init__(self, gw: Gateway, urls: dict[str, str]) -> None:
        self.gw, self.urls = gw, urls
        # The API stamps rows with the real time: the pusher's clock runs a little ahead of it.
        self.outbox_clock = Clock(datetime.now(UTC) + timedelta(minutes=1))
        self.outbox = pusher(gw, self.outbox_clock)
        self.last: dict[str, Any] = {}  # the last delivery sent

    def send(self, client: str, purpose: str, key: str, body: dict[str, Any]) -> httpx.Response:
        headers = {
            **self.gw.auth(client),
            "X-Purpose": purpose,
            "X-Operator-Id": "officer-01",
            "X-Case-Number": quote(POLICE_NUMBER),
            "Idempotency-Key": key,
        }
        return self.gw.client.post("/v1/deliveries", headers=headers, json=body)

    def hop(
        self,
        client: str,
        purpose: str,
        body: dict[str, Any],
        answerer: str,
        under: str,
        key: str = "",
    ) -> dict[str, Any]:
        """One delivery sent, pushed, accepted; the police system's case record after it."""
        sent = self.send(client, purpose, key or f"walk-{body['kind']}", body)
        assert sent.status_code == 201, sent.text
        delivery_id = sent.json()["id"]
        copies = [c["id"] for c in sent.json()["copies"]]
        assert len(copies) == len(body.get("copies", []))
        assert run_once(self.gw, self.outbox) == 1 + len(copies)  # each copy pushed too
        assert state(self.gw, delivery_id)[0] == "delivered"
        self.last = sent.json()
        headers = {**self.gw.auth(answerer), "X-Purpose": under, "X-Operator-Id": "officer-02"}
        answer = self.gw.client.post(
            f"/v1/deliveries/{delivery_id}/receipt",
            headers=headers,
            json={"decision": "accepted"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "accepted"
        return _police_case(self.urls)


def test_one_case_travels_the_whole_chain(
    exchange_gateway: Callable[..., Gateway],
    world_dataset: Dataset,
    world_urls: dict[str, str],
) -> None:
    gw = exchange_gateway(upstream_urls=world_urls)  # its "police" client is GA640104
    walk = _Walk(gw, world_urls)
    case = _police_case(world_urls)
    assert (case["AJZT"], case["BLDWDM"]) == ("10", "GA640104,JC640104")  # 侦查

    case = walk.hop(
        "police",
        "ARREST_REVIEW",
        {"kind": "arrest_request", "to_agency": "JC640104", "record_id": "C00000023"},
        "procuratorate",
        "ARREST_REVIEW",
    )
    assert case["AJZT"] == "20"  # 审查逮捕
    case = walk.hop(
        "procuratorate",
        "ARREST_REVIEW",
        {"kind": "arrest_decision", "to_agency": "GA640104", "record_id": "AR0000002301"},
        "police",
        "ARREST_REVIEW",
    )
    assert case["AJZT"] == "10"  # back to 侦查
    records = walked_case_records(world_dataset)  # the records the demo's chain sends
    transfer = {"kind": "prosecution_transfer", "to_agency": "JC640104"}
    case = walk.hop(
        "police",
        "INVESTIGATION",
        {**transfer, "record": records["transfer"]},
        "procuratorate",
        "PROSECUTION_REVIEW",
    )
    assert case["AJZT"] == "30"  # 审查起诉
    case = walk.hop(
        "procuratorate",
        "PROSECUTION_REVIEW",
        {
            "kind": "supplementary_investigation",
            "to_agency": "GA640104",
            "record": records["returned"],
        },
        "police",
        "INVESTIGATION",
    )
    assert case["AJZT"] == "10"  # 退回补充侦查: 侦查 again
    case = walk.hop(
        "police",
        "INVESTIGATION",
        {**transfer, "record": records["again"]},
        "procuratorate",
        "PROSECUTION_REVIEW",
        key="walk-prosecution_transfer-2",
    )
    assert case["AJZT"] == "30"
    assert "FY640104" not in case["BLDWDM"]

    case = walk.hop(
        "procuratorate",
        "PROSECUTION_REVIEW",
        {"kind": "indictment", "to_agency": "FY640104", "record": records["indictment"]},
        "court",
        "TRIAL",
    )
    assert case["AJZT"] == "40"  # 审判: the court now handles the case and gave it a 案号
    assert "FY640104" in case["BLDWDM"].split(",")
    assert case["FYAH"] == records["judgment"]["court_case_number"]  # the 案号 it gave

    case = walk.hop(
        "court",
        "COMMUNITY_CORRECTION",
        {
            "kind": "community_correction_entry",
            "to_agency": "SF640104",
            "record": records["judgment"],
            "copies": ["JC640104", "GA640104"],  # 社区矫正法 第20条: 同时抄送
        },
        "justice",
        "COMMUNITY_CORRECTION",
    )
    assert case["AJZT"] == "50"  # 执行: 入矫
    assert "SF640104" in case["BLDWDM"].split(",")
    _the_copies_reached_their_systems(gw, world_urls, walk.last)


def _the_copies_reached_their_systems(
    gw: Gateway, urls: dict[str, str], main: dict[str, Any]
) -> None:
    """Each copy of the 入矫: its own delivery, pushed once to its agency's system with the
    judgment whole, final at ``delivered`` (no answer, no deadline)."""
    by_agency = {c["to_agency"]: c["id"] for c in main["copies"]}
    assert set(by_agency) == {"JC640104", "GA640104"}
    for agency, kind, purpose in (
        ("JC640104", "procuratorate", "EXECUTION_SUPERVISION"),
        ("GA640104", "public_security", "COMMUNITY_CORRECTION"),
    ):
        copy_id = by_agency[agency]
        status, events, outbox = state(gw, copy_id)
        assert (status, outbox) == ("delivered", "done")
        assert [e["type"] for e in events][-1] == "delivered"
        (pushed,) = received(urls, kind, copy_id)  # once, under the copy's own id
        assert pushed["idempotency_key"] == copy_id
        assert "被告人林平犯诈骗罪" in orjson.dumps(pushed["document"]).decode()  # the 判决主文
        client = "procuratorate" if kind == "procuratorate" else "police"
        headers = {**gw.auth(client), "X-Purpose": purpose, "X-Operator-Id": "o"}
        seen = gw.client.get(f"/v1/deliveries/{copy_id}", headers=headers)
        assert seen.status_code == 200, seen.text
        copy = seen.json()
        assert (copy["copy_of"], copy["due_at"], copy["copies"]) == (main["id"], None, [])
        assert copy["content_sha256"] == main["content_sha256"]
        answered = gw.client.post(
            f"/v1/deliveries/{copy_id}/receipt", headers=headers, json={"decision": "accepted"}
        )
        assert answered.status_code == 409, answered.text
        assert "takes no answer" in answered.json()["detail"]
        assert state(gw, copy_id)[0] == "delivered"
        # The main recipient (司法局) is not the copy's: the same 404 as for a missing one.
        justice = {**gw.auth("justice"), "X-Purpose": "COMMUNITY_CORRECTION", "X-Operator-Id": "o"}
        assert gw.client.get(f"/v1/deliveries/{copy_id}", headers=justice).status_code == 404


def test_a_step_that_moves_the_case_still_carries_nothing_the_negative_list_withholds(
    exchange_gateway: Callable[..., Gateway],
    world_dataset: Dataset,
    world_urls: dict[str, str],
) -> None:
    # The same 移送审查起诉 as in the walk, the case now marked 工作秘密 by the police: decided
    # as at 审查起诉 with the procuratorate a party, it is still refused, and nothing moves.
    gw = exchange_gateway(upstream_urls=world_urls)
    walk = _Walk(gw, world_urls)
    case = world_dataset.get("case", "C00000023")
    assert case is not None
    case["work_secret"] = True  # type: ignore[index]  # the cached record, changed in place
    record = walked_case_records(world_dataset)["transfer"]
    transfer = {"kind": "prosecution_transfer", "to_agency": "JC640104", "record": record}
    refused = walk.send("police", "INVESTIGATION", "walk-secret", transfer)
    assert refused.status_code == 403, refused.text
    assert "nl.work-secret.case-request" in refused.json()["rule_ids"]
    assert run_once(gw, walk.outbox) == 0  # nothing stored, nothing pushed
    assert _police_case(world_urls)["AJZT"] == "10"


def test_a_step_to_an_agency_its_record_does_not_name_is_refused(
    exchange_gateway: Callable[..., Gateway],
    world_urls: dict[str, str],
) -> None:
    # 起诉意见书 naming JC640104, sent to JC640105 (西夏区): refused, the field named.
    gw = exchange_gateway(upstream_urls=world_urls)
    walk = _Walk(gw, world_urls)
    record = walked_case_records(Dataset(2021, 300))["transfer"]
    transfer = {"kind": "prosecution_transfer", "to_agency": "JC640105", "record": record}
    refused = walk.send("police", "INVESTIGATION", "walk-elsewhere", transfer)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "record.receiving_procuratorate"
    assert run_once(gw, walk.outbox) == 0


@pytest.fixture
def walk(exchange_gateway: Callable[..., Gateway], world_urls: dict[str, str]) -> _Walk:
    return _Walk(exchange_gateway(upstream_urls=world_urls), world_urls)


def _transfer_created(walk: _Walk, dataset: Dataset, key: str) -> str:
    """The chain's 移送审查起诉 of C00000023, created (201), not pushed yet."""
    record = walked_case_records(dataset)["transfer"]
    body = {"kind": "prosecution_transfer", "to_agency": "JC640104", "record": record}
    sent = walk.send("police", "INVESTIGATION", key, body)
    assert sent.status_code == 201, sent.text
    delivery_id: str = sent.json()["id"]
    return delivery_id


def test_a_case_marked_secret_after_the_delivery_was_made_is_not_pushed(
    walk: _Walk, world_dataset: Dataset, world_urls: dict[str, str]
) -> None:
    # Created while the case was ordinary; marked 工作秘密 before the push: decided again by
    # the outbox, the content no longer goes, and nothing reaches the procuratorate.
    gw = walk.gw
    delivery_id = _transfer_created(walk, world_dataset, "walk-then-secret")
    case = world_dataset.get("case", "C00000023")
    assert case is not None
    case["work_secret"] = True  # type: ignore[index]  # the cached record, changed in place
    # The gateway's case cache (30 s) would still hold the ordinary case: as 30 s later.
    runtime(gw).adapters.forget_case(POLICE_NUMBER)
    assert run_once(gw, walk.outbox) == 0
    status, events, _ = state(gw, delivery_id)
    assert status == "failed"
    assert events[-1]["type"] == "failed"
    assert _police_case(world_urls)["AJZT"] == "10"  # never received, so never moved


def test_a_field_the_negative_list_withholds_since_creation_is_not_pushed(
    walk: _Walk, world_dataset: Dataset, world_urls: dict[str, str]
) -> None:
    # The negative list is tightened after the delivery was created: the 起诉意见书's opinion
    # is withheld from everyone. The outbox decides the stored content again: failed, not sent.
    gw = walk.gw
    delivery_id = _transfer_created(walk, world_dataset, "walk-then-tightened")
    files = bundle_from_directory(POLICIES)
    files["negative_list/test_tightened.yaml"] = _TIGHTENED
    rt = runtime(gw)
    rt.policy.current = load_bundle(files, rt.standard, run_tests=False).engine
    assert run_once(gw, walk.outbox) == 0
    assert state(gw, delivery_id)[0] == "failed"
    assert _police_case(world_urls)["AJZT"] == "10"


def test_a_delivery_still_allowed_at_push_time_is_pushed(
    walk: _Walk, world_dataset: Dataset, world_urls: dict[str, str]
) -> None:
    # The negative case of the two above: the same delivery, nothing changed, is pushed.
    gw = walk.gw
    delivery_id = _transfer_created(walk, world_dataset, "walk-unchanged")
    runtime(gw).adapters.forget_case(POLICE_NUMBER)
    assert run_once(gw, walk.outbox) == 1
    assert state(gw, delivery_id)[0] == "delivered"


_TIGHTENED = """\
description: 测试：收紧负面清单。
negative_list:
  - id: nl.test.transfer-opinion
    description: 起诉意见书的意见不予共享（测试用）。
    resource: prosecution_transfer
    action: withhold_fields
    fields: [opinion]
    legal_basis: 测试
"""


def test_a_content_that_cannot_be_decided_now_waits_and_is_never_sent_undecided(
    walk: _Walk, world_dataset: Dataset, world_urls: dict[str, str]
) -> None:
    # The police system (the case's owner) answers 503 when the outbox asks for the case: the
    # push is retried later, not failed and not sent; once the system answers, it goes.
    gw = walk.gw
    delivery_id = _transfer_created(walk, world_dataset, "walk-undecided")
    runtime(gw).adapters.forget_case(POLICE_NUMBER)
    with sticky_fault(world_urls, "public_security", "status=503"):
        assert run_once(gw, walk.outbox) == 0
    status, events, _ = state(gw, delivery_id)
    assert status == "pending"
    assert events[-1]["type"] == "push_failed"
    assert received(world_urls, "procuratorate", delivery_id) == []
    walk.outbox_clock.now += timedelta(minutes=5)  # past the backoff
    assert run_once(gw, walk.outbox) == 1
    assert state(gw, delivery_id)[0] == "delivered"
