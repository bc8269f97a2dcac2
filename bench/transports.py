"""CPU per proxied request of the HTTP clients the gateway could use for its upstream calls.

Run: ``python -m bench.transports [--quick] [--seconds 3] [--rounds 3]``.
Prints a markdown table and writes ``bench/results/transports.json``.

A trivial upstream (``bench._upstream``: raw asyncio on uvloop, keep-alive, a recorded 673-byte
JSON page of the public-security sample system) runs as a separate process. Each client then
runs in a fresh worker process: ``--concurrency`` (32) tasks share one client limited to 32
connections and issue GETs for ``--seconds`` (after a 0.4 s warm-up). The worker reports its
own CPU time (``time.process_time()``: user + system, all threads) and wall time; CPU µs per
request is the figure that matters (the upstream's CPU is not counted); requests/s is bounded
by the machine (2 cores shared by client, upstream and anything else).

Clients (each reads the whole body):

* ``httpx2`` — ``httpx2.AsyncClient`` with its default transport (httpcore2);
* ``httpx2 + AiohttpTransport`` — what the gateway configures (``httpx_aiohttp.httpx2``);
* ``gateway UpstreamHttp.get`` — the gateway's adapter client itself (streamed body with a
  size cap, deadline, circuit breaker, API-key header): for an API-key agency, its direct
  ``aiohttp.ClientSession`` path;
* ``gateway UpstreamHttp.get, httpx2 path`` — the same client forced onto its httpx2 +
  ``AiohttpTransport`` path (what OAuth2 agencies use, and every agency used before);
* ``aiohttp`` — a raw ``aiohttp.ClientSession`` (the floor for the aiohttp transport);
* ``httpx`` — plain ``httpx.AsyncClient`` with its default transport (httpcore 1.x), if
  importable.

Every client runs on uvloop (what uvicorn picks when installed, so what the gateway runs on)
and on the default asyncio loop. ``httpx`` and ``httpx2`` are also run with ``sniffio``
hidden (simulated: an import hook that does the real path search, then fails, as a missing
package would; nothing is uninstalled). Configurations are interleaved over ``--rounds``
rounds; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.machinery
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bench._common import markdown_table, median, write_results

CLIENTS = (
    "httpx2",
    "httpx2 + AiohttpTransport",
    "gateway UpstreamHttp.get",
    "gateway UpstreamHttp.get, httpx2 path",
    "aiohttp",
    "httpx",
)
SNIFFIO_CLIENTS = ("httpx2", "httpx")
LOOPS = ("uvloop", "asyncio")
ISSUE = {"httpx": 2270.0, "aiohttp": 334.0}  # µs CPU per proxied request, from the issue
PATH = "/api/v1/person"


@dataclass(frozen=True)
class Config:
    client: str
    loop: str
    sniffio: bool = True

    @property
    def label(self) -> str:
        return self.client + ("" if self.sniffio else " (no sniffio)")


# --- the worker: one client, one loop, one process --------------------------------------------


class _HideSniffio:
    """``import sniffio`` fails as if it were not installed, after the same path search."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> None:
        if name == "sniffio" or name.startswith("sniffio."):
            importlib.machinery.PathFinder.find_spec(name, path)  # the cost of looking
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


Fetch = Callable[[], Awaitable[int]]


@asynccontextmanager
async def _client(name: str, base: str, concurrency: int) -> AsyncIterator[Fetch]:
    """Yield a ``fetch()`` that GETs the upstream page and returns the body length."""
    if name in ("httpx2", "httpx2 + AiohttpTransport"):
        import httpx2

        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        kwargs: dict[str, Any] = {"base_url": base, "limits": limits}
        if name != "httpx2":
            from httpx_aiohttp.httpx2 import AiohttpTransport

            kwargs["transport"] = AiohttpTransport(limits=limits, trust_env=False)
        async with httpx2.AsyncClient(**kwargs) as client:

            async def fetch2() -> int:
                return len((await client.get(PATH)).content)

            yield fetch2
    elif name == "httpx":
        import httpx

        plain = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, limits=plain) as plain_client:

            async def fetch1() -> int:
                return len((await plain_client.get(PATH)).content)

            yield fetch1
    elif name == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base_url=base, connector=connector) as session:

            async def fetch_aiohttp() -> int:
                async with session.get(PATH) as response:
                    return len(await response.read())

            yield fetch_aiohttp
    elif name.startswith("gateway UpstreamHttp.get"):
        import httpx2
        from httpx_aiohttp.httpx2 import AiohttpTransport

        from adapters.config import ApiKeyAuth, ConnectionConfig
        from adapters.transports.http import UpstreamHttp

        transport = None
        if name.endswith("httpx2 path"):  # as UpstreamHttp builds it for OAuth2 agencies
            limits = httpx2.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            )
            transport = AiohttpTransport(limits=limits, trust_env=False)
        upstream = UpstreamHttp(
            "GA640104",
            ConnectionConfig(base_url=base, max_connections=concurrency),
            ApiKeyAuth(kind="api_key", secret="public_security"),  # noqa: S106 (a name)
            {"public_security": "bench-secret"},
            transport=transport,
        )
        try:

            async def fetch_gateway() -> int:
                return len((await upstream.get(PATH)).body)

            yield fetch_gateway
        finally:
            await upstream.aclose()
    else:
        raise SystemExit(f"unknown client {name!r}")


async def _measure(name: str, base: str, seconds: float, concurrency: int) -> dict[str, Any]:
    async with _client(name, base, concurrency) as fetch:
        done = 0
        deadline = 0.0

        async def worker(count: bool) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if await fetch() <= 0:
                    raise RuntimeError("empty body")
                done += count

        deadline = time.perf_counter() + 0.4  # warm-up: connections open, code paths hot
        await asyncio.gather(*(worker(False) for _ in range(concurrency)))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        deadline = wall0 + seconds
        await asyncio.gather(*(worker(True) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "requests": done,
        "cpu_us_per_request": round(cpu / done * 1e6, 1),
        "requests_per_s": round(done / wall, 1),
        "wall_s": round(wall, 3),
    }


def worker_main(args: argparse.Namespace) -> int:
    if args.no_sniffio:
        sys.meta_path.insert(0, _HideSniffio)
    loop_module: ModuleType | None = None
    if args.loop == "uvloop":
        import uvloop

        loop_module = uvloop
    coro = _measure(args.worker, args.url, args.seconds, args.concurrency)
    result = loop_module.run(coro) if loop_module is not None else asyncio.run(coro)
    result["sniffio_imported"] = "sniffio" in sys.modules
    print(json.dumps(result))
    return 0


# --- the parent: upstream, configurations, rounds, table --------------------------------------


@contextmanager
def upstream() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise RuntimeError("the upstream did not start")
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def run_config(config: Config, url: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.transports", "--worker", config.client, "--url", url,
        "--loop", config.loop, "--seconds", str(args.seconds),
        "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    if not config.sniffio:
        command.append("--no-sniffio")
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{config.label} on {config.loop} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def configs(clients: Sequence[str], loops: Sequence[str], sniffio: bool) -> list[Config]:
    out = [Config(c, loop) for loop in loops for c in clients]
    if sniffio:
        out += [Config(c, "uvloop", sniffio=False) for c in SNIFFIO_CLIENTS if c in clients]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1.5 s runs")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--no-sniffio-runs", action="store_true", help="skip the sniffio runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    parser.add_argument("--no-sniffio", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.rounds, args.seconds = 1, 1.5
    loops = [loop for loop in args.loops.split(",") if loop]
    if "uvloop" in loops and not _importable("uvloop"):
        print("NOTE: uvloop is not installed; asyncio only", file=sys.stderr)
        loops.remove("uvloop")
    clients = [c for c in CLIENTS if c != "httpx" or _importable("httpx")]
    if "httpx" not in clients:
        print("NOTE: plain httpx is not importable; its row is missing", file=sys.stderr)
    todo = configs(clients, loops, sniffio=not args.no_sniffio_runs and "uvloop" in loops)
    runs: dict[Config, list[dict[str, Any]]] = {c: [] for c in todo}
    with upstream() as url:
        for r in range(args.rounds):
            for config in todo:
                runs[config].append(run_config(config, url, args))
            print(f"… round {r + 1}/{args.rounds}", file=sys.stderr)
    summary: dict[str, Any] = {}
    rows = []
    floor = {
        loop: median([x["cpu_us_per_request"] for x in runs[Config("aiohttp", loop)]])
        for loop in loops
    }
    for config in todo:
        results = runs[config]
        cpu = median([x["cpu_us_per_request"] for x in results])
        rps = median([x["requests_per_s"] for x in results])
        summary[f"{config.label} / {config.loop}"] = {
            "cpu_us_per_request": cpu, "requests_per_s": rps, "runs": results,
        }  # fmt: skip
        issue = ISSUE.get(config.client) if config.sniffio else None
        rows.append([
            config.label, config.loop, f"{cpu:,.0f}", f"{rps:,.0f}",
            f"{cpu / floor[config.loop]:.2f}×", f"{issue:,.0f}" if issue else "—",
        ])  # fmt: skip
    print(
        f"\nUpstream GETs, {args.concurrency} concurrent, {args.seconds:g} s per run, "
        f"median of {args.rounds} round(s); 673-byte JSON body; client process CPU only\n"
    )
    table = markdown_table(
        ["client", "event loop", "CPU µs/request", "requests/s", "CPU vs raw aiohttp",
         "issue's figure µs"],
        rows,
    )  # fmt: skip
    print(table)
    out = write_results(
        "transports",
        {"settings": {k: v for k, v in vars(args).items() if k not in ("worker", "url")},
         "results": summary, "table": table},
    )  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
