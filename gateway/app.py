"""The app factory and its lifespan, which owns every engine, client and key."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import structlog
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from adapters.registry import build_adapters
from gateway import heap
from gateway.audit.aggregate import AnonymousRequests, FailedTokenRequests
from gateway.audit.checkpoint import CheckpointSigner, load_or_create_signer, load_signer
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.refusals import method_not_allowed
from gateway.audit.routes import router as audit_router
from gateway.audit.service import AuditService
from gateway.audit.writer import AuditWriter
from gateway.auth.clients import ClientRegistry
from gateway.auth.keys import KeyStore
from gateway.auth.passwords import SecretChecker
from gateway.auth.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.auth.routes import router as auth_router
from gateway.auth.server import GatewayAuthorizationServer
from gateway.auth.tokens import ExternalKeys, TokenIssuer, TokenVerifier
from gateway.background import BackgroundThreads, tracked_threads
from gateway.console.wiring import attach_console, mount_console
from gateway.db import create_db_engine, make_session_factory, utcnow
from gateway.deliveries.content import PushRecheck
from gateway.deliveries.receipts import load_receipt_signer
from gateway.deliveries.routes import router as deliveries_router
from gateway.deliveries.service import DeliveryService
from gateway.docs_ui import install_docs
from gateway.errors import install_error_handlers
from gateway.exchange.asgi import ExchangeEndpoints
from gateway.exchange.cursor import CursorSealer
from gateway.exchange.push import outbox_pusher
from gateway.exchange.routes import data_routes
from gateway.exchange.routes import router as exchange_router
from gateway.exchange.service import ExchangeService
from gateway.exchange.subjects import SubjectResolver
from gateway.exchange.upstream import AgencyAdapters
from gateway.health.routes import router as health_router
from gateway.keyfiles import load_deployment_key
from gateway.observability.logging import configure_logging
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.metrics_port import serve_metrics
from gateway.observability.middleware import GatewayMiddleware
from gateway.policy import load_policy_engine
from gateway.policy.admin import PolicyAdministration, PolicyHolder
from gateway.policy.admin_routes import router as policy_admin_router
from gateway.policy.isolation import IsolatedEvaluator
from gateway.policy.versions import Bootstrap
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sharing.routes import router as sharing_router
from gateway.sharing.wiring import attach_sharing
from gateway.standard import catalog_document, load_standard

__all__ = ["create_app", "create_served_app"]

log = structlog.get_logger(__name__)

_EXTERNAL_JWKS_REFRESH_SECONDS = 300.0


def build_runtime(settings: Settings, metrics: GatewayMetrics) -> Runtime:
    # First: a missing or bad cursor or criteria key stops the start before anything needs
    # closing.
    cursors = CursorSealer.from_settings(settings)
    criteria_key = load_audit_criteria_key(settings)
    engine = create_db_engine(settings.resolved_database_url)
    try:
        return _runtime_on(engine, settings, metrics, cursors, criteria_key)
    except BaseException:
        # A start refused half-way (a bad key file, agency configuration, …) leaves no
        # pooled connection behind.
        engine.dispose()
        raise


def _runtime_on(
    engine: Engine,
    settings: Settings,
    metrics: GatewayMetrics,
    cursors: CursorSealer,
    criteria_key: bytes,
) -> Runtime:
    factory = make_session_factory(engine)
    keys = KeyStore(
        settings.resolved_keys_path,
        token_ttl_seconds=settings.token_ttl_seconds,
        algorithm=settings.token_signing_alg,
    )
    clients = ClientRegistry(factory, max_age_seconds=settings.client_cache_seconds)
    external = None
    if settings.external_issuer and settings.external_jwks_url:
        external = ExternalKeys(
            settings.external_issuer, settings.external_audience or settings.audience
        )
    issuer = TokenIssuer(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    verifier = TokenVerifier(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        client_lookup=clients.get,
        external=external,
        cache_size=settings.token_cache_size,
        max_lifetime_seconds=settings.token_max_lifetime_seconds,
    )
    limiter: RateLimiter = (
        RedisRateLimiter(settings.redis_url) if settings.redis_url else MemoryRateLimiter()
    )
    signer = _checkpoint_signer(settings)
    audit_writer = AuditWriter(
        settings.resolved_database_url,
        max_batch=settings.audit_batch_max,
        max_wait_s=settings.audit_batch_wait_ms / 1000,
        criteria_key=criteria_key,
    )
    standard = load_standard(settings.policy_dir / "standard")
    try:
        started = PolicyAdministration.bootstrap(engine, standard, settings.policy_dir)
    except SQLAlchemyError as exc:
        # The database is down: start on the shipped files; the follower adopts the
        # published set as soon as the database answers (and /readyz says 503 meanwhile).
        log.error("cannot read policy publications; using the shipped files", error=str(exc))
        started = Bootstrap(load_policy_engine(settings.policy_dir, standard), False, 0)
    policy = PolicyHolder(started.engine)
    interval, max_keys = settings.aggregate_interval_seconds, settings.aggregate_max_keys
    adapters = AgencyAdapters(
        build_adapters(
            settings.agencies_dir,
            secrets={k: v.get_secret_value() for k, v in settings.upstream_secrets.items()},
            base_urls=settings.upstream_urls,
            identities=settings.upstream_identities,
        ),
        case_owner=standard.resource("case").owner,
    )
    exchange = ExchangeService(
        standard=standard,
        policy=policy,
        adapters=adapters,
        audit=audit_writer,
        cursors=cursors,
        search_upstream_calls=settings.search_upstream_calls,
        subjects=SubjectResolver(adapters, standard, ttl_seconds=settings.subject_cache_seconds),
    )
    # The stored content is decided again for its recipient, by the policy in force, before
    # any push (gateway/deliveries/content.py).
    recheck = PushRecheck(standard, policy, exchange, utcnow)
    outbox = outbox_pusher(settings, factory, adapters, standard, audit_writer, policy, recheck)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        session_factory=factory,
        keys=keys,
        clients=clients,
        token_issuer=issuer,
        token_verifier=verifier,
        auth_server=GatewayAuthorizationServer(factory, issuer),
        rate_limiter=limiter,
        metrics=metrics,
        http=httpx2.AsyncClient(timeout=httpx2.Timeout(5.0)),
        external_keys=external,
        audit_writer=audit_writer,
        audit_service=AuditService(engine),
        checkpointer=Checkpointer(
            engine,
            signer,
            settings.audit_origin,
            settings.checkpoint_interval_seconds,
            key_loader=lambda: load_signer(
                settings.resolved_checkpoint_key_path, settings.audit_origin
            ),
        ),
        standard=standard,
        catalog=catalog_document(standard),
        policy=policy,
        policy_admin=PolicyAdministration(
            engine,
            standard,
            policy,
            audit_writer,
            IsolatedEvaluator(
                settings.policy_dir / "standard",
                cpu_seconds=settings.policy_eval_cpu_seconds,
                memory_mb=settings.policy_eval_memory_mb,
            ),
            started=started,
        ),
        policy_imported=started.imported,
        adapters=adapters,
        exchange=exchange,
        deliveries=DeliveryService(
            standard=standard,
            policy=policy,
            exchange=exchange,
            audit=audit_writer,
            factory=factory,
            signer=_receipt_signer(settings),
            on_created=outbox.wake,
        ),
        outbox=outbox,
        anonymous=AnonymousRequests(audit_writer, interval_s=interval, max_keys=max_keys),
        token_failures=FailedTokenRequests(
            audit_writer,
            agency_of=lambda client_id: c.agency if (c := clients.get(client_id)) else None,
            interval_s=interval,
            max_keys=max_keys,
        ),
        secret_checker=SecretChecker(settings.scrypt_workers, settings.scrypt_queue),
    )
    attach_sharing(runtime)
    attach_console(runtime)
    return runtime


def _receipt_signer(settings: Settings) -> Callable[[], CheckpointSigner]:
    """The delivery receipt key, made on first use (data_dir/keys/receipt.key)."""
    loaded: list[CheckpointSigner] = []

    def signer() -> CheckpointSigner:
        if not loaded:
            loaded.append(load_receipt_signer(settings.data_dir, settings.audit_origin))
        return loaded[0]

    return signer


def load_audit_criteria_key(settings: Settings) -> bytes:
    """The key of the hashes that stand for search filter values in audit entries."""
    return load_deployment_key(
        settings,
        settings.audit_criteria_secret,
        variable="GATEWAY_AUDIT_CRITERIA_SECRET",
        file_name="audit-criteria.key",
        context="zhengfa-gateway/audit-criteria/v1",
        what="audit criteria key",
    )


def _audit_readiness(runtime: Runtime) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def check() -> dict[str, Any]:
        runtime.checkpointer.reload_key()
        writer_problem = await run_in_threadpool(runtime.audit_writer.probe)
        # This route is public: name the failure's kind only; the details are in the log.
        problems = [
            problem.split(":")[0]
            for problem in (
                None if runtime.checkpoint_signer else "no checkpoint signing key",
                writer_problem,
                runtime.checkpointer.last_error,
            )
            if problem
        ]
        return {"ok": not problems, **({"errors": problems} if problems else {})}

    return check


def _policy_readiness(runtime: Runtime) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def check() -> dict[str, Any]:
        return runtime.policy_admin.readiness()

    return check


def _adapter_readiness(runtime: Runtime) -> Callable[[], Awaitable[dict[str, Any]]]:
    cached: list[Any] = [0.0, None]

    async def check() -> dict[str, Any]:
        # Probing five agencies costs real calls: answer from a 5 s cache. Only flags are
        # shown (this route is public); the reasons go to the log.
        now = time.monotonic()
        if cached[1] is None or now - cached[0] > 5.0:
            health = await runtime.adapters.health()
            for name, h in health.items():
                if not h.ok:
                    log.warning("agency system not healthy", agency=name, detail=h.detail)
            cached[:] = [now, health]
        health = cached[1]
        agencies = {
            name: {"ok": h.ok, "circuit": h.circuit, **h.extra} for name, h in health.items()
        }
        # One agency being down degrades the gateway, it does not make it unready: the
        # other agencies' exchanges still work. Operators alert on the per-agency flags.
        # Another system answering at an agency's address does: requests (and credentials)
        # would go to a stranger.
        impostors = sorted(n for n, a in agencies.items() if a.get("identity") == "mismatch")
        return {
            "ok": not impostors,
            "degraded": not all(a["ok"] for a in agencies.values()),
            "agencies": agencies,
            **(
                {"errors": [f"not the expected system: {n}" for n in impostors]}
                if impostors
                else {}
            ),
        }

    return check


def _checkpoint_signer(settings: Settings) -> CheckpointSigner | None:
    path = settings.resolved_checkpoint_key_path
    try:
        if settings.is_demo:
            return load_or_create_signer(path, settings.audit_origin)
        return load_signer(path, settings.audit_origin)
    except (OSError, ValueError) as exc:
        # Appends stay durable without it; checkpoints wait and /readyz says why.
        log.error("no checkpoint signing key", path=str(path), error=str(exc))
        return None


#: How long shutdown waits for a background loop's database step to end (background.py).
_SHUTDOWN_THREADS_SECONDS = 30.0


async def _refresh_external_keys(runtime: Runtime) -> None:
    external, url = runtime.external_keys, runtime.settings.external_jwks_url
    assert external is not None
    assert url is not None
    while True:
        try:
            response = await runtime.http.get(url)
            response.raise_for_status()
            external.update(response.json())
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("external JWKS fetch failed", url=url, error=str(exc))
        await asyncio.sleep(_EXTERNAL_JWKS_REFRESH_SECONDS if external.key_set else 5.0)


def create_served_app() -> FastAPI:
    """The app as ``gateway serve`` runs it, in each worker: :func:`create_app` from the
    environment, with the heap settled once it has started (:mod:`gateway.heap`)."""
    return create_app(served=True)


def create_app(settings: Settings | None = None, *, served: bool = False) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.check_production_ready()
        runtime = build_runtime(settings, metrics)
        app.state.runtime = runtime
        tasks: list[asyncio.Task[None]] = []
        # The loops' blocking steps run in threads that shutdown waits for (background.py).
        threads = BackgroundThreads()
        tracked = tracked_threads.set(threads)
        try:
            active_alg = runtime.keys.load().active_alg
            if active_alg != settings.token_signing_alg:
                log.warning(
                    "the active signing key is not of the configured algorithm; "
                    "run `gateway keys rotate` to switch",
                    active=active_alg,
                    configured=settings.token_signing_alg,
                )
            try:
                await run_in_threadpool(runtime.clients.refresh)
            except SQLAlchemyError as exc:
                # Start anyway: /readyz says 503 until the database answers, and the
                # registry refreshes on the first authenticated request.
                log.error("database unavailable at start", error=str(exc))
            runtime.audit_writer.start()
            try:
                # Signed before the first request: GET /v1/audit/checkpoint never answers 404
                # on a running gateway, not even on an empty log.
                await run_in_threadpool(runtime.checkpointer.checkpoint_now)
            except SQLAlchemyError as exc:
                log.error("no checkpoint at start; the checkpointer retries", error=str(exc))
            runtime.readiness_checks["audit"] = _audit_readiness(runtime)
            runtime.readiness_checks["agency_systems"] = _adapter_readiness(runtime)
            runtime.readiness_checks["policy"] = _policy_readiness(runtime)
            tasks.append(asyncio.create_task(runtime.checkpointer.run()))
            tasks.append(asyncio.create_task(runtime.policy_admin.follow()))
            tasks.append(asyncio.create_task(runtime.anonymous.run()))
            tasks.append(asyncio.create_task(runtime.token_failures.run()))
            if runtime.console is not None:
                tasks.append(asyncio.create_task(runtime.console.sign_in_failures.run()))
            if runtime.sharing is not None:
                with contextlib.suppress(SQLAlchemyError):
                    await run_in_threadpool(runtime.sharing.grants.refresh)
                tasks.append(asyncio.create_task(runtime.sharing.grants.follow()))
            if settings.delivery_push_enabled:
                interval = settings.delivery_push_interval_seconds
                tasks.append(asyncio.create_task(runtime.outbox.run(interval)))
            if runtime.policy_imported:
                await runtime.policy_admin.record_initial_import()
            if runtime.external_keys is not None:
                tasks.append(asyncio.create_task(_refresh_external_keys(runtime)))
            if settings.metrics_port is not None:
                tasks.append(
                    asyncio.create_task(
                        serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
                    )
                )
            if served and settings.gc_freeze:
                heap.settle(settings.gc_young_threshold)
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not await threads.drain(within_seconds=_SHUTDOWN_THREADS_SECONDS):
                log.warning("background work still running at shutdown", threads=threads.running)
            tracked_threads.reset(tracked)
            await runtime.adapters.aclose()
            # The counts of the current interval, written before the writer stops.
            runtime.anonymous.flush(everything=True)
            runtime.token_failures.flush(everything=True)
            if runtime.console is not None:
                runtime.console.sign_in_failures.flush(everything=True)
            runtime.audit_writer.stop()
            runtime.policy_admin.evaluator.close()
            runtime.secret_checker.close()
            await runtime.http.aclose()
            await runtime.rate_limiter.close()
            runtime.engine.dispose()

    app = FastAPI(
        title="政法跨部门数据共享网关 · Cross-agency data-sharing gateway",
        version="0.1.0",
        summary="One REST API for police, procuratorates, courts, prisons and justice "
        "administration to share case data under one standard, a negative list and a "
        "permissions list, with a tamper-evident audit log.",
        lifespan=lifespan,
        # The gateway exports its own Prometheus metrics and logs; FastAPI's native
        # OpenTelemetry hooks, unconfigured, still cost provider look-ups on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # FastAPI's pages load Swagger UI and ReDoc from a CDN: gateway.docs_ui serves them
        # from the installed package instead (政法专网 has no internet).
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    # A 405 is a refusal like any other: an audit entry of the caller its token names.
    app.add_exception_handler(405, method_not_allowed)
    # Routes are matched in order, router by router: the exchange routes carry nearly all
    # the traffic, so they are tried first (no path of another router starts like them).
    app.include_router(exchange_router)
    app.include_router(auth_router)
    app.include_router(health_router)
    app.include_router(audit_router)
    app.include_router(policy_admin_router)
    app.include_router(sharing_router)
    app.include_router(deliveries_router)
    install_docs(app)
    # The web console (/console/, docs/console.md) and its sign-in at /oauth/authorize.
    mount_console(app)
    # A GET of the exchange data routes is served ahead of FastAPI's router (issue 18), inside
    # the gateway's middleware (added after it, so outside it).
    app.add_middleware(ExchangeEndpoints, routes=data_routes())
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
    )
    return app
