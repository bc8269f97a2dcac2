"""A trivial upstream for the transport benchmark: HTTP/1.1 keep-alive, one recorded JSON body.

``python -m bench._upstream [--port 0] [--body FILE]`` prints ``ready <port>`` once listening.
A raw asyncio protocol (on uvloop when installed) that answers every request with the same
canned response, so that the figures measure the client, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

BODY = Path(__file__).resolve().parent / "data" / "upstream_person_page.json"


class _Canned(asyncio.Protocol):
    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")  # GET requests: headers only, no body
        if count and self.transport is not None:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(self.response * count)


async def serve(port: int, body: bytes) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: application/json; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"\r\n" + body
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Canned(response), "127.0.0.1", port, backlog=512)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--body", type=Path, default=BODY)
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.port, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
