"""Bearer token verification on protected routes: every bad token is a 401, never a 500.

Claim-level cases are signed with the gateway's own private key (read from its key
file), so that only the one claim under test is wrong; the control case proves the
hand-made token is otherwise accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from fastapi.security import HTTPBearer
from joserfc.jwk import ECKey, OKPKey
from starlette.requests import Request

from gateway.auth.deps import bearer_token
from gateway.auth.keys import generate_signing_key
from tests.auth.fixtures import fresh_name
from tests.auth.helpers import (
    assert_invalid_token,
    b64url,
    bearer,
    claims_for,
    disable_client,
    segments,
    sign,
    signing_key,
)
from tests.conftest import Gateway


def _me(gateway: Gateway, headers: dict[str, str]) -> Any:
    return gateway.client.get("/v1/me", headers=headers)


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url(header)}.{b64url(claims)}.{b64url(signature) if signature else ''}"


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def test_hand_made_token_with_our_key_is_accepted(shared_gateway: Gateway) -> None:
    """The control case: the crafting below is right, so each refusal is the claim's doing."""
    court = shared_gateway.clients["court"]
    token = sign(
        claims_for(shared_gateway.settings, court.client_id), signing_key(shared_gateway.settings)
    )
    response = _me(shared_gateway, bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == court.client_id


# --- missing and malformed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic Y291cnQ6c2VjcmV0",
        "Token abc",
        "Bearer not-a-jwt",
        "Bearer a.b",
        "Bearer a.b.c",
        "Bearer ..",
        "Bearer a.b.c.d.e",
        "Bearer eyJhbGciOiJFZDI1NTE5In0.%%%.abc",
        "Bearer " + b64url([1]) + "." + b64url({}) + ".sig",
        "Bearer " + b64url(b"null") + "." + b64url(b"null") + ".sig",
        "Bearer " + b64url(b"\xff\xfe") + "." + b64url({}) + ".sig",
    ],
)
def test_missing_or_malformed_token(shared_gateway: Gateway, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_invalid_token(_me(shared_gateway, headers))


def test_overlong_token(shared_gateway: Gateway) -> None:
    court = shared_gateway.clients["court"]
    claims = claims_for(shared_gateway.settings, court.client_id, padding="x" * 9000)
    token = sign(claims, signing_key(shared_gateway.settings))
    assert_invalid_token(_me(shared_gateway, bearer(token)))


@pytest.mark.parametrize(
    "header_change",
    [{"kid": []}, {"kid": {"a": 1}}, {"kid": 7}, {"alg": ["Ed25519"]}, {"alg": 5}, {"alg": None}],
)
def test_malformed_header_values(shared_gateway: Gateway, header_change: dict[str, Any]) -> None:
    """Header values of the wrong JSON type are refused, not a TypeError (500)."""
    token = shared_gateway.token("court")
    _, claims_b64, signature = token.split(".")
    header, _ = segments(token)
    forged = f"{b64url({**header, **header_change})}.{claims_b64}.{signature}"
    assert_invalid_token(_me(shared_gateway, bearer(forged)))


# --- forged signatures -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(shared_gateway: Gateway, alg: str) -> None:
    settings = shared_gateway.settings
    court = shared_gateway.clients["court"]
    kid = signing_key(settings).kid
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    claims = claims_for(settings, court.client_id)
    assert_invalid_token(_me(shared_gateway, bearer(_unsigned(header, claims))))
    # ... also with a signature segment copied from a real token.
    real_signature = shared_gateway.token("court").split(".")[2]
    forged = f"{b64url(header)}.{b64url(claims)}.{real_signature}"
    assert_invalid_token(_me(shared_gateway, bearer(forged)))


def test_hs256_key_confusion(shared_gateway: Gateway) -> None:
    """HS256 "signed" with the published public key must not verify (RFC 8725 §2.1)."""
    settings = shared_gateway.settings
    court = shared_gateway.clients["court"]
    jwk = shared_gateway.client.get("/.well-known/jwks.json").json()["keys"][0]
    claims = claims_for(settings, court.client_id, scope="exchange audit:read policy:admin")
    material = jwk["n"] if jwk["kty"] == "RSA" else jwk["x"]
    candidates = [
        json.dumps(jwk).encode(),
        json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
        base64.urlsafe_b64decode(material + "=" * (-len(material) % 4)),
        material.encode(),
    ]
    for alg in ("HS256", "hs256"):
        header = {"alg": alg, "typ": "at+jwt", "kid": jwk["kid"]}
        for secret in candidates:
            assert_invalid_token(_me(shared_gateway, bearer(_hs256(header, claims, secret))))


def test_foreign_key_with_our_kid(shared_gateway: Gateway) -> None:
    settings = shared_gateway.settings
    court = shared_gateway.clients["court"]
    kid = signing_key(settings).kid
    foreign = generate_signing_key(signing_key(settings).alg, kid)  # same type, not ours
    token = sign(claims_for(settings, court.client_id), foreign)
    assert segments(token)[0]["kid"] == kid
    assert_invalid_token(_me(shared_gateway, bearer(token)))


def test_foreign_key_with_unknown_kid(shared_gateway: Gateway) -> None:
    court = shared_gateway.clients["court"]
    foreign = OKPKey.generate_key("Ed25519", parameters={"kid": "someone-elses"})
    token = sign(claims_for(shared_gateway.settings, court.client_id), foreign)
    assert_invalid_token(_me(shared_gateway, bearer(token)))


def test_other_algorithm_with_our_kid(shared_gateway: Gateway) -> None:
    settings = shared_gateway.settings
    court = shared_gateway.clients["court"]
    kid = signing_key(settings).kid
    ec = ECKey.generate_key("P-256", parameters={"kid": kid})
    token = sign(claims_for(settings, court.client_id), ec, alg="ES256")
    assert_invalid_token(_me(shared_gateway, bearer(token)))


def test_tampered_payload_keeps_old_signature(shared_gateway: Gateway) -> None:
    token = shared_gateway.token("court")
    header_b64, _, signature = token.split(".")
    _, claims = segments(token)
    for change in ({"scope": "exchange audit:read"}, {"agency": "GA640104"}, {"exp": 2**40}):
        forged = f"{header_b64}.{b64url({**claims, **change})}.{signature}"
        assert_invalid_token(_me(shared_gateway, bearer(forged)))


def test_truncated_and_altered_signature(shared_gateway: Gateway) -> None:
    token = shared_gateway.token("court")
    head, signature = token.rsplit(".", 1)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged in (f"{head}.", f"{head}.{signature[:-4]}", f"{head}.{flipped}"):
        assert_invalid_token(_me(shared_gateway, bearer(forged)))


# --- claims, signed with the gateway's own key -----------------------------------------------


def _claim_cases(gateway: Gateway) -> dict[str, dict[str, Any]]:
    now = int(time.time())
    ttl = gateway.settings.token_ttl_seconds
    return {
        "wrong issuer": {"iss": "https://evil.example"},
        "issuer with trailing slash": {"iss": gateway.settings.issuer + "/"},
        "wrong audience": {"aud": "some-other-service"},
        "audience list without ours": {"aud": ["a", "b"]},
        "expired": {"iat": now - ttl - 120, "nbf": now - ttl - 120, "exp": now - 120},
        "not yet valid": {"nbf": now + 600, "iat": now},
        "no exp": {"exp": None},
        "no sub": {"sub": None},
        "no aud": {"aud": None},
        "exp not a number": {"exp": "tomorrow"},
        "sub not a string": {"sub": ["x"]},
        "unknown client": {"sub": "gw-0000000000000000", "client_id": "gw-0000000000000000"},
    }


CLAIM_CASES = [
    "wrong issuer",
    "issuer with trailing slash",
    "wrong audience",
    "audience list without ours",
    "expired",
    "not yet valid",
    "no exp",
    "no sub",
    "no aud",
    "exp not a number",
    "sub not a string",
    "unknown client",
]


@pytest.mark.parametrize("case", CLAIM_CASES)
def test_bad_claim_signed_with_our_key(shared_gateway: Gateway, case: str) -> None:
    court = shared_gateway.clients["court"]
    claims = claims_for(
        shared_gateway.settings, court.client_id, **_claim_cases(shared_gateway)[case]
    )
    token = sign(claims, signing_key(shared_gateway.settings))
    assert_invalid_token(_me(shared_gateway, bearer(token)))


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "application/jwt", "dpop+jwt"])
def test_not_an_access_token_typ(shared_gateway: Gateway, typ: str | None) -> None:
    """RFC 9068 §4: the typ must be at+jwt (an ID token or other JWT is not a bearer token)."""
    court = shared_gateway.clients["court"]
    token = sign(
        claims_for(shared_gateway.settings, court.client_id),
        signing_key(shared_gateway.settings),
        typ=typ,
    )
    assert_invalid_token(_me(shared_gateway, bearer(token)))


def test_full_media_type_typ_is_accepted(shared_gateway: Gateway) -> None:
    """RFC 9068 §4 allows "application/at+jwt" as well."""
    court = shared_gateway.clients["court"]
    token = sign(
        claims_for(shared_gateway.settings, court.client_id),
        signing_key(shared_gateway.settings),
        typ="application/at+jwt",
    )
    assert _me(shared_gateway, bearer(token)).status_code == 200


def test_scope_claim_cannot_exceed_the_registered_scopes(shared_gateway: Gateway) -> None:
    court = shared_gateway.clients["court"]
    claims = claims_for(
        shared_gateway.settings, court.client_id, scope="exchange audit:read policy:admin"
    )
    response = _me(shared_gateway, bearer(sign(claims, signing_key(shared_gateway.settings))))
    assert response.status_code == 200
    assert response.json()["scopes"] == ["exchange"]


def test_expired_token_from_the_endpoint(
    shared_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real issued token, presented after exp + leeway, is refused (also from the cache)."""
    cred = shared_gateway.register(fresh_name("expiring"), "FY640104", ["exchange"])
    response = shared_gateway.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cred.client_id, cred.client_secret),
    )
    token = response.json()["access_token"]
    assert _me(shared_gateway, bearer(token)).status_code == 200  # verified and cached
    _, claims = segments(token)
    monkeypatch.setattr(time, "time", lambda: float(claims["exp"] + 31))
    body = assert_invalid_token(_me(shared_gateway, bearer(token)))
    # The caller is told what to do: fetch a new token, from this gateway's token endpoint.
    assert "expired" in body["detail"]
    assert f"request a new one ({shared_gateway.settings.issuer}/oauth/token" in body["detail"]


# --- a disabled client's live token ----------------------------------------------------------


def test_disabled_clients_live_token_is_refused(backend_gateway: Gateway) -> None:
    gateway = backend_gateway
    assert gateway.settings.client_cache_seconds == 0
    cred = gateway.register(fresh_name("soon-disabled"), "FY640104", ["exchange"])
    response = gateway.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cred.client_id, cred.client_secret),
    )
    token = response.json()["access_token"]
    assert _me(gateway, bearer(token)).status_code == 200  # now also in the verify cache
    disable_client(gateway.settings, cred.client_id)
    body = assert_invalid_token(_me(gateway, bearer(token)))
    assert "disabled" in body["detail"]
    assert _me(gateway, gateway.auth("police")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer  abc ", "bearer abc", "BEARER abc", "Basic abc",
     "Bearerabc", " Bearer abc", "Bearer a b", "Token abc", "Bearer\tabc"],
)  # fmt: skip
async def test_the_flat_step_reads_the_header_as_http_bearer(authorization: str | None) -> None:
    """The exchange routes read the token without FastAPI's ``HTTPBearer`` dependency
    (``bearer_token``): the same header gives the same token, or none, as on every other route."""
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    request = Request({"type": "http", "headers": headers})
    credentials = await HTTPBearer(auto_error=False)(request)
    expected = None if credentials is None else credentials.credentials
    assert bearer_token(request.headers.get("authorization")) == expected
