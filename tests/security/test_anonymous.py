"""Attack matrix, rows A1-A2: filling the append-only log without authenticating, on SQLite
and PostgreSQL (docs/security.md). Before issue 12's fix, 500 anonymous exchange requests in
1.4 s were 500 permanent entries; the gateway fails closed, so a full disk is an outage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Gateway
from tests.security.helpers import aggregated_entries, one_interval

FETCH = "/v1/resources/case/C00000020"
HEADERS = {"X-Purpose": "TRIAL", "X-Operator-Id": "nobody"}


def _size(gw: Gateway) -> int:
    engine = gw.client.app.state.runtime.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT size FROM audit_tree_head").scalar_one())


def _anonymous(gw: Gateway) -> list[dict[str, Any]]:
    return [e for e in aggregated_entries(gw) if e["kind"] == "anonymous"]


# A1
def test_a01_an_anonymous_flood_is_throttled_and_costs_one_entry_per_interval(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(
        database_url, anonymous_rate_limit_per_second=0.5, anonymous_rate_limit_burst=20
    )
    one_interval(gw)
    before = _size(gw)
    started = time.time()
    statuses = [gw.client.get(FETCH, headers=HEADERS).status_code for _ in range(500)]
    throttled = gw.client.get(FETCH, headers=HEADERS)
    ended = time.time()
    assert statuses[:20] == [401] * 20
    # past the burst, one every two seconds: throttled, before any entry
    assert statuses.count(401) <= 20 + math.ceil(0.5 * (ended - started)) + 1
    assert statuses.count(401) + statuses.count(429) == 500
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "X-Audit-Index" not in throttled.headers
    [entry] = _anonymous(gw)
    assert _size(gw) == before + 1  # not 501
    aggregate = entry["aggregate"]
    assert aggregate["count"] == 501
    assert (aggregate["source"], aggregate["route"]) == (
        "testclient",
        "GET /v1/resources/{resource}/{record_id}",
    )
    assert aggregate["statuses"] == {
        "401": statuses.count(401),
        "429": statuses.count(429) + 1,
    }
    # an identified caller is not throttled by the anonymous limit of the same address
    assert gw.client.get("/v1/me", headers=gw.auth("court")).status_code == 200


# A2
def test_a02_many_sources_cost_at_most_max_keys_plus_one_entries(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(database_url, aggregate_max_keys=5)
    one_interval(gw)
    before = _size(gw)
    for host in range(40):
        other = TestClient(gw.client.app, client=(f"192.0.2.{host}", 40000))
        assert other.get(FETCH, headers=HEADERS).status_code == 401
        assert other.get("/v1/me").status_code == 401
    entries = _anonymous(gw)
    # 80 keys (source, route) asked for: five kept, the rest counted under one per route
    assert len(entries) == 5 + 2
    assert sum(e["aggregate"]["count"] for e in entries) == 80
    overflow = [e for e in entries if e["aggregate"]["source"] == "(other sources)"]
    assert {e["aggregate"]["route"] for e in overflow} == {
        "GET /v1/me",
        "GET /v1/resources/{resource}/{record_id}",
    }
    assert _size(gw) - before == 7
