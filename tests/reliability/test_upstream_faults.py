"""Agency-system faults not covered by tests/exchange/test_exchange_faults.py.

The police system sits behind two proxies: a TCP proxy (down, cut mid-body) in front of
the header-injecting fault proxy (slow) in front of the real sample system. Its circuit
is configured to open after 3 failures and half-open after 1 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandbox.server import serve_in_thread
from tests.conftest import make_settings
from tests.exchange.test_exchange_faults import FaultProxy
from tests.reliability.conftest import (
    FaultGateway,
    agencies_with_fast_circuit,
    assert_nothing_released,
    exchange_overrides,
    prepare_database,
    running_gateway,
)
from tests.reliability.tcp_proxy import TcpProxy


class Police:
    def __init__(self, tcp: TcpProxy, faults: FaultProxy) -> None:
        self.tcp = tcp
        self.faults = faults


@pytest.fixture(scope="module")
def police(sample_systems: dict[str, str]) -> Iterator[Police]:
    faults = FaultProxy(sample_systems["public_security"])
    with serve_in_thread(faults.app) as url:  # type: ignore[arg-type]
        parts = urlsplit(url)
        tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 80).start()
        try:
            yield Police(tcp, faults)
        finally:
            tcp.close()


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, sample_systems: dict[str, str], police: Police
) -> Iterator[FaultGateway]:
    tmp = tmp_path_factory.mktemp("upstream")
    settings = make_settings(
        tmp,
        f"sqlite:///{tmp / 'gateway.db'}",
        agencies_dir=agencies_with_fast_circuit(tmp / "agencies"),
        **exchange_overrides(
            sample_systems, upstream_urls={"public_security": f"http://127.0.0.1:{police.tcp.port}"}
        ),
    )
    with running_gateway(prepare_database(settings)) as gateway:
        yield gateway


@pytest.fixture
def healthy(gw: FaultGateway, police: Police) -> Iterator[FaultGateway]:
    police.tcp.restore()
    police.tcp.truncate_after = None
    police.faults.fault = None
    assert gw.read_case().status_code == 200  # starts healthy (and caches the case lookup)
    yield gw
    police.tcp.restore()
    police.tcp.truncate_after = None
    police.faults.fault = None


def _timed(gw: FaultGateway) -> tuple[float, Any]:
    started = time.monotonic()
    response = gw.read_case()
    return time.monotonic() - started, response


def test_agency_down_opens_the_circuit_fails_fast_and_recovers(
    healthy: FaultGateway, police: Police
) -> None:
    gw = healthy
    police.tcp.cut()  # the police system goes down: connections refused

    # Each of the first three requests tries (with retries), fails and is audited.
    tried: list[float] = []
    for _ in range(3):
        elapsed, response = _timed(gw)
        tried.append(elapsed)  # three connection attempts with 50 + 100 ms back-off each
        assert response.status_code == 502, response.text
        assert_nothing_released(response)
        assert response.json()["agency"] == "public_security"
        assert "cannot be reached" in response.json()["detail"]
        assert response.json()["category"] == "upstream_unavailable"

    # The circuit is open: the gateway answers at once, without calling the agency.
    elapsed, response = _timed(gw)
    assert response.status_code == 502
    assert_nothing_released(response)
    assert "circuit open" in response.json()["detail"]
    assert elapsed < min(tried)  # no attempts, no back-off
    entry = gw.entry(response.headers["X-Audit-Index"])
    assert (entry["status"], entry["decision"], entry["fields"]["released"]) == (502, "error", [])
    assert entry["body_sha256"] is None

    # Readiness: degraded, not unready; the open circuit is visible.
    ready = gw.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    agencies = ready.json()["checks"]["agency_systems"]
    assert agencies["degraded"] is True
    assert agencies["agencies"]["public_security"] == {"ok": False, "circuit": "open"}

    # Still down after the reset time: the half-open trial fails and the circuit re-opens.
    time.sleep(1.1)
    assert gw.read_case().status_code == 502
    elapsed, response = _timed(gw)
    assert "circuit open" in response.json()["detail"]
    assert elapsed < min(tried)

    # The agency comes back: after the reset time one trial closes the circuit.
    police.tcp.restore()
    time.sleep(1.1)
    response = gw.read_case()
    assert response.status_code == 200, response.text
    assert gw.read_case().status_code == 200
    police_adapter = gw.runtime.adapters._adapters["public_security"]
    assert police_adapter.http.circuit_state == "closed"  # type: ignore[attr-defined]
    gw.assert_log_whole()


def test_slow_within_the_deadline_is_served(healthy: FaultGateway, police: Police) -> None:
    police.faults.fault = "slow=1500"  # the agency file's deadline is 3 s
    elapsed, response = _timed(healthy)
    assert response.status_code == 200, response.text
    assert elapsed >= 1.5
    entry = healthy.entry(response.headers["X-Audit-Index"])
    assert entry["decision"] == "allow"
    assert entry["upstream"]["latency_us"] >= 1_500_000
    assert entry["fields"]["released"]


def test_connection_cut_mid_body_is_502_with_nothing_partial(
    healthy: FaultGateway, police: Police
) -> None:
    police.tcp.truncate_after = 120  # headers and the first bytes of the record, then RST
    police.tcp.cut()  # drop the pooled keep-alive connections: new ones are truncated
    police.tcp.restore()
    response = healthy.read_case()
    assert response.status_code == 502, response.text
    assert_nothing_released(response)
    assert response.json()["agency"] == "public_security"
    entry = healthy.entry(response.headers["X-Audit-Index"])
    assert (entry["status"], entry["fields"]["released"], entry["body_sha256"]) == (502, [], None)
    police.tcp.truncate_after = None
    assert healthy.read_case().status_code == 200  # recovers without a restart
    healthy.assert_log_whole()
