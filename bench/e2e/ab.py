"""Interleaved A/B over HTTP: the bare pass-through (c) and the gateway of one or more checkouts.

Run: ``python -m bench.e2e.ab [--checkout PATH]... [--rounds 3] [--seconds 8]
[--backend sqlite|postgresql]``.

The same recorded upstream, nginx, request, pinning and ``wrk`` load as ``python -m bench.e2e``
(the maximum-throughput step only: no open-loop latency, no soak). Each round runs (c), then
the gateway of each checkout (default: this one), each a fresh server on a fresh database, so
a drift of the machine's speed (docs/performance.md §6) hits every variant of a round alike;
each gateway's audit log is verified after its run. The report gives every round's figures
and each gateway's CPU per request and throughput as a ratio to (c) *of the same round*, then
the median of those ratios.

A checkout is any directory with this repository's ``gateway`` package (a ``git worktree`` of
another commit): its gateway runs with ``PYTHONPATH`` set to it, in this environment, on a
database migrated by *this* checkout's code, so the checkouts compared must share the schema.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import SCRATCH, postgres_available
from bench.e2e.audit_check import check_audit
from bench.e2e.run import (
    EXAMPLE,
    LOAD_CORES,
    SERVER_CORES,
    Target,
    _database,
    _headers,
    _measure,
    example_request,
    log,
    serve_recording,
)
from bench.e2e.servers import prepare_gateway, start_gateway, start_passthrough
from bench.e2e.system import ensure_tools, free_port

__all__ = ["main"]

PASS_THROUGH = "(c)"  # noqa: S105 - a label, not a password


def _variants(checkouts: list[Path]) -> list[tuple[str, Path | None]]:
    if not checkouts:
        return [(PASS_THROUGH, None), ("gateway", None)]
    names = [c.resolve().name for c in checkouts]
    if len(set(names)) != len(names):
        names = [str(c.resolve()) for c in checkouts]
    return [(PASS_THROUGH, None), *zip(names, checkouts, strict=True)]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    tools = ensure_tools()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="e2e-ab-", dir=SCRATCH) as tmp:
        workdir = Path(tmp)
        example = example_request(args.example)
        served = serve_recording(workdir, example, tools["nginx"], LOAD_CORES)
        secrets, agency, fetch = served.secrets, served.agency, served.fetch
        urls, upstream = served.urls, served.server
        try:
            for round_ in range(1, args.rounds + 1):
                for name, checkout in _variants(args.checkout):
                    key = f"r{round_}-{len(rows)}"
                    if name == PASS_THROUGH:
                        result = _pass_through(key, urls[fetch.agency], fetch.path, example,
                                               args, tools, workdir)  # fmt: skip
                        audit = None
                    else:
                        result, audit = _gateway(key, checkout, example, agency, secrets, urls,
                                                 args, tools, workdir)  # fmt: skip
                    rows.append({
                        "round": round_, "variant": name, "rate": result.max["rate"],
                        "errors": result.max["errors"], "cpu_us": result.cpu_us_per_request,
                        "audit_ok": audit,
                    })  # fmt: skip
        finally:
            upstream.stop()
    return rows


def _pass_through(key: str, upstream: str, path: str, example: dict[str, Any],
                  args: argparse.Namespace, tools: dict[str, str],
                  workdir: Path) -> Any:  # fmt: skip
    port = free_port()
    server = start_passthrough("aiohttp", upstream, port, SERVER_CORES, workdir / f"{key}.log")
    try:
        target = Target(f"http://127.0.0.1:{port}{path}", dict(example["headers"]))
        return _measure(key, server, target, args, tools, workdir)
    finally:
        server.stop()


def _gateway(key: str, checkout: Path | None, example: dict[str, Any], agency: str,
             secrets: dict[str, str], urls: dict[str, str], args: argparse.Namespace,
             tools: dict[str, str], workdir: Path) -> tuple[Any, bool]:  # fmt: skip
    with _database(args.backend) as url:
        deployment = prepare_gateway(workdir / key, url, agency, secrets)
        port = free_port()
        env = {"PYTHONPATH": str(checkout.resolve())} if checkout is not None else None
        server = start_gateway(deployment, port, urls, workers=1, cores=SERVER_CORES,
                               log=workdir / f"{key}.log", extra_env=env)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            time.sleep(1.0)
            target = Target(base + example["path"], _headers(deployment, base, example))
            result = _measure(key, server, target, args, tools, workdir)
        finally:
            server.stop()
        return result, check_audit(url, deployment.data_dir, None).ok


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| round | variant | req/s | CPU µs/req | CPU vs (c) | throughput vs (c) | errors "
        "| audit verifies |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        floor = next(r for r in rows if r["round"] == row["round"] and r["variant"] == PASS_THROUGH)
        cpu = row["cpu_us"] / floor["cpu_us"]
        rate = row["rate"] / floor["rate"]
        if row["variant"] != PASS_THROUGH:
            ratios.setdefault(row["variant"], []).append((cpu, rate))
        audit = "—" if row["audit_ok"] is None else ("yes" if row["audit_ok"] else "**no**")
        lines.append(
            f"| {row['round']} | {row['variant']} | {row['rate']:,.0f} | {row['cpu_us']:,.0f} "
            f"| {cpu:.2f}× | {rate:.2f}× | {row['errors']} | {audit} |"
        )
    lines += ["", "| variant | median CPU vs (c) | median throughput vs (c) | rounds |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for variant, pairs in ratios.items():
        cpu = statistics.median(p[0] for p in pairs)
        rate = statistics.median(p[1] for p in pairs)
        lines.append(f"| {variant} | {cpu:.2f}× | {rate:.2f}× | {len(pairs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="a checkout's gateway to run (repeat; default: this one)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="each measured run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--example", default=EXAMPLE, help="the demo example to send")
    args = parser.parse_args(argv)
    args.loads = ()  # maximum throughput only
    for checkout in args.checkout:
        if not (checkout / "gateway" / "__init__.py").is_file():
            parser.error(f"{checkout} has no gateway package")
    if args.backend == "postgresql" and (problem := postgres_available()) is not None:
        parser.error(f"PostgreSQL unavailable: {problem}")
    rows = run(args)
    print(render(rows))
    bad = [r for r in rows if r["errors"] or r["audit_ok"] is False]
    if bad:
        log(f"{len(bad)} run(s) with errors or an audit log that does not verify")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
