"""Helpers for the auth and error tests: problem+json checks and hand-made JWTs."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import JWKRegistry

from gateway.observability.logging import configure_logging
from gateway.settings import Settings
from tests.problem_text import wording_problems

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with our request id, and no internals."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert not wording_problems(body["detail"]), body["detail"]
    if slug is not None:
        assert body["type"] == f"/problems/{slug}"
    assert body["request_id"], body
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def assert_invalid_token(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401, "invalid-token")
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    return body


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 error body; never a token."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    if error == "invalid_client":
        assert response.headers["www-authenticate"].startswith("Basic ")
    return body


def b64url(data: bytes | dict[str, Any] | list[Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, unverified."""
    header, claims, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))),
    )


def key_file_document(settings: Settings) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(settings.resolved_keys_path).read_text())
    return document


def signing_key(settings: Settings, kid: str | None = None) -> Any:
    """The gateway's own private key (the active one unless ``kid`` is given), of any type."""
    document = key_file_document(settings)
    kid = kid or document["active"]
    for raw in document["keys"]:
        if raw["kid"] == kid:
            fields = {k: v for k, v in raw.items() if k not in ("created_at", "retired_at")}
            return JWKRegistry.import_key(fields)
    raise LookupError(kid)


def claims_for(settings: Settings, client_id: str, /, **overrides: Any) -> dict[str, Any]:
    """Claims exactly like the gateway's own, for ``client_id``; ``None`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": client_id,
        "aud": settings.audience,
        "exp": now + settings.token_ttl_seconds,
        "iat": now,
        "nbf": now,
        "jti": f"test-{now}-{id(overrides)}",
        "client_id": client_id,
        "scope": "exchange",
        "agency": "FY640104",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: Any, *, alg: str | None = None, **header: Any) -> str:
    """A JWT signed with ``key``, by default with the key's own algorithm."""
    alg = alg or key.alg or "Ed25519"
    full_header = {"alg": alg, "typ": "at+jwt", **({"kid": key.kid} if key.kid else {}), **header}
    full_header = {k: v for k, v in full_header.items() if v is not None}
    return jwt.encode(full_header, claims, key, algorithms=[alg])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def disable_client(settings: Settings, client_id: str) -> None:
    """Disable a client the way ``gateway clients disable`` does."""
    from gateway.auth.clients import ClientService
    from gateway.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            ClientService(session).disable(client_id)
    finally:
        engine.dispose()


@contextmanager
def logging_restored(level: str) -> Iterator[None]:
    """Afterwards, log to the process's stderr again (not a test's closed capture stream)."""
    try:
        yield
    finally:
        saved = sys.stderr
        sys.stderr = sys.__stderr__
        try:
            configure_logging(level, json=True)
        finally:
            sys.stderr = saved
