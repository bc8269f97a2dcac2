"""Prometheus metrics: requests and latency by route, method, status and agency.

Each app owns its registry, so several apps (tests, workers) never collide. With
several uvicorn workers each worker exposes its own counters; scrape them through
the per-worker port or set PROMETHEUS_MULTIPROC_DIR (see docs/operations.md).
"""

from __future__ import annotations

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

    def observe(self, route: str, method: str, status: int, agency: str, seconds: float) -> None:
        self.requests.labels(route, method, str(status), agency).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
