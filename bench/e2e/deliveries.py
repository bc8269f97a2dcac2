"""The delivery path of the end-to-end benchmark (issue 15): CPU per delivery.

The request: the procuratorate's 提起公诉 (``indictment``) of case C00000020 to the court that
tries it, the record inline (``POST /v1/deliveries``), each request with a new
``Idempotency-Key`` (a repeated key is a replay, answered without deciding or storing). It is
sent by the benchmark's client, the procuratorate of the default request (demo example
``masked-fields``); with an ``--example`` of another agency the delivery path is skipped.
Its floor, in the same run: the bare pass-through's ``POST /{path}`` (a bearer token compared
with a constant, the same body POSTed upstream), see ``bench/e2e/passthrough.py``.

Open-loop latency is not measured for these two paths: ``h2load`` sends one fixed request, and
a fixed key would measure replays.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from bench.e2e.servers import start_passthrough
from bench.e2e.system import Server, free_port

if TYPE_CHECKING:
    from bench.e2e.run import PathResult, Target

__all__ = ["DELIVERY_SENDER", "delivery_request", "post_floor"]

#: The agency that sends the benchmark's delivery (银川市兴庆区人民检察院).
DELIVERY_SENDER = "JC640104"


def delivery_request() -> tuple[dict[str, str], bytes]:
    """Headers (without token and key) and body of the benchmark's delivery."""
    from sandbox.generator import DEFAULT_SEED, Dataset

    case = Dataset(DEFAULT_SEED, 300).case(20)
    record: dict[str, Any] = dict(case.indictment[0])
    number = str(case.case["court_case_number"])
    headers = {
        "X-Purpose": "PROSECUTION_REVIEW",
        "X-Operator-Id": "bench-officer-01",
        "X-Case-Number": quote(number, safe="()"),
        "Content-Type": "application/json",
    }
    body = {"kind": "indictment", "to_agency": "FY640104", "record": record}
    return headers, orjson.dumps(body)


def post_floor(upstream: str, path: str, measure: Callable[[str, Server, Target], PathResult],
               workdir: Path) -> PathResult:  # fmt: skip
    """(c-post): the bare authenticated POST pass-through, measured like every path."""
    from bench.e2e.run import SERVER_CORES, Target  # run imports this module

    token = secrets.token_urlsafe(16)
    port = free_port()
    bare = start_passthrough("aiohttp", upstream, port, SERVER_CORES, workdir / "c-post.log",
                             token=token)  # fmt: skip
    try:
        bare.name = "(c-post) bare authenticated POST pass-through, aiohttp"
        extra, body = delivery_request()
        target = Target(f"http://127.0.0.1:{port}{path}",
                        {**extra, "Authorization": f"Bearer {token}"}, body)  # fmt: skip
        return measure("c-post", bare, target)
    finally:
        bare.stop()
