"""The fast path of :class:`~adapters.transports.http.UpstreamHttp`: aiohttp without httpx.

For agencies authenticated by API key, HTTP Basic or mutual TLS (no OAuth2: authlib needs
httpx), the upstream client talks to one long-lived ``aiohttp.ClientSession`` directly
instead of httpx2 on an aiohttp transport: the httpx layer (request and URL models, cookie
merging, auth flow, response wrapping) cost ~2/3 of the client's CPU per request
(docs/performance.md §3).

What an agency system sees is what the httpx2 path sends:

* the same request target: the URL string httpx2 builds (its ``base_url`` merge and path
  percent-encoding, ``params`` as ``urllib.parse.urlencode`` encodes them: space → ``+``,
  ``(`` → ``%28``, UTF-8 escapes…), handed to aiohttp as a string, as the aiohttp
  transport did. aiohttp (yarl) then re-quotes it the same way: it un-escapes what needs
  no escape in a query (``%28`` → ``(``, ``%2F`` → ``/``) and keeps ``%2B``, ``%26``,
  ``%3D``, ``%25``…; so the bytes on the wire are the ones the httpx path sent. Plain
  paths are appended to the base as text; any other (spaces, ``%``, ``.`` segments,
  ``?``…) goes through httpx2's own URL code;
* the same headers: ``Accept``, the API key or Basic credentials (UTF-8, as httpx encodes
  them), ``Accept-Encoding: gzip, deflate``, ``Connection: keep-alive`` and httpx2's
  ``User-Agent``;
* no redirect followed, no cookie kept (``DummyCookieJar``), no proxy or netrc from the
  environment, the TLS context ``UpstreamHttp`` builds (system CAs, or the mTLS context),
  at most ``max_connections`` keep-alive connections (idle ones closed after 5 s, httpx's
  default).

The session binds to the event loop it is created in, so it is created on first use, inside
the running loop (adapters are built in the app's lifespan, but tests build them anywhere).
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp
import httpx2

__all__ = ["ACCEPT_ENCODING", "USER_AGENT", "AiohttpSession", "basic_authorization"]

#: What httpx2 sends without brotli/zstd decoders, and what aiohttp always decodes.
ACCEPT_ENCODING = "gzip, deflate"
#: httpx2's default: the agency systems see the same client whichever path is taken.
USER_AGENT = f"python-httpx2/{httpx2.__version__}"
#: httpx's default ``Limits.keepalive_expiry``, which the aiohttp transport passed on.
KEEPALIVE_SECONDS = 5.0

# A path httpx would leave exactly as it is: it starts with one "/", holds only characters
# its path quoting keeps (no "%", no space, no "?"/"#"), and no "." or ".." segment.
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value of ``httpx2.BasicAuth`` (UTF-8, where aiohttp uses latin-1)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class AiohttpSession:
    """One agency's ``aiohttp.ClientSession``, opened lazily; builds httpx-identical URLs."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        tls: ssl.SSLContext,
        connect_timeout: float,
        max_connections: int,
    ) -> None:
        base = httpx2.URL(base_url)
        if not base.raw_path.endswith(b"/"):  # what httpx2.AsyncClient does to its base_url
            base = base.copy_with(raw_path=base.raw_path + b"/")
        self._base = base
        # Plain paths are appended to the base as text; a base with a query, a fragment
        # or credentials goes through httpx2's merge every time.
        plain = not (base.query or base.fragment or base.userinfo)
        prefix = str(base)  # "http://host:port" when raw_path is just "/"
        if not prefix.endswith("/"):
            prefix += "/"
        self._prefix: str | None = prefix if plain else None
        defaults = {
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
            "User-Agent": USER_AGENT,
        }
        given = {name.lower() for name in headers}  # an agency's header replaces a default
        self._headers = {k: v for k, v in defaults.items() if k.lower() not in given}
        self._headers.update(headers)
        self._tls = tls
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def url(self, path: str, params: Mapping[str, str] | None) -> str:
        """The URL httpx2.AsyncClient(base_url=…).get(path, params=params) would request."""
        prefix = self._prefix
        if prefix is not None and _PLAIN_PATH.fullmatch(path) and "/." not in path:
            url = prefix + path[1:]
            if params:
                url += "?" + urlencode(params)
            return url
        return self._httpx_url(path, params)

    def _httpx_url(self, path: str, params: Mapping[str, str] | None) -> str:
        """httpx2's ``AsyncClient._merge_url`` then ``Request(url, params=…)``, which
        replaces any query in the path with ``params`` (when given, even empty)."""
        merge = httpx2.URL(path)
        url = merge
        if merge.is_relative_url:
            base = self._base
            url = base.copy_with(raw_path=base.raw_path + merge.raw_path.lstrip(b"/"))
        if params is not None:
            url = httpx2.URL(url, params=params)
        return str(url)

    @property
    def session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    ssl=self._tls,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                ),
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                trust_env=False,
                auto_decompress=True,
            )
        return session

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
