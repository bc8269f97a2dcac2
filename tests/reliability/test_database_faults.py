"""The database unavailable at start and mid-run: fail closed (nothing released), 503, and
recovery without a restart once it is back.

PostgreSQL is taken away with a TCP proxy between the gateway and the shared server (the
server itself is never stopped): ``cut`` refuses new connections and resets open ones.
SQLite is taken away by moving the database's directory; since an open SQLite file stays
usable through its descriptors, the mid-run case also drops the pooled connections, as a
lost connection would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    CASE_SECRET_FIELD,
    FaultGateway,
    assert_nothing_released,
    proxied_url,
)
from tests.reliability.tcp_proxy import TcpProxy


class Outage:
    """Takes one backend's database away and gives it back."""

    database_url: str  # where it really is (prepared there)
    app_url: str  # where the gateway looks for it

    def down(self, gw: FaultGateway | None = None) -> None:
        raise NotImplementedError

    def up(self) -> None:
        raise NotImplementedError


class SqliteOutage(Outage):
    def __init__(self, tmp: Path) -> None:
        self.directory = tmp / "db"
        self.directory.mkdir()
        self.away = tmp / "db-away"
        self.database_url = self.app_url = f"sqlite:///{self.directory / 'gateway.db'}"

    def down(self, gw: FaultGateway | None = None) -> None:
        self.directory.rename(self.away)
        if gw is not None:  # running: its open connections would still reach the moved file
            gw.runtime.engine.dispose()
            gw.runtime.audit_writer.engine.dispose()

    def up(self) -> None:
        self.away.rename(self.directory)


class PostgresOutage(Outage):
    def __init__(self, database_url: str, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.database_url = database_url
        self.app_url = proxied_url(database_url, proxy)

    def down(self, gw: FaultGateway | None = None) -> None:
        self.proxy.cut()

    def up(self) -> None:
        self.proxy.restore()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        yield SqliteOutage(tmp_path)
        return
    url: str = request.getfixturevalue("postgres_url")
    proxy: TcpProxy = request.getfixturevalue("postgres_proxy")
    yield PostgresOutage(url, proxy)


def _wait_ready(gw: FaultGateway, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        status: int = gw.client.get("/readyz").status_code
        if status == 200 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_database_down_at_start_then_back(
    outage: Outage, fault_gateway: Callable[..., FaultGateway]
) -> None:
    """A (re)start while the database is down: the app starts, is unready, releases
    nothing; once the database answers it serves, audited, on the published set."""
    gw = fault_gateway(outage.database_url, outage.app_url, before_start=outage.down)
    assert gw.client.get("/healthz").status_code == 200
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["ok"] is False
    assert_nothing_released(gw.read_case())  # 500 today: test_database_outage_is_503_not_500

    outage.up()
    response = gw.read_case()
    assert response.status_code == 200, response.text
    assert CASE_SECRET_FIELD in response.json()["record"]
    assert gw.client.get("/readyz").status_code == 200
    entry = gw.entry(response.headers["X-Audit-Index"])
    assert entry["status"] == 200
    assert entry["policy_version"] == gw.runtime.policy.current.version
    gw.assert_log_whole()


def test_database_lost_mid_run_then_back(
    outage: Outage, fault_gateway: Callable[..., FaultGateway]
) -> None:
    """Mid-run: 503 with nothing released and no index handed out; then back, with the
    next index following the last one."""
    # A fresh client snapshot (cache 300 s), so requests get as far as the audit log.
    gw = fault_gateway(outage.database_url, outage.app_url, client_cache_seconds=300.0)
    first = gw.read_case()
    assert first.status_code == 200, first.text
    last = int(first.headers["X-Audit-Index"])

    outage.down(gw)
    for _ in range(3):
        response = gw.read_case()
        assert response.status_code == 503, response.text
        assert_nothing_released(response)
        assert "X-Audit-Index" not in response.headers
        assert "audit log cannot record" in response.json()["detail"]
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] is False
    assert checks["audit"]["ok"] is False

    outage.up()
    response = gw.read_case()
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Audit-Index"]) == last + 1
    assert _wait_ready(gw) == 200
    gw.assert_log_whole()


def test_database_outage_is_503_not_500(
    fault_gateway: Callable[..., FaultGateway], tmp_path: Path
) -> None:
    outage = SqliteOutage(tmp_path)
    gw = fault_gateway(outage.database_url, outage.app_url, before_start=outage.down)
    statuses = {"exchange": gw.read_case().status_code}
    court = gw.gateway.clients["court"]
    token = gw.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(court.client_id, court.client_secret),
    )
    statuses["token"] = token.status_code
    assert statuses == {"exchange": 503, "token": 503}


def test_readiness_comes_back_without_traffic(
    fault_gateway: Callable[..., FaultGateway], tmp_path: Path
) -> None:
    outage = SqliteOutage(tmp_path)
    gw = fault_gateway(outage.database_url, outage.app_url, client_cache_seconds=300.0)
    assert gw.read_case().status_code == 200
    outage.down(gw)
    assert gw.read_case().status_code == 503
    outage.up()
    assert _wait_ready(gw, seconds=1.5) == 200
