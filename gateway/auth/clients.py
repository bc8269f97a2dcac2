"""Registering, listing and disabling clients; and the in-memory registry the hot path reads.

Revocation story: tokens are short-lived JWTs and are not stored. Disabling a
client takes effect at the token endpoint at once and on every protected route
within ``GATEWAY_CLIENT_CACHE_SECONDS`` (5 s by default), when the registry
snapshot is refreshed; a disabled client's live tokens are then refused.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from gateway.auth.models import OAuthClient
from gateway.auth.passwords import hash_secret, new_client_secret
from gateway.auth.repository import ClientRepository
from gateway.auth.scopes import check_scope_set, combines_duties
from gateway.db import session_scope, utcnow

__all__ = [
    "ClientError",
    "ClientInfo",
    "ClientRegistry",
    "ClientService",
    "IssuedCredentials",
    "client_info",
    "new_client_id",
]

AGENCY_CODE = re.compile(r"^[A-Z]{2}\d{6}$")
CLIENT_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")


class ClientError(ValueError):
    """A client cannot be registered or changed as asked; the message says why."""


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    name: str
    agency: str
    scopes: frozenset[str]
    disabled: bool
    rate_limit_per_second: float | None
    rate_limit_burst: int | None
    duties_combined: bool = False


@dataclass(frozen=True)
class IssuedCredentials:
    client_id: str
    client_secret: str
    name: str
    agency: str
    scopes: list[str]
    duties_combined: bool = False


def new_client_id() -> str:
    return f"gw-{secrets.token_hex(8)}"


def client_info(row: OAuthClient) -> ClientInfo:
    """The registry's immutable view of a client row."""
    return ClientInfo(
        client_id=row.client_id,
        name=row.name,
        agency=row.agency_code,
        scopes=frozenset(row.scope_list),
        disabled=row.disabled,
        rate_limit_per_second=row.rate_limit_per_second,
        rate_limit_burst=row.rate_limit_burst,
        duties_combined=bool(row.duties_combined),
    )


class ClientService:
    def __init__(self, session: Session) -> None:
        self.repository = ClientRepository(session)

    def check_registration(
        self,
        *,
        name: str,
        agency: str,
        scopes: Iterable[str],
        force_combined_roles: bool = False,
        rate_limit_per_second: float | None = None,
        known_agencies: frozenset[str] | None = None,
    ) -> list[str]:
        """The scopes sorted and de-duplicated, or :class:`ClientError` saying why not."""
        if not CLIENT_NAME.match(name):
            raise ClientError(
                f"invalid client name {name!r}: lower-case letters, digits, '_', '-', '.'"
            )
        if not AGENCY_CODE.match(agency):
            raise ClientError(f"invalid agency code {agency!r}: expected e.g. GA640104")
        if known_agencies is not None and agency not in known_agencies:
            raise ClientError(f"agency {agency!r} is not in the standard's agency list")
        try:
            scope_list = check_scope_set(scopes, force=force_combined_roles)
        except ValueError as exc:
            raise ClientError(str(exc)) from exc
        if rate_limit_per_second is not None and rate_limit_per_second <= 0:
            raise ClientError("rate limit must be positive")
        if self.repository.get_by_name(name) is not None:
            raise ClientError(f"a client named {name!r} exists already")
        return scope_list

    def register(
        self,
        *,
        name: str,
        agency: str,
        scopes: Iterable[str],
        force_combined_roles: bool = False,
        rate_limit_per_second: float | None = None,
        rate_limit_burst: int | None = None,
        known_agencies: frozenset[str] | None = None,
        client_id: str | None = None,
    ) -> IssuedCredentials:
        scope_list = self.check_registration(
            name=name,
            agency=agency,
            scopes=scopes,
            force_combined_roles=force_combined_roles,
            rate_limit_per_second=rate_limit_per_second,
            known_agencies=known_agencies,
        )
        combined = combines_duties(scope_list)
        secret = new_client_secret()
        client = OAuthClient(
            client_id=client_id or new_client_id(),
            name=name,
            agency_code=agency,
            scopes=" ".join(scope_list),
            secret_hash=hash_secret(secret),
            disabled=False,
            created_at=utcnow(),
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            duties_combined=combined,
        )
        self.repository.add(client)
        return IssuedCredentials(client.client_id, secret, name, agency, scope_list, combined)

    def reset_secret(self, name: str) -> IssuedCredentials:
        client = self.repository.get_by_name(name)
        if client is None:
            raise ClientError(f"no client named {name!r}")
        secret = new_client_secret()
        client.secret_hash = hash_secret(secret)
        client.disabled = False
        client.disabled_at = None
        return IssuedCredentials(
            client.client_id, secret, client.name, client.agency_code, client.scope_list
        )

    def disable(self, client_id_or_name: str) -> ClientInfo:
        client = self.repository.get(client_id_or_name) or self.repository.get_by_name(
            client_id_or_name
        )
        if client is None:
            raise ClientError(f"no client {client_id_or_name!r}")
        if not client.disabled:
            client.disabled = True
            client.disabled_at = utcnow()
        return client_info(client)

    def list(self) -> list[ClientInfo]:
        return [client_info(row) for row in self.repository.list_all()]

    def get(self, client_id: str) -> OAuthClient | None:
        return self.repository.get(client_id)


class ClientRegistry:
    """A snapshot of every client, refreshed every few seconds, read without I/O."""

    def __init__(self, factory: sessionmaker[Session], *, max_age_seconds: float) -> None:
        self._factory = factory
        self._max_age = max_age_seconds
        self._clients: dict[str, ClientInfo] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = False

    def refresh(self) -> None:
        with session_scope(self._factory) as session:
            clients = {info.client_id: info for info in ClientService(session).list()}
        with self._lock:
            self._clients = clients
            self._loaded_at = time.monotonic()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self._max_age

    @property
    def loaded(self) -> bool:
        return self._loaded_at != float("-inf")

    @property
    def uncached(self) -> bool:
        """No snapshot age allowed (``client_cache_seconds`` 0): each request reads afresh."""
        return self._max_age == 0

    def claim_refresh(self) -> bool:
        """True for the one caller that is to refresh a stale snapshot now, which must then
        call :meth:`refresh_claimed`. Once loaded, a stale snapshot is refreshed by one
        request while the others read it: every request of a busy worker running its own
        refresh (a thread hand-off and a query each) is what this avoids."""
        with self._lock:
            if self._refreshing or not self.stale:
                return False
            self._refreshing = True
            return True

    def refresh_claimed(self) -> None:
        try:
            self.refresh()
        finally:
            with self._lock:
                self._refreshing = False

    def get(self, client_id: str) -> ClientInfo | None:
        return self._clients.get(client_id)

    def all(self) -> Sequence[ClientInfo]:
        return list(self._clients.values())
