"""Path (c): a bare FastAPI pass-through with no features at all.

``GET /{path}`` fetches the same path from ``BENCH_UPSTREAM`` and returns its body and
content type. ``BENCH_CLIENT`` picks the HTTP client: ``aiohttp`` (the fastest measured in
``bench/transports.py``) or ``httpx`` (httpx's default transport). No token, no policy, no
validation, no audit: the floor that the gateway's full path is compared with.

``POST /{path}`` is the floor for a delivery: a plain authenticated POST pass-through. The
bearer token must equal ``BENCH_TOKEN`` (401 otherwise, a constant-time comparison, no
signature), the body is read whole and POSTed to the same path upstream, and the answer
returned. No parsing, no policy, no audit, nothing stored.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8080")
CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")
TOKEN = os.environ.get("BENCH_TOKEN", "")

Fetch = Callable[[str], Awaitable[tuple[int, bytes, str]]]
Post = Callable[[str, bytes], Awaitable[tuple[int, bytes, str]]]
_fetch: list[Fetch] = []
_post: list[Post] = []


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

        async def post_aiohttp(path: str, body: bytes) -> tuple[int, bytes, str]:
            headers = {"content-type": "application/json"}
            async with session.post(path, data=body, headers=headers) as answer:
                return answer.status, await answer.read(), answer.headers.get("content-type", "")

        _fetch.append(fetch_aiohttp)
        _post.append(post_aiohttp)
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

        async def post_httpx(path: str, body: bytes) -> tuple[int, bytes, str]:
            answer = await client.post(path, content=body)
            return answer.status_code, answer.content, answer.headers.get("content-type", "")

        _fetch.append(fetch_httpx)
        _post.append(post_httpx)
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


@app.post("/{path:path}")
async def forward_post(path: str, request: Request) -> Response:
    given = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not TOKEN or not hmac.compare_digest(given.encode(), TOKEN.encode()):
        return Response(status_code=401)
    status, body, content_type = await _post[0]("/" + path, await request.body())
    return Response(body, status_code=status, media_type=content_type or None)
