"""One pure ASGI middleware for every request: request id, header and body limits, metrics,
access log.

Pure ASGI rather than ``BaseHTTPMiddleware``: the latter costs a task and a queue
per request and breaks streaming. Work done here is a few dict operations.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import INTERNAL_ERROR_DETAIL, problem_response
from gateway.observability.context import accept_or_new_request_id, request_id_var
from gateway.observability.logging import enabled_for
from gateway.observability.metrics import GatewayMetrics

__all__ = ["GatewayMiddleware"]

log = structlog.get_logger("gateway.access")


class _BodyTooLarge(Exception):
    pass


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        max_body_bytes: int,
        max_header_bytes: int = 32_768,
        max_header_count: int = 100,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        incoming_id: str | None = None
        content_length: int | None = None
        # uvicorn's httptools protocol bounds neither the size nor the number of header lines;
        # refusing here keeps oversize header blocks away from every header parser behind us.
        header_bytes = 0
        headers = scope["headers"]
        for name, value in headers:
            header_bytes += len(name) + len(value) + 4
            if name == b"x-request-id":
                incoming_id = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
        request_id = accept_or_new_request_id(incoming_id)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [500]
        response_started = False
        id_header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            if header_bytes > self.max_header_bytes or len(headers) > self.max_header_count:
                await self._reject(scope, send_with_id, 431, "request-header-fields-too-large")
            elif content_length is not None and content_length > self.max_body_bytes:
                await self._reject(scope, send_with_id, 413, "payload-too-large")
            elif content_length is not None and content_length < 0:
                await self._reject(scope, send_with_id, 400, "bad-request")
            else:
                try:
                    await self.app(scope, limited_receive, send_with_id)
                except _BodyTooLarge:
                    if response_started:
                        raise
                    await self._reject(scope, send_with_id, 413, "payload-too-large")
                except Exception:
                    # Answer here, where the request id is known, then let the error go on to
                    # the app's handler (which logs it) and the server, as Starlette does.
                    if not response_started:
                        await self._reject(scope, send_with_id, 500, "internal-error")
                    raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            state: dict[str, Any] = scope["state"]
            agency = str(state.get("agency", ""))
            self.metrics.observe(route_path, scope["method"], status_holder[0], agency, elapsed)
            if enabled_for(logging.INFO):
                log.info(
                    "request",
                    method=scope["method"],
                    route=route_path,
                    status=status_holder[0],
                    ms=round(elapsed * 1000, 2),
                    client_id=state.get("client_id"),
                )
            request_id_var.reset(token)

    async def _reject(self, scope: Scope, send: Send, status: int, slug: str) -> None:
        if status == 413:
            title, detail = (
                "Request body too large",
                f"the request body exceeds {self.max_body_bytes} bytes",
            )
        elif status == 431:
            title, detail = (
                "Request header fields too large",
                f"the request headers exceed {self.max_header_bytes} bytes "
                f"or {self.max_header_count} fields",
            )
        elif status == 500:
            title, detail = "Internal error", INTERNAL_ERROR_DETAIL
        else:
            title, detail = "Bad request", "malformed Content-Length header"
        response = problem_response(status, title, detail, slug=slug, instance=scope["path"])
        await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
