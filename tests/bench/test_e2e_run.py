"""The one-worker gateway paths are bracketed by (c) measured just before and just after them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.e2e import run


def test_the_read_path_is_measured_between_two_runs_of_the_pass_through(
    tmp_path: Path, fake_gateway_servers: Callable[[Callable[..., Any]], None]
) -> None:
    events: list[str] = []

    class FakeServer:
        name = "gateway"

        def stop(self) -> None:
            events.append("stop")

    def start(*args: Any, **kwargs: Any) -> Any:
        events.append("start")
        return FakeServer()

    def measure(key: str, server: Any, target: Any) -> Any:
        events.append(f"measure {key}")
        return run.PathResult(key, server.name)

    def bracket(key: str) -> Any:
        events.append(key)
        return run.PathResult(key, "(c)")

    fake_gateway_servers(start)
    example = {"path": "/v1/resources/person/P1"}
    run._gateway_path("d-sqlite-1w", "sqlite", 1, example, "FY640104", {}, {}, measure,
                      tmp_path, None, {}, bracket)  # fmt: skip
    assert events == [
        "start", "c@d-sqlite-1w:before", "measure d-sqlite-1w", "c@d-sqlite-1w:after", "stop",
    ]  # fmt: skip
    events.clear()
    run._gateway_path("d-sqlite-2w", "sqlite", 2, example, "FY640104", {}, {}, measure,
                      tmp_path, None, {})  # fmt: skip
    assert events == ["start", "measure d-sqlite-2w", "stop"]
