"""Prometheus metrics by route and status; JSON logs with request ids and no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.logging import configure_logging, enabled_for, redact
from gateway.observability.metrics import GatewayMetrics
from tests.auth.fixtures import started_gateway
from tests.auth.helpers import logging_restored
from tests.conftest import Gateway


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with started_gateway(tmp_path_factory.mktemp("observed")) as gateway:
        gateway.register("prometheus", "ZF640000", ["metrics:read"])
        yield gateway


@pytest.fixture
def restore_logging(observed: Gateway) -> Iterator[None]:
    with logging_restored(observed.settings.log_level):
        yield


def _samples(gateway: Gateway, name: str) -> list[dict[str, Any]]:
    response = gateway.client.get("/metrics", headers=gateway.auth("prometheus"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = []
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found.append({**sample.labels, "value": sample.value})
    return found


def _count(gateway: Gateway, **labels: str) -> float:
    return sum(
        s["value"]
        for s in _samples(gateway, "gateway_requests_total")
        if all(s.get(k) == v for k, v in labels.items())
    )


# --- metrics ---------------------------------------------------------------------------------


def test_requests_are_counted_by_route_status_and_agency(observed: Gateway) -> None:
    before_ok = _count(observed, route="/v1/me", status="200", agency="FY640104")
    before_401 = _count(observed, route="/v1/me", status="401")
    for _ in range(3):
        assert observed.client.get("/v1/me", headers=observed.auth("court")).status_code == 200
    assert observed.client.get("/v1/me").status_code == 401
    assert _count(observed, route="/v1/me", status="200", agency="FY640104") == before_ok + 3
    assert _count(observed, route="/v1/me", status="401") == before_401 + 1
    me = [s for s in _samples(observed, "gateway_requests_total") if s["route"] == "/v1/me"]
    assert {s["method"] for s in me} == {"GET"}


def test_token_endpoint_and_errors_are_counted(observed: Gateway) -> None:
    before = _count(observed, route="/oauth/token", status="400")
    observed.client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert _count(observed, route="/oauth/token", status="400") == before + 1


def test_unknown_paths_share_one_label(observed: Gateway) -> None:
    """Probing random paths must not create a time series per path."""
    before = _count(observed, route="unmatched", status="404")
    for i in range(3):
        assert observed.client.get(f"/probe-{i}-zzz").status_code == 404
    assert _count(observed, route="unmatched", status="404") == before + 3
    routes = {s["route"] for s in _samples(observed, "gateway_requests_total")}
    assert not any("probe-" in route for route in routes)


def test_latency_histogram_by_route(observed: Gateway) -> None:
    observed.client.get("/healthz")
    buckets = _samples(observed, "gateway_request_duration_seconds_bucket")
    assert any(s["route"] == "/healthz" and s["le"] == "+Inf" and s["value"] >= 1 for s in buckets)
    assert _samples(observed, "gateway_request_duration_seconds_count")


def test_each_app_has_its_own_registry() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe("/healthz", "GET", 200, "", 0.001)
    assert b'route="/healthz"' in first.render()
    assert b'route="/healthz"' not in second.render()


# --- logs ------------------------------------------------------------------------------------


def test_logs_are_json_with_request_ids_and_no_secrets(
    observed: Gateway, restore_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    cred = observed.register("log-checker", "FY640104", ["exchange"])
    # Access logs are INFO; write them to this test's captured stderr (configure here, in
    # the call phase: pytest swaps the capture stream between setup and call).
    configure_logging("INFO", json=True)

    token_response = observed.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cred.client_id,
            "client_secret": cred.client_secret,
        },
        headers={"X-Request-Id": "token-request-0001"},
    )
    assert token_response.status_code == 200
    token = token_response.json()["access_token"]
    me = observed.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    wrong = observed.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cred.client_id,
            "client_secret": "WrongSecretValue-0123456789",
        },
    )
    assert wrong.status_code == 401
    forged = token[: token.rindex(".")] + ".AAAA"
    refused = observed.client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401

    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    events = [json.loads(line) for line in lines]  # every line is one JSON object

    for secret in (cred.client_secret, "WrongSecretValue-0123456789", token, forged):
        assert secret not in err
    assert token.split(".")[2] not in err  # not even the signature alone
    assert token.split(".")[1] not in err  # nor the claims segment

    access = [e for e in events if e.get("event") == "request"]
    by_id = {e["request_id"]: e for e in access}
    assert by_id["token-request-0001"]["route"] == "/oauth/token"
    assert by_id["token-request-0001"]["status"] == 200
    me_line = by_id[me.headers["x-request-id"]]
    assert me_line["route"] == "/v1/me"
    assert me_line["client_id"] == cred.client_id
    assert me_line["level"] == "info"
    assert "timestamp" in me_line
    assert by_id[wrong.headers["x-request-id"]]["status"] == 401


def test_redact() -> None:
    jwt_like = "eyJhbGciOiJFZDI1NTE5In0.eyJzdWIiOiJndy0xIn0.c2lnbmF0dXJl"
    event = redact(
        None,
        "info",
        {
            "client_secret": "s3cret",
            "Authorization": "Bearer abc",
            "api_key": "k",
            "password": "p",
            "private_key": "d",
            "note": f"got Bearer {jwt_like} and Basic Z3c6c2VjcmV0",
            "raw": f"token={jwt_like}",
            "count": 3,
        },
    )
    for key in ("client_secret", "Authorization", "api_key", "password", "private_key"):
        assert event[key] == "[redacted]"
    assert jwt_like not in event["note"]
    assert "Z3c6c2VjcmV0" not in event["note"]
    assert event["raw"] == "token=[jwt]"
    assert event["count"] == 3


def _reference_redact(event: dict[str, Any]) -> dict[str, Any]:
    """Redaction as it was before its fast path: every pattern on every key and string."""
    from gateway.observability import logging as module

    out = dict(event)
    for key, value in event.items():
        if module._SECRET_KEYS.search(key):
            out[key] = "[redacted]"
        elif isinstance(value, str):
            value = module._JWT.sub("[jwt]", module._BEARER.sub(r"\1 [redacted]", value))
            out[key] = module._CITIZEN_ID.sub("[id-number]", value)
    return out


_TRICKY = [
    "GET",
    "/v1/resources/{resource}/{record_id}",
    "Bearer abc.def",
    "BEARER xyz",
    "Baſic Z3c6",  # U+017F folds to s under IGNORECASE: the pattern takes it
    "basic\u2003token",  # Unicode whitespace
    "eyJhbGciOi.eyJzdWIiOi.c2ln",
    "EYJhbGciOi.eyJzdWIiOi.c2ln",
    "id 640104199001011234 and 64010419900101123X",
    "old id 640104900101123",
    "1234567890123456789",  # 19 digits: not an ID number
    "a" * 40,
    "",
]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["note", "raw", "Token", "client_id", "route", "ms", "x_api-key"]),
        st.one_of(
            st.sampled_from(_TRICKY),
            st.text(alphabet="BbEeAaRrSsIiCcyJ.ſK 0123456789Xx\t-_"),
            st.integers(),
            st.none(),
        ),
    )
)
def test_redact_is_the_reference_redaction(event: dict[str, Any]) -> None:
    """The fast path (one pre-check per string, verdicts per key kept) changes no output."""
    assert redact(None, "info", dict(event)) == _reference_redact(event)
    assert redact(None, "info", dict(event)) == _reference_redact(event)  # cached keys


@pytest.mark.parametrize("value", _TRICKY)
def test_redact_tricky_values(value: str) -> None:
    assert redact(None, "info", {"note": value}) == _reference_redact({"note": value})


def test_redact_still_scrubs_what_the_fast_path_lets_through() -> None:
    event = redact(None, "info", {"a": "Baſic Z3c6c2VjcmV0", "b": "x640104199001011234"})
    assert "Z3c6c2VjcmV0" not in event["a"]
    assert event["b"] == "x[id-number]"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Padding": "a" * 30_000}, 200),  # large but under 32 KiB
        ({"X-Padding": "a" * 33_000}, 431),
        ({f"X-Padding-{i}": "a" for i in range(90)}, 200),
        ({f"X-Padding-{i}": "a" for i in range(101)}, 431),
    ],
    ids=["30KB-served", "33KB-refused", "90-fields-served", "101-fields-refused"],
)
def test_header_block_limits(observed: Gateway, headers: dict[str, str], status: int) -> None:
    response = observed.client.get("/healthz", headers=headers)
    assert response.status_code == status
    if status == 431:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 431
        assert "32768 bytes" in problem["detail"]
        assert "a" * 100 not in response.text
        assert response.headers["x-request-id"]


def test_log_lines_are_json_whatever_the_values(capsys: pytest.CaptureFixture[str]) -> None:
    """orjson renders the lines; what it cannot write (non-string keys, an int beyond 64 bits,
    an object) still gives one JSON line, never an error on the request path."""
    with logging_restored("INFO"):
        configure_logging("INFO", json=True)
        log = structlog.get_logger("test.render")
        log.info("statuses", counts={200: 3, 404: 1}, agency="宁夏公安")
        log.info("big", value=2**70, thing=object())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["counts"] == {"200": 3, "404": 1}
    assert lines[0]["agency"] == "宁夏公安"
    assert lines[1]["value"] == 2**70
    assert lines[1]["thing"].startswith("<object object")


@pytest.mark.parametrize(("level", "written"), [("INFO", True), ("WARNING", False)])
def test_access_lines_follow_the_configured_level(
    observed: Gateway,
    restore_logging: None,
    capfd: pytest.CaptureFixture[str],
    level: str,
    written: bool,
) -> None:
    """The middleware skips the access line's call when its level is off (every request paid
    structlog's proxy for a line it dropped), and writes it when on."""
    configure_logging(level, json=True)
    assert enabled_for(logging.INFO) is written
    assert enabled_for(logging.ERROR)
    response = observed.client.get("/v1/me", headers={"X-Request-Id": f"level-check-{level}"})
    assert response.status_code == 401
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]
    access = [e for e in events if e.get("event") == "request"]
    assert [e["request_id"] for e in access] == ([f"level-check-{level}"] if written else [])
