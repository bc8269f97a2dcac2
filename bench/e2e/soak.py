"""The soak: the gateway (one worker, SQLite) at about 70 % of its maximum for minutes.

``wrk`` paces each connection (a fixed delay between its requests) and writes every
response's status and ``X-Audit-Index`` to a file. Passes when there are no errors, every
receipt names its own stored entry whose inclusion proof verifies and the whole log verifies
(bench/e2e/audit_check.py), and the gateway's resident memory grows less than 10 % from the
second tenth of the run to the last tenth.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.e2e.audit_check import check_audit, read_receipts
from bench.e2e.load import ClosedLoop, closed_loop
from bench.e2e.servers import prepare_gateway, start_gateway
from bench.e2e.system import cpu_seconds, free_port, rss_bytes

__all__ = ["run_soak"]

CONNECTIONS = 32
RSS_GROWTH_LIMIT = 0.10


def pacing_for(rate: float, latency_ms: float) -> tuple[int, float]:
    """(connections, delay in ms after each response) for ``rate`` requests/s in total, when a
    response takes ``latency_ms``: each connection sends one request per latency + delay.

    At least :data:`CONNECTIONS`, and enough that each still waits as long again as its
    response takes: with too few, no delay is left and the soak runs at the maximum instead
    of ``rate`` (a slow phase of the machine did that: 32 connections, 67 ms responses).
    """
    connections = max(CONNECTIONS, math.ceil(2 * rate * latency_ms / 1000))
    return connections, connections * 1000 / rate - latency_ms


def run_soak(args: argparse.Namespace, tools: dict[str, str], example: dict[str, Any],
             agency: str, secrets: dict[str, str], upstream_urls: dict[str, str],
             rate: float, workdir: Path, *, server_cores: str, load_cores: str,
             latency_ms: float) -> dict[str, Any]:  # fmt: skip
    print(f"… soak: {args.soak_seconds:.0f} s at ~{rate:,.0f} requests/s", file=sys.stderr)
    url = f"sqlite:///{workdir / 'soak.db'}"
    deployment = prepare_gateway(workdir / "soak", url, agency, secrets)
    port = free_port()
    server = start_gateway(deployment, port, upstream_urls, workers=1, cores=server_cores,
                           log=workdir / "soak.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {deployment.token(base)}", **example["headers"]}
    receipts = workdir / "soak-receipts.txt"
    outcome: list[ClosedLoop | BaseException] = []
    # Each connection waits between a response and its next request, so that with the
    # response time measured at this load the connections together send ``rate``.
    connections, pacing = pacing_for(rate, latency_ms)

    def load() -> None:
        try:
            outcome.append(
                closed_loop(tools["wrk"], base + example["path"], headers,
                            connections=connections, seconds=args.soak_seconds, cores=load_cores,
                            workdir=workdir, receipts=receipts,
                            delay_ms=pacing)
            )  # fmt: skip
        except BaseException as exc:  # reported below, in the main thread
            outcome.append(exc)

    samples: list[tuple[float, int]] = []
    cpu_before = cpu_seconds(server.own_pids())
    started = time.monotonic()
    worker = threading.Thread(target=load, name="soak-load")
    worker.start()
    try:
        while worker.is_alive():
            samples.append((time.monotonic() - started, rss_bytes(server.own_pids())))
            worker.join(timeout=5.0)
        cpu = cpu_seconds(server.own_pids()) - cpu_before
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        # While the gateway still runs: its checkpointer signs the checkpoint that covers the
        # last receipts.
        check = check_audit(url, deployment.data_dir, receipts)
    finally:
        server.stop()
    run = outcome[0]
    statuses, problems = read_receipts(receipts)
    bad = sum(1 for status, _ in statuses if status != 200)
    tenth = max(1, len(samples) // 10)
    early = statistics.median(rss for _, rss in samples[tenth : 2 * tenth])
    late = statistics.median(rss for _, rss in samples[-tenth:])
    growth = late / early - 1
    passed = (run.errors == 0 and bad == 0 and not problems and check.ok
              and growth < RSS_GROWTH_LIMIT)  # fmt: skip
    return {
        "seconds": run.seconds,
        "target_rate": rate,
        "achieved_rate": run.rate,
        "requests": run.requests,
        "errors": run.errors + bad + len(problems),
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "p999_ms": run.p999_ms,
        "cpu_us_per_request": cpu / max(1, run.requests) * 1e6,
        "rss_mib_early": early / 2**20,
        "rss_mib_late": late / 2**20,
        "rss_growth": growth,
        "rss_samples_mib": [(round(t), round(rss / 2**20, 1)) for t, rss in samples],
        "audit": check.as_json() | {"problems": check.problems[:20]},
        "passed": passed,
    }
