"""Two workers (two apps on one database): an approval and a revocation on one reach the
other within 2 s, by its follower alone."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.testclient import TestClient

from gateway.app import create_app
from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.sharing.conftest import JUDGMENT, application, case_number, exchange_headers

APPS = "/v1/sharing/applications"
FETCH = f"/v1/resources/judgment/{JUDGMENT}?fields=summary,judgment_date"


def _released(gw: Gateway, headers: dict[str, str]) -> bool:
    response = gw.client.get(FETCH, headers=headers)
    assert response.status_code == 200, response.text
    return "summary" in response.json()["record"]


def _within(seconds: float, check: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_approval_and_revocation_reach_every_worker_within_2_s(
    sharing_gateway: Callable[..., Gateway], database_url: str, dataset: Dataset
) -> None:
    a = sharing_gateway(database_url)
    with TestClient(create_app(a.settings)) as client:
        b = Gateway(settings=a.settings, client=client, clients=a.clients)
        headers_a = exchange_headers(a, "procuratorate", case_number(dataset))
        headers_b = exchange_headers(b, "procuratorate", case_number(dataset))
        app = a.client.post(APPS, headers=headers_a, json=application()).json()
        assert not _released(b, headers_b)
        approved = a.client.post(
            f"{APPS}/{app['id']}/approve", headers=a.auth("court_reviewer"), json={"days": 1}
        )
        assert approved.status_code == 200, approved.text
        assert _released(a, headers_a)  # at once on the worker that approved
        _within(2.0, lambda: _released(b, headers_b))
        # Revoked on B: at once on B, within 2 s on A.
        revoked = b.client.post(
            f"{APPS}/{app['id']}/revoke", headers=b.auth("court_reviewer"), json={}
        )
        assert revoked.status_code == 200, revoked.text
        assert not _released(b, headers_b)
        _within(2.0, lambda: not _released(a, headers_a))
