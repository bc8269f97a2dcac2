"""One long-lived HTTP client per agency: deadline, size cap, bounded read retries, circuit breaker.

Two clients, one behaviour:

* agencies authenticated by API key, HTTP Basic, mutual TLS or nothing talk to one
  ``aiohttp.ClientSession`` directly (:mod:`adapters.transports.aiohttp_client`): the
  httpx layer cost ~2/3 of the upstream client's CPU per request (docs/performance.md §3);
* OAuth2 agencies (authlib's client needs the httpx API) and injected transports (tests
  pass an ``httpx2.MockTransport``) use ``httpx2`` (the continuation of httpx that authlib
  and Starlette's TestClient target) on an aiohttp transport.

Both send the same request (URL, query encoding, headers), follow no redirect, cap decoded
bytes, and map the same failures to the same adapter errors.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
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
from adapters.transports.aiohttp_client import AiohttpSession, basic_authorization
from adapters.transports.circuit import CircuitBreaker, CircuitState

__all__ = ["Outgoing", "UpstreamHttp", "UpstreamResponse"]

_RETRYABLE_STATUS = frozenset({502, 503})


@dataclass(frozen=True)
class Outgoing:
    """A request with a body (a delivery pushed to the agency): method, bytes, headers."""

    method: str
    body: bytes
    headers: Mapping[str, str]


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


def _tls_context(auth: AuthConfig) -> ssl.SSLContext:
    if isinstance(auth, MutualTlsAuth):
        context = ssl.create_default_context(cafile=str(auth.ca_file) if auth.ca_file else None)
        context.load_cert_chain(str(auth.cert_file), str(auth.key_file))
        return context
    return _default_tls_context()


def _transport(connection: ConnectionConfig, auth: AuthConfig) -> httpx2.AsyncBaseTransport:
    return AiohttpTransport(
        verify=_tls_context(auth),
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
        self._oauth = isinstance(auth, OAuth2ClientCredentialsAuth)
        #: The httpx2 client (OAuth2 agencies, injected transports), or None.
        self.client: httpx2.AsyncClient | None = None
        #: The aiohttp session of every other agency, or None.
        self.session: AiohttpSession | None = None
        headers: dict[str, str] = {"Accept": "application/json, application/xml"}
        if transport is None and not isinstance(auth, OAuth2ClientCredentialsAuth):
            if isinstance(auth, ApiKeyAuth):
                headers[auth.header] = _secret(agency, secrets, auth.secret)
            if isinstance(auth, BasicAuth):
                password = _secret(agency, secrets, auth.secret)
                headers["Authorization"] = basic_authorization(auth.username, password)
            self.session = AiohttpSession(
                connection.base_url,
                headers,
                tls=_tls_context(auth),
                connect_timeout=connection.connect_timeout_seconds,
                max_connections=connection.max_connections,
            )
            self._once = self._once_aiohttp
            return
        self._once = self._once_httpx
        timeout = httpx2.Timeout(
            connection.timeout_seconds, connect=connection.connect_timeout_seconds
        )
        common: dict[str, Any] = {
            "base_url": connection.base_url,
            "timeout": timeout,
            "transport": transport or _transport(connection, auth),
            "headers": headers,
            "follow_redirects": False,
        }
        if isinstance(auth, OAuth2ClientCredentialsAuth):
            token_url = auth.token_url
            if not token_url.startswith(("http://", "https://")):
                token_url = connection.base_url.rstrip("/") + "/" + token_url.lstrip("/")
            self.client = AsyncOAuth2Client(
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

    def _too_large(self, status: int, declared: str | None = None) -> UpstreamProtocolError:
        limit = self.connection.max_body_bytes
        size = "response" if declared is None else f"response of {declared} bytes"
        return UpstreamProtocolError(
            self.agency, f"{size} exceeds the {limit}-byte limit", upstream_status=status
        )

    async def _once_httpx(
        self, path: str, params: Mapping[str, str] | None, out: Outgoing | None = None
    ) -> UpstreamResponse:
        started = time.perf_counter()
        assert self.client is not None
        stream = (
            self.client.stream("GET", path, params=params)
            if out is None
            else self.client.stream(out.method, path, content=out.body, headers=dict(out.headers))
        )
        async with stream as response:
            return await self._collect(
                response.status_code,
                response.headers.get("content-length"),
                response.headers.get("content-type", ""),
                response.aiter_bytes(),
                started,
            )

    async def _once_aiohttp(
        self, path: str, params: Mapping[str, str] | None, out: Outgoing | None = None
    ) -> UpstreamResponse:
        started = time.perf_counter()
        assert self.session is not None
        url = self.session.url(path, params)
        request = (
            self.session.session.get(url, allow_redirects=False)
            if out is None
            else self.session.session.request(
                out.method, url, data=out.body, headers=out.headers, allow_redirects=False
            )
        )
        async with request as response:
            headers = response.headers
            declared = headers.get("Content-Length")
            content_type = headers.get("Content-Type", "")
            if (
                declared is not None
                and declared.isdecimal()
                and int(declared) <= self.connection.max_body_bytes
                and "Content-Encoding" not in headers
                and "Transfer-Encoding" not in headers
            ):
                # Neither encoded nor chunked, its length declared within the cap: the body is
                # exactly that long (the parser holds the framing to it), read in one piece.
                return UpstreamResponse(
                    status=response.status,
                    body=await response.read(),
                    content_type=content_type,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            return await self._collect(
                response.status, declared, content_type, response.content.iter_any(), started
            )

    async def _collect(
        self,
        status: int,
        declared: str | None,
        content_type: str,
        chunks: AsyncIterator[bytes],
        started: float,
    ) -> UpstreamResponse:
        """The body within the size cap: a declared length over it fails before any read, and
        the bytes are counted as they arrive. Both clients decompress (gzip/deflate), so the
        cap bounds what we hold in memory, not what crossed the wire."""
        limit = self.connection.max_body_bytes
        if declared is not None and declared.isdecimal() and int(declared) > limit:
            raise self._too_large(status, declared)
        body: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise self._too_large(status)
            body.append(chunk)
        return UpstreamResponse(
            status=status,
            body=b"".join(body),
            content_type=content_type,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> UpstreamResponse:
        """GET with the agency's deadline; retries connection failures and 502/503 only."""
        return await self._call(path, params, None)

    async def send(self, path: str, out: Outgoing) -> UpstreamResponse:
        """A request with a body, as :meth:`get` (deadline, retries, circuit breaker).

        Retrying it is safe only because what is sent carries an idempotency key the agency
        system recognises (deliveries send the delivery id).
        """
        return await self._call(path, None, out)

    async def _call(
        self, path: str, params: Mapping[str, str] | None, out: Outgoing | None
    ) -> UpstreamResponse:
        if not self.breaker.allow():
            raise UpstreamUnavailable(
                self.agency,
                "circuit open after repeated failures",
                category="upstream_circuit_open",
            )
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
                        response = await self._once(path, params, out)
                    except _UNREACHABLE as exc:
                        if _timed_out(exc):
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
        except (httpx2.TimeoutException, aiohttp.ServerTimeoutError) as exc:
            # Before TimeoutError: aiohttp's connect timeout is one, but not the deadline.
            self.breaker.record_failure()
            raise UpstreamTimeout(self.agency, f"timed out: {exc.__class__.__name__}") from exc
        except TimeoutError as exc:
            self.breaker.record_failure()
            raise UpstreamTimeout(
                self.agency, f"no answer within {self.connection.timeout_seconds:g} s"
            ) from exc
        except (UpstreamUnavailable, httpx2.TransportError, aiohttp.ClientError) as exc:
            # aiohttp.ClientError: the fast path's other failures (a body cut short, an
            # unparsable answer…), and those httpx-aiohttp passes through unmapped.
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
        if self.session is not None:
            await self.session.aclose()
        if self.client is not None:
            await self.client.aclose()


#: Failures to reach the agency, retried: refused, reset or dropped connections.
#: aiohttp.ClientConnectionError also covers its connect timeout, which ``_timed_out`` spots.
_UNREACHABLE = (
    httpx2.ConnectError,
    httpx2.RemoteProtocolError,
    httpx2.ConnectTimeout,
    aiohttp.ClientConnectionError,
)


def _timed_out(exc: Exception) -> bool:
    """Whether a connection failure is a connect timeout (not retried: the deadline is near).

    httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` (refused, reset, server
    disconnected) to ConnectTimeout; only one caused by a TimeoutError timed out. On the
    aiohttp path a connect timeout is ``aiohttp.ServerTimeoutError``, itself a TimeoutError.
    """
    if isinstance(exc, httpx2.ConnectTimeout):
        cause = exc.__cause__
        return cause is None or isinstance(cause, TimeoutError)
    return isinstance(exc, TimeoutError)


def _secret(agency: str, secrets: Mapping[str, str], name: str) -> str:
    try:
        return secrets[name]
    except KeyError:
        raise AgencyConfigError(
            f"{agency}: no credential {name!r} in GATEWAY_UPSTREAM_SECRETS"
        ) from None
