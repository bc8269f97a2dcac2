"""What schema fuzzing found, pinned as plain examples (docs/security.md, "Schema fuzzing").

Each was a 5xx (or a silently wrong answer) before its fix; PostgreSQL is the backend that
refuses NUL, so these run on it when it is reachable (always under CI=true).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.audit.service import AuditService
from tests.conftest import Gateway, started_gateway
from tests.fuzz.conftest import fuzz_database


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("fuzz-findings")
    with fuzz_database() as url, started_gateway(tmp, url) as gateway:
        yield gateway


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def test_nul_in_the_resource_name_is_audited_not_a_failed_batch(gw: Gateway) -> None:
    # PostgreSQL refused the entry's resource column, failing the writer's whole batch: the
    # caller (and everyone batched with it) got 503.
    headers = {**gw.auth("court"), "X-Purpose": "TRIAL", "X-Operator-Id": "officer-7"}
    for path in ("/v1/resources/%00/C00000020", "/v1/resources/a%00b?case_id=C00000020"):
        response = gw.client.get(path, headers=headers)
        _problem(response, 404)
        runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]
        entry = AuditService(runtime.engine).entry(int(response.headers["X-Audit-Index"]))
        assert "\x00" not in entry.document["resource"]
        assert entry.document["status"] == 404


@pytest.mark.parametrize("name", ["case_number", "operator_id", "rule_id"])
@pytest.mark.parametrize("route", ["entries", "export", "stats"])
def test_nul_in_an_audit_filter_is_422(gw: Gateway, name: str, route: str) -> None:
    response = gw.client.get(f"/v1/audit/{route}?{name}=a%00b", headers=gw.auth("regulator"))
    assert _problem(response, 422)["errors"][0]["field"] == f"query.{name}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "9999-12-31T23:59:59-23:00"),  # year 10000 in UTC
        ("until", "0001-01-01T00:00:00%2B08:00"),  # year 0 in UTC
    ],
)
def test_an_instant_outside_years_1_to_9999_in_utc_is_422(
    gw: Gateway, name: str, value: str
) -> None:
    response = gw.client.get(f"/v1/audit/entries?{name}={value}", headers=gw.auth("regulator"))
    assert _problem(response, 422)["errors"] == [
        {"field": name, "reason": "not a year 1-9999 in UTC"}
    ]


@pytest.mark.parametrize("value", ["2024", "194", "1700000000.5"])
def test_a_bare_number_is_not_an_instant(gw: Gateway, value: str) -> None:
    # Read as Unix seconds, since=2024 selected everything from 1970-01-01T00:33:44Z on.
    response = gw.client.get(f"/v1/audit/stats?since={value}", headers=gw.auth("regulator"))
    assert _problem(response, 422)["errors"][0]["field"] == "query.since"


def test_an_iso_8601_instant_still_works(gw: Gateway) -> None:
    response = gw.client.get(
        "/v1/audit/entries?since=2024-01-01T08:00:00%2B08:00&limit=1",
        headers=gw.auth("regulator"),
    )
    assert response.status_code == 200, response.text


def test_an_undecodable_body_is_a_bad_request_problem(gw: Gateway) -> None:
    response = gw.client.post(
        "/v1/admin/policies/explain",
        content=b"\xff\xfe{",
        headers={**gw.auth("admin"), "Content-Type": "application/json"},
    )
    assert _problem(response, 400)["type"] == "/problems/bad-request"
