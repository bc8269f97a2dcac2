"""Attack matrix, oversize and smuggling (W1-W10), on a REAL server over raw sockets.

The ``live`` fixture serves the gateway with uvicorn + httptools + uvloop, as ``gateway
serve`` does. Each smuggling attempt hides a second request (``GET /healthz`` with a unique
``X-Request-Id``, which the gateway echoes) where a lenient parser would find it. The gateway
must answer 4xx or close the connection, never answer the hidden request, and keep serving.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.security.conftest import LIVE_MAX_BODY, LiveGateway
from tests.security.helpers import RawExchange, healthz_request, send_raw

FRONT = "POST /oauth/token HTTP/1.1\r\nHost: gateway\r\n"
FORM = "Content-Type: application/x-www-form-urlencoded\r\n"


def _smuggle(template: str) -> tuple[bytes, str]:
    marker = f"smuggled-{uuid.uuid4().hex[:12]}"
    return _build(template, healthz_request(marker)), marker


def _assert_refused(result: RawExchange, marker: str) -> None:
    assert marker not in result.request_ids, f"the hidden request was served: {result.data!r}"
    assert result.statuses or result.closed, result.data
    for status in result.statuses:
        assert 400 <= status < 500, result.data[:500]


def _assert_still_serving(live: LiveGateway) -> None:
    result = send_raw(live.port, healthz_request(f"after-{uuid.uuid4().hex[:12]}", close=True))
    assert result.statuses == [200], result.data


def test_control_pipelining_is_served_in_order(live: LiveGateway) -> None:
    """Control: two honest pipelined requests are both answered; the marker check works."""
    first, second = f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}"
    result = send_raw(live.port, healthz_request(first) + healthz_request(second, close=True))
    assert result.statuses == [200, 200]
    assert result.request_ids == [first, second]


# Templates: {h} is the hidden request, {n} its length, {n5} its length + 5 (the "0\r\n\r\n"
# of an empty chunked body in front of it), {x} its length in hex, {big} over the body limit.
SMUGGLING: dict[str, str] = {
    # W1: CL.TE - a front end using Content-Length forwards the whole; TE would split it
    "cl-te": "{front}Content-Length: {n5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{h}",
    # W2: TE.CL - the reverse
    "te-cl": (
        "{front}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{x}\r\n{h}\r\n0\r\n\r\n"
    ),
    # W3: two Content-Length values, the same value twice, a list
    "cl-cl": "{front}Content-Length: 0\r\nContent-Length: {n}\r\n\r\n{h}",
    "cl-cl-same": "{front}Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n{h}",
    "cl-list": "{front}Content-Length: 0, {n}\r\n\r\n{h}",
    # W4: obfuscated Transfer-Encoding
    "te-xchunked": "{front}Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n\r\n{h}",
    "te-space-before-colon": (
        "{front}Transfer-Encoding : chunked\r\nContent-Length: {n5}\r\n\r\n0\r\n\r\n{h}"
    ),
    "te-twice": (
        "{front}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{h}"
    ),
    "te-chunked-identity": "{front}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{h}",
    "te-obs-fold": "{front}Transfer-Encoding:\r\n chunked\r\nContent-Length: {n}\r\n\r\n{h}",
    "te-http10": (
        "POST /oauth/token HTTP/1.0\r\nHost: gateway\r\n{form}"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{h}"
    ),
    # W5: malformed Content-Length and chunk framing, bare LF line ends
    "cl-plus-sign": "{front}Content-Length: +{n}\r\n\r\n{h}",
    "cl-negative": "{front}Content-Length: -1\r\n\r\n{h}",
    "cl-hex": "{front}Content-Length: 0x{x}\r\n\r\n{h}",
    "chunk-size-overflow": "{front}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{h}",
    "chunk-ext-nul": ("{front}Transfer-Encoding: chunked\r\n\r\n5;\x00\r\nabcde\r\n0\r\n\r\n{h}"),
    "bare-lf": (
        "POST /oauth/token HTTP/1.1\nHost: gateway\nContent-Length: 0\n"
        "Transfer-Encoding: chunked\n\n0\n\n{h}"
    ),
    # W6: a hidden request inside a body the gateway refuses as too large
    "oversize-body-by-cl": "{front}Content-Length: {big}\r\n\r\n{h}{padding}",
}


def _build(template: str, hidden: bytes) -> bytes:
    big = LIVE_MAX_BODY + 100
    return template.format(
        front=FRONT + FORM,
        form=FORM,
        h=hidden.decode(),
        n=len(hidden),
        n5=len(hidden) + 5,
        x=f"{len(hidden):x}",
        big=big,
        padding="x" * (big - len(hidden)),
    ).encode()


# W1-W6
@pytest.mark.parametrize("attack", sorted(SMUGGLING))
def test_w01_w06_request_smuggling_and_framing(live: LiveGateway, attack: str) -> None:
    data, marker = _smuggle(SMUGGLING[attack])
    _assert_refused(send_raw(live.port, data), marker)
    _assert_still_serving(live)


# W7
def test_w07_chunked_body_over_the_limit(live: LiveGateway) -> None:
    chunk = b"a" * 1024
    body = b"".join(b"400\r\n" + chunk + b"\r\n" for _ in range(LIVE_MAX_BODY // 1024 + 2))
    data = (f"{FRONT}{FORM}Transfer-Encoding: chunked\r\n\r\n").encode() + body + b"0\r\n\r\n"
    result = send_raw(live.port, data)
    assert result.statuses[:1] == [413], result.data[:300]
    _assert_still_serving(live)


def test_w07b_huge_content_length_is_refused_before_the_body(live: LiveGateway) -> None:
    """A 100 GB Content-Length is answered at once, without waiting for (or buffering) it."""
    data = (f"{FRONT}{FORM}Content-Length: 99999999999\r\n\r\nabc").encode()
    result = send_raw(live.port, data, first_timeout=3.0)
    assert result.statuses[:1] == [413], result.data[:300]
    _assert_still_serving(live)


# W8
@pytest.mark.parametrize(
    "target",
    ["/healthz?" + "a" * 1_048_576, "/v1/resources/person/" + "P" * 1_048_576],
    ids=["query-1MiB", "path-1MiB"],
)
def test_w08_oversize_request_line(live: LiveGateway, target: str) -> None:
    result = send_raw(live.port, f"GET {target} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    assert result.statuses or result.closed
    assert all(400 <= s < 500 for s in result.statuses), result.data[:300]
    _assert_still_serving(live)


# W9
@pytest.mark.parametrize("shape", ["one-1MiB-header", "20000-headers"])
def test_w09_oversize_headers_are_refused(live: LiveGateway, shape: str) -> None:
    if shape == "one-1MiB-header":
        extra = b"X-Padding: " + b"a" * 1_048_576 + b"\r\n"
    else:
        extra = b"".join(b"X-Padding-%d: a\r\n" % i for i in range(20_000))
    data = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + extra + b"\r\n"
    result = send_raw(live.port, data)
    assert 200 not in result.statuses, "an oversize header block was served"
    assert result.statuses[:1] == [431], result.data[:300]
    assert b"application/problem+json" in result.data
    _assert_still_serving(live)


def test_w09b_oversize_header_values_reach_no_parser_unchecked(sec: Gateway) -> None:
    """At the application: 16 KiB exchange headers (under the 32 KiB header-block limit) are
    refused by what reads them."""
    big = "A" * 16_384
    base = {"X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    cases = [
        ({**base, **sec.auth("court"), "X-Case-Number": big}, 400),
        ({**base, **sec.auth("court"), "X-Operator-Id": big}, 400),
        ({**base, **sec.auth("court"), "X-Purpose": big}, 400),
        ({**base, "Authorization": "Bearer " + big}, 401),
        ({**base, **sec.auth("court"), "X-Request-Id": big}, 403),  # replaced; no case: 403
    ]
    for headers, status in cases:
        response = sec.client.get("/v1/resources/case/C00000020", headers=headers)
        assert response.status_code == status, response.text[:300]
        assert len(response.text) < 2_000  # the value is not echoed back
        assert big not in response.headers.get("x-request-id", "")


# W10
def test_w10_the_launcher_pins_the_strict_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """W1-W9 hold for httptools; uvicorn's pure-Python h11 parser answers a hidden request
    behind Transfer-Encoding + Content-Length. ``gateway serve`` must keep httptools."""
    from gateway import cli_commands as cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("GATEWAY_MODE", "demo")
    args = argparse.Namespace(host=None, port=None, workers=1)
    cli.cmd_serve(args)
    assert seen["http"] == "httptools"
    assert seen["server_header"] is False
