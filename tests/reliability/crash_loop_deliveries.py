"""Deliveries in the crash loop: the outbox survives ``kill -9`` during a push (issue 15).

While the exchange load runs, the procuratorate sends 提起公诉 deliveries (one new
``Idempotency-Key`` each) to the court, whose sample system answers every push slowly (its
sticky fault ``slow=``): the kill lands while pushes are in flight. A POST the kill cut off is
sent again after the restart with the same key, as a client would. After the last round:

* every key names exactly one delivery (the gateway stored none twice);
* every delivery becomes ``delivered`` (its lease ran out, the restarted pusher pushed again);
* the court's system holds each delivery exactly once, under the receipt number the gateway
  recorded in the ``delivered`` event, and nothing else from this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx2

from sandbox.generator import Dataset

SLOW_PUSH_MS = 150
COURT_INBOX = "/court/deliveries"
CLIENT = "procuratorate"
#: What the gateway needs for pushes that recover quickly after a kill.
ENV = {
    "GATEWAY_DELIVERY_PUSH_LEASE_SECONDS": "2",
    "GATEWAY_DELIVERY_PUSH_BACKOFF_SECONDS": "0.2",
    "GATEWAY_DELIVERY_PUSH_INTERVAL_SECONDS": "0.2",
}


@dataclass
class DeliveryLoad:
    court_case: str
    record: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> delivery id
    cut: list[str] = field(default_factory=list)  # keys whose POST got no answer
    repeated: int = 0  # pushes the court had already received (a kill before the outcome)

    @classmethod
    def for_case(cls, seed: int, cases: int, court_case: str) -> DeliveryLoad:
        indictment = dict(Dataset(seed, cases).case(20).indictment[0])  # C00000020
        return cls(court_case, indictment)

    def headers(self, token: str, key: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Purpose": "PROSECUTION_REVIEW",
            "X-Operator-Id": "crash-loop",
            "X-Case-Number": quote(self.court_case, safe="()"),
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def body(self) -> bytes:
        return json.dumps(
            {"kind": "indictment", "to_agency": "FY640104", "record": self.record}
        ).encode()

    async def post(self, client: httpx2.AsyncClient, base_url: str, token: str, key: str) -> bool:
        """Send the delivery of ``key``; False if the answer was cut off."""
        try:
            response = await client.post(
                base_url + "/v1/deliveries", content=self.body(), headers=self.headers(token, key)
            )
        except httpx2.HTTPError:
            return False
        if response.status_code != 201:
            raise RuntimeError(f"delivery {key}: HTTP {response.status_code} {response.text}")
        self.ids[key] = response.json()["id"]
        return True

    async def send(
        self, client: httpx2.AsyncClient, base_url: str, token: str, killed: asyncio.Event
    ) -> None:
        """New deliveries until the kill."""
        while not killed.is_set():
            key = f"crash-{secrets.token_hex(8)}"
            if not await self.post(client, base_url, token, key):
                self.cut.append(key)
                return
            await asyncio.sleep(0.03)

    async def resend_cut(self, client: httpx2.AsyncClient, base_url: str, token: str) -> None:
        while self.cut:
            key = self.cut.pop()
            if not await self.post(client, base_url, token, key):
                raise RuntimeError(f"delivery {key}: no answer after the restart")


@contextlib.contextmanager
def slow_court(court_url: str) -> Iterator[None]:
    """The court's system answers every request (pushes included) after SLOW_PUSH_MS."""
    httpx2.put(court_url + "/_sandbox/fault", content=f"slow={SLOW_PUSH_MS}".encode())
    try:
        yield
    finally:
        httpx2.put(court_url + "/_sandbox/fault", content=b"")


async def check_deliveries(
    load: DeliveryLoad,
    base_url: str,
    token: str,
    court_url: str,
    court_secret: str,
    *,
    within: float = 60.0,
) -> tuple[list[str], int]:
    """The failures, and how many deliveries were checked (see the module docstring)."""
    failures: list[str] = []
    async with httpx2.AsyncClient(timeout=30) as client:
        await load.resend_cut(client, base_url, token)
        if len(set(load.ids.values())) != len(load.ids):
            failures.append("two keys answered one delivery")
        documents: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + within
        pending = set(load.ids.values())
        while pending and time.monotonic() < deadline:
            for delivery_id in sorted(pending):
                got = await client.get(
                    f"{base_url}/v1/deliveries/{delivery_id}", headers=load.headers(token)
                )
                if got.status_code == 200 and got.json()["status"] == "delivered":
                    documents[delivery_id] = got.json()
                    pending.discard(delivery_id)
            await asyncio.sleep(0.2)
        if pending:
            failures.append(f"{len(pending)} deliveries not delivered within {within:g} s")
        inbox = await client.get(court_url + COURT_INBOX, headers={"X-Court-Key": court_secret})
    ours = set(load.ids.values())
    everything = inbox.json()
    received = [r for r in everything["received"] if r["idempotency_key"] in ours]
    load.repeated = everything["posts"] - len(everything["received"])
    keys = sorted(r["idempotency_key"] for r in received)
    if keys != sorted(ours):
        failures.append(f"the court holds {len(keys)} of the {len(ours)} deliveries")
    for item in received:
        document = documents.get(item["idempotency_key"])
        if document is None:
            continue
        receipt = document["events"][-1].get("receipt")
        if document["events"][-1]["type"] != "delivered" or receipt != item["receipt_id"]:
            failures.append(f"{item['idempotency_key']}: receipt {receipt} at the gateway")
    return failures, len(documents)
