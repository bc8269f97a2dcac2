"""Helpers of the attack matrix: raw JWTs, raw HTTP over sockets, audit look-ups, statistics.

Nothing here talks to the gateway's internals except :func:`audit_entry`, which reads the
audit log the way a regulator would (by index) to check what was recorded.
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from joserfc.jws import JWSRegistry

from gateway.audit.service import AuditService
from tests.conftest import Gateway

# --- JWTs made by hand (joserfc refuses to make some of the malformed ones) -----------------


def b64url(data: bytes | dict[str, Any] | list[Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The algorithm a key of each type signs with here (the gateway's three: RS256, ES256, Ed25519).
KEY_TYPE_ALG = {"RSA": "RS256", "EC": "ES256", "OKP": "Ed25519"}


def raw_jwt(header: dict[str, Any], claims: dict[str, Any], key: Any | None = None) -> str:
    """A compact JWS with exactly this header, signed with ``key`` by its key type's algorithm
    whatever the header says (unsigned if None)."""
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    if key is None:
        return signing_input + "."
    algorithm = JWSRegistry.algorithms[KEY_TYPE_ALG[key.key_type]]
    signature: bytes = algorithm.sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, claims, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))),
        signature,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- problems and audit entries ---------------------------------------------------------------

VOLATILE_PROBLEM_FIELDS = ("request_id", "instance")


def problem_shape(response: httpx2.Response, record_id: str) -> dict[str, Any]:
    """The problem body with what may differ between two requests taken out.

    ``request_id`` and ``instance`` differ per request; inside ``detail`` the record id the
    caller sent is replaced by a placeholder. Everything else must be identical.
    """
    body: dict[str, Any] = response.json()
    shape = {k: v for k, v in body.items() if k not in VOLATILE_PROBLEM_FIELDS}
    shape["detail"] = str(shape.get("detail", "")).replace(record_id, "<id>")
    return shape


def header_shape(response: httpx2.Response) -> dict[str, str]:
    """Header names and the values that must not differ (content type and length)."""
    volatile = {"x-request-id", "x-audit-index", "date"}
    return {k: ("*" if k in volatile else v) for k, v in response.headers.items()}


def audit_entry(gateway: Gateway, response: httpx2.Response) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    document: dict[str, Any] = AuditService(runtime.engine).entry(index).document
    return document


def one_interval(gateway: Gateway) -> None:
    """Stop the aggregates' clock inside one interval: whatever the wall clock does meanwhile,
    a test's requests fall into one interval (an interval is written once it has ended)."""
    runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    for aggregate in (runtime.anonymous, runtime.token_failures):
        aggregate.clock = lambda: 1_800_000_030.0


def aggregated_entries(gateway: Gateway, which: str = "anonymous") -> list[dict[str, Any]]:
    """Write the aggregated entries counted so far (``anonymous`` or ``token_failures``) and
    return their documents, durable."""
    runtime = gateway.client.app.state.runtime  # type: ignore[attr-defined]
    futures = getattr(runtime, which).flush(everything=True)
    service = AuditService(runtime.engine)
    return [service.entry(future.result(timeout=30)).document for future in futures]


# --- raw HTTP/1.1 over a socket ------------------------------------------------------------


@dataclass
class RawExchange:
    """What came back on one connection for bytes sent as they are."""

    data: bytes
    closed: bool

    @property
    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"HTTP/1\.[01] (\d{3}) ", self.data)]

    @property
    def request_ids(self) -> list[str]:
        return [v.decode() for v in re.findall(rb"(?im)^x-request-id: *([^\r\n]+)", self.data)]


def send_raw(
    port: int, data: bytes, *, first_timeout: float = 5.0, grace: float = 0.3
) -> RawExchange:
    """Send ``data`` on a fresh connection; read until the server closes it or goes quiet.

    Waits up to ``first_timeout`` for the first bytes, then ``grace`` for anything more
    (a smuggled second response would follow the first within milliseconds).
    """
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=first_timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            closed = True  # refused while we were still sending: that is a rejection too
        while not closed:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
            sock.settimeout(grace)
    return RawExchange(received, closed)


def healthz_request(request_id: str, *, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Request-Id: {request_id}\r\n{connection}\r\n"
    ).encode()


# --- statistics for the timing test --------------------------------------------------------


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of the first sample: pairs (x, y) with x > y, ties counting one half
    effect: float  # U / (n1 n2): P(X > Y) + P(X = Y) / 2, 0.5 when neither tends higher
    z: float
    p_two_sided: float


def mann_whitney_u(xs: Sequence[float], ys: Sequence[float]) -> MannWhitney:
    """Mann-Whitney U test with mid-ranks for ties and the tie-corrected normal approximation.

    The approximation is good for n1, n2 >= 20, which the timing test always has.
    """
    n1, n2 = len(xs), len(ys)
    pooled = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mid_rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = mid_rank
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    rank_sum_x = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u = rank_sum_x - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    z = 0.0 if variance <= 0 else (u - mean) / math.sqrt(variance)
    return MannWhitney(u, u / (n1 * n2), z, min(1.0, 2 * normal_sf(abs(z))))


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def hodges_lehmann_shift(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of all pairwise differences x - y: a robust estimate of how far X sits above Y."""
    return median([x - y for x in xs for y in ys])


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started
