"""Issuing and verifying RFC 9068 JWT access tokens.

Verification is on every protected request, so verified tokens are cached by
their exact text until they expire (a signature check costs tens to hundreds of µs,
docs/operations.md; a dict hit well under 1 µs). A cache hit still checks the client's
current status, so a disabled client is refused even while its token is cached.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from gateway.auth.clients import ClientInfo
from gateway.auth.keys import KeyStore

__all__ = ["ExternalKeys", "Principal", "TokenError", "TokenIssuer", "TokenVerifier"]

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (a media type, RFC 9068 §2.1)
_MAX_TOKEN_LENGTH = 8192
_LEEWAY_SECONDS = 30
EXTERNAL_ALGORITHMS = ["Ed25519", "ES256", "ES384", "RS256", "PS256"]


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show the caller.

    ``client_id``/``agency`` name the caller when the token's signature verified (the token
    is expired, too long-lived, or its client disabled): the refusal is then an audit entry
    of that client, not an anonymous one.
    """

    def __init__(
        self, message: str, *, client_id: str | None = None, agency: str | None = None
    ) -> None:
        super().__init__(message)
        self.client_id = client_id
        self.agency = agency


@dataclass(frozen=True)
class Principal:
    client_id: str
    agency: str
    scopes: frozenset[str]
    issuer: str
    expires_at: int
    token_id: str
    name: str


class TokenIssuer:
    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, client: ClientInfo, scopes: list[str]) -> dict[str, Any]:
        loaded = self.keys.load()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": self.audience,
            "exp": now + self.ttl_seconds,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client.client_id,
            "scope": " ".join(scopes),
            "agency": client.agency,
        }
        alg = loaded.active_alg
        header = {"alg": alg, "kid": loaded.active_kid, "typ": ACCESS_TOKEN_TYP}
        token = jwt.encode(header, claims, loaded.active_key, algorithms=[alg])
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.ttl_seconds,
            "scope": claims["scope"],
        }


class ExternalKeys:
    """The key set of the one trusted external issuer, fetched and refreshed by the app."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key_set: KeySet | None = None

    def update(self, jwks: dict[str, Any]) -> None:
        self.key_set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]


def _unverified_segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a compact JWS")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("malformed token")
    return header, claims


class TokenVerifier:
    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        audience: str,
        client_lookup: Callable[[str], ClientInfo | None],
        external: ExternalKeys | None = None,
        cache_size: int = 10_000,
        max_lifetime_seconds: int = 3600,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.client_lookup = client_lookup
        self.external = external
        self.cache_size = cache_size
        # The longest a token may live (exp - iat, or exp - now without iat), whoever
        # issued it: an external issuer's day-long token is refused like a forged one.
        self.max_lifetime_seconds = max_lifetime_seconds
        self._cache: dict[str, Principal] = {}

    def verify(self, token: str) -> Principal:
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at > now:
            return self._bind_client(cached)
        if len(token) > _MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        header, unverified = _unverified_segments(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
            raise TokenError("unsupported token algorithm")
        if not isinstance(header.get("kid", ""), str):
            raise TokenError("malformed token header")
        issuer = unverified.get("iss")
        if issuer == self.issuer:
            principal = self._verify_local(token, header)
        elif self.external is not None and issuer == self.external.issuer:
            principal = self._verify_external(token)
        else:
            raise TokenError("unknown token issuer")
        self._remember(token, principal, now)
        return self._bind_client(principal)

    def _bind_client(self, principal: Principal) -> Principal:
        client = self.client_lookup(principal.client_id)
        if client is None:
            raise TokenError("unknown client")
        if client.disabled:
            raise TokenError("client is disabled", client_id=client.client_id, agency=client.agency)
        return principal

    def _decode(
        self,
        token: str,
        key_set: KeySet,
        algorithms: list[str],
        audience: str,
        issuer: str,
        client_claim: Callable[[dict[str, Any]], object],
    ) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, key_set, algorithms=algorithms)
        except JoseError as exc:
            raise TokenError(f"token rejected: {exc.error}") from exc
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        # The signature verified: a refusal from here on names the token's client.
        claims = decoded.claims
        try:
            JWTClaimsRegistry(
                leeway=_LEEWAY_SECONDS,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
            self._check_lifetime(claims)
        except (JoseError, ValueError, TypeError, TokenError) as exc:
            if isinstance(exc, TokenError):
                message = str(exc)
            elif isinstance(exc, ExpiredTokenError):
                message = (
                    f"the access token has expired; request a new one ({issuer}/oauth/token for "
                    "this gateway's tokens)"
                )
            elif isinstance(exc, JoseError):
                message = f"token rejected: {exc.error}"
            else:
                message = "malformed token"
            client = self.client_lookup(str(client_claim(claims) or ""))
            raise TokenError(
                message,
                client_id=client.client_id if client else None,
                agency=client.agency if client else None,
            ) from exc
        return {"header": decoded.header, "claims": claims}

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = time.time()
        exp = claims["exp"]
        start = next(
            (
                claims[name]
                for name in ("iat", "nbf")
                if isinstance(claims.get(name), int | float)
                and not isinstance(claims.get(name), bool)
            ),
            now,
        )
        if exp - start > self.max_lifetime_seconds or exp - now > self.max_lifetime_seconds + (
            _LEEWAY_SECONDS
        ):
            raise TokenError(f"token lifetime exceeds the maximum of {self.max_lifetime_seconds} s")

    def _verify_local(self, token: str, header: dict[str, Any]) -> Principal:
        # RFC 9068 §4: "at+jwt" or its full media type "application/at+jwt".
        if header.get("typ") not in (ACCESS_TOKEN_TYP, f"application/{ACCESS_TOKEN_TYP}"):
            raise TokenError("not an access token (typ must be at+jwt)")
        loaded = self.keys.load()
        kid = header.get("kid")
        if kid not in loaded.algorithms:
            loaded = self.keys.load(force=True)  # another worker may have rotated
        # The key named by kid decides the one algorithm it verifies: an RSA key is never
        # tried as anything but RS256, whatever the header says.
        alg = loaded.algorithms.get(kid) if isinstance(kid, str) else None
        if alg is None:
            raise TokenError("unknown signing key (kid); fetch the JWKS again")
        if header.get("alg") != alg:
            raise TokenError("unsupported token algorithm")
        decoded = self._decode(
            token,
            loaded.verify_set,
            [alg],
            self.audience,
            self.issuer,
            lambda claims: claims.get("sub"),
        )
        claims = decoded["claims"]
        client = self.client_lookup(str(claims["sub"]))
        if client is None:
            raise TokenError("unknown client")
        scopes = frozenset(str(claims.get("scope", "")).split())
        return Principal(
            client_id=client.client_id,
            agency=client.agency,  # the registry decides, not a claim
            scopes=scopes & client.scopes,
            issuer=self.issuer,
            expires_at=int(claims["exp"]),
            token_id=str(claims.get("jti", "")),
            name=client.name,
        )

    def _verify_external(self, token: str) -> Principal:
        external = self.external
        assert external is not None
        if external.key_set is None:
            raise TokenError("the external issuer's keys are not available yet")
        decoded = self._decode(
            token,
            external.key_set,
            EXTERNAL_ALGORITHMS,
            external.audience,
            external.issuer,
            lambda claims: claims.get("client_id") or claims.get("sub"),
        )
        claims = decoded["claims"]
        client_id = str(claims.get("client_id") or claims["sub"])
        client = self.client_lookup(client_id)
        if client is None:
            raise TokenError("the token's client is not registered with this gateway")
        # The registry, not the external token, decides agency and the most a client may do.
        scopes = frozenset(str(claims.get("scope", "")).split()) & client.scopes
        return Principal(
            client_id=client.client_id,
            agency=client.agency,
            scopes=scopes,
            issuer=external.issuer,
            expires_at=int(claims["exp"]),
            token_id=str(claims.get("jti", "")),
            name=client.name,
        )

    def _remember(self, token: str, principal: Principal, now: float) -> None:
        if self.cache_size <= 0:
            return
        if len(self._cache) >= self.cache_size:
            self._cache = {t: p for t, p in self._cache.items() if p.expires_at > now}
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
        self._cache[token] = principal
