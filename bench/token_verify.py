"""Access-token verification per protected request: the verified-token cache's miss and hit paths.

Run: ``python -m bench.token_verify [--quick] [--rounds 40] [--batch-ms 20] [--no-fastapi]``.
Prints a markdown table and writes ``bench/results/token_verify.json``.

Set-up, all real and made at run time: an Ed25519 signing key in a temporary
``gateway.auth.keys.KeyStore``; a migrated SQLite database (``bench._common.sqlite_database``)
with ``--clients`` (8) clients registered through ``ClientService.register`` and read into a
``ClientRegistry`` snapshot (what the app's verifier looks clients up in); access tokens issued
by ``TokenIssuer`` (one per client for the repeated-token paths, plus a pool of distinct fresh
ones). The verifiers are ``TokenVerifier`` built as ``gateway.app.build_runtime`` builds them
(settings' issuer, audience and ``token_cache_size``; ``client_lookup=registry.get``).

Paths measured (µs per verification):

* **cache miss, fresh token** — the production verifier (default cache) on tokens it has never
  seen: the cache lookup misses, the token is parsed, its signature and claims are checked,
  the client is looked up, the principal is cached, and the client's status is checked.
* **cache miss, cache disabled** — a verifier with ``cache_size=0`` on repeated tokens: the same
  path without the insertion into the cache.
* **cache hit** — the production verifier on a token it has cached: dict lookup, expiry check
  and the client-status check (``registry.get``; a disabled client is refused even on a hit).
* **joserfc ``jwt.decode``** (floor) — ``joserfc.jwt.decode(token, public_key,
  algorithms=["Ed25519"])`` with the imported public JWK: signature check and JSON decoding,
  no claims validation.
* **Ed25519 signature alone** (context) — ``cryptography``'s ``Ed25519PublicKey.verify`` on the
  token's signing input and pre-decoded signature.
* **FastAPI** (context; ``--no-fastapi`` skips it) — ``gateway.auth.deps.authenticate``
  awaited directly (its own work: cache-hit verify, rate limiter, request state); and one GET
  through a FastAPI app called as ASGI (no HTTP server), on uvloop if installed: a route
  depending on ``AnyClient`` (bearer parsing, ``get_runtime``, ``authenticate``), a route
  depending on ``RuntimeDep`` only and one with no dependency; the first two again with an
  ``async def`` copy of ``get_runtime`` (``get_runtime`` is a plain ``def``, which FastAPI runs
  in its worker-thread pool; the ``AnyClient`` copy is a thin wrapper that awaits the
  gateway's ``authenticate``). ``app.dependency_overrides`` is not used for this: with
  overrides FastAPI re-inspects the dependency on every request. The differences between
  rows are the costs of the dependencies.

Every path runs in batches of about ``--batch-ms`` (each path's batch size is calibrated
first, at least 32 calls); the paths are interleaved over ``--rounds`` rounds, in an order
rotated every round, so that load from other processes hits them alike. Reported: the median
over the rounds of the process's CPU time per verification (``time.process_time()``: on a
shared machine wall time also counts the waits for a core), wall time beside it; ratios and
differences are medians of the per-round ratios and differences of CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc import jwt
from joserfc.jwk import OKPKey
from starlette.requests import HTTPConnection

from bench._common import markdown_table, median, sqlite_database, write_results
from gateway.auth.clients import ClientInfo, ClientRegistry, ClientService
from gateway.auth.deps import AnyClient, RuntimeDep, authenticate
from gateway.auth.keys import KeyStore
from gateway.auth.ratelimit import MemoryRateLimiter
from gateway.auth.tokens import Principal, TokenIssuer, TokenVerifier
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.settings import Mode, Settings

ISSUE_FIGURE_US = 180.0  # issue 6: "an EdDSA JWT verify alone costs about 180 µs here"
AGENCIES = ("GA640104", "JC640104", "FY640104", "JY640104", "SF640104")
MIN_BATCH = 32  # thread-pool hand-offs cost more after a pause: keep batches long enough
TOKEN_TTL_SECONDS = 3600  # long enough for any run; the TTL does not change the verify cost

MISS_FRESH = "gateway `TokenVerifier.verify`, cache miss (fresh token)"
MISS_NO_CACHE = "gateway `TokenVerifier.verify`, cache miss (`cache_size=0`)"
HIT = "gateway `TokenVerifier.verify`, cache hit"
JOSERFC = "joserfc `jwt.decode` (public key), floor"
SIGNATURE = "Ed25519 signature alone (`cryptography` `verify`)"
# Measured with Ed25519 keys (GATEWAY_TOKEN_SIGNING_ALG=Ed25519); the default is RS256.
SIGNING_ALG = "Ed25519"
AUTHENTICATE = "gateway `authenticate` awaited directly (cache hit + rate limiter)"
ROUTE_AUTH = "FastAPI GET, route depends on `AnyClient` (cache hit)"
ROUTE_AUTH_ASYNC = "FastAPI GET, `authenticate` with an `async def` copy of `get_runtime`"
ROUTE_RUNTIME = "FastAPI GET, route depends on `RuntimeDep` only"
ROUTE_ASYNC_RUNTIME = "FastAPI GET, route depends on an `async def` copy of `get_runtime`"
ROUTE_OPEN = "FastAPI GET, route with no dependency"


@dataclass
class Measured:
    """One measured path: ``items(n)`` gives the inputs of a batch, ``run`` consumes them."""

    items: Callable[[int], list[Any]]
    run: Callable[[list[Any]], object]
    batch: int = 1
    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def time_batch(self, n: int) -> tuple[float, float]:
        inputs = self.items(n)
        wall, cpu = time.perf_counter(), time.process_time()
        self.run(inputs)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        return wall * 1e6 / n, cpu * 1e6 / n

    def calibrate(self, target_s: float) -> None:
        """Warm up, then size the batch (``MIN_BATCH`` calls or more) to last ``target_s``."""
        self.time_batch(4)  # first calls pay imports, thread start-up, key loading
        n = 16
        while True:
            per_call_us, _ = self.time_batch(n)
            if per_call_us * n >= target_s * 1e6 / 4 or n >= 1 << 20:
                break
            n *= 4
        self.batch = max(MIN_BATCH, math.ceil(target_s * 1e6 / per_call_us))


@dataclass
class Fixture:
    settings: Settings
    keys: KeyStore
    registry: ClientRegistry
    issuer: TokenIssuer
    clients: list[ClientInfo]


@contextmanager
def fixture(client_count: int) -> Iterator[Fixture]:
    """Keys, a migrated database with registered clients, a registry snapshot and an issuer."""
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp, sqlite_database() as url:
        settings = Settings(
            mode=Mode.TEST, data_dir=Path(tmp), database_url=url,
            token_ttl_seconds=TOKEN_TTL_SECONDS,
        )  # fmt: skip
        keys = KeyStore(
            settings.resolved_keys_path, token_ttl_seconds=TOKEN_TTL_SECONDS, algorithm=SIGNING_ALG
        )
        keys.ensure()
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            service = ClientService(session)
            for i in range(client_count):
                service.register(
                    name=f"bench-client-{i}", agency=AGENCIES[i % len(AGENCIES)],
                    scopes=["exchange"],
                    # the FastAPI path calls the rate limiter on every request: never refuse
                    rate_limit_per_second=1e9, rate_limit_burst=10**9,
                )  # fmt: skip
        registry = ClientRegistry(factory, max_age_seconds=settings.client_cache_seconds)
        registry.refresh()
        clients = sorted(registry.all(), key=lambda c: c.name)
        issuer = TokenIssuer(
            keys, issuer=settings.issuer, audience=settings.audience,
            ttl_seconds=TOKEN_TTL_SECONDS,
        )  # fmt: skip
        try:
            yield Fixture(settings, keys, registry, issuer, clients)
        finally:
            engine.dispose()


def make_verifier(fx: Fixture, cache_size: int) -> TokenVerifier:
    """A verifier as ``gateway.app.build_runtime`` builds one (no external issuer)."""
    return TokenVerifier(
        fx.keys, issuer=fx.settings.issuer, audience=fx.settings.audience,
        client_lookup=fx.registry.get, cache_size=cache_size,
    )  # fmt: skip


def issue(fx: Fixture, count: int) -> list[str]:
    """``count`` distinct access tokens, cycling over the registered clients."""
    return [
        str(fx.issuer.issue(fx.clients[i % len(fx.clients)], ["exchange"])["access_token"])
        for i in range(count)
    ]


def cycling(values: list[Any]) -> Callable[[int], list[Any]]:
    return lambda n: [values[i % len(values)] for i in range(n)]


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# -- FastAPI -------------------------------------------------------------------------------


async def get_runtime_async(connection: HTTPConnection) -> Any:
    """``gateway.runtime.get_runtime``, but ``async def``: FastAPI awaits it on the event loop."""
    return connection.app.state.runtime


# Module level: with postponed annotations FastAPI resolves route annotations in module globals.
AsyncRuntimeDep = Annotated[Any, Depends(get_runtime_async)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


async def authenticate_async_runtime(
    request: Request, runtime: AsyncRuntimeDep, credentials: BearerDep
) -> Principal:
    """The gateway's ``authenticate`` itself, with its runtime from ``get_runtime_async``."""
    return await authenticate(request, runtime, credentials)


AsyncAnyClient = Annotated[Principal, Depends(authenticate_async_runtime)]


def fastapi_paths(fx: Fixture, verifier: TokenVerifier, tokens: list[str]) -> dict[str, Measured]:
    """Routes of a FastAPI app called as ASGI on one event loop (uvloop if present), and
    ``authenticate`` awaited alone on that loop."""
    app = FastAPI()
    # What ``authenticate`` reads from the runtime: the real registry, verifier and limiter.
    runtime = SimpleNamespace(
        settings=fx.settings, clients=fx.registry, token_verifier=verifier,
        rate_limiter=MemoryRateLimiter(),
    )  # fmt: skip
    app.state.runtime = runtime

    @app.get("/open")
    async def open_route() -> dict[str, str]:
        return {"client": "-"}

    @app.get("/runtime")
    async def runtime_route(runtime: RuntimeDep) -> dict[str, str]:
        return {"client": "-"}

    @app.get("/async-runtime")
    async def async_runtime_route(runtime: AsyncRuntimeDep) -> dict[str, str]:
        return {"client": "-"}

    @app.get("/auth")
    async def auth_route(caller: AnyClient) -> dict[str, str]:
        return {"client": caller.client_id}

    @app.get("/auth-async-runtime")
    async def auth_async_runtime_route(caller: AsyncAnyClient) -> dict[str, str]:
        return {"client": caller.client_id}

    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope(path: str, token: str) -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"),
                        (b"authorization", f"Bearer {token}".encode())],
        }  # fmt: skip

    def runner(path: str) -> Measured:
        async def many(inputs: list[str]) -> None:
            for token in inputs:
                await app(scope(path, token), receive, send)

        def run(inputs: list[Any]) -> object:
            statuses.clear()
            loop.run_until_complete(many(inputs))
            if any(status != 200 for status in statuses):
                raise RuntimeError(f"{path}: unexpected statuses {sorted(set(statuses))}")
            return None

        return Measured(cycling(tokens), run)

    async def authenticate_many(inputs: list[str]) -> None:
        for token in inputs:
            request = Request(scope("/auth", token))
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
            await authenticate(request, runtime, credentials)  # type: ignore[arg-type]

    def run_authenticate(inputs: list[Any]) -> object:
        loop.run_until_complete(authenticate_many(inputs))
        return None

    return {
        AUTHENTICATE: Measured(cycling(tokens), run_authenticate),
        ROUTE_AUTH: runner("/auth"),
        ROUTE_AUTH_ASYNC: runner("/auth-async-runtime"),
        ROUTE_RUNTIME: runner("/runtime"),
        ROUTE_ASYNC_RUNTIME: runner("/async-runtime"),
        ROUTE_OPEN: runner("/open"),
    }


# -- main ----------------------------------------------------------------------------------


def run_all(fn: Callable[[Any], object]) -> Callable[[list[Any]], object]:
    def run(inputs: list[Any]) -> object:
        for item in inputs:
            fn(item)
        return None

    return run


def check_paths(fx: Fixture, production: TokenVerifier, tokens: list[str]) -> None:
    """The paths do what they claim before anything is timed."""
    no_cache = make_verifier(fx, 0)
    for token, client in zip(tokens, fx.clients, strict=True):
        principal: Principal = no_cache.verify(token)
        assert principal.client_id == client.client_id
        assert principal.scopes == frozenset({"exchange"})
        assert production.verify(token) == principal
    assert not no_cache._cache, "cache_size=0 must not cache"
    assert all(token in production._cache for token in tokens), "tokens must be cached"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 rounds of 10 ms batches")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch-ms", type=float, default=20.0, help="wall time per batch")
    parser.add_argument("--clients", type=int, default=8, help="registered clients")
    parser.add_argument("--no-fastapi", action="store_true", help="skip the FastAPI rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch_ms = 8, 10.0
    target_s = args.batch_ms / 1000
    with fixture(args.clients) as fx:
        production = make_verifier(fx, fx.settings.token_cache_size)
        no_cache = make_verifier(fx, 0)
        repeat_tokens = issue(fx, len(fx.clients))  # one per client, cached by ``production``
        check_paths(fx, production, repeat_tokens)
        public_key = OKPKey.import_key(fx.keys.public_jwks()["keys"][0])
        assert not public_key.is_private
        ed25519 = public_key.public_key
        assert isinstance(ed25519, Ed25519PublicKey)
        signed = []
        for token in repeat_tokens:
            header, payload, signature = token.split(".")
            signed.append((b64decode(signature), f"{header}.{payload}".encode()))

        paths: dict[str, Measured] = {
            HIT: Measured(cycling(repeat_tokens), run_all(production.verify)),
            MISS_NO_CACHE: Measured(cycling(repeat_tokens), run_all(no_cache.verify)),
            JOSERFC: Measured(
                cycling(repeat_tokens),
                run_all(lambda t: jwt.decode(t, public_key, algorithms=[SIGNING_ALG])),
            ),
            SIGNATURE: Measured(cycling(signed), run_all(lambda s: ed25519.verify(*s))),
        }
        if not args.no_fastapi:
            paths.update(fastapi_paths(fx, production, repeat_tokens))
        for p in paths.values():
            p.calibrate(target_s)

        # Fresh tokens: the miss path as production takes it (and the cache growing as it does).
        fresh_batch = paths[MISS_NO_CACHE].batch
        print(f"… issuing {fresh_batch * (args.rounds + 1):,} fresh tokens", file=sys.stderr)
        pool = iter(issue(fx, fresh_batch * (args.rounds + 1)))
        fresh = Measured(lambda n: [next(pool) for _ in range(n)], run_all(production.verify))
        fresh.batch = fresh_batch
        fresh.time_batch(fresh_batch)  # warm-up, and proof the pool lasts
        paths = {MISS_FRESH: fresh, **paths}
        print("… batches: " + ", ".join(f"{p.batch}" for p in paths.values()), file=sys.stderr)

        names = list(paths)
        for r in range(args.rounds):
            gc.collect()
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                p = paths[name]
                wall_sample, cpu_sample = p.time_batch(p.batch)
                p.wall_us.append(wall_sample)
                p.cpu_us.append(cpu_sample)
            if (r + 1) % 10 == 0 or r + 1 == args.rounds:
                print(f"… round {r + 1}/{args.rounds}", file=sys.stderr)
        cached = len(production._cache)

    cpu = {name: median(p.cpu_us) for name, p in paths.items()}
    wall = {name: median(p.wall_us) for name, p in paths.items()}

    def ratio(a: str, b: str) -> float:
        """Median over the rounds of a / b, CPU time (both measured in the same round)."""
        return median([x / y for x, y in zip(paths[a].cpu_us, paths[b].cpu_us, strict=True)])

    def difference(a: str, b: str) -> float:
        """Median over the rounds of a − b, CPU µs."""
        return median([x - y for x, y in zip(paths[a].cpu_us, paths[b].cpu_us, strict=True)])

    rows = []
    for name in names:
        issue_cell = f"{ISSUE_FIGURE_US:,.0f}" if name == JOSERFC else "—"
        rows.append([
            name, f"{cpu[name]:,.2f}", f"{wall[name]:,.2f}", f"{ratio(name, JOSERFC):.3f}×",
            issue_cell, paths[name].batch,
        ])  # fmt: skip
    derived: dict[str, float] = {
        "miss_fresh_cpu_us": cpu[MISS_FRESH],
        "hit_cpu_us": cpu[HIT],
        "joserfc_cpu_us": cpu[JOSERFC],
        "hit_over_miss": ratio(HIT, MISS_FRESH),
        "miss_over_hit": ratio(MISS_FRESH, HIT),
        "miss_over_joserfc": ratio(MISS_FRESH, JOSERFC),
        "miss_minus_joserfc_us": difference(MISS_FRESH, JOSERFC),
        "joserfc_minus_signature_us": difference(JOSERFC, SIGNATURE),
        "issue_figure_us": ISSUE_FIGURE_US,
    }
    if not args.no_fastapi:
        derived["route_auth_minus_open_us"] = difference(ROUTE_AUTH, ROUTE_OPEN)
        derived["auth_minus_runtime_dependency_us"] = difference(ROUTE_AUTH, ROUTE_RUNTIME)
        derived["runtime_dependency_us"] = difference(ROUTE_RUNTIME, ROUTE_OPEN)
        derived["async_runtime_dependency_us"] = difference(ROUTE_ASYNC_RUNTIME, ROUTE_OPEN)
        derived["route_auth_async_runtime_minus_open_us"] = difference(ROUTE_AUTH_ASYNC, ROUTE_OPEN)

    print(
        f"\nAccess-token verification, µs per verification: medians of {args.rounds} interleaved "
        f"rounds of ~{args.batch_ms:g} ms batches ({len(fx.clients)} clients, Ed25519); "
        "ratios are medians of per-round CPU ratios\n"
    )
    table = markdown_table(
        ["path", "CPU µs", "wall µs", "vs joserfc floor", "issue's figure µs", "batch"], rows
    )
    print(table)
    summary = (
        f"\nhit / miss (CPU): a cache hit costs {cpu[HIT]:,.2f} µs, a fresh-token miss "
        f"{cpu[MISS_FRESH]:,.1f} µs: hit/miss = {derived['hit_over_miss']:.4f} "
        f"(a hit is {derived['miss_over_hit']:,.0f}× cheaper).\n"
        f"joserfc EdDSA JWT verify: {cpu[JOSERFC]:,.1f} CPU µs ({wall[JOSERFC]:,.1f} wall) "
        f"measured vs ~{ISSUE_FIGURE_US:.0f} µs in the issue; the gateway's miss adds "
        f"{derived['miss_minus_joserfc_us']:,.1f} µs to it (parsing, claims validation, client "
        f"lookup, principal, cache); joserfc adds {derived['joserfc_minus_signature_us']:,.1f} µs "
        "to the bare Ed25519 check."
    )
    if not args.no_fastapi:
        summary += (
            "\nFastAPI (CPU): the `AnyClient` route costs "
            f"{derived['route_auth_minus_open_us']:,.1f} µs over a route with no dependency, of "
            f"which `authenticate`'s own work is {cpu[AUTHENTICATE]:,.1f} µs; `RuntimeDep` alone "
            f"costs {derived['runtime_dependency_us']:,.1f} µs, an `async def` copy "
            f"{derived['async_runtime_dependency_us']:,.1f} µs (a plain `def` dependency runs in "
            "the worker-thread pool); with that copy the `AnyClient` route costs "
            f"{derived['route_auth_async_runtime_minus_open_us']:,.1f} µs over no dependency."
        )
    print(summary)
    out = write_results(
        "token_verify",
        {
            "settings": {**vars(args), "token_cache_size": fx.settings.token_cache_size,
                         "tokens_cached_at_end": cached},
            "median_cpu_us": cpu, "median_wall_us": wall, "derived": derived,
            "samples": {name: {"batch": p.batch, "wall_us": [round(v, 3) for v in p.wall_us],
                               "cpu_us": [round(v, 3) for v in p.cpu_us]}
                        for name, p in paths.items()},
            "table": table,
        },
    )  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
