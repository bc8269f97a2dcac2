"""The end-to-end benchmark's delivery path, without running it (it needs nginx and wrk)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.e2e.deliveries import DELIVERY_SENDER, delivery_request
from bench.e2e.load import wrk_script
from bench.e2e.report import render
from bench.e2e.upstream import Exchange, Recording, nginx_upstream_conf


def test_each_posted_request_gets_its_own_idempotency_key() -> None:
    _, body = delivery_request()
    script = wrk_script({"X-Purpose": "PROSECUTION_REVIEW"}, post=body)
    assert 'wrk.method = "POST"' in script
    assert "wrk.body = " in script
    assert 'wrk.headers["Idempotency-Key"] = "bench-' in script
    assert "sent = sent + 1" in script
    # A new prefix per run: a warm-up's keys never come back in the measured run.
    assert script != wrk_script({"X-Purpose": "PROSECUTION_REVIEW"}, post=body)
    assert 'wrk.method = "GET"' in wrk_script({})


def test_the_delivery_is_the_benchmark_clients_inline_indictment() -> None:
    headers, body = delivery_request()
    sent = orjson.loads(body)
    assert (sent["kind"], sent["to_agency"]) == ("indictment", "FY640104")
    assert sent["record"]["court"] == "FY640104"
    assert headers["X-Purpose"] == "PROSECUTION_REVIEW"
    assert DELIVERY_SENDER == "JC640104"  # demo example masked-fields is the procuratorate's


def test_a_path_recorded_with_two_queries_answers_each(tmp_path: Path) -> None:
    def answer(query: str, body: bytes) -> Exchange:
        return Exchange("police", "GET", "/api/v1/ajxx", query, 200, "application/json", body)

    recording = Recording([answer("FYAH=1", b"one"), answer("FYAH=2", b"two")])
    conf = nginx_upstream_conf(recording, {"police": 9000}, tmp_path)
    assert conf.count('location = "/api/v1/ajxx"') == 1
    assert 'if ($args = "FYAH=2")' in conf
    assert sorted(p.read_bytes() for p in tmp_path.glob("*.body")) == [b"one", b"two"]
    assert "error_page 405 =200 $uri;" in conf  # the POST floor gets the recorded answer


def test_the_report_compares_cpu_per_delivery_with_the_post_floor() -> None:
    def path(name: str, cpu: float) -> dict[str, object]:
        top = {"rate": 100.0, "errors": 0, "p50_ms": 1.0, "p99_ms": 2.0}
        return {"name": name, "max": top, "cpu_us_per_request": cpu, "open_loop": {},
                "db_cpu_us_per_request": None, "peak_rss_mib": 1.0, "audit": None}  # fmt: skip

    payload = {
        "machine": {"date": "d", "commit": "c", "nproc": 2, "cpu": "x", "memory_gib": 1,
                    "python": "3.11"},
        "example": {"name": "masked-fields", "path": "/v1/x"},
        "paths": {"c-post": path("floor", 400.0), "d-sqlite-1w-delivery": path("gw", 2000.0)},
    }  # fmt: skip
    assert "2,000 µs CPU per delivery vs 400 µs per authenticated POST pass-through: 5.0×" in (
        render(payload)
    )


def test_only_the_gateway_that_takes_deliveries_runs_without_the_push(
    tmp_path: Path, fake_gateway_servers: Callable[[Callable[..., Any]], None]
) -> None:
    """Its outbox would POST to an upstream that cannot answer (the recording has no push)."""
    from bench.e2e import run

    started: dict[str, dict[str, str] | None] = {}

    class FakeServer:
        name = "gateway"

        def stop(self) -> None:
            pass

    def start(*args: Any, log: Path, extra_env: dict[str, str] | None = None, **kw: Any) -> Any:
        started[log.stem] = extra_env
        return FakeServer()

    measured: list[str] = []

    def measure(key: str, server: Any, target: Any) -> Any:
        measured.append(key)
        return run.PathResult(key, server.name)

    fake_gateway_servers(start)
    example = {"path": "/v1/resources/person/P1"}
    for key, workers, agency in (("one", 1, DELIVERY_SENDER), ("two", 2, DELIVERY_SENDER),
                                 ("other", 1, "FY640104")):  # fmt: skip
        deliveries: dict[str, Any] = {}
        run._gateway_path(key, "sqlite", workers, example, agency, {}, {}, measure, tmp_path,
                          None, deliveries)  # fmt: skip
    assert started == {"one": {"GATEWAY_DELIVERY_PUSH_ENABLED": "false"}, "two": None,
                       "other": None}  # fmt: skip
    assert measured == ["one", "one-delivery", "two", "other"]
