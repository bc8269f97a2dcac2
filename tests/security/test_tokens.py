"""Attack matrix, tokens (T1-T16): forged, confused, stale, escalated and smuggled tokens.

Hand-made tokens are signed with the gateway's own key where only one thing is meant to be
wrong, so the refusal is that one thing's doing (the control case proves the crafting).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.auth.keys import generate_signing_key
from sandbox.server import serve_in_thread
from tests.auth.helpers import assert_invalid_token, claims_for, disable_client, sign, signing_key
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE, fresh_name, register
from tests.security.helpers import (
    audit_entry,
    b64url,
    b64url_decode,
    bearer,
    jwt_parts,
    raw_jwt,
)

ME = "/v1/me"


def _claims(gw: Gateway, client: str = "court", **overrides: Any) -> dict[str, Any]:
    return claims_for(gw.settings, gw.clients[client].client_id, **overrides)


def _header(gw: Gateway, **changes: Any) -> dict[str, Any]:
    ours = signing_key(gw.settings)
    header = {"alg": ours.alg, "typ": "at+jwt", "kid": ours.kid, **changes}
    return {k: v for k, v in header.items() if v is not None}


def _attacker_key(gw: Gateway, kid: str = "attacker-1") -> Any:
    """A key of the same type and algorithm as the gateway's, that the gateway never saw."""
    return generate_signing_key(signing_key(gw.settings).alg, kid)


def _me(gw: Gateway, token: str) -> Any:
    return gw.client.get(ME, headers=bearer(token))


def test_control_hand_made_token_is_accepted(sec: Gateway) -> None:
    response = _me(sec, raw_jwt(_header(sec), _claims(sec), signing_key(sec.settings)))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == sec.clients["court"].client_id


# T1
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_t01_alg_none(sec: Gateway, alg: str) -> None:
    assert_invalid_token(_me(sec, raw_jwt(_header(sec, alg=alg), _claims(sec))))
    # an "alg: none" token with a signature appended is no better
    signed_like = raw_jwt(_header(sec, alg=alg), _claims(sec)) + b64url(b"x" * 64)
    assert_invalid_token(_me(sec, signed_like))


# T2
def test_t02_hs256_signed_with_the_public_key(sec: Gateway) -> None:
    """HS/RS confusion: HMAC keyed with the published public key, in every spelling."""
    public = sec.client.get("/.well-known/jwks.json").json()["keys"][0]
    material = public["n"] if public["kty"] == "RSA" else public["x"]
    keys_as_secrets = [
        json.dumps(public).encode(),
        json.dumps(public, separators=(",", ":"), sort_keys=True).encode(),
        material.encode(),
        b64url_decode(material),
    ]
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        for secret in keys_as_secrets:
            signing_input = f"{b64url(_header(sec, alg=alg))}.{b64url(_claims(sec))}"
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            body = assert_invalid_token(_me(sec, f"{signing_input}.{b64url(mac)}"))
            assert body["detail"] == "unsupported token algorithm"


# T3
def test_t03_wrong_key(sec: Gateway) -> None:
    kid = signing_key(sec.settings).kid
    attacker = _attacker_key(sec, kid)
    assert_invalid_token(_me(sec, raw_jwt(_header(sec), _claims(sec), attacker)))
    unknown_kid = _attacker_key(sec)
    assert_invalid_token(_me(sec, sign(_claims(sec), unknown_kid)))
    # Our kid, another key type and algorithm: refused before any signature check.
    for other in (
        RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256"}),
        OKPKey.generate_key("Ed25519", parameters={"kid": kid, "alg": "Ed25519"}),
    ):
        if other.alg != signing_key(sec.settings).alg:
            assert_invalid_token(_me(sec, sign(_claims(sec), other)))


# T4
@pytest.mark.parametrize(
    ("claim", "offset"),
    [("exp", -3600), ("exp", -31), ("nbf", 3600), ("nbf", 60), ("iat", None)],
    ids=["expired-1h", "expired-beyond-leeway", "nbf-1h", "nbf-beyond-leeway", "no-iat-ok"],
)
def test_t04_expired_and_not_yet_valid(sec: Gateway, claim: str, offset: int | None) -> None:
    now = int(time.time())
    if offset is None:  # control: iat is informative only
        token = raw_jwt(_header(sec), _claims(sec, iat=None), signing_key(sec.settings))
        assert _me(sec, token).status_code == 200
        return
    token = raw_jwt(_header(sec), _claims(sec, **{claim: now + offset}), signing_key(sec.settings))
    assert_invalid_token(_me(sec, token))


# T5
@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"iss": "http://testserver/"},
        {"iss": None},
        {"aud": "another-gateway"},
        {"aud": ["another-gateway"]},
        {"aud": None},
        {"sub": None},
    ],
    ids=["iss-foreign", "iss-trailing-slash", "iss-missing", "aud", "aud-list", "aud-none", "sub"],
)
def test_t05_wrong_issuer_or_audience(sec: Gateway, change: dict[str, Any]) -> None:
    token = raw_jwt(_header(sec), _claims(sec, **change), signing_key(sec.settings))
    assert_invalid_token(_me(sec, token))


# T6
@pytest.mark.parametrize("scope", ["exchange audit:read", "policy:admin", "audit:read", "admin"])
def test_t06_token_endpoint_refuses_scopes_the_client_lacks(sec: Gateway, scope: str) -> None:
    court = sec.clients["court"]
    response = sec.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(court.client_id, court.client_secret),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_scope"
    assert "access_token" not in response.json()


# T7
def test_t07_edited_scope_claim(sec: Gateway) -> None:
    header, _, signature = sec.token("court").split(".")
    edited = {**jwt_parts(sec.token("court"))[1], "scope": "exchange audit:read policy:admin"}
    forged = f"{header}.{b64url(edited)}.{signature}"
    assert_invalid_token(_me(sec, forged))
    assert_invalid_token(sec.client.get("/v1/audit/entries", headers=bearer(forged)))
    # Even signed with the gateway's own key, a scope claim beyond the registration is capped.
    oversized = raw_jwt(
        _header(sec), _claims(sec, scope="exchange audit:read"), signing_key(sec.settings)
    )
    assert _me(sec, oversized).json()["scopes"] == ["exchange"]
    refused = sec.client.get("/v1/audit/entries", headers=bearer(oversized))
    assert refused.status_code == 403


# T8
def test_t08_disabled_clients_live_token_is_refused_at_once(sec: Gateway) -> None:
    """Revocation: refused within GATEWAY_CLIENT_CACHE_SECONDS (0 here), on every route."""
    name = fresh_name("revoked")
    cred = register(sec, name, "FY640104", ["exchange"])
    headers = exchange_headers(sec, name, "TRIAL", COURT_CASE)
    assert sec.client.get(ME, headers=headers).status_code == 200
    assert sec.client.get("/v1/resources/case/C00000020", headers=headers).status_code == 200
    disable_client(sec.settings, cred.client_id)
    assert_invalid_token(sec.client.get(ME, headers=headers))
    refused = sec.client.get("/v1/resources/case/C00000020", headers=headers)
    assert_invalid_token(refused)
    assert "case_name" not in refused.text
    assert audit_entry(sec, refused)["decision"] == "invalid"
    again = sec.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cred.client_id, cred.client_secret),
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"


# T9
@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["x-gateway-ext"], "x-gateway-ext": True},
        {"crit": ["x-gateway-ext"]},
        {"crit": ["exp"]},
        {"crit": "kid"},
        {"x-gateway-ext": True},
        {"b64": False, "crit": ["b64"]},
        {"zip": "DEF"},
    ],
    ids=["crit-unknown", "crit-absent", "crit-claim", "crit-not-list", "unknown", "b64", "zip"],
)
def test_t09_crit_and_unknown_header_parameters_are_refused(
    sec: Gateway, extra: dict[str, Any]
) -> None:
    """RFC 7515 4.1.11: a crit extension the gateway does not implement must fail; the header
    registry is closed, so unknown parameters (and b64/zip tricks) fail too."""
    header = _header(sec, **extra)
    assert_invalid_token(_me(sec, raw_jwt(header, _claims(sec), signing_key(sec.settings))))


class KeyHost:
    """An attacker's JWKS / certificate host that counts the gateway's visits."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.hits = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.serve)])

    async def serve(self, request: Request) -> JSONResponse:
        self.hits += 1
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})


@pytest.fixture(scope="module")
def key_host(sec: Gateway) -> Iterator[tuple[KeyHost, str]]:
    kid = signing_key(sec.settings).kid
    host = KeyHost(_attacker_key(sec, kid))
    with serve_in_thread(host.app) as url:  # type: ignore[arg-type]
        yield host, url


# T10
@pytest.mark.parametrize("where", ["jku", "x5u", "jwk", "x5c"])
def test_t10_key_location_headers_are_ignored(
    sec: Gateway, key_host: tuple[KeyHost, str], where: str
) -> None:
    """A token naming its own key (jku/x5u URL, embedded jwk/x5c) is verified with ours only."""
    host, url = key_host
    pointer: Any = {
        "jku": f"{url}/jwks.json",
        "x5u": f"{url}/cert.pem",
        "jwk": host.key.as_dict(private=False),
        "x5c": [b64url(b"not a certificate")],
    }[where]
    hits = host.hits
    forged = raw_jwt(_header(sec, **{where: pointer}), _claims(sec), host.key)
    assert_invalid_token(_me(sec, forged))
    # The same header on a token our key signed changes nothing: the header is not used.
    header = _header(sec, **{where: pointer})
    genuine = raw_jwt(header, _claims(sec), signing_key(sec.settings))
    if len(b64url(header)) <= 512:
        assert _me(sec, genuine).status_code == 200
    else:  # an embedded RSA key makes the header too big to parse at all (joserfc: 512 bytes)
        assert_invalid_token(_me(sec, genuine))
    assert host.hits == hits, "the gateway fetched a key from a URL the token named"


# T11
@pytest.mark.parametrize(
    "kid",
    [
        "../../keys/signing-keys.json",
        "../../../../../../etc/passwd",
        "/dev/zero",
        "file:///etc/passwd",
        "' OR '1'='1",
        "kid\x00.json",
        "k" * 4000,
    ],
    ids=["relative", "etc-passwd", "dev-zero", "file-url", "sql", "nul", "long"],
)
def test_t11_kid_traversal_and_injection(sec: Gateway, kid: str) -> None:
    """kid is only compared with the loaded key set's ids; it never names a file or query."""
    started = time.perf_counter()
    genuine_signature = raw_jwt(_header(sec, kid=kid), _claims(sec), signing_key(sec.settings))
    assert_invalid_token(_me(sec, genuine_signature))
    attacker = _attacker_key(sec)
    assert_invalid_token(_me(sec, raw_jwt(_header(sec, kid=kid), _claims(sec), attacker)))
    assert time.perf_counter() - started < 5.0


# T12
def test_t12_very_long_token(sec: Gateway) -> None:
    real = sec.token("court")
    # Within the 32 KiB header block: refused by the token check, before any parsing.
    for token in ("a" * 20_000, real + "." + "A" * 20_000, real[:20] + "A" * 25_000 + real[20:]):
        started = time.perf_counter()
        body = assert_invalid_token(_me(sec, token))
        assert body["detail"] == "token too long"
        assert time.perf_counter() - started < 1.0
    # Beyond it: refused with 431 before authentication runs at all (W9).
    for token in ("a" * 100_000, real[:20] + "A" * 50_000 + real[20:]):
        response = _me(sec, token)
        assert response.status_code == 431, response.text[:300]
        assert response.headers["content-type"] == "application/problem+json"


# T13
def test_t13_token_only_in_the_authorization_header(sec: Gateway) -> None:
    """Not in the query string (logged by proxies), not in a cookie, and no Basic auth."""
    token = sec.token("court")
    court = sec.clients["court"]
    for response in (
        sec.client.get(f"{ME}?access_token={token}"),
        sec.client.get(ME, params={"token": token}),
        sec.client.get(ME, headers={"Cookie": f"access_token={token}"}),
        sec.client.get(ME, auth=(court.client_id, court.client_secret)),
        sec.client.get(ME, headers={"Authorization": f"Token {token}"}),
        sec.client.get(ME, headers={"Authorization": f"JWT {token}"}),
        sec.client.get(ME, headers={"X-Access-Token": token}),
    ):
        assert_invalid_token(response)
    assert sec.client.get(f"/v1/audit/entries?access_token={token}").status_code == 401


# T14
@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token+jwt", None])
def test_t14_other_token_types_are_not_access_tokens(sec: Gateway, typ: str | None) -> None:
    token = raw_jwt(_header(sec, typ=typ), _claims(sec), signing_key(sec.settings))
    assert_invalid_token(_me(sec, token))


# T15
def test_t15_replayed_token_is_just_its_client(sec: Gateway) -> None:
    """Documented: a bearer token is a bearer token. Whoever replays the court's token acts
    as the court, no more: the court's permissions, and the audit names the court."""
    stolen = sec.token("court")
    me = sec.client.get(ME, headers={**bearer(stolen), "X-Client-Id": "attacker"})
    assert me.json()["client_id"] == sec.clients["court"].client_id
    headers = {**bearer(stolen), "X-Purpose": "TRIAL", "X-Operator-Id": "mallory"}
    response = sec.client.get("/v1/resources/case/C00000020", headers=headers)
    assert response.status_code in (400, 403), response.text  # no case named: not for TRIAL
    entry = audit_entry(sec, response)
    assert entry["requester"]["client_id"] == sec.clients["court"].client_id
    assert entry["requester"]["agency"] == "FY640104"
    assert entry["requester"]["operator_id"] == "mallory"  # the named officer is recorded


# T16
def test_t16_agency_claim_cannot_override_the_registry(sec: Gateway) -> None:
    """Defence in depth: like scopes, the agency a token acts for is the registered one."""
    token = raw_jwt(_header(sec), _claims(sec, agency="GA640104"), signing_key(sec.settings))
    response = _me(sec, token)
    assert response.status_code in (200, 401)
    if response.status_code == 200:
        assert response.json()["agency"] == "FY640104"
