"""``GET /metrics`` without a token, on a port of its own (``GATEWAY_METRICS_PORT``).

For deployments whose Prometheus scrapes over a network the API is not on: bind it to an
address only the monitoring network reaches (``GATEWAY_METRICS_HOST``, default loopback).
The API port then answers 404 for ``/metrics``. A minimal HTTP/1.1 responder: one request
per connection, ``GET /metrics`` only, small bounded reads. Every worker binds the port with
``SO_REUSEPORT``; each scrape reaches one worker, whose own counters it gets (as with the
API port: docs/operations.md, "Metrics and logs").
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.observability.metrics import GatewayMetrics

__all__ = ["serve_metrics"]

log = structlog.get_logger(__name__)

_MAX_HEAD = 8192
_TIMEOUT_S = 5.0


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def serve_metrics(metrics: GatewayMetrics, host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
            method, _, rest = head.partition(b" ")
            target = rest.partition(b" ")[0]
            if method == b"GET" and target.split(b"?")[0] == b"/metrics":
                answer = _response(
                    "200 OK", metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
                )
            elif method != b"GET":
                answer = _response("405 Method Not Allowed", b"GET /metrics only\n")
            else:
                answer = _response("404 Not Found", b"GET /metrics only\n")
            writer.write(answer)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD, reuse_port=True)
    log.info("metrics served on their own port", host=host, port=port)
    async with server:
        await server.serve_forever()
