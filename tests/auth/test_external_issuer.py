"""Trusting one external issuer by its JWKS URL, served over real HTTP on a loopback port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc.jwk import ECKey, KeySet, OKPKey

from tests.auth.fixtures import fresh_name, started_gateway
from tests.auth.helpers import (
    assert_invalid_token,
    bearer,
    disable_client,
    sign,
    signing_key,
)
from tests.conftest import Gateway

EXTERNAL_ISSUER = "https://idp.example.gov.cn/realms/zhengfa"
EXTERNAL_AUDIENCE = "zhengfa-gateway-ext"


class JWKSServer:
    """A second issuer's key set, served by http.server in a thread."""

    def __init__(self, keys: list[Any]) -> None:
        self.document = KeySet(keys).as_dict(private=False)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def idp_keys() -> dict[str, Any]:
    return {
        "ed": OKPKey.generate_key("Ed25519", parameters={"kid": "idp-ed-1"}),
        "ec": ECKey.generate_key("P-256", parameters={"kid": "idp-ec-1"}),
    }


@pytest.fixture(scope="module")
def external(
    tmp_path_factory: pytest.TempPathFactory, idp_keys: dict[str, Any]
) -> Iterator[tuple[Gateway, JWKSServer]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        with (
            JWKSServer(list(idp_keys.values())) as server,
            started_gateway(
                tmp_path_factory.mktemp("external"),
                external_issuer=EXTERNAL_ISSUER,
                external_jwks_url=server.url,
                external_audience=EXTERNAL_AUDIENCE,
            ) as gateway,
        ):
            deadline = time.monotonic() + 10
            while True:
                ready = gateway.client.get("/readyz").json()
                if ready["checks"]["external_issuer"]["ok"]:
                    break
                assert time.monotonic() < deadline, f"the JWKS was never fetched: {ready}"
                time.sleep(0.05)
            assert server.requests >= 1
            yield gateway, server


def _external_claims(client_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": EXTERNAL_ISSUER,
        "sub": client_id,
        "aud": EXTERNAL_AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": f"ext-{now}",
        "client_id": client_id,
        "scope": "exchange audit:read",
        "agency": "GA999999",  # the registry, not the token, decides the agency
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _ext_token(key: Any, claims: dict[str, Any], alg: str = "Ed25519") -> str:
    return sign(claims, key, alg=alg, typ="JWT")


@pytest.mark.parametrize(("key_name", "alg"), [("ed", "Ed25519"), ("ec", "ES256")])
def test_external_token_for_registered_client_passes(
    external: tuple[Gateway, JWKSServer], idp_keys: dict[str, Any], key_name: str, alg: str
) -> None:
    gateway, _ = external
    court = gateway.clients["court"]
    token = _ext_token(idp_keys[key_name], _external_claims(court.client_id), alg)
    response = gateway.client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == court.client_id
    assert body["issuer"] == EXTERNAL_ISSUER
    assert body["agency"] == "FY640104"
    assert body["scopes"] == ["exchange"]  # audit:read is not registered for court


def test_external_token_by_client_id_claim_when_sub_differs(
    external: tuple[Gateway, JWKSServer], idp_keys: dict[str, Any]
) -> None:
    gateway, _ = external
    court = gateway.clients["court"]
    claims = _external_claims(court.client_id, sub="service-account-court")
    response = gateway.client.get("/v1/me", headers=bearer(_ext_token(idp_keys["ed"], claims)))
    assert response.status_code == 200
    assert response.json()["client_id"] == court.client_id


def test_external_token_refusals(
    external: tuple[Gateway, JWKSServer], idp_keys: dict[str, Any]
) -> None:
    gateway, _ = external
    court = gateway.clients["court"].client_id
    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "idp-ed-1"})
    now = int(time.time())
    refused = {
        "unregistered client": _ext_token(
            idp_keys["ed"], _external_claims("gw-not-registered-here")
        ),
        "another key, same kid": _ext_token(stranger, _external_claims(court)),
        "another key, other kid": _ext_token(
            OKPKey.generate_key("Ed25519", parameters={"kid": "x"}), _external_claims(court)
        ),
        "the gateway's audience": _ext_token(
            idp_keys["ed"], _external_claims(court, aud=gateway.settings.audience)
        ),
        "expired": _ext_token(
            idp_keys["ed"], _external_claims(court, iat=now - 900, exp=now - 600)
        ),
        "issuer not trusted": _ext_token(
            idp_keys["ed"], _external_claims(court, iss="https://other-idp.example")
        ),
        "our issuer, their key": sign(
            _external_claims(court, iss=gateway.settings.issuer, aud=gateway.settings.audience),
            idp_keys["ed"],
        ),
        "their issuer, our key": sign(
            _external_claims(court), signing_key(gateway.settings), typ="JWT"
        ),
    }
    for name, token in refused.items():
        response = gateway.client.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert_invalid_token(response)


def test_disabled_client_cannot_use_external_tokens(
    external: tuple[Gateway, JWKSServer], idp_keys: dict[str, Any]
) -> None:
    gateway, _ = external
    cred = gateway.register(fresh_name("ext-disabled"), "FY640104", ["exchange"])
    token = _ext_token(idp_keys["ed"], _external_claims(cred.client_id))
    assert gateway.client.get("/v1/me", headers=bearer(token)).status_code == 200
    disable_client(gateway.settings, cred.client_id)
    assert_invalid_token(gateway.client.get("/v1/me", headers=bearer(token)))


def test_own_tokens_still_work_alongside_the_external_issuer(
    external: tuple[Gateway, JWKSServer],
) -> None:
    gateway, _ = external
    assert gateway.client.get("/v1/me", headers=gateway.auth("police")).status_code == 200


def test_an_external_token_living_longer_than_the_maximum_is_refused(
    external: tuple[Gateway, JWKSServer], idp_keys: dict[str, Any]
) -> None:
    """The external issuer's own lifetime does not count: GATEWAY_TOKEN_MAX_LIFETIME_SECONDS
    (3600 s by default) does, with iat or without."""
    gateway, _ = external
    court = gateway.clients["court"].client_id
    now = int(time.time())
    for claims in (
        _external_claims(court, exp=now + 86_400),
        _external_claims(court, iat=None, exp=now + 7_200),
        _external_claims(court, iat=now - 10, exp=now + 3_600),
    ):
        response = gateway.client.get("/v1/me", headers=bearer(_ext_token(idp_keys["ed"], claims)))
        assert response.status_code == 401, claims
        assert "lifetime exceeds the maximum of 3600 s" in response.json()["detail"]
    fine = _external_claims(court, exp=now + 3_000)
    response = gateway.client.get("/v1/me", headers=bearer(_ext_token(idp_keys["ed"], fine)))
    assert response.status_code == 200, response.text
