"""Prometheus metrics: requests and latency by route, method, status and agency.

Each app owns its registry, so several apps (tests, workers) never collide. With
several uvicorn workers each worker exposes its own counters; scrape them through
the per-worker port or set PROMETHEUS_MULTIPROC_DIR (see docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests_total",
            "HTTP requests served",
            ["route", "method", "status", "agency"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request start to response end",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

        # Each label set's children, kept: ``labels()`` builds and checks the label tuple and
        # takes a lock on every call (~3 µs per request of the 5 µs here). Bounded like the
        # metrics themselves: routes × methods × statuses × agencies.
        self._children: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, agency: str, seconds: float) -> None:
        key = (route, method, status, agency)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status), agency),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
