"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.audit.refusals import AccessAuditedRoute
from gateway.auth.deps import MetricsReader, RuntimeDep
from gateway.auth.keys import KeyStoreError
from gateway.db import ping
from gateway.errors import NotFound, problem_responses
from gateway.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Readiness(BaseModel):
    status: str
    checks: dict[str, dict[str, Any]]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, signing key and agency systems are usable",
    response_model=Readiness,
    responses={503: {"description": "a dependency is not ready", "model": Readiness}},
)
async def readyz(runtime: RuntimeDep) -> Response:
    checks: dict[str, Any] = {}
    try:
        await run_in_threadpool(ping, runtime.engine)
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        loaded = runtime.keys.load()
        checks["signing_key"] = {"ok": True, "kid": loaded.active_kid, "alg": loaded.active_alg}
    except KeyStoreError as exc:
        checks["signing_key"] = {"ok": False, "error": str(exc)}
    if runtime.external_keys is not None:
        checks["external_issuer"] = {"ok": runtime.external_keys.key_set is not None}
    for name, check in runtime.readiness_checks.items():
        checks[name] = await check()
    ready = all(check.get("ok", False) for check in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics(runtime: RuntimeDep, caller: MetricsReader) -> Response:
    if runtime.settings.metrics_port is not None:
        raise NotFound("metrics are served on the metrics port only (GATEWAY_METRICS_PORT)")
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")


# Requests per agency are not for everyone: a token with scope metrics:read (Prometheus
# supports OAuth2 client credentials), or the separate metrics port. Refusals of an
# identified caller are audit entries (kind access).
router.add_api_route(
    "/metrics",
    metrics,
    methods=["GET"],
    summary="Prometheus metrics (scope metrics:read)",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problem_responses(
            {
                401: "invalid token",
                403: "missing scope (metrics:read)",
                404: "served on the metrics port (GATEWAY_METRICS_PORT) instead",
                429: "rate limited",
            }
        ),
    },
    route_class_override=AccessAuditedRoute,
)
