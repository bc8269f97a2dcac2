"""Console sessions: who is signed in, their CSRF token, and the cookie that names them.

The cookie holds a random id (256 bits); the database holds its SHA-256, the user, the
synchronizer CSRF token every form of the session carries, and the expiry. Signing out ends
the session in the database, so a copied cookie is worthless afterwards. The cookie is
httpOnly, SameSite=Strict and Secure (``GATEWAY_CONSOLE_INSECURE_LOOPBACK_COOKIES`` drops
Secure for http://127.0.0.1 and http://localhost in development only).

A session authorizes console pages only: the agency API reads Bearer tokens and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.user_models import HumanUser
from gateway.auth.users import UserInfo, user_info
from gateway.console.models import ConsoleSession
from gateway.db import session_scope, utcnow
from gateway.settings import Settings

__all__ = [
    "SESSION_COOKIE",
    "SessionStore",
    "SignedIn",
    "cookie_secure",
    "csrf_matches",
    "set_cookie",
]

SESSION_COOKIE = "zf_console_session"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass(frozen=True)
class SignedIn:
    user: UserInfo
    csrf_token: str
    session_hash: str


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Secure unless explicitly allowed for a loopback host over plain http."""
    return not (
        settings.console_insecure_loopback_cookies
        and request.url.scheme == "http"
        and (request.url.hostname or "") in _LOOPBACK
    )


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        secure=cookie_secure(request, settings),
        samesite="strict",
    )


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


class SessionStore:
    def __init__(self, factory: sessionmaker[Session], minutes: int) -> None:
        self.factory = factory
        self.minutes = minutes

    def start(self, username: str) -> tuple[str, str]:
        """A new session of ``username``: (cookie value, CSRF token)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        with session_scope(self.factory) as db:
            db.add(
                ConsoleSession(
                    id_sha256=_sha256(session_id),
                    username=username,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(minutes=self.minutes),
                )
            )
        return session_id, csrf

    def find(self, session_id: str | None) -> SignedIn | None:
        """The live session the cookie names, with its (enabled) user; None otherwise."""
        if not session_id or len(session_id) > 128:
            return None
        with session_scope(self.factory) as db:
            row = db.get(ConsoleSession, _sha256(session_id))
            if row is None or row.ended_at is not None or row.expires_at <= utcnow():
                return None
            user = db.get(HumanUser, row.username)
            if user is None or user.disabled:
                return None
            return SignedIn(user_info(user), row.csrf_token, row.id_sha256)

    def end(self, session_hash: str) -> None:
        with session_scope(self.factory) as db:
            db.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id_sha256 == session_hash)
                .values(ended_at=utcnow())
            )
