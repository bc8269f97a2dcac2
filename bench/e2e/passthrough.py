"""Path (c): a bare FastAPI pass-through with no features at all.

``GET /{path}`` fetches the same path from ``BENCH_UPSTREAM`` and returns its body and
content type. ``BENCH_CLIENT`` picks the HTTP client: ``aiohttp`` (the fastest measured in
``bench/transports.py``) or ``httpx`` (httpx's default transport). No token, no policy, no
validation, no audit: the floor that the gateway's full path is compared with.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8080")
CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")

Fetch = Callable[[str], Awaitable[tuple[int, bytes, str]]]
_fetch: list[Fetch] = []


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    if CLIENT == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            UPSTREAM, connector=aiohttp.TCPConnector(limit=100), auto_decompress=False
        )

        async def fetch_aiohttp(path: str) -> tuple[int, bytes, str]:
            async with session.get(path) as answer:
                body = await answer.read()
                return answer.status, body, answer.headers.get("content-type", "")

        _fetch.append(fetch_aiohttp)
        try:
            yield
        finally:
            await session.close()
    else:
        import httpx

        client = httpx.AsyncClient(base_url=UPSTREAM, limits=httpx.Limits(max_connections=100))

        async def fetch_httpx(path: str) -> tuple[int, bytes, str]:
            answer = await client.get(path)
            return answer.status_code, answer.content, answer.headers.get("content-type", "")

        _fetch.append(fetch_httpx)
        try:
            yield
        finally:
            await client.aclose()


# No features: FastAPI's native OpenTelemetry hooks off too, as in the gateway.
app = FastAPI(
    lifespan=lifespan,
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
    telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
)


@app.get("/__ready")
async def ready() -> dict[str, str]:
    return {"client": CLIENT}


@app.get("/{path:path}")
async def forward(path: str) -> Response:
    status, body, content_type = await _fetch[0]("/" + path)
    return Response(body, status_code=status, media_type=content_type or None)
