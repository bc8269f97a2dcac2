"""Our access tokens verified by other JWT implementations, over real HTTP to our JWKS.

PyJWT (the most used Python JWT library) through its ``PyJWKClient``, and jwcrypto, each
given only what a resource server has: the JWKS URL, the issuer and the audience. Every
signing algorithm the gateway offers is tried, and a rotation from one algorithm to another.
docs/operations.md ("Token signing") has the wider matrix (Java, Go, Node.js libraries).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt as pyjwt
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from jwcrypto.common import JWException

from gateway.auth.keys import SIGNING_ALGORITHMS, KeyStore
from tests.served import ServedGateway, served_gateway

# PyJWT 2.x knows EdDSA but not RFC 9864's fully-specified "Ed25519" (measured: PyJWKClient
# finds "no usable keys"), which is why RS256, not Ed25519, is the default.
PYJWT_ALGORITHMS = ["RS256", "ES256"]


@pytest.fixture(scope="module", params=SIGNING_ALGORITHMS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    tmp = tmp_path_factory.mktemp(f"interop-{request.param}")
    with served_gateway(tmp, token_signing_alg=request.param) as gateway:
        yield gateway


def _jwcrypto_claims(gateway: ServedGateway, token: str, alg: str) -> dict[str, Any]:
    jwks = httpx2.get(f"{gateway.base_url}/.well-known/jwks.json", timeout=10).text
    verified = jwcrypto_jwt.JWT(
        jwt=token,
        key=jwcrypto_jwk.JWKSet.from_json(jwks),
        algs=[alg],
        check_claims={
            "iss": gateway.settings.issuer,
            "aud": gateway.settings.audience,
            "exp": None,
        },
    )
    claims: dict[str, Any] = json.loads(verified.claims)
    return claims


def _pyjwt_claims(gateway: ServedGateway, token: str) -> dict[str, Any]:
    client = pyjwt.PyJWKClient(f"{gateway.base_url}/.well-known/jwks.json", cache_keys=False)
    signing_key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = pyjwt.decode(
        token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        audience=gateway.settings.audience,
        issuer=gateway.settings.issuer,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    return claims


def test_jwks_names_each_keys_algorithm(served: ServedGateway) -> None:
    alg = served.settings.token_signing_alg
    keys = httpx2.get(f"{served.base_url}/.well-known/jwks.json", timeout=10).json()["keys"]
    assert [key["alg"] for key in keys] == [alg]
    token_alg = pyjwt.get_unverified_header(served.token("court"))["alg"]
    assert token_alg == alg


def test_jwcrypto_verifies_our_tokens(served: ServedGateway) -> None:
    token = served.token("court")
    claims = _jwcrypto_claims(served, token, served.settings.token_signing_alg)
    assert claims["sub"] == served.clients["court"].client_id
    assert claims["scope"] == "exchange"
    # Tampering is caught by the other implementation too.
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"
    with pytest.raises(JWException):  # jwcrypto: no key of the set verifies it
        _jwcrypto_claims(served, forged, served.settings.token_signing_alg)


def test_pyjwt_jwk_client_verifies_our_tokens(served: ServedGateway) -> None:
    if served.settings.token_signing_alg not in PYJWT_ALGORITHMS:
        pytest.skip("PyJWT 2.x does not know the Ed25519 algorithm name (RFC 9864)")
    token = served.token("court")
    claims = _pyjwt_claims(served, token)
    assert claims["sub"] == served.clients["court"].client_id
    assert claims["client_id"] == served.clients["court"].client_id
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(
            token,
            pyjwt.PyJWKClient(f"{served.base_url}/.well-known/jwks.json")
            .get_signing_key_from_jwt(token)
            .key,
            algorithms=[served.settings.token_signing_alg],
            audience="another-gateway",
        )


def test_rotation_to_another_algorithm_keeps_old_tokens_verifying(tmp_path: Path) -> None:
    """Ed25519 keys, then `gateway keys rotate` with RS256 configured: tokens of both verify,
    the JWKS names each key's algorithm, and PyJWT picks the RS256 key out of the mixed set."""
    with served_gateway(tmp_path, token_signing_alg="Ed25519") as gateway:
        old = gateway.token("court")
        KeyStore(
            gateway.settings.resolved_keys_path,
            token_ttl_seconds=gateway.settings.token_ttl_seconds,
            algorithm="RS256",
        ).rotate()
        # Workers notice the new key file by its mtime, checked at most once a second.
        new = old
        for _ in range(40):
            new = gateway.token("court")
            if pyjwt.get_unverified_header(new)["alg"] == "RS256":
                break
            time.sleep(0.1)
        assert pyjwt.get_unverified_header(old)["alg"] == "Ed25519"
        assert pyjwt.get_unverified_header(new)["alg"] == "RS256"
        jwks = httpx2.get(f"{gateway.base_url}/.well-known/jwks.json", timeout=10).json()
        assert sorted(key["alg"] for key in jwks["keys"]) == ["Ed25519", "RS256"]
        for token in (old, new):
            me = httpx2.get(
                f"{gateway.base_url}/v1/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert me.status_code == 200, me.text
        assert _pyjwt_claims(gateway, new)["sub"] == gateway.clients["court"].client_id
        assert (
            _jwcrypto_claims(gateway, old, "Ed25519")["sub"] == gateway.clients["court"].client_id
        )
