"""One long-lived HTTP client per agency: deadline, size cap, bounded read retries, circuit breaker.

The client speaks the httpx API through ``httpx2`` (the continuation of httpx that
authlib's OAuth2 client and Starlette's TestClient now target) on an aiohttp
transport: httpx's default transport costs several times more CPU per request
(docs/performance.md). Tests pass an ``httpx2.MockTransport`` instead.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from httpx_aiohttp.httpx2 import AiohttpTransport

from adapters.base import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from adapters.config import (
    AgencyConfigError,
    ApiKeyAuth,
    AuthConfig,
    BasicAuth,
    ConnectionConfig,
    MutualTlsAuth,
    OAuth2ClientCredentialsAuth,
)
from adapters.transports.circuit import CircuitBreaker, CircuitState

__all__ = ["UpstreamHttp", "UpstreamResponse"]

_RETRYABLE_STATUS = frozenset({502, 503})


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str
    latency_ms: float


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    """One system-CA context for every agency: loading the CA bundle costs ~60-100 ms."""
    return ssl.create_default_context()


def _transport(connection: ConnectionConfig, auth: AuthConfig) -> httpx2.AsyncBaseTransport:
    verify: ssl.SSLContext | bool = _default_tls_context()
    cert: tuple[str, str] | None = None
    if isinstance(auth, MutualTlsAuth):
        verify = ssl.create_default_context(cafile=str(auth.ca_file) if auth.ca_file else None)
        verify.load_cert_chain(str(auth.cert_file), str(auth.key_file))
        cert = None
    return AiohttpTransport(
        verify=verify,
        cert=cert,
        trust_env=False,
        limits=httpx2.Limits(
            max_connections=connection.max_connections,
            max_keepalive_connections=connection.max_connections,
        ),
    )


class UpstreamHttp:
    def __init__(
        self,
        agency: str,
        connection: ConnectionConfig,
        auth: AuthConfig,
        secrets: Mapping[str, str],
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.agency = agency
        self.connection = connection
        self.breaker = CircuitBreaker(
            connection.circuit.failure_threshold, connection.circuit.reset_seconds
        )
        timeout = httpx2.Timeout(
            connection.timeout_seconds, connect=connection.connect_timeout_seconds
        )
        transport = transport or _transport(connection, auth)
        headers: dict[str, str] = {"Accept": "application/json, application/xml"}
        common: dict[str, Any] = {
            "base_url": connection.base_url,
            "timeout": timeout,
            "transport": transport,
            "headers": headers,
            "follow_redirects": False,
        }
        self._oauth = isinstance(auth, OAuth2ClientCredentialsAuth)
        if isinstance(auth, OAuth2ClientCredentialsAuth):
            token_url = auth.token_url
            if not token_url.startswith(("http://", "https://")):
                token_url = connection.base_url.rstrip("/") + "/" + token_url.lstrip("/")
            self.client: httpx2.AsyncClient = AsyncOAuth2Client(
                client_id=auth.client_id,
                client_secret=_secret(agency, secrets, auth.secret),
                scope=auth.scope,
                token_endpoint=token_url,
                grant_type="client_credentials",
                token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
                leeway=30,
                **common,
            )
        else:
            if isinstance(auth, ApiKeyAuth):
                headers[auth.header] = _secret(agency, secrets, auth.secret)
            if isinstance(auth, BasicAuth):
                password = _secret(agency, secrets, auth.secret)
                common["auth"] = httpx2.BasicAuth(auth.username, password)
            self.client = httpx2.AsyncClient(**common)

    async def _ensure_token(self, *, force: bool = False) -> None:
        client = self.client
        assert isinstance(client, AsyncOAuth2Client)
        if force or not client.token:
            try:
                await client.fetch_token()
            except OAuthError as exc:
                raise UpstreamProtocolError(
                    self.agency, f"upstream token endpoint refused us: {exc.error}"
                ) from exc
            except (ValueError, KeyError, TypeError) as exc:
                # A token endpoint answering a non-JSON body (an HTML 502 page) or no token.
                raise UpstreamProtocolError(
                    self.agency, f"upstream token endpoint gave no usable token: {exc}"
                ) from exc

    async def _once(self, path: str, params: Mapping[str, str] | None) -> UpstreamResponse:
        started = time.perf_counter()
        limit = self.connection.max_body_bytes
        async with self.client.stream("GET", path, params=params) as response:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise UpstreamProtocolError(
                    self.agency,
                    f"response of {declared} bytes exceeds the {limit}-byte limit",
                    upstream_status=response.status_code,
                )
            chunks: list[bytes] = []
            size = 0
            # Decoded bytes (gzip/deflate…): the transport does not decompress, and the cap
            # must bound what we hold in memory, not what crossed the wire.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise UpstreamProtocolError(
                        self.agency,
                        f"response exceeds the {limit}-byte limit",
                        upstream_status=response.status_code,
                    )
                chunks.append(chunk)
            return UpstreamResponse(
                status=response.status_code,
                body=b"".join(chunks),
                content_type=response.headers.get("content-type", ""),
                latency_ms=(time.perf_counter() - started) * 1000,
            )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> UpstreamResponse:
        """GET with the agency's deadline; retries connection failures and 502/503 only."""
        if not self.breaker.allow():
            raise UpstreamUnavailable(self.agency, "circuit open after repeated failures")
        attempts = self.connection.retries + 1
        refreshed = False
        try:
            async with asyncio.timeout(self.connection.timeout_seconds):
                if self._oauth:
                    await self._ensure_token()
                attempt = 0
                while True:
                    attempt += 1
                    try:
                        response = await self._once(path, params)
                    except (
                        httpx2.ConnectError,
                        httpx2.RemoteProtocolError,
                        httpx2.ConnectTimeout,
                    ) as exc:
                        if isinstance(exc, httpx2.ConnectTimeout) and not _not_a_timeout(exc):
                            raise
                        if attempt >= attempts:
                            raise UpstreamUnavailable(
                                self.agency, f"cannot reach the agency system: {exc}"
                            ) from exc
                    else:
                        if response.status == 401 and self._oauth and not refreshed:
                            refreshed = True
                            await self._ensure_token(force=True)
                            continue
                        if response.status not in _RETRYABLE_STATUS or attempt >= attempts:
                            break
                    await asyncio.sleep(self.connection.retry_backoff_seconds * attempt)
        except TimeoutError as exc:
            self.breaker.record_failure()
            raise UpstreamTimeout(
                self.agency, f"no answer within {self.connection.timeout_seconds:g} s"
            ) from exc
        except httpx2.TimeoutException as exc:
            self.breaker.record_failure()
            raise UpstreamTimeout(self.agency, f"timed out: {exc.__class__.__name__}") from exc
        except (UpstreamUnavailable, httpx2.TransportError) as exc:
            self.breaker.record_failure()
            if isinstance(exc, UpstreamUnavailable):
                raise
            raise UpstreamUnavailable(self.agency, f"transport error: {exc}") from exc
        except UpstreamProtocolError:
            self.breaker.record_failure()
            raise
        except (httpx2.HTTPError, OAuthError) as exc:  # e.g. a token endpoint's 5xx, bad token
            self.breaker.record_failure()
            raise UpstreamProtocolError(self.agency, f"request failed: {exc}") from exc
        except BaseException:
            # Cancelled by the caller (or a bug): do not leave a half-open trial in flight,
            # which would keep the circuit from ever closing again.
            self.breaker.abandon()
            raise
        if response.status >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return response

    @property
    def circuit_state(self) -> CircuitState:
        return self.breaker.state

    async def aclose(self) -> None:
        await self.client.aclose()


def _not_a_timeout(exc: httpx2.ConnectTimeout) -> bool:
    """Whether a ConnectTimeout from the aiohttp transport is really a refused or lost
    connection: httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` (refused, reset,
    server disconnected) to ConnectTimeout; only a cause that is a TimeoutError timed out."""
    cause = exc.__cause__
    return cause is not None and not isinstance(cause, TimeoutError)


def _secret(agency: str, secrets: Mapping[str, str], name: str) -> str:
    try:
        return secrets[name]
    except KeyError:
        raise AgencyConfigError(
            f"{agency}: no credential {name!r} in GATEWAY_UPSTREAM_SECRETS"
        ) from None
