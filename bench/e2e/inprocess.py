"""The gateway's exchange path in one process, without an HTTP server: for A/B of changes.

Run: ``python -m bench.e2e.inprocess [--requests 2000] [--concurrency 64] [--profile]
[--example NAME] [--passthrough] [--no-pin]`` (a demo example; default the end-to-end benchmark's).
``--passthrough`` drives the bare FastAPI pass-through (path (c), aiohttp) the same way, in
this process, for the same upstream answer: the in-process floor the gateway is compared with.

Records the sample systems' answers and serves them with nginx as ``python -m bench.e2e``
does, builds the gateway app in this process as ``gateway serve`` does (SQLite, the
benchmark's request, the heap settled after start-up: without that, the collector's walks of
the start-up heap made up a third of the figure, a cost the served worker does not pay) and
calls it as ASGI, ``--concurrency`` requests at a time, after 500 warm-up requests. Prints the
process's CPU time per request (every thread: the event loop and the audit writer) and the
rate. Far less noisy than the HTTP benchmark for a before/after of one change. It is not the
HTTP ratio: both figures leave out uvicorn's HTTP work (about 100 µs per request here), which
lowers the ratio over HTTP (docs/performance.md §6, fifth pass). ``--passthrough`` freezes the
heap this process built before (c) started: a served (c) holds only its own.
``--profile`` adds a cProfile of the event-loop thread's CPU time (``time.thread_time``),
sorted by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import SCRATCH
from bench.e2e.run import EXAMPLE, example_request, serve_recording
from bench.e2e.servers import prepare_gateway
from bench.e2e.system import ensure_tools

__all__ = ["main"]


async def _drive(app: Any, token: str, example: dict[str, Any], args: argparse.Namespace) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in example["headers"].items()]
    path = example["path"]

    async def one() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != example["expect_status"]:
            raise RuntimeError(f"unexpected answer: {sent}")

    async def batch(n: int) -> None:
        gate = asyncio.Semaphore(args.concurrency)

        async def gated() -> None:
            async with gate:
                await one()

        await asyncio.gather(*(gated() for _ in range(n)))

    await batch(500)
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    switches = _context_switches()
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    await batch(args.requests)
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{args.requests / wall:,.0f} requests/s, {cpu / args.requests * 1e6:,.0f} µs CPU "
          f"per request (process, all threads)")  # fmt: skip
    after = _context_switches()
    for name, (voluntary, forced, seconds) in sorted(after.items()):
        v0, f0, s0 = switches.get(name, (0, 0, 0.0))
        if (voluntary, forced, seconds) == (v0, f0, s0):
            continue  # idle
        per_request = (voluntary - v0) / args.requests, (forced - f0) / args.requests
        print(f"  thread {name}: {(seconds - s0) / args.requests * 1e6:,.0f} µs CPU, "
              f"{per_request[0]:.2f} voluntary and {per_request[1]:.2f} forced context "
              "switches per request")  # fmt: skip
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


def _context_switches() -> dict[str, tuple[int, int, float]]:
    """Each thread's (voluntary, forced) context switches and CPU seconds so far, by name."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    counts: dict[str, tuple[int, int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            status = (task / "status").read_text()
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        name = names.get(int(task.name)) or f"{fields['Name'].strip()}/{task.name}"
        counts[name] = (
            int(fields["voluntary_ctxt_switches"]),
            int(fields["nonvoluntary_ctxt_switches"]),
            (int(stat[11]) + int(stat[12])) / tick,  # utime + stime (fields 14, 15)
        )
    return counts


async def _pass_through(app: Any, path: str, example: dict[str, Any],
                        args: argparse.Namespace) -> None:  # fmt: skip
    async with app.router.lifespan_context(app):
        # This process holds the benchmark, the gateway's modules and the recording, which a
        # served (c) does not: out of the collector's reach, so that (c) pays for its own heap
        # only (its threshold stays Python's default, as under uvicorn).
        gc.collect()
        gc.freeze()
        await _drive(app, "-", {**example, "path": path, "expect_status": 200}, args)


async def _serve(app: Any, client: tuple[str, str], example: dict[str, Any],
                 args: argparse.Namespace) -> None:  # fmt: skip
    import httpx2

    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            answer = await c.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=client
            )
            answer.raise_for_status()
        await _drive(app, answer.json()["access_token"], example, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--example", default=EXAMPLE, help="the demo example to send")
    parser.add_argument("--passthrough", action="store_true",
                        help="drive the bare pass-through (c) instead of the gateway")  # fmt: skip
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default=(os.cpu_count() or 1) >= 2,
                        help="this process on core 0, the upstream on core 1, as bench.e2e "
                             "pins them (default: on with two cores or more)")  # fmt: skip
    args = parser.parse_args(argv)
    tools = ensure_tools()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="e2e-inprocess-", dir=SCRATCH) as tmp:
        workdir = Path(tmp)
        example = example_request(args.example)
        served = serve_recording(workdir, example, tools["nginx"], "1" if args.pin else None)
        secrets, agency, fetch = served.secrets, served.agency, served.fetch
        upstream = served.server
        if args.pin:
            os.sched_setaffinity(0, {0})  # this process (both threads) on core 0, nginx on 1
        try:
            import uvloop

            if args.passthrough:
                os.environ["BENCH_UPSTREAM"] = served.urls[fetch.agency]
                os.environ["BENCH_CLIENT"] = "aiohttp"
                from bench.e2e.passthrough import app as bare

                uvloop.run(_pass_through(bare, fetch.path, example, args))
                return 0
            urls = served.urls
            deployment = prepare_gateway(
                workdir / "gateway", f"sqlite:///{workdir / 'gateway.db'}", agency, secrets
            )
            env = deployment.env(8000, urls, workers=1)
            os.environ.update({k: v for k, v in env.items() if k.startswith("GATEWAY_")})
            from gateway.app import create_served_app

            # As `gateway serve` builds it: the heap settled once started (gateway/heap.py).
            app = create_served_app()
            client = (deployment.client_id, deployment.client_secret)
            uvloop.run(_serve(app, client, example, args))
        finally:
            upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
