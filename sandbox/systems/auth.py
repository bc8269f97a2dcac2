"""Authentication schemes of the sample systems.

Each authenticator is called with the request and returns None when it is accepted, or an
error message (the app answers 401 in its native error format). Secrets are compared in
constant time. Credentials always come from the caller (CLI args / env / tests).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

Authenticator = Callable[[Request], str | None]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client must present. ``secret`` is the API key, the OAuth client secret or the
    Basic password depending on the system; ``client_id`` is the OAuth client id / Basic user.
    """

    secret: str
    client_id: str = "gateway"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def api_key(header: str, key: str) -> Authenticator:
    """Accept requests whose ``header`` equals ``key``."""

    def check(request: Request) -> str | None:
        given = request.headers.get(header)
        if given is None:
            return f"missing {header}"
        return None if _same(given, key) else f"invalid {header}"

    return check


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def basic(credentials: Credentials) -> Authenticator:
    """HTTP Basic with user ``client_id`` and password ``secret``."""

    def check(request: Request) -> str | None:
        pair = _basic(request)
        if pair is None:
            return "missing basic credentials"
        ok = _same(pair[0], credentials.client_id) & _same(pair[1], credentials.secret)
        return None if ok else "invalid credentials"

    return check


class OAuthServer:
    """Tiny OAuth 2.0 client-credentials server (RFC 6749 §4.4, client_secret_basic).

    ``POST /oauth/token`` with ``grant_type=client_credentials`` issues an opaque random bearer
    token valid ``ttl_seconds``; :meth:`check` validates ``Authorization: Bearer``.
    """

    def __init__(self, credentials: Credentials, ttl_seconds: int = 600) -> None:
        self._credentials = credentials
        self.ttl_seconds = ttl_seconds
        self._tokens: dict[str, float] = {}

    def _error(self, status: int, code: str) -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="oauth"'} if status == 401 else {}
        body = orjson.dumps({"error": code})
        return Response(body, status, headers=headers, media_type="application/json")

    async def token(self, request: Request) -> Response:
        """The token endpoint."""
        pair = _basic(request)
        if pair is None or not (
            _same(pair[0], self._credentials.client_id) & _same(pair[1], self._credentials.secret)
        ):
            return self._error(401, "invalid_client")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return self._error(400, "unsupported_grant_type")
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.ttl_seconds
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return Response(orjson.dumps(body), headers=headers, media_type="application/json")

    def check(self, request: Request) -> str | None:
        """Authenticator for the data routes."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "missing bearer token"
        expiry = self._tokens.get(token)
        if expiry is None or expiry <= time.monotonic():
            return "invalid or expired token"
        return None
