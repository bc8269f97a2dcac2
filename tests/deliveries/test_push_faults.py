"""Pushing through failures, over real HTTP to the sample court, on SQLite and PostgreSQL.

A recipient system down (HTTP 503) or hanging, then back; a push repeated after a crash; a
refusal (4xx). The sample system's faults are set with its sticky fault switch
(``PUT /_sandbox/fault``), as its inbound route answers the gateway's pushes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from gateway.audit.service import AuditService
from gateway.db import session_scope
from gateway.deliveries.outbox import PushJob
from gateway.deliveries.repository import DeliveryRepository
from gateway.exchange.push import adapter_push, rules_in_force
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.push_helpers import (
    Clock,
    first_record,
    inbox,
    pusher,
    received,
    run_once,
    runtime,
    state,
    sticky_fault,
    store_delivery,
)


@pytest.fixture
def gw(exchange_gateway: Callable[..., Gateway], database_url: str) -> Gateway:
    return exchange_gateway(database_url)


def _indictment(gw: Gateway, dataset: Dataset) -> str:
    record = first_record(dataset, "indictment")
    return store_delivery(
        runtime(gw).session_factory, "indictment", "procuratorate", "court", record
    )


def test_a_recipient_down_then_back_is_delivered_after_backoff(
    gw: Gateway, dataset: Dataset, agency_urls: dict[str, str]
) -> None:
    delivery_id = _indictment(gw, dataset)
    clock = Clock()
    outbox = pusher(gw, clock, recheck=False)  # stored directly: the push mechanics only
    with sticky_fault(agency_urls, "court", "status=503"):
        assert run_once(gw, outbox) == 0
        status, events, row = state(gw, delivery_id)
        assert (status, row) == ("pending", "pending")
        assert [e["type"] for e in events] == ["created", "push_attempt", "push_failed"]
        assert events[-1]["status"] == 503
        clock.now += timedelta(seconds=1)
        assert run_once(gw, outbox) == 0  # backoff: the next attempt is 2 s after the first
        assert len(state(gw, delivery_id)[1]) == 3
    assert received(agency_urls, "court", delivery_id) == []
    clock.now += timedelta(seconds=1)
    assert run_once(gw, outbox) == 1
    status, events, row = state(gw, delivery_id)
    assert (status, row) == ("delivered", "done")
    assert [e["type"] for e in events] == [
        "created",
        "push_attempt",
        "push_failed",
        "push_attempt",
        "delivered",
    ]
    assert len(received(agency_urls, "court", delivery_id)) == 1


def test_a_hanging_recipient_times_out_and_the_retry_is_received_once(
    exchange_gateway: Callable[..., Gateway],
    dataset: Dataset,
    agency_urls: dict[str, str],
) -> None:
    gw = exchange_gateway()  # SQLite: the backend plays no part in a timeout
    delivery_id = _indictment(gw, dataset)
    clock = Clock()
    outbox = pusher(gw, clock, recheck=False)  # stored directly: the push mechanics only
    with sticky_fault(agency_urls, "court", "hang=4"):
        started = time.monotonic()
        assert run_once(gw, outbox) == 0  # the court's 3 s deadline (court.yaml)
        assert time.monotonic() - started < 4
    assert state(gw, delivery_id)[1][-1]["type"] == "push_failed"
    clock.now += timedelta(seconds=2)
    assert run_once(gw, outbox) == 1
    time.sleep(1.5)  # the hung request has now reached the court too: one delivery kept
    assert len(received(agency_urls, "court", delivery_id)) == 1
    assert state(gw, delivery_id)[0] == "delivered"


def test_a_push_repeated_after_a_crash_is_received_once(
    gw: Gateway, dataset: Dataset, agency_urls: dict[str, str]
) -> None:
    delivery_id = _indictment(gw, dataset)
    rt = runtime(gw)
    clock = Clock()
    # The first worker claims the row and pushes, then dies before recording the outcome.
    with session_scope(rt.session_factory) as session:
        assert DeliveryRepository(session).claim_due(clock(), timedelta(seconds=60)) == [
            delivery_id
        ]
        delivery = DeliveryRepository(session).get(delivery_id)
        assert delivery is not None
        job = PushJob.of(delivery)
    posts_before = inbox(agency_urls, "court")["posts"]
    portal = gw.client.portal
    assert portal is not None
    first = portal.call(adapter_push(rt.adapters, rt.standard, rules_in_force(rt.policy)), job)
    assert first.outcome == "delivered"
    assert state(gw, delivery_id)[0] == "pending"  # nothing recorded: the worker died
    outbox = pusher(gw, clock, recheck=False)  # stored directly: the push mechanics only
    clock.now += timedelta(seconds=30)
    assert run_once(gw, outbox) == 0  # still leased by the dead worker
    clock.now += timedelta(seconds=31)
    assert run_once(gw, outbox) == 1
    status, events, _ = state(gw, delivery_id)
    assert status == "delivered"
    assert inbox(agency_urls, "court")["posts"] - posts_before == 2  # pushed twice …
    (kept,) = received(agency_urls, "court", delivery_id)  # … received once
    assert events[-1]["receipt"] == kept["receipt_id"] == first.receipt


def test_a_refused_push_ends_failed_with_an_audit_entry(
    gw: Gateway, dataset: Dataset, agency_urls: dict[str, str]
) -> None:
    delivery_id = _indictment(gw, dataset)
    outbox = pusher(gw, Clock(), recheck=False)
    with sticky_fault(agency_urls, "court", "status=422"):
        assert run_once(gw, outbox) == 0
    status, events, row = state(gw, delivery_id)
    assert (status, row) == ("failed", "dead")
    assert [e["type"] for e in events] == ["created", "push_attempt", "failed"]
    failed = events[-1]
    assert failed["status"] == 422
    assert failed["audit_index"] is not None
    entry = AuditService(runtime(gw).engine).entry(failed["audit_index"]).document
    assert entry["kind"] == "delivery"
    assert entry["action"]["event"] == "failed"
    assert entry["action"]["delivery"] == delivery_id
    assert entry["status"] == 422
    assert entry["decision"] == "error"
    assert run_once(gw, outbox) == 0  # never pushed again
    assert received(agency_urls, "court", delivery_id) == []
