"""End to end: the upstream alone, nginx, a bare pass-through and the gateway, in one run.

Run: ``python -m bench.e2e [--quick] [--seconds 10] [--soak-seconds 600] [--no-postgres]``.
Installs nginx, wrk and h2load (nghttp2-client) from Debian's packages if missing, prints
markdown tables, writes ``bench/results/e2e.json`` and rewrites the end-to-end section of
``docs/performance.md`` (between its ``e2e`` markers).

Paths, all fetching the same recorded native answer (``bench/e2e/upstream.py``):

* (a) the upstream alone: nginx serving the recorded answer from a file;
* (b) Debian's nginx as a reverse proxy in front of it (keep-alive pool);
* (c) a bare FastAPI pass-through (``bench/e2e/passthrough.py``) on uvicorn + uvloop +
  httptools with aiohttp, and again with httpx's default transport;
* (d) the gateway's full path (``gateway serve``): token, policy decision, adapter mapping,
  standard validation, field filtering and masking, a durable audit entry with tree and
  checkpoints; one worker and two workers sharing one database, on SQLite and PostgreSQL.

The server under test is pinned to core 0 (two workers: cores 0-1); the load generator and
the upstream to core 1. For each path: a warm-up, the maximum throughput at a fixed
concurrency (``wrk``), CPU time per request of the server's processes from ``/proc`` (for
PostgreSQL also the database server's, shown apart), peak RSS, then open-loop latency
(``h2load --rps``) at 50 % and 80 % of that path's own maximum. Then the soak: the gateway
at ~70 % of its maximum for ``--soak-seconds``, every receipt checked (bench/e2e/soak.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bench._common import (
    ROOT,
    SCRATCH,
    machine_info,
    postgres_available,
    postgres_schema,
    write_results,
)
from bench.e2e import flame, report
from bench.e2e.audit_check import check_audit
from bench.e2e.deliveries import DELIVERY_SENDER, delivery_request, post_floor
from bench.e2e.load import closed_loop, open_loop
from bench.e2e.servers import (
    GatewayDeployment,
    prepare_gateway,
    start_gateway,
    start_nginx,
    start_passthrough,
)
from bench.e2e.soak import run_soak
from bench.e2e.system import (
    Server,
    cpu_seconds,
    ensure_tools,
    free_port,
    free_port_run,
    peak_rss_bytes,
)
from bench.e2e.upstream import (
    Exchange,
    Recording,
    nginx_proxy_conf,
    nginx_upstream_conf,
    recording_proxies,
    write_recording,
)

__all__ = ["main"]

# The request every path serves: a prison officer reads a person of a case in execution; the
# negative list masks fields (demo example "masked-fields").
EXAMPLE = "masked-fields"
SERVER_CORES, TWO_CORES, LOAD_CORES = "0", "0,1", "1"


def log(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


@dataclass
class PathResult:
    key: str
    name: str
    max: dict[str, Any] = field(default_factory=dict)
    cpu_us_per_request: float = 0.0
    db_cpu_us_per_request: float | None = None
    peak_rss_mib: float = 0.0
    open_loop: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: dict[str, Any] | None = None
    flame: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    post: bytes | None = None  # a POST of this body, each with its own Idempotency-Key


def example_request(name: str = EXAMPLE) -> dict[str, Any]:
    """A demo example (gateway/demo_examples.py) by name: the request every run sends."""
    from gateway.demo_examples import demo_examples

    examples = {e["name"]: e for e in demo_examples()}
    if name not in examples:
        raise SystemExit(f"no demo example {name!r}; one of: {', '.join(sorted(examples))}")
    return examples[name]


def record_upstream(
    workdir: Path, example: dict[str, Any]
) -> tuple[Recording, dict[str, str], str]:
    """Run the real sample systems and the gateway once; keep what the gateway asked."""
    from gateway.demo import DEMO_CLIENTS
    from gateway.sandbox_runner import start_sandbox_systems

    log("recording the sample agency systems' answers")
    systems = start_sandbox_systems(
        host="127.0.0.1", base_port=free_port_run(5), cases=300,
        log_path=workdir / "sandbox.log",
    )  # fmt: skip
    try:
        with recording_proxies(systems.urls) as (urls, recording):
            agency = DEMO_CLIENTS[example["client"]][0]
            deployment = prepare_gateway(
                workdir / "record", f"sqlite:///{workdir / 'record.db'}", agency, systems.secrets
            )
            port = free_port()
            # The recorded delivery is not pushed to the court: the recording is of what a
            # request asks (GET answers replayed by nginx), not of the outbox's later POST.
            no_push = {"GATEWAY_DELIVERY_PUSH_ENABLED": "false"}
            server = start_gateway(deployment, port, urls, workers=1, cores=None,
                                   log=workdir / "record-gateway.log",
                                   extra_env=no_push)  # fmt: skip
            try:
                import httpx2

                base = f"http://127.0.0.1:{port}"
                headers = _headers(deployment, base, example)
                answer = httpx2.get(base + example["path"], headers=headers, timeout=10)
                if answer.status_code != example["expect_status"]:
                    raise RuntimeError(f"recording: {answer.status_code} {answer.text[:300]}")
                if agency == DELIVERY_SENDER:  # what a delivery asks the systems, recorded too
                    extra, body = delivery_request()
                    sent = httpx2.post(base + "/v1/deliveries", content=body, timeout=10,
                                       headers={**headers, **extra, "Idempotency-Key": "rec"},
                                       )  # fmt: skip
                    if sent.status_code != 201:
                        raise RuntimeError(f"recording: {sent.status_code} {sent.text[:300]}")
            finally:
                server.stop()
    finally:
        systems.stop()
    write_recording(recording, workdir / "recording.json")
    return recording, systems.secrets, agency


@dataclass
class RecordedUpstream:
    """The sample systems' recorded answers, served by nginx (one port per agency)."""

    recording: Recording
    secrets: dict[str, str]
    agency: str
    """The agency of the example's client."""
    fetch: Exchange
    """The recorded fetch the bare pass-through (c) and nginx (b) ask for."""
    ports: dict[str, int]
    urls: dict[str, str]
    server: Server


def serve_recording(workdir: Path, example: dict[str, Any], nginx: str, cores: str | None,
                    name: str = "upstream") -> RecordedUpstream:  # fmt: skip
    """Record what the gateway asks for ``example`` (record_upstream), then serve it."""
    recording, secrets, agency = record_upstream(workdir, example)
    ports = {agency_name: free_port() for agency_name in recording.agencies()}
    fetch = next(e for e in recording.exchanges if e.path.count("/") >= 2 and not e.query)
    server = start_nginx(name, nginx, nginx_upstream_conf(recording, ports, workdir / "upstream"),
                         workdir / "upstream", cores,
                         f"http://127.0.0.1:{ports[fetch.agency]}{fetch.path}")  # fmt: skip
    urls = {agency_name: f"http://127.0.0.1:{port}" for agency_name, port in ports.items()}
    return RecordedUpstream(recording, secrets, agency, fetch, ports, urls, server)


def _headers(deployment: GatewayDeployment, base: str, example: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployment.token(base)}", **example["headers"]}


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        with postgres_schema(migrated=False) as url:
            yield url
    else:
        SCRATCH.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/bench yet
        with tempfile.TemporaryDirectory(prefix="e2e-db-", dir=SCRATCH) as tmp:
            yield f"sqlite:///{Path(tmp) / 'gateway.db'}"


def _measure(key: str, server: Server, target: Target, args: argparse.Namespace,
             tools: dict[str, str], workdir: Path) -> PathResult:  # fmt: skip
    result = PathResult(key, server.name)
    log(f"{key}: {server.name}: warm-up, then {args.seconds:.0f} s at {args.connections} "
        "connections")  # fmt: skip
    closed_loop(tools["wrk"], target.url, target.headers, connections=args.connections,
                seconds=args.warmup, cores=LOAD_CORES, workdir=workdir,
                post=target.post)  # fmt: skip
    own_before, all_before = cpu_seconds(server.own_pids()), cpu_seconds(server.pids())
    peak = closed_loop(tools["wrk"], target.url, target.headers, connections=args.connections,
                       seconds=args.seconds, cores=LOAD_CORES, workdir=workdir,
                       post=target.post)  # fmt: skip
    own_cpu = cpu_seconds(server.own_pids()) - own_before
    all_cpu = cpu_seconds(server.pids()) - all_before
    result.max = peak.as_json()
    result.cpu_us_per_request = own_cpu / max(1, peak.requests) * 1e6
    if server.others is not None:
        result.db_cpu_us_per_request = (all_cpu - own_cpu) / max(1, peak.requests) * 1e6
    for share in args.loads if target.post is None else ():  # see bench/e2e/deliveries.py
        rate = peak.rate * share
        run = open_loop(tools["h2load"], target.url, target.headers, rate=rate,
                        seconds=args.open_seconds, cores=LOAD_CORES, workdir=workdir)  # fmt: skip
        result.open_loop[f"{share:.0%}"] = run.as_json()
    result.peak_rss_mib = peak_rss_bytes(server.own_pids()) / 2**20
    log(f"{key}: {peak.rate:,.0f} req/s, {result.cpu_us_per_request:,.0f} µs CPU/request, "
        f"{peak.errors} errors")  # fmt: skip
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    tools = args.tools = ensure_tools()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    results: dict[str, PathResult] = {}
    workdir = Path(tempfile.mkdtemp(prefix="e2e-", dir=SCRATCH))
    with _kept_on_failure(workdir, keep=args.keep):
        example = example_request(args.example)
        served = serve_recording(workdir, example, tools["nginx"], LOAD_CORES)
        recording, secrets, agency, fetch = (
            served.recording,
            served.secrets,
            served.agency,
            served.fetch,
        )
        ports, upstream_urls, upstream = served.ports, served.urls, served.server
        native = Target(upstream_urls[fetch.agency] + fetch.path, dict(example["headers"]))
        try:

            def measure(key: str, server: Server, target: Target) -> PathResult:
                return _measure(key, server, target, args, tools, workdir)

            upstream.name = "(a) upstream alone (nginx, files)"
            results["a"] = measure("a", upstream, native)
            proxy_port = free_port()
            with _stopping(start_nginx(
                "(b) nginx reverse proxy", tools["nginx"],
                nginx_proxy_conf(proxy_port, ports[fetch.agency], workdir / "proxy"),
                workdir / "proxy", SERVER_CORES, f"http://127.0.0.1:{proxy_port}{fetch.path}",
            )) as proxy:  # fmt: skip
                results["b"] = measure("b", proxy, _at(native, proxy_port, fetch.path))
            for key, client in (("c", "aiohttp"), ("c-httpx", "httpx")):
                port = free_port()
                with _stopping(
                    start_passthrough(
                        client,
                        upstream_urls[fetch.agency],
                        port,
                        SERVER_CORES,
                        workdir / f"{key}.log",
                    )
                ) as bare:
                    bare.name = f"(c) bare FastAPI pass-through, {client}"
                    results[key] = measure(key, bare, _at(native, port, fetch.path))
            if agency == DELIVERY_SENDER:
                results["c-post"] = post_floor(upstream_urls[fetch.agency], fetch.path,
                                               measure, workdir)  # fmt: skip
            else:
                log(f"the delivery path is sent by {DELIVERY_SENDER}: skipped for {agency}")

            def bracket(key: str) -> PathResult:
                """(c) again, maximum throughput only, in the minutes of a gateway path."""
                port = free_port()
                with _stopping(
                    start_passthrough(
                        "aiohttp",
                        upstream_urls[fetch.agency],
                        port,
                        SERVER_CORES,
                        workdir / f"{key}.log",
                    )
                ) as bare:
                    path, _, when = key.removeprefix("c@").partition(":")
                    bare.name = f"(c) again, just {when} {path}"
                    plain = argparse.Namespace(**{**vars(args), "loads": ()})
                    found = _measure(key, bare, _at(native, port, fetch.path), plain, tools,
                                     workdir)  # fmt: skip
                results[key] = found
                return found

            for backend in args.backends:
                for workers in (1, 2):
                    key = f"d-{backend}-{workers}w"
                    profile = args if args.profile and backend == "sqlite" else None
                    deliveries: dict[str, PathResult] = {}
                    results[key] = _gateway_path(
                        key, backend, workers, example, agency, secrets, upstream_urls, measure,
                        workdir, profile, deliveries, bracket if workers == 1 else None,
                    )  # fmt: skip
                    results.update(deliveries)
            soak = None
            if args.soak_seconds > 0:
                gateway = results[f"d-{args.backends[0]}-1w"]
                soak = run_soak(
                    args, tools, example, agency, secrets, upstream_urls,
                    gateway.max["rate"] * 0.7, workdir, server_cores=SERVER_CORES,
                    load_cores=LOAD_CORES, latency_ms=gateway.open_loop["80%"]["p50_ms"],
                )  # fmt: skip
        finally:
            upstream.stop()
    return {
        "machine": machine_info(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "example": {"name": args.example, "path": example["path"],
                    "case_number": unquote(example["headers"].get("X-Case-Number", ""))},
        "recording": recording.as_json(),
        "paths": {key: r.as_json() for key, r in results.items()},
        "soak": soak,
    }  # fmt: skip


@contextmanager
def _kept_on_failure(workdir: Path, *, keep: bool = False) -> Iterator[None]:
    try:
        yield
    except BaseException:
        log(f"failed: the servers' logs are kept in {workdir}")
        raise
    if keep:
        log(f"the servers' logs and profiles are kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _at(target: Target, port: int, path: str) -> Target:
    return Target(f"http://127.0.0.1:{port}{path}", target.headers)


@contextmanager
def _stopping(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def _profile(server: Server, target: Target, args: argparse.Namespace,
             out: Path) -> dict[str, float] | None:  # fmt: skip
    """A separate run under py-spy (sampling slows the process: not the measured run)."""
    spy = flame.record(server.process.pid, args.seconds, out)
    if spy is None:
        log("py-spy is not installed: no profile (scripts/bootstrap.sh dev bench)")
        return None
    log(f"profiling {server.name} with py-spy for {args.seconds:.0f} s")
    closed_loop(args.tools["wrk"], target.url, target.headers, connections=args.connections,
                seconds=args.seconds, cores=LOAD_CORES, workdir=out.parent)  # fmt: skip
    spy.wait(timeout=args.seconds + 30)
    return flame.fold(out.read_text()) if out.is_file() else None


def _gateway_path(key: str, backend: str, workers: int, example: dict[str, Any], agency: str,
                  secrets: dict[str, str], upstream_urls: dict[str, str],
                  measure: Callable[[str, Server, Target], PathResult],
                  workdir: Path, profile: argparse.Namespace | None,
                  deliveries: dict[str, PathResult],
                  bracket: Callable[[str], PathResult] | None = None) -> PathResult:  # fmt: skip
    """The gateway's read path; with one worker also its delivery path (into ``deliveries``).

    ``bracket`` measures (c) again just before and just after the read path (the gateway
    started and idle): the machine's speed drifts by ±20 % within minutes here, and the
    targets compare the gateway with (c) of the same minutes (report.targets)."""
    with _database(backend) as url:
        deployment = prepare_gateway(workdir / key, url, agency, secrets)
        port = free_port()
        cores = SERVER_CORES if workers == 1 else TWO_CORES
        # The gateway that also takes the deliveries does not push them: the recording has no
        # answer to the outbox's POST to the court, so nginx would refuse every push and the
        # outbox would retry it (backoff, up to its attempts), work a real court's answer would
        # not cause. The push is left out of the delivery figures (docs/performance.md §6).
        delivers = workers == 1 and agency == DELIVERY_SENDER
        no_push = {"GATEWAY_DELIVERY_PUSH_ENABLED": "false"} if delivers else None
        server = start_gateway(deployment, port, upstream_urls, workers=workers, cores=cores,
                               log=workdir / f"{key}.log", extra_env=no_push)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            time.sleep(1.0 * workers)  # the other worker finishes its start-up
            target = Target(base + example["path"], _headers(deployment, base, example))
            if bracket is not None:
                bracket(f"c@{key}:before")
            result = measure(key, server, target)
            if bracket is not None:
                bracket(f"c@{key}:after")
            if profile is not None and workers == 1:
                result.flame = _profile(server, target, profile, workdir / f"{key}.spy")
            if delivers:
                extra, body = delivery_request()
                token = target.headers["Authorization"]
                posting = Target(base + "/v1/deliveries", {**extra, "Authorization": token}, body)
                server.name = server.name + ", delivery"
                deliveries[key + "-delivery"] = measure(key + "-delivery", server, posting)
        finally:
            server.stop()
        log(f"{key}: verifying the audit log")
        result.audit = check_audit(url, deployment.data_dir, None).as_json()
        if key + "-delivery" in deliveries:  # the same log: the reads' and deliveries' entries
            deliveries[key + "-delivery"].audit = result.audit
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, a 30 s soak")
    parser.add_argument(
        "--example", default=EXAMPLE, help=f"the demo example to send (default {EXAMPLE})"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="maximum-throughput run")
    parser.add_argument("--open-seconds", type=float, default=10.0, help="each open-loop run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (servers' logs, py-spy's raw samples)",
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the py-spy run of the one-worker gateway")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.open_seconds, args.warmup = 4.0, 4.0, 1.0
        args.soak_seconds = min(args.soak_seconds, 30.0)
    args.loads = (0.5, 0.8)
    args.backends = ["sqlite"]
    if not args.no_postgres:
        if (problem := postgres_available()) is None:
            args.backends.append("postgresql")
        else:
            log(f"PostgreSQL unavailable ({problem}); SQLite only")
    payload = run(args)
    text = report.render(payload)
    print(text)
    out = write_results("e2e", payload)
    print(f"\nwrote {out}")
    if not args.no_docs and not args.quick:
        report.write_docs(ROOT / "docs" / "performance.md", text)
        print("updated docs/performance.md")
    return 0 if report.all_clean(payload) else 1


def dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, default=str)
