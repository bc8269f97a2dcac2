"""Helpers of the push tests: deliveries stored directly, the sample systems' inboxes, a clock.

Deliveries are stored through the repository (as the service stores them after its checks),
so that every kind can be pushed, including those the API refuses today (换押 has no recipient
purpose; a 提请批准逮捕's case record carries has_sealed_juvenile, which is 不予共享).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import session_scope
from gateway.deliveries.content import PushRecheck
from gateway.deliveries.outbox import OutboxPusher, PushJob
from gateway.deliveries.repository import DeliveryRepository, NewDelivery, new_delivery_id
from gateway.exchange.push import adapter_push, rules_in_force
from gateway.runtime import Runtime
from sandbox.generator import Dataset, Record
from sandbox.server import serve_in_thread
from sandbox.systems import AGENCY_KINDS, create_app
from tests.conftest import Gateway
from tests.exchange.conftest import CREDENTIALS

#: One agency of each kind, all handling the sample cases in the tests.
AGENCY = {
    "public_security": "GA640104",
    "procuratorate": "JC640104",
    "court": "FY640104",
    "prison": "JY640001",
    "justice": "SF640104",
}
#: The inbound route of each sample system (sandbox/NATIVE.md § Inbound deliveries).
INBOUND = {
    "public_security": "/api/v1/sdjs",
    "procuratorate": "/api/v2/inbound-deliveries",
    "court": "/court/deliveries",
    "prison": "/prison/api/inbound-documents",
    "justice": "/sqjz/api/sdjs",
}
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def first_record(
    dataset: Dataset, resource: str, accept: Callable[[Record], bool] = lambda r: True
) -> dict[str, Any]:
    for bundle in dataset:
        for record in bundle.records(resource):
            if accept(record):
                return dict(record)
    raise LookupError(resource)


def new_delivery(
    kind: str,
    sender: str,
    recipient: str,
    record: dict[str, Any],
    *,
    case_number: str = "A6401040000002021030042",
    attachments: Sequence[dict[str, str]] = (),
    created_at: datetime = T0,
    purpose: str = "TEST",
) -> NewDelivery:
    """A delivery as the service builds one (content: canonical JSON)."""
    content = orjson.dumps(
        {"record": record, "attachments": list(attachments)}, option=orjson.OPT_SORT_KEYS
    )
    return NewDelivery(
        id=new_delivery_id(),
        kind=kind,
        from_agency=AGENCY[sender],
        to_agency=AGENCY[recipient],
        case_number=case_number,
        purpose=purpose,
        client_id="test",
        operator_id="op",
        content=content,
        content_sha256=hashlib.sha256(content).hexdigest(),
        created_at=created_at,
        due_at=None,
    )


def store_delivery(
    factory: sessionmaker[Session],
    kind: str,
    sender: str,
    recipient: str,
    record: dict[str, Any],
    **kw: Any,
) -> str:
    """A delivery stored as the service stores one (see :func:`new_delivery`); its id."""
    new = new_delivery(kind, sender, recipient, record, **kw)
    with session_scope(factory) as session:
        DeliveryRepository(session).create(new, key=new.id, request_sha256="0" * 64, audit_index=0)
    return new.id


def runtime(gw: Gateway) -> Runtime:
    found: Runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    return found


def pusher(
    gw: Gateway,
    clock: Clock,
    push: Callable[[PushJob], Any] | None = None,
    *,
    recheck: bool = True,
    **kw: Any,
) -> OutboxPusher:
    """A pusher on the gateway's database, adapters and audit log, with a clock of the test;
    as the app's, it decides each content again before pushing it (``recheck=False``: not, for
    deliveries stored directly that the API would refuse)."""
    rt = runtime(gw)
    again = PushRecheck(rt.standard, rt.policy, rt.exchange, clock) if recheck else None
    real = adapter_push(rt.adapters, rt.standard, rules_in_force(rt.policy), again)
    return OutboxPusher(
        rt.session_factory,
        push or real,
        rt.audit_writer.append,
        resource_of=lambda kind: rt.standard.delivery_kind(kind).resource,
        clock=clock,
        lease=timedelta(seconds=60),
        **kw,
    )


def run_once(gw: Gateway, outbox: OutboxPusher) -> int:
    """One pass, in the app's event loop (where the adapters' clients live)."""
    portal = gw.client.portal
    assert portal is not None
    delivered: int = portal.call(outbox.run_once)
    return delivered


def state(gw: Gateway, delivery_id: str) -> tuple[str, list[dict[str, Any]], str]:
    with session_scope(runtime(gw).session_factory) as session:
        repo = DeliveryRepository(session)
        delivery, outbox = repo.get(delivery_id), repo.outbox(delivery_id)
        assert delivery is not None
        assert outbox is not None
        events = [
            {"type": e.type, "audit_index": e.audit_index, **orjson.loads(e.detail)}
            for e in repo.events(delivery_id)
        ]
        return delivery.status, events, outbox.state


def sandbox_auth(kind: str, url: str) -> dict[str, str]:
    secret = CREDENTIALS.secret
    if kind == "public_security":
        return {"X-Api-Key": secret}
    if kind == "court":
        return {"X-Court-Key": secret}
    if kind == "justice":
        return {"X-Sfj-Token": secret}
    if kind == "prison":
        token = base64.b64encode(f"{CREDENTIALS.client_id}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    token = httpx.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CREDENTIALS.client_id, secret),
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def inbox(agency_urls: dict[str, str], kind: str) -> dict[str, Any]:
    """What the sample system of ``kind`` received: ``{"posts", "received": [...]}``."""
    url = agency_urls[kind]
    response = httpx.get(url + INBOUND[kind], headers=sandbox_auth(kind, url))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def received(agency_urls: dict[str, str], kind: str, delivery_id: str) -> list[dict[str, Any]]:
    return [r for r in inbox(agency_urls, kind)["received"] if r["idempotency_key"] == delivery_id]


@contextmanager
def sticky_fault(agency_urls: dict[str, str], kind: str, fault: str) -> Iterator[None]:
    """The sample system of ``kind`` answers every data request with ``fault`` until exit."""
    url = agency_urls[kind] + "/_sandbox/fault"
    assert httpx.put(url, content=fault.encode()).status_code == 204
    try:
        yield
    finally:
        httpx.put(url, content=b"")


def set_fault(agency_urls: dict[str, str], kind: str, fault: str) -> None:
    assert (
        httpx.put(agency_urls[kind] + "/_sandbox/fault", content=fault.encode()).status_code == 204
    )


@contextmanager
def world_systems(dataset: Dataset) -> Iterator[dict[str, str]]:
    """The five sample systems over one dataset that received deliveries move on (as under
    ``serve-all``, sandbox/world.py): their URLs by agency kind."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for kind in AGENCY_KINDS:
            app = create_app(kind, dataset, CREDENTIALS, faults_enabled=True)
            app.state.world = dataset
            urls[kind] = stack.enter_context(serve_in_thread(app))
        yield urls
