"""Crash consistency: ``kill -9`` the gateway under load, restart it, check the audit log.

    python -m tests.reliability.crash_loop --rounds 20 [--backend sqlite|postgresql|both]

Starts the five sample agency systems (``python -m sandbox serve-all``, known
secrets via ``SANDBOX_SECRET_<KIND>``) and the gateway (``gateway serve``, production
mode, keys made with ``gateway keys rotate`` / ``gateway audit init-key``, clients with
``gateway clients add``), all on loopback. Each round drives concurrent exchange
requests (a mix that answers 200, 403 and 404), kills the gateway with SIGKILL at a
random moment, restarts it and checks:

* every ``X-Audit-Index`` a client received was received once (no index handed out twice);
* every received index is stored, with the status the client saw and its request id;
* for every 2xx: the stored entry's ``body_sha256`` is the SHA-256 of the body received,
  and its RFC 9162 inclusion proof (``GET /v1/audit/proofs/inclusion``) verifies against
  a checkpoint fetched from ``GET /v1/audit/checkpoint`` and signed by the key printed at
  set-up (pinned, compared with ``GET /v1/audit/key``);
* the stored indices are contiguous from 0 and the tree head's size is their count;
* ``gateway audit verify`` (a separate process) passes, given every checkpoint note
  fetched so far as kept outside the database (catches truncation);
* deliveries sent meanwhile, pushed to a slow court system, survive the kills: each is
  delivered, and received by the court exactly once (tests/reliability/crash_loop_deliveries.py).

Prints a summary and exits 1 if any check failed. Not part of CI (see
tests/reliability/test_crash_loop.py for a quick one-round run of the same machinery).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx2
from sqlalchemy import create_engine, text

from bench.e2e.system import free_port, free_port_run
from gateway.audit.checkpoint import Verifier, open_checkpoint, parse_verifier
from gateway.audit.merkle import ProofError, leaf_hash, verify_inclusion
from tests.reliability import crash_loop_deliveries
from tests.reliability.crash_loop_deliveries import DeliveryLoad, check_deliveries, slow_court

AGENCY_KINDS = ("public_security", "procuratorate", "court", "prison", "justice")
SANDBOX_SEED, SANDBOX_CASES = 2021, 300
POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
COURT_CASE = "(2024)宁0104刑初465号"  # case C00000020 of seed 2021: at trial, FY640104 handles it
CLIENTS = {  # name: (agency, scopes)
    "court": ("FY640104", "exchange"),
    "procuratorate": ("JC640104", "exchange"),  # sends the deliveries
    "police-xixia": ("GA640105", "exchange"),
    "regulator": ("ZF640000", "audit:read"),
}
# (client, path, purpose, case number, expected status)
REQUESTS: list[tuple[str, str, str, str | None, int]] = [
    ("court", "/v1/resources/case/C00000020", "TRIAL", COURT_CASE, 200),
    ("court", "/v1/resources/person/P0000002001", "TRIAL", COURT_CASE, 200),
    ("court", "/v1/resources/indictment/IN0000002001", "TRIAL", COURT_CASE, 200),
    ("court", "/v1/resources/case/C00000021", "TRIAL", COURT_CASE, 404),  # outside the case
    ("police-xixia", "/v1/resources/case/C00000020", "TRIAL", COURT_CASE, 403),
]


def log(message: str) -> None:
    print(f"[crash-loop {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# --- plumbing ------------------------------------------------------------------------------


def wait_http(url: str, timeout: float, *, want: int | None = 200) -> None:
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        try:
            status = httpx2.get(url, timeout=2).status_code
            if want is None or status == want:
                return
            last = f"HTTP {status}"
        except httpx2.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise TimeoutError(f"{url}: {last} after {timeout:g} s")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def gateway_cli(env: dict[str, str], *argv: str) -> str:
    """Run a ``gateway`` command in this process (same code as the console script)."""
    from gateway.cli import main

    out = io.StringIO()
    with environment(env), contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"gateway {' '.join(argv)} exited {code}")
    return out.getvalue()


@contextlib.contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    schema = f"gw_crash_{secrets.token_hex(6)}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- one deployment: sample systems + gateway ---------------------------------------------


@dataclass
class Received:
    round: int
    request_id: str
    status: int
    index: int | None
    body_sha256: str | None


@dataclass
class RoundResult:
    round: int
    backend: str
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    cut: int = 0  # requests that got no answer (the kill)
    killed_after_s: float = 0.0
    restart_s: float = 0.0
    proofs_checked: int = 0
    entries_checked: int = 0
    log_size: int = 0
    checkpoint_size: int = 0
    deliveries_checked: int = 0  # final only: delivered and received once by the court
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class Deployment:
    def __init__(
        self,
        backend: str,
        workdir: Path,
        database_url: str,
        upstream_urls: dict[str, str],
        upstream_secrets: dict[str, str],
    ) -> None:
        self.backend = backend
        self.workdir = workdir
        self.database_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.env = {
            "GATEWAY_MODE": "production",
            "GATEWAY_DATA_DIR": str(workdir),
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_ISSUER": "https://gateway.crash-loop.test",
            "GATEWAY_KEYS_PATH": str(workdir / "keys" / "signing-keys.json"),
            "GATEWAY_CHECKPOINT_KEY_PATH": str(workdir / "keys" / "checkpoint.key"),
            "GATEWAY_CHECKPOINT_INTERVAL_SECONDS": "0.5",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
            "GATEWAY_RATE_LIMIT_BURST": "100000",
            "GATEWAY_UPSTREAM_URLS": json.dumps(upstream_urls),
            "GATEWAY_UPSTREAM_SECRETS": json.dumps(upstream_secrets),
            **crash_loop_deliveries.ENV,
        }
        self.credentials: dict[str, tuple[str, str]] = {}
        self.verify_in_process = False
        self.verifier_text = ""
        self.verifier: Verifier | None = None

    def set_up(self) -> None:
        gateway_cli(self.env, "db", "upgrade")
        gateway_cli(self.env, "keys", "rotate")
        self.verifier_text = gateway_cli(self.env, "audit", "init-key").strip().splitlines()[-1]
        self.verifier = parse_verifier(self.verifier_text)
        for name, (agency, scopes) in CLIENTS.items():
            issued = json.loads(
                gateway_cli(
                    self.env,
                    "clients",
                    "add",
                    "--name",
                    name,
                    "--agency",
                    agency,
                    "--scopes",
                    scopes,
                )
            )
            self.credentials[name] = (issued["client_id"], issued["client_secret"])

    def start(self) -> float:
        """Start ``gateway serve``; seconds until /readyz answers 200."""
        self.starts += 1
        started = time.monotonic()
        logfile = (self.workdir / f"gateway-{self.starts:03d}.log").open("wb")
        executable = shutil.which("gateway", path=str(Path(sys.executable).parent)) or "gateway"
        self.process = subprocess.Popen(
            [executable, "serve"],
            env={**os.environ, **self.env},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logfile.close()
        try:
            wait_http(f"{self.base_url}/readyz", 60)
        except TimeoutError:
            self.kill()
            raise
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    async def tokens(self, client: httpx2.AsyncClient) -> dict[str, str]:
        out = {}
        for name, (client_id, secret) in self.credentials.items():
            response = await client.post(
                f"{self.base_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
            response.raise_for_status()
            out[name] = response.json()["access_token"]
        return out


@contextlib.contextmanager
def sandbox_systems(base_port: int, secrets_: dict[str, str], workdir: Path) -> Iterator[None]:
    env = {**os.environ, **{f"SANDBOX_SECRET_{k.upper()}": v for k, v in secrets_.items()}}
    logfile = (workdir / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve-all",
            "--base-port",
            str(base_port),
            "--seed",
            str(SANDBOX_SEED),
            "--cases",
            str(SANDBOX_CASES),
            "--log-level",
            "warning",
            "--faults",  # the court's slow pushes (crash_loop_deliveries.slow_court)
        ],
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logfile.close()
    try:
        for offset in range(len(AGENCY_KINDS)):
            wait_http(f"http://127.0.0.1:{base_port + offset}/health", 60, want=None)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


# --- load and kill ---------------------------------------------------------------------------


async def load_and_kill(
    deployment: Deployment,
    result: RoundResult,
    received: list[Received],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    rng: random.Random,
    deliveries: DeliveryLoad | None = None,
) -> None:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
        tokens = await deployment.tokens(client)
        kill_at = rng.uniform(0.05, max_seconds)
        killed = asyncio.Event()
        enough = asyncio.Event()  # max_requests sent before the kill time
        started = time.monotonic()

        async def worker() -> None:
            while not killed.is_set() and result.sent < max_requests:
                name, path, purpose, case_number, _ = rng.choice(REQUESTS)
                request_id = secrets.token_hex(12)
                headers = {
                    "Authorization": f"Bearer {tokens[name]}",
                    "X-Purpose": purpose,
                    "X-Operator-Id": "crash-loop",
                    "X-Request-Id": request_id,
                }
                if case_number is not None:
                    headers["X-Case-Number"] = quote(case_number, safe="()")
                result.sent += 1
                if result.sent >= max_requests:
                    enough.set()
                try:
                    response = await client.get(deployment.base_url + path, headers=headers)
                except httpx2.HTTPError:
                    result.cut += 1
                    return
                index = response.headers.get("X-Audit-Index")
                body = response.content
                result.statuses[response.status_code] += 1
                received.append(
                    Received(
                        result.round,
                        request_id,
                        response.status_code,
                        int(index) if index is not None else None,
                        hashlib.sha256(body).hexdigest() if response.is_success else None,
                    )
                )

        async def killer() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), kill_at)
            result.killed_after_s = time.monotonic() - started
            deployment.kill()
            killed.set()

        senders = []
        if deliveries is not None:
            token = tokens["procuratorate"]
            senders.append(deliveries.send(client, deployment.base_url, token, killed))
        await asyncio.gather(killer(), *senders, *(worker() for _ in range(concurrency)))


# --- checks after a restart --------------------------------------------------------------


async def check_answers(
    deployment: Deployment,
    result: RoundResult,
    received: list[Received],
    notes_dir: Path,
    *,
    check_from_round: int,
) -> None:
    fail = result.failures.append
    assert deployment.verifier is not None
    seen: Counter[int] = Counter(r.index for r in received if r.index is not None)
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    if duplicates:
        fail(f"indices received more than once: {duplicates[:10]}")
    missing_index = [r for r in received if r.index is None and r.status != 503]
    if missing_index:
        fail(f"{len(missing_index)} answers without X-Audit-Index (e.g. {missing_index[0]})")
    highest = max(seen, default=-1)

    async with httpx2.AsyncClient(base_url=deployment.base_url, timeout=30) as client:
        tokens = await deployment.tokens(client)
        regulator = {"Authorization": f"Bearer {tokens['regulator']}"}
        served_key = (await client.get("/v1/audit/key")).text.strip()
        if served_key != deployment.verifier_text:
            fail(f"verifier key changed: {served_key!r}")

        # A checkpoint that covers everything received (the checkpointer runs every 0.5 s).
        deadline = time.monotonic() + 30
        while True:
            response = await client.get("/v1/audit/checkpoint", headers=regulator)
            if response.status_code == 200:
                checkpoint = open_checkpoint(response.text, [deployment.verifier])
                if checkpoint.size > highest:
                    break
            if time.monotonic() > deadline:
                fail(f"no checkpoint covering index {highest} within 30 s")
                return
            await asyncio.sleep(0.2)
        result.checkpoint_size = checkpoint.size
        (notes_dir / f"checkpoint-{checkpoint.size:08d}.txt").write_text(response.text)

        to_check = [r for r in received if r.index is not None and r.round >= check_from_round]
        semaphore = asyncio.Semaphore(16)

        async def check(item: Received) -> None:
            assert item.index is not None
            async with semaphore:
                got = await client.get(f"/v1/audit/entries/{item.index}", headers=regulator)
                if got.status_code != 200:
                    fail(f"entry {item.index} (HTTP {item.status} received): {got.status_code}")
                    return
                entry = got.json()
                result.entries_checked += 1
                if entry["request_id"] != item.request_id or entry["status"] != item.status:
                    fail(
                        f"entry {item.index} is request {entry['request_id']} status "
                        f"{entry['status']}, the client got {item.request_id} {item.status}"
                    )
                if not 200 <= item.status < 300:
                    return
                if entry["body_sha256"] != item.body_sha256:
                    fail(f"entry {item.index}: body_sha256 differs from the body received")
                proof = await client.get(
                    "/v1/audit/proofs/inclusion",
                    params={"index": item.index, "tree_size": checkpoint.size},
                    headers=regulator,
                )
                if proof.status_code != 200:
                    fail(f"inclusion proof of {item.index}: HTTP {proof.status_code}")
                    return
                hashes = [base64.b64decode(h) for h in proof.json()["hashes"]]
                leaf = base64.b64decode(entry["leaf"])
                try:
                    verify_inclusion(
                        leaf_hash(leaf), item.index, checkpoint.size, hashes, checkpoint.root
                    )
                except ProofError as exc:
                    fail(f"inclusion proof of {item.index} does not verify: {exc}")
                    return
                result.proofs_checked += 1

        await asyncio.gather(*(check(item) for item in to_check))


def check_storage(
    deployment: Deployment, result: RoundResult, received: list[Received], notes_dir: Path
) -> None:
    fail = result.failures.append
    highest = max((r.index for r in received if r.index is not None), default=-1)
    # Contiguous indices and a consistent tree head, straight from the database.
    engine = create_engine(
        deployment.database_url.replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        with engine.connect() as conn:
            indices = [
                r.idx for r in conn.execute(text("SELECT idx FROM audit_entries ORDER BY idx"))
            ]
            size = conn.execute(text("SELECT size FROM audit_tree_head WHERE id = 1")).scalar()
    finally:
        engine.dispose()
    result.log_size = len(indices)
    if indices != list(range(len(indices))):
        gaps = sorted(set(range(indices[-1] + 1)) - set(indices))[:10] if indices else []
        fail(f"indices are not contiguous (first gaps {gaps})")
    if size != len(indices):
        fail(f"tree head size {size} but {len(indices)} entries")
    if highest >= len(indices):
        fail(f"index {highest} was received but the log has {len(indices)} entries")

    # The offline verifier, in its own process, with every checkpoint kept so far.
    notes = sorted(notes_dir.glob("checkpoint-*.txt"))
    argv = ["audit", "verify", "--quiet", "--key", deployment.verifier_text]
    for note in notes:
        argv += ["--checkpoint", str(note)]
    if deployment.verify_in_process:
        try:
            gateway_cli(deployment.env, *argv)
        except RuntimeError as exc:
            fail(f"{exc} (see the output above)")
        return
    executable = shutil.which("gateway", path=str(Path(sys.executable).parent)) or "gateway"
    done = subprocess.run(
        [executable, *argv],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        fail(f"gateway audit verify exited {done.returncode}: {done.stderr.strip()[-500:]}")


def check_log(
    deployment: Deployment,
    result: RoundResult,
    received: list[Received],
    notes_dir: Path,
    *,
    check_from_round: int,
) -> None:
    asyncio.run(
        check_answers(deployment, result, received, notes_dir, check_from_round=check_from_round)
    )
    check_storage(deployment, result, received, notes_dir)


# --- the loop ------------------------------------------------------------------------------


@dataclass
class Options:
    rounds: int = 20
    backend: str = "sqlite"
    concurrency: int = 8
    max_requests: int = 2000
    max_seconds: float = 2.0
    seed: int | None = None
    workdir: Path | None = None
    keep: bool = False
    postgres_url: str = POSTGRES_URL
    # For the quick CI round: agency systems already running (URLs and their one secret)
    # instead of starting serve-all, and the verifier run in this process (same CLI code).
    upstream_urls: dict[str, str] | None = None
    upstream_secret: str | None = None
    verify_in_process: bool = False


@dataclass
class Summary:
    backend: str
    rounds: list[RoundResult]
    final: RoundResult

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rounds) and self.final.ok

    @property
    def requests(self) -> int:
        return sum(r.sent for r in self.rounds)

    def statuses(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for r in self.rounds:
            total.update(r.statuses)
        return total


def run_backend(backend: str, options: Options, workdir: Path, rng: random.Random) -> Summary:
    workdir.mkdir(parents=True, exist_ok=True)
    notes_dir = workdir / "checkpoints"
    notes_dir.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_schema(options.postgres_url))
        else:
            database_url = f"sqlite:///{workdir / 'gateway.db'}"
        if options.upstream_urls is not None and options.upstream_secret is not None:
            urls = options.upstream_urls
            upstream_secrets = {kind: options.upstream_secret for kind in AGENCY_KINDS}
        else:
            base = free_port_run(len(AGENCY_KINDS))
            urls = {k: f"http://127.0.0.1:{base + i}" for i, k in enumerate(AGENCY_KINDS)}
            upstream_secrets = {k: f"crash-loop-{k}-{secrets.token_hex(8)}" for k in AGENCY_KINDS}
            log(f"{backend}: sample systems on ports {base}-{base + len(AGENCY_KINDS) - 1}")
            stack.enter_context(sandbox_systems(base, upstream_secrets, workdir))
        deployment = Deployment(backend, workdir, database_url, urls, upstream_secrets)
        stack.callback(deployment.stop)
        deployment.verify_in_process = options.verify_in_process
        deployment.set_up()
        log(f"{backend}: set up in {workdir}; verifier key {deployment.verifier_text}")
        received: list[Received] = []
        rounds: list[RoundResult] = []
        deliveries = DeliveryLoad.for_case(SANDBOX_SEED, SANDBOX_CASES, COURT_CASE)
        stack.enter_context(slow_court(urls["court"]))
        restart_s = deployment.start()
        for number in range(1, options.rounds + 1):
            result = RoundResult(number, backend, restart_s=restart_s)
            asyncio.run(
                load_and_kill(
                    deployment,
                    result,
                    received,
                    concurrency=options.concurrency,
                    max_requests=options.max_requests,
                    max_seconds=options.max_seconds,
                    rng=rng,
                    deliveries=deliveries,
                )
            )
            restart_s = deployment.start()
            check_log(deployment, result, received, notes_dir, check_from_round=number)
            rounds.append(result)
            log(
                f"{backend} round {number:2d}: {result.sent:4d} sent, "
                f"{dict(sorted(result.statuses.items()))} answered, {result.cut} cut by "
                f"kill -9 at {result.killed_after_s:.2f} s; restart {restart_s:.1f} s; "
                f"log {result.log_size} entries, checkpoint {result.checkpoint_size}; "
                f"{result.proofs_checked} proofs, {result.entries_checked} entries checked: "
                + ("OK" if result.ok else "FAILED: " + "; ".join(result.failures[:5]))
            )
        # Last: everything received over all rounds, once more, then a clean stop.
        final = RoundResult(0, backend)
        check_log(deployment, final, received, notes_dir, check_from_round=0)
        failures, delivered = asyncio.run(
            settle_deliveries(deployment, deliveries, urls["court"], upstream_secrets["court"])
        )
        final.failures.extend(failures)
        final.deliveries_checked = delivered
        log(
            f"{backend} deliveries: {len(deliveries.ids)} sent, {delivered} delivered and "
            f"received once by the court ({deliveries.repeated} pushes repeated after a kill): "
            + ("OK" if not failures else "FAILED")
        )
        log(
            f"{backend} final: {final.entries_checked} entries and {final.proofs_checked} "
            f"proofs of all rounds re-checked: "
            + ("OK" if final.ok else "FAILED: " + "; ".join(final.failures[:5]))
        )
        deployment.stop()
    return Summary(backend, rounds, final)


async def settle_deliveries(
    deployment: Deployment, deliveries: DeliveryLoad, court_url: str, court_secret: str
) -> tuple[list[str], int]:
    async with httpx2.AsyncClient(timeout=30) as client:
        token = (await deployment.tokens(client))["procuratorate"]
    return await check_deliveries(deliveries, deployment.base_url, token, court_url, court_secret)


def run(options: Options) -> list[Summary]:
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    backends = ["sqlite", "postgresql"] if options.backend == "both" else [options.backend]
    base = options.workdir or Path(tempfile.mkdtemp(prefix="crash-loop-"))
    log(f"seed {seed}; rounds {options.rounds}; backends {', '.join(backends)}; in {base}")
    summaries = []
    try:
        for backend in backends:
            summaries.append(run_backend(backend, options, base / backend, rng))
    finally:
        if not options.keep and options.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return summaries


def print_summary(summaries: list[Summary]) -> None:
    print()
    print("backend     rounds  requests  2xx     other   cut  proofs  log size  result")
    for s in summaries:
        statuses = s.statuses()
        ok2xx = sum(n for code, n in statuses.items() if 200 <= code < 300)
        other = sum(statuses.values()) - ok2xx
        cut = sum(r.cut for r in s.rounds)
        proofs = sum(r.proofs_checked for r in s.rounds)
        size = s.final.log_size
        verdict = "OK" if s.ok else "FAILED"
        print(
            f"{s.backend:<11} {len(s.rounds):>6}  {s.requests:>8}  {ok2xx:>6}  {other:>6}  "
            f"{cut:>4}  {proofs:>6}  {size:>8}  {verdict}"
        )
        for r in [*s.rounds, s.final]:
            for failure in r.failures:
                print(f"  round {r.round}: {failure}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.crash_loop", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=2000, help="per round")
    parser.add_argument("--max-seconds", type=float, default=2.0, help="latest kill, per round")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args(argv)
    options = Options(
        rounds=args.rounds,
        backend=args.backend,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        max_seconds=args.max_seconds,
        seed=args.seed,
        workdir=args.workdir,
        keep=args.keep,
        postgres_url=args.postgres_url,
    )
    summaries = run(options)
    print_summary(summaries)
    return 0 if all(s.ok for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
