"""Run sample systems with real uvicorn servers on loopback.

* :func:`serve_apps` — several apps in ONE process and event loop (used by ``serve-all``);
  SIGINT/SIGTERM stop all of them.
* :func:`serve_in_thread` — context manager for tests: one app on a free port in a background
  thread, yields its base URL, stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Generator, Iterator, Sequence

import uvicorn
from starlette.applications import Starlette


class _SharedSignalServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve_apps`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(app: Starlette, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off", ws="none")


async def serve_apps(apps: Sequence[tuple[Starlette, str, int]], log_level: str = "info") -> None:
    """Serve every ``(app, host, port)`` until SIGINT/SIGTERM."""
    servers = [_SharedSignalServer(_config(a, h, p, log_level)) for a, h, p in apps]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


@contextlib.contextmanager
def serve_in_thread(
    app: Starlette, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` in a daemon thread (port 0 = a free port); yield ``http://host:port``."""
    server = uvicorn.Server(_config(app, host, port, "warning"))
    thread = threading.Thread(target=server.run, name="sandbox-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
