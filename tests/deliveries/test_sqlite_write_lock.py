"""On SQLite, a delivery's answer and extension are stored even when another connection commits
while they are being stored.

SQLite (WAL) cannot make a transaction that has read wait for the write lock: if another
connection commits between its first read and its first write, the write fails at once with
"database is locked" (not after the busy timeout). The audit writer commits on every batch, so
under traffic an answer that read the delivery and then updated it answered 503 ("the delivery
could not be stored"); CI caught it once in the docs' walk of a case. Each test below commits
through another connection after *every* read of the deliveries table while the request is
served, which is what the audit writer may do at any moment.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.deliveries.test_api import _body, _headers, _send


@pytest.fixture
def gw(exchange_gateway: Callable[..., Gateway], tmp_path: Path) -> Gateway:
    return exchange_gateway(f"sqlite:///{tmp_path / 'gateway.db'}")


@contextmanager
def _commits_after_each_delivery_read(gw: Gateway) -> Iterator[list[str]]:
    """While open: after each SELECT on ``deliveries``, another connection commits a write (or
    finds the write lock taken: then nothing can commit in between, which is the point)."""
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
    engine = runtime.engine
    other = sqlite3.connect(
        engine.url.database, isolation_level=None, timeout=0, check_same_thread=False
    )
    other.execute("CREATE TABLE IF NOT EXISTS test_concurrent_commits (n INTEGER)")
    outcomes: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM deliveries" in statement:
            try:
                other.execute("INSERT INTO test_concurrent_commits VALUES (1)")
                outcomes.append("committed")
            except sqlite3.OperationalError:
                outcomes.append("locked out")

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield outcomes
    finally:
        event.remove(engine, "after_cursor_execute", after)
        other.close()


def _created(gw: Gateway, dataset: Dataset) -> str:
    created = _send(gw, dataset, _body(dataset))
    assert created.status_code == 201, created.text
    delivery_id: str = created.json()["id"]
    return delivery_id


@pytest.mark.parametrize(
    ("step", "body", "event"),
    [
        ("receipt", {"decision": "accepted"}, "answered"),
        ("extensions", {"extension": "up_to_three_months", "reason": "案情复杂"}, "extended"),
    ],
    ids=["answer", "extension"],
)
def test_the_step_is_stored_although_another_connection_commits_meanwhile(
    gw: Gateway, dataset: Dataset, step: str, body: dict[str, str], event: str
) -> None:
    delivery_id = _created(gw, dataset)
    with _commits_after_each_delivery_read(gw) as outcomes:
        stored = gw.client.post(
            f"/v1/deliveries/{delivery_id}/{step}",
            json=body,
            headers=_headers(gw, "court", "TRIAL", None),
        )
    assert stored.status_code == 200, stored.text
    assert stored.json()["events"][-1]["type"] == event
    assert "committed" in outcomes  # the injection did run (the check's read is not locked)


@contextmanager
def _writes_to_deliveries(gw: Gateway) -> Iterator[list[bool]]:
    """While open: for each write to ``deliveries``, whether it ran on an event loop's thread."""
    engine = gw.client.app.state.runtime.engine  # type: ignore[attr-defined]
    on_loop: list[bool] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        head = statement.lstrip().upper()
        if head.startswith(("INSERT INTO DELIVERIES", "UPDATE DELIVERIES")):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                on_loop.append(False)
            else:
                on_loop.append(True)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield on_loop
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_a_step_is_stored_off_the_event_loop(gw: Gateway, dataset: Dataset) -> None:
    """Storing a delivery, its answer or its extension may wait for the write lock (up to the
    busy timeout): in a worker thread, so the worker's other requests go on meanwhile."""
    with _writes_to_deliveries(gw) as on_loop:
        delivery_id = _created(gw, dataset)
        for step, body in (
            ("extensions", {"extension": "up_to_three_months", "reason": "案情复杂"}),
            ("receipt", {"decision": "accepted"}),
        ):
            stored = gw.client.post(
                f"/v1/deliveries/{delivery_id}/{step}",
                json=body,
                headers=_headers(gw, "court", "TRIAL", None),
            )
            assert stored.status_code == 200, stored.text
    assert len(on_loop) >= 3  # the insert, the extension's and the answer's updates
    assert not any(on_loop)
