"""The OAuth2 client-credentials token endpoint (RFC 6749 §4.4), built on authlib.

authlib supplies the protocol: grant dispatch, ``client_secret_basic`` and
``client_secret_post`` parsing, RFC 6749 §5.2 error bodies. This module supplies
the storage (the client registry), the token format (RFC 9068 JWTs) and the
framework glue. authlib is synchronous; the route runs it in the threadpool.

Client authentication happens before authlib runs: the route reads the credentials
(:func:`client_credentials`, the same two methods authlib offers), throttles, and checks
the secret in the scrypt pool of its own (:class:`gateway.auth.passwords.SecretChecker`);
authlib is then handed the authenticated client.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy.orm import Session, sessionmaker

from gateway.auth.clients import ClientService, client_info
from gateway.auth.models import OAuthClient
from gateway.auth.scopes import ALL_SCOPES
from gateway.auth.tokens import TokenIssuer
from gateway.db import session_scope

__all__ = ["GatewayAuthorizationServer", "TokenRequest", "client_credentials"]

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS


def client_credentials(
    headers: Mapping[str, str], form: Mapping[str, list[str]]
) -> tuple[str, str, str] | None:
    """(client id, secret, method) as authlib reads them: Basic first, then the form."""
    client_id, secret = extract_basic_authorization(headers)
    if client_id and secret:
        return client_id, secret, "client_secret_basic"
    form_id, form_secret = form.get("client_id", [""])[0], form.get("client_secret", [""])[0]
    if form_id and form_secret:
        return form_id, form_secret, "client_secret_post"
    return None


class _RegisteredClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthClient | None) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id if self.row else ""

    def check_client_secret(self, client_secret: str) -> bool:
        # Secrets are checked before authlib runs (in the scrypt pool): never here.
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in TOKEN_AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str) -> str:
        assert self.row is not None
        if not scope:
            return self.row.scopes
        return " ".join(s for s in scope.split() if s in self.row.scope_list)


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: Mapping[str, list[str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list, form)
        self._data = {key: values[0] for key, values in form.items() if values}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class TokenRequest(OAuth2Request):  # type: ignore[misc]
    """A token request already read off the wire (method, URL, headers, parsed form), with
    the client the route authenticated (None: authentication failed)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        form: Mapping[str, list[str]],
        *,
        client: OAuthClient | None = None,
        auth_method: str | None = None,
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _FormPayload(form)
        self._form = {key: values[0] for key, values in form.items() if values}
        self.authenticated = None if client is None else _RegisteredClient(client)
        self.authenticated_method = auth_method

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, factory: sessionmaker[Session], issuer: TokenIssuer) -> None:
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        self._factory = factory
        self._issuer = issuer
        self.register_grant(_ClientCredentialsGrant)
        self.register_token_generator("default", self._generate)

    def client_row(self, client_id: str) -> OAuthClient | None:
        """The registered client, if any (enabled or not)."""
        if len(client_id) > 64 or "\x00" in client_id:  # no such id; PostgreSQL rejects NUL
            return None
        with session_scope(self._factory) as session:
            row = ClientService(session).get(client_id)
            if row is not None:
                session.expunge(row)
        return row

    def query_client(self, client_id: str) -> _RegisteredClient:
        return _RegisteredClient(self.client_row(client_id))

    def authenticate_client(
        self, request: TokenRequest, methods: list[str], endpoint: str = "token"
    ) -> _RegisteredClient:
        """The client the route authenticated; authlib's own secret checks never run."""
        if request.authenticated is None:
            raise InvalidClientError(status_code=401, description="client authentication failed")
        request.auth_method = request.authenticated_method
        return request.authenticated

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are self-contained JWTs; nothing is stored."""

    def _generate(
        self,
        grant_type: str,
        client: _RegisteredClient,
        user: object = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        row = client.row
        assert row is not None
        # A blank scope is an omitted one (RFC 6749 §3.1); a repeated scope is asked once.
        requested = set((scope or "").split()) or set(row.scope_list)
        if not requested <= set(row.scope_list):
            raise InvalidScopeError(
                description=f"this client may request only: {' '.join(row.scope_list)}"
            )
        return self._issuer.issue(client_info(row), sorted(requested))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers."""

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]] | dict[str, str]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        header_list = list(headers.items()) if isinstance(headers, dict) else list(headers)
        return status, body, header_list
