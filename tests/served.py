"""A gateway served by uvicorn on a real loopback port, for clients that speak plain HTTP.

Most tests drive the app through Starlette's ``TestClient``. Some clients cannot: PyJWT's
``PyJWKClient`` fetches the JWKS with urllib, the docs' shell examples run curl, a browser
loads /docs. They get :func:`served_gateway`: migrated database, keys, registered clients and
the app with its lifespan, on a socket bound before the settings are made, so the issuer is
the URL the clients use.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from gateway.app import create_app
from gateway.auth.clients import IssuedCredentials
from gateway.auth.keys import KeyStore
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.conftest import STANDARD_TEST_CLIENTS, make_settings, register_client

__all__ = ["ServedGateway", "serve_app", "served_gateway"]


@dataclass
class ServedGateway:
    settings: Settings
    base_url: str
    clients: dict[str, IssuedCredentials] = field(default_factory=dict)

    def token_response(self, name: str) -> dict[str, Any]:
        cred = self.clients[name]
        response = httpx2.post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(cred.client_id, cred.client_secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def token(self, name: str) -> str:
        return str(self.token_response(name)["access_token"])


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_app(
    app: Any, *, sock: socket.socket | None = None, timeout: float = 20.0, **config: Any
) -> Iterator[int]:
    """Serve an ASGI app with uvicorn (lifespan on) in a thread; yield its loopback port.

    With ``sock``, uvicorn serves that already bound socket (its port known beforehand).
    """
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "ws": "none",
        "lifespan": "on",
        "access_log": False,
        "log_level": "critical",
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, **options))
    run_options = {"sockets": [sock]} if sock is not None else {}
    thread = threading.Thread(
        target=server.run, kwargs=run_options, name="gateway-uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout)
        if sock is not None:
            sock.close()


@contextmanager
def served_gateway(
    tmp: Path,
    clients: dict[str, tuple[str, list[str]]] | None = None,
    before_serving: Callable[[Settings], object] | None = None,
    **overrides: Any,
) -> Iterator[ServedGateway]:
    sock = _bound_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(tmp, f"sqlite:///{tmp / 'gateway.db'}", issuer=base_url, **overrides)
    upgrade(settings)
    KeyStore(
        settings.resolved_keys_path,
        token_ttl_seconds=settings.token_ttl_seconds,
        algorithm=settings.token_signing_alg,
    ).ensure()
    served = ServedGateway(settings, base_url)
    for name, (agency, scopes) in (clients or STANDARD_TEST_CLIENTS).items():
        served.clients[name] = register_client(settings, name, agency, scopes)
    if before_serving is not None:  # more rows of its own, written before the app runs
        before_serving(settings)
    with serve_app(create_app(settings), sock=sock, log_level="warning"):
        yield served
