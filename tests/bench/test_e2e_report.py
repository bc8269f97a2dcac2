"""The end-to-end report's targets: the gateway against (c) of the same minutes when measured."""

from __future__ import annotations

from typing import Any

from bench.e2e.report import reference, render, targets


def _path(name: str, cpu: float, rate: float, p99: float = 10.0) -> dict[str, Any]:
    loops = {"50%": {"p50_ms": 1.0, "p99_ms": p99, "p999_ms": p99, "errors": 0}}
    return {
        "name": name, "cpu_us_per_request": cpu, "db_cpu_us_per_request": None,
        "peak_rss_mib": 80.0, "audit": None, "open_loop": loops,
        "max": {"rate": rate, "errors": 0, "p50_ms": 1.0, "p99_ms": 2.0},
    }  # fmt: skip


def _payload(paths: dict[str, Any]) -> dict[str, Any]:
    machine = {"date": "d", "commit": "c", "nproc": 2, "cpu": "x", "memory_gib": 1,
               "python": "3.11"}  # fmt: skip
    return {"machine": machine, "example": {"name": "e", "path": "/p"}, "paths": paths}


BASE = {"a": _path("(a)", 20, 30_000, p99=1.0), "c": _path("(c)", 500, 2_000, p99=5.0)}


def test_without_a_bracket_the_first_pass_through_is_the_floor() -> None:
    paths = {**BASE, "d-sqlite-1w": _path("gateway, 1 worker, SQLite", 900, 1_100, p99=9.0)}
    assert reference(paths, "d-sqlite-1w") == (500, 2_000, "(c)")
    found = {t["target"]: t for t in targets(_payload(paths))}
    cpu = found["CPU per request vs (c): gateway, 1 worker, SQLite"]
    assert round(cpu["value"], 2) == 1.8
    assert cpu["met"] is True
    rate = found["max throughput vs (c): gateway, 1 worker, SQLite"]
    assert round(rate["value"], 2) == 0.55
    assert rate["met"] is True


def test_a_bracket_compares_with_the_pass_through_of_the_same_minutes() -> None:
    # The machine slowed after the first (c): (c) measured around the gateway costs more.
    paths = {
        **BASE,
        "c@d-sqlite-1w:before": _path("(c) again, just before d-sqlite-1w", 640, 1_560),
        "c@d-sqlite-1w:after": _path("(c) again, just after d-sqlite-1w", 660, 1_540),
        "d-sqlite-1w": _path("gateway, 1 worker, SQLite", 1_200, 800, p99=9.0),
    }
    assert reference(paths, "d-sqlite-1w") == (650, 1_550, "(c) just before and after it")
    found = targets(_payload(paths))
    cpu, rate = found[0], found[1]
    assert cpu["target"] == (
        "CPU per request vs (c) just before and after it: gateway, 1 worker, SQLite "
        "(vs the first (c): 2.40×)"
    )
    assert round(cpu["value"], 2) == 1.85
    assert cpu["met"] is True
    assert rate["target"].endswith("(vs the first (c): 0.40×)")
    assert round(rate["value"], 3) == 0.516
    assert rate["met"] is True
    # Each (c) run is in the paths table, so the reader sees what the floor was.
    text = render(_payload(paths))
    assert "| (c) again, just before d-sqlite-1w | 1,560 | 640 |" in text


def test_half_a_bracket_is_not_used() -> None:
    paths = {
        **BASE,
        "c@d-sqlite-1w:before": _path("(c) again", 100, 9_000),
        "d-sqlite-1w": _path("gateway, 1 worker, SQLite", 1_100, 900),
    }
    assert reference(paths, "d-sqlite-1w") == (500, 2_000, "(c)")
    cpu = targets(_payload(paths))[0]
    assert round(cpu["value"], 2) == 2.2
    assert cpu["met"] is False
