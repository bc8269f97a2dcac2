"""POST /oauth/token: RFC 6749 §4.4 client credentials, §2.3 client auth, §5.2 errors."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from gateway.auth import passwords
from gateway.auth.models import OAuthClient
from gateway.auth.passwords import verify_secret
from gateway.db import create_db_engine, make_session_factory, session_scope
from tests.auth.fixtures import fresh_name, started_gateway
from tests.auth.helpers import assert_oauth_error, bearer, disable_client, segments
from tests.conftest import TEST_ISSUER, Gateway

FORM = {"content-type": "application/x-www-form-urlencoded"}
GRANT = {"grant_type": "client_credentials"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _assert_token_response(response: Any, scope: str, ttl: int = 300) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ttl
    assert body["scope"] == scope
    assert body["access_token"].count(".") == 2
    return body


# --- the two client authentication methods ------------------------------------------------


def test_client_secret_basic_and_post(backend_gateway: Gateway) -> None:
    gateway = backend_gateway
    court, police = gateway.clients["court"], gateway.clients["police"]
    basic = gateway.client.post(
        "/oauth/token", data=GRANT, auth=(court.client_id, court.client_secret)
    )
    token = _assert_token_response(basic, "exchange")["access_token"]
    me = gateway.client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["client_id"] == court.client_id

    form = {**GRANT, "client_id": police.client_id, "client_secret": police.client_secret}
    token = _assert_token_response(gateway.client.post("/oauth/token", data=form), "exchange")[
        "access_token"
    ]
    me = gateway.client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() == {
        "client_id": police.client_id,
        "name": "police",
        "agency": "GA640104",
        "scopes": ["exchange"],
        "issuer": TEST_ISSUER,
        "expires_at": me.json()["expires_at"],
    }


def test_basic_with_matching_client_id_in_body(shared_gateway: Gateway) -> None:
    cred = shared_gateway.clients["court"]
    response = shared_gateway.client.post(
        "/oauth/token",
        data={**GRANT, "client_id": cred.client_id},
        auth=(cred.client_id, cred.client_secret),
    )
    _assert_token_response(response, "exchange")


# --- the token itself (RFC 9068) -------------------------------------------------------------


def test_token_header_and_claims(shared_gateway: Gateway) -> None:
    cred = shared_gateway.clients["court"]
    before = int(time.time())
    first = shared_gateway.client.post(
        "/oauth/token", data=GRANT, auth=(cred.client_id, cred.client_secret)
    ).json()["access_token"]
    second = shared_gateway.client.post(
        "/oauth/token", data=GRANT, auth=(cred.client_id, cred.client_secret)
    ).json()["access_token"]
    after = int(time.time())

    header, claims = segments(first)
    jwks = shared_gateway.client.get("/.well-known/jwks.json").json()
    # RS256 by default: RFC 9068 §2.1, and what every JWT library verifies.
    assert header == {"typ": "at+jwt", "alg": "RS256", "kid": header["kid"]}
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    assert claims["iss"] == TEST_ISSUER
    assert claims["sub"] == cred.client_id
    assert claims["client_id"] == cred.client_id
    assert claims["aud"] == shared_gateway.settings.audience
    assert claims["scope"] == "exchange"
    assert claims["agency"] == "FY640104"
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == shared_gateway.settings.token_ttl_seconds
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    assert segments(second)[1]["jti"] != claims["jti"]

    # The signature verifies with the published public key, and only as RS256.
    decoded = jwt.decode(first, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.claims["sub"] == cred.client_id


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with a shorter token lifetime that insists on https."""
    tmp = tmp_path_factory.mktemp("strict")
    with started_gateway(tmp, token_ttl_seconds=120, require_https=True) as gateway:
        yield gateway


def test_ttl_setting_sets_exp(strict_gateway: Gateway) -> None:
    cred = strict_gateway.clients["court"]
    response = strict_gateway.client.post(
        "https://testserver/oauth/token", data=GRANT, auth=(cred.client_id, cred.client_secret)
    )
    body = _assert_token_response(response, "exchange", ttl=120)
    _, claims = segments(body["access_token"])
    assert claims["exp"] - claims["iat"] == 120


# --- scopes ----------------------------------------------------------------------------------


def test_scope_down_selection(shared_gateway: Gateway) -> None:
    gateway = shared_gateway
    cred = gateway.register(
        fresh_name("watcher"), "ZF640000", ["exchange", "audit:read"], force_combined_roles=True
    )
    auth = (cred.client_id, cred.client_secret)

    full = gateway.client.post("/oauth/token", data=GRANT, auth=auth)
    _assert_token_response(full, "audit:read exchange")

    narrow = gateway.client.post(
        "/oauth/token", data={**GRANT, "scope": "audit:read"}, auth=auth
    ).json()
    assert narrow["scope"] == "audit:read"
    assert segments(narrow["access_token"])[1]["scope"] == "audit:read"
    me = gateway.client.get("/v1/me", headers=bearer(narrow["access_token"]))
    assert me.json()["scopes"] == ["audit:read"]

    # A repeated scope inside the one parameter is harmless and de-duplicated.
    twice = gateway.client.post(
        "/oauth/token", data={**GRANT, "scope": "exchange exchange"}, auth=auth
    )
    _assert_token_response(twice, "exchange")


@pytest.mark.parametrize(
    "scope",
    ["audit:read", "policy:admin", "exchange audit:read", "bogus", "exchange bogus", "EXCHANGE"],
)
def test_invalid_scope(shared_gateway: Gateway, scope: str) -> None:
    cred = shared_gateway.clients["court"]
    response = shared_gateway.client.post(
        "/oauth/token", data={**GRANT, "scope": scope}, auth=(cred.client_id, cred.client_secret)
    )
    assert_oauth_error(response, 400, "invalid_scope")


@pytest.mark.parametrize("scope", ["", " ", "  \t "])
def test_blank_scope_means_all_registered_scopes(shared_gateway: Gateway, scope: str) -> None:
    cred = shared_gateway.clients["regulator"]
    response = shared_gateway.client.post(
        "/oauth/token", data={**GRANT, "scope": scope}, auth=(cred.client_id, cred.client_secret)
    )
    _assert_token_response(response, "audit:read")


# --- failed client authentication: 401 invalid_client -----------------------------------------


def _bad_auth_requests(gateway: Gateway) -> dict[str, dict[str, Any]]:
    court = gateway.clients["court"]
    return {
        "unknown client (basic)": {"data": GRANT, "auth": ("gw-0000000000000000", "x" * 43)},
        "unknown client (post)": {
            "data": {**GRANT, "client_id": "gw-nobody", "client_secret": "x" * 43}
        },
        "wrong secret (basic)": {"data": GRANT, "auth": (court.client_id, "wrong-secret")},
        "wrong secret (post)": {
            "data": {**GRANT, "client_id": court.client_id, "client_secret": "wrong-secret"}
        },
        "another client's secret": {
            "data": GRANT,
            "auth": (court.client_id, gateway.clients["police"].client_secret),
        },
        "no credentials": {"data": GRANT},
        "client_id without secret": {"data": {**GRANT, "client_id": court.client_id}},
        "empty basic credentials": {"data": GRANT, "auth": ("", "")},
        "basic without colon": {
            "data": GRANT,
            "headers": {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
        },
        "basic not base64": {"data": GRANT, "headers": {"Authorization": "Basic !!!"}},
        "basic not utf-8": {
            "data": GRANT,
            "headers": {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        },
        "bearer instead of basic": {"data": GRANT, "headers": {"Authorization": "Bearer abc"}},
        "NUL in client_id": {"data": {**GRANT, "client_id": "gw-\x00", "client_secret": "x"}},
        "overlong client_id": {"data": {**GRANT, "client_id": "g" * 5000, "client_secret": "x"}},
    }


BAD_AUTH_CASES = [
    "unknown client (basic)",
    "unknown client (post)",
    "wrong secret (basic)",
    "wrong secret (post)",
    "another client's secret",
    "no credentials",
    "client_id without secret",
    "empty basic credentials",
    "basic without colon",
    "basic not base64",
    "basic not utf-8",
    "bearer instead of basic",
    "NUL in client_id",
    "overlong client_id",
]


@pytest.mark.parametrize("case", BAD_AUTH_CASES)
def test_invalid_client(shared_gateway: Gateway, case: str) -> None:
    request = _bad_auth_requests(shared_gateway)[case]
    response = shared_gateway.client.post("/oauth/token", **request)
    body = assert_oauth_error(response, 401, "invalid_client")
    # Unknown id, wrong secret and disabled client read the same, so ids cannot be probed.
    assert body == {
        "error": "invalid_client",
        "error_description": "client authentication failed (unknown, wrong or disabled)",
    } or case.startswith("basic not")


def test_invalid_client_and_disabled_client_on_each_backend(backend_gateway: Gateway) -> None:
    gateway = backend_gateway
    # The NUL byte PostgreSQL refuses in text must not reach it as a 500.
    for case in ("NUL in client_id", "unknown client (post)", "wrong secret (basic)"):
        response = gateway.client.post("/oauth/token", **_bad_auth_requests(gateway)[case])
        assert_oauth_error(response, 401, "invalid_client")

    cred = gateway.register(fresh_name("to-disable"), "FY640104", ["exchange"])
    auth = (cred.client_id, cred.client_secret)
    assert gateway.client.post("/oauth/token", data=GRANT, auth=auth).status_code == 200
    disable_client(gateway.settings, cred.client_id)
    disabled = gateway.client.post("/oauth/token", data=GRANT, auth=auth)
    body = assert_oauth_error(disabled, 401, "invalid_client")
    assert body["error_description"] == (
        "client authentication failed (unknown, wrong or disabled)"
    )
    form = {**GRANT, "client_id": cred.client_id, "client_secret": cred.client_secret}
    assert_oauth_error(gateway.client.post("/oauth/token", data=form), 401, "invalid_client")
    # Other clients are unaffected.
    police = gateway.clients["police"]
    response = gateway.client.post(
        "/oauth/token", data=GRANT, auth=(police.client_id, police.client_secret)
    )
    assert response.status_code == 200


# --- grant types and malformed requests ------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type",
    ["password", "authorization_code", "refresh_token", "implicit", "CLIENT_CREDENTIALS"],
)
def test_unsupported_grant_type(shared_gateway: Gateway, grant_type: str) -> None:
    cred = shared_gateway.clients["court"]
    response = shared_gateway.client.post(
        "/oauth/token",
        data={"grant_type": grant_type, "username": "u", "password": "p", "code": "c"},
        auth=(cred.client_id, cred.client_secret),
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_unsupported_grant_type_with_wrong_secret_issues_nothing(shared_gateway: Gateway) -> None:
    cred = shared_gateway.clients["court"]
    response = shared_gateway.client.post(
        "/oauth/token", data={"grant_type": "password"}, auth=(cred.client_id, "wrong")
    )
    assert response.status_code in (400, 401)
    assert "access_token" not in response.json()


def _invalid_requests(gateway: Gateway) -> dict[str, dict[str, Any]]:
    cred = gateway.clients["court"]
    auth = (cred.client_id, cred.client_secret)
    grant = b"grant_type=client_credentials"
    return {
        "json body": {"json": GRANT, "auth": auth},
        "text/plain": {
            "content": grant,
            "headers": {"content-type": "text/plain"},
            "auth": auth,
        },
        "no content type": {"content": grant, "auth": auth},
        "multipart form": {"files": {"grant_type": (None, "client_credentials")}, "auth": auth},
        "empty body": {"content": b"", "headers": FORM, "auth": auth},
        "missing grant_type": {"content": b"scope=exchange", "headers": FORM, "auth": auth},
        "empty grant_type": {"content": b"grant_type=", "headers": FORM, "auth": auth},
        "malformed form": {"content": b"%%%&&&==", "headers": FORM, "auth": auth},
        "field without =": {"content": b"grant_type", "headers": FORM, "auth": auth},
        "bad percent escape": {
            "content": b"grant_type=client%ZZcredentials&x",
            "headers": FORM,
            "auth": auth,
        },
        "not utf-8": {"content": b"grant_type=\xff\xfe", "headers": FORM, "auth": auth},
        "repeated grant_type": {"content": grant + b"&" + grant, "headers": FORM, "auth": auth},
        "repeated scope": {
            "content": grant + b"&scope=exchange&scope=exchange",
            "headers": FORM,
            "auth": auth,
        },
        "repeated client_id": {
            "content": grant
            + f"&client_id={cred.client_id}&client_id={cred.client_id}"
            f"&client_secret={cred.client_secret}".encode(),
            "headers": FORM,
        },
        "both auth methods": {
            "data": {**GRANT, "client_id": cred.client_id, "client_secret": cred.client_secret},
            "auth": auth,
        },
        "both auth methods, basic wrong": {
            "data": {**GRANT, "client_id": cred.client_id, "client_secret": cred.client_secret},
            "auth": (cred.client_id, "wrong"),
        },
        "client_id disagrees with basic": {
            "data": {**GRANT, "client_id": gateway.clients["police"].client_id},
            "auth": auth,
        },
    }


INVALID_REQUEST_CASES = [
    "json body",
    "text/plain",
    "no content type",
    "multipart form",
    "empty body",
    "missing grant_type",
    "empty grant_type",
    "malformed form",
    "field without =",
    "bad percent escape",
    "not utf-8",
    "repeated grant_type",
    "repeated scope",
    "repeated client_id",
    "both auth methods",
    "both auth methods, basic wrong",
    "client_id disagrees with basic",
]


@pytest.mark.parametrize("case", INVALID_REQUEST_CASES)
def test_invalid_request(shared_gateway: Gateway, case: str) -> None:
    request = _invalid_requests(shared_gateway)[case]
    response = shared_gateway.client.post("/oauth/token", **request)
    body = assert_oauth_error(response, 400, "invalid_request")
    assert body["error_description"]


def test_https_required_when_configured(strict_gateway: Gateway) -> None:
    cred = strict_gateway.clients["court"]
    auth = (cred.client_id, cred.client_secret)
    plain = strict_gateway.client.post("/oauth/token", data=GRANT, auth=auth)
    body = assert_oauth_error(plain, 400, "invalid_request")
    assert "https" in body["error_description"]
    secure = strict_gateway.client.post("https://testserver/oauth/token", data=GRANT, auth=auth)
    _assert_token_response(secure, "exchange", ttl=120)


def test_get_on_token_endpoint_is_405(shared_gateway: Gateway) -> None:
    response = shared_gateway.client.get("/oauth/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"


# --- secrets at rest and discovery -----------------------------------------------------------


def test_secrets_are_stored_only_as_salted_scrypt_hashes(backend_gateway: Gateway) -> None:
    gateway = backend_gateway
    engine = create_db_engine(gateway.settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            rows = {row.name: row for row in session.scalars(select(OAuthClient))}
    finally:
        engine.dispose()
    hashes = set()
    for name, cred in gateway.clients.items():
        stored = rows[name].secret_hash
        # The configured cost (the suite's, tests/conftest.py; production's: test_passwords).
        assert stored.startswith(f"scrypt${passwords._N}$8$1$")
        assert cred.client_secret not in stored
        assert verify_secret(cred.client_secret, stored)
        assert not verify_secret(cred.client_secret + "x", stored)
        hashes.add(stored.split("$")[4])  # the salt
    assert len(hashes) == len(gateway.clients)


def test_jwks_publishes_only_public_keys_with_their_alg(shared_gateway: Gateway) -> None:
    response = shared_gateway.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert key["kid"]
        assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}  # no d, p, q, dp, dq, qi
    for private_member in ('"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"'):
        assert private_member not in response.text


def test_authorization_server_metadata(shared_gateway: Gateway) -> None:
    response = shared_gateway.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == TEST_ISSUER
    assert meta["token_endpoint"] == f"{TEST_ISSUER}/oauth/token"
    assert meta["jwks_uri"] == f"{TEST_ISSUER}/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert sorted(meta["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert sorted(meta["scopes_supported"]) == [
        "audit:read",
        "exchange",
        "metrics:read",
        "policy:admin",
        "sharing:review",
    ]
    # Only what is offered: no authorization endpoint, so no response type (the member itself
    # is REQUIRED by RFC 8414 §2), and no private_key_jwt client authentication.
    assert meta["response_types_supported"] == []
    assert "token_endpoint_auth_signing_alg_values_supported" not in meta
    assert "authorization_endpoint" not in meta
    # The advertised endpoints are the ones served.
    token_path = meta["token_endpoint"].removeprefix(TEST_ISSUER)
    assert_oauth_error(shared_gateway.client.post(token_path, data=GRANT), 401, "invalid_client")
    jwks_path = meta["jwks_uri"].removeprefix(TEST_ISSUER)
    assert shared_gateway.client.get(jwks_path).json()["keys"]
