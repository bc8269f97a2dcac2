"""The benchmark's upstream: recorded native responses of the sample agency systems, served by
nginx, so that the upstream costs almost nothing and the figures measure the proxies.

Recording: the real sample systems (``python -m sandbox serve-all``) run behind a
small recording proxy; the gateway is pointed at the proxy and answers the benchmark request
once; every native request it made and the answer it got are kept. nginx then serves each
recorded answer from a file at its exact path (``location =``), whatever the query string;
a path recorded with several query strings (a delivery resolves its own case by number beside
the read's) answers each of them with its own recorded answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import serve_in_thread

__all__ = ["Recording", "nginx_proxy_conf", "nginx_upstream_conf", "recording_proxies"]

# Headers that describe the connection or the body's transfer, not the answer itself.
_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}


@dataclass(frozen=True)
class Exchange:
    agency: str
    method: str
    path: str
    query: str
    status: int
    content_type: str
    body: bytes


@dataclass
class Recording:
    """What the gateway asked each agency system, and what it got."""

    exchanges: list[Exchange]

    def agencies(self) -> list[str]:
        return sorted({e.agency for e in self.exchanges})

    def as_json(self) -> list[dict[str, object]]:
        return [
            {"agency": e.agency, "method": e.method, "path": e.path, "query": e.query,
             "status": e.status, "bytes": len(e.body)}
            for e in self.exchanges
        ]  # fmt: skip


def _recorder(agency: str, target: str, recording: Recording) -> Starlette:
    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP | {"host"}}
        async with httpx2.AsyncClient(base_url=target, timeout=10.0) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=str(request.query_params),
                headers=headers,
                content=await request.body(),
            )
        recording.exchanges.append(
            Exchange(
                agency,
                request.method,
                request.url.path,
                request.url.query,
                answer.status_code,
                answer.headers.get("content-type", "application/octet-stream"),
                answer.content,
            )
        )
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP},
        )

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


@contextmanager
def recording_proxies(targets: dict[str, str]) -> Iterator[tuple[dict[str, str], Recording]]:
    """A recording proxy in front of each agency system: (agency → proxy URL, recording)."""
    recording = Recording([])
    with ExitStack() as stack:
        urls = {
            agency: stack.enter_context(serve_in_thread(_recorder(agency, url, recording)))
            for agency, url in targets.items()
        }
        yield urls, recording


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx_upstream_conf(recording: Recording, ports: dict[str, int], root: Path) -> str:
    """nginx serving each recorded GET answer from a file; one server per agency port."""
    root.mkdir(parents=True, exist_ok=True)
    servers = []
    for agency in recording.agencies():
        locations = []
        by_path: dict[str, list[Exchange]] = {}
        for exchange in recording.exchanges:
            if exchange.agency != agency:
                continue
            if exchange.method != "GET" or exchange.status != 200:
                raise RuntimeError(
                    f"the benchmark request made a {exchange.method} {exchange.path} → "
                    f"{exchange.status} call to {agency}; only 200 answers to GET are replayed"
                )
            by_path.setdefault(exchange.path, []).append(exchange)
        for path, answers in by_path.items():
            files = []
            for exchange in answers:
                key = f"{agency} {path}?{exchange.query}"
                name = hashlib.sha256(key.encode()).hexdigest()[:16] + ".body"
                (root / name).write_bytes(exchange.body)
                files.append((exchange.query, name))
            # The first answer for any query string; another recorded query gets its own.
            choose = "".join(
                f"      if ($args = {_quote(query)}) {{ set $answer /{name}; }}\n"
                for query, name in dict(files[1:]).items()
                if query != answers[0].query
            )
            locations.append(
                f"    location = {_quote(path)} {{\n"
                f"      default_type {_quote(answers[0].content_type)};\n"
                f"      root {_quote(str(root))};\n"
                f"      set $answer /{files[0][1]};\n{choose}"
                f"      rewrite ^ $answer break;\n"
                f"    }}"
            )
        servers.append(
            f"  server {{\n    listen 127.0.0.1:{ports[agency]} reuseport backlog=4096;\n"
            # A POST (the POST pass-through's floor) gets the same file: nginx refuses POST to
            # a static file with 405, turned here into the recorded answer ($uri is the file's
            # name by then, served from the server's root).
            f"    access_log off;\n    root {_quote(str(root))};\n"
            f"    error_page 405 =200 $uri;\n" + "\n".join(locations) + "\n  }"
        )
    return _nginx_main(root, "\n".join(servers), extra="    open_file_cache max=64;\n")


def nginx_proxy_conf(listen: int, upstream_port: int, root: Path) -> str:
    """nginx as a plain reverse proxy with a keep-alive pool to the upstream."""
    server = f"""  upstream agency {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{listen} reuseport backlog=4096;
    access_log off;
    location / {{
      proxy_pass http://agency;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }}
  }}"""
    return _nginx_main(root, server)


def _nginx_main(root: Path, servers: str, extra: str = "") -> str:
    # One worker: the servers under test run on one core (the report's premise).
    # As root, nginx's workers would drop to "nobody", who cannot read our private files.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return f"""daemon off;
{user}master_process on;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{
  worker_connections 4096;
}}
http {{
  client_body_temp_path {root / "tmp"};
  proxy_temp_path {root / "tmp"};
  fastcgi_temp_path {root / "tmp"};
  uwsgi_temp_path {root / "tmp"};
  scgi_temp_path {root / "tmp"};
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
{extra}{servers}
}}
"""


def write_recording(recording: Recording, path: Path) -> None:
    path.write_text(json.dumps(recording.as_json(), indent=2), encoding="utf-8")
