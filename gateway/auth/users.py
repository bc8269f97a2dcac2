"""People who sign in to the web console: registering them, checking their password and
TOTP, and the one-time authorization codes of the authorization-code flow with PKCE
(RFC 6749 §4.1, RFC 7636).

A person holds scopes among :data:`HUMAN_SCOPES` under the same separation of duties as the
clients (:func:`gateway.auth.scopes.check_scope_set`). The agency API stays client-credentials
only: a user gets no access token, only a console session (:mod:`gateway.console.sessions`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from gateway.auth.clients import AGENCY_CODE
from gateway.auth.passwords import hash_secret
from gateway.auth.scopes import Scope, check_scope_set
from gateway.auth.totp import new_totp_secret
from gateway.auth.user_models import AuthorizationCode, HumanUser
from gateway.console.models import ConsoleSession
from gateway.db import utcnow

__all__ = [
    "CONSOLE_CLIENT_ID",
    "HUMAN_SCOPES",
    "TOTP_ISSUER",
    "USER_PREFIX",
    "CodeGrant",
    "CodeRefused",
    "UserError",
    "UserInfo",
    "UserService",
    "person_of",
    "pkce_challenge",
]

# The console is a public client of the gateway's own authorization server, built in: its
# only redirect URI is GATEWAY_ISSUER + /console/callback.
CONSOLE_CLIENT_ID = "console"
CONSOLE_REDIRECT_PATH = "/console/callback"
# A person's actions are recorded under this prefix: no client id can be mistaken for them.
USER_PREFIX = "user:"
HUMAN_SCOPES = frozenset({Scope.POLICY_ADMIN, Scope.AUDIT_READ, Scope.SHARING_REVIEW})
# The issuer an authenticator app shows next to the user name.
TOTP_ISSUER = "政法数据共享网关"
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,47}$")
PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MIN_PASSWORD = 12
CODE_SECONDS = 60
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


class UserError(ValueError):
    """A user cannot be registered or changed as asked; the message says why."""


class CodeRefused(Exception):
    """The code is unknown, used, expired, or not for this client, redirect or verifier."""


@dataclass(frozen=True)
class UserInfo:
    username: str
    display_name: str
    agency: str
    scopes: frozenset[str]
    has_totp: bool
    disabled: bool
    person_id: str = ""

    @property
    def actor_id(self) -> str:
        """The id this person's actions carry in the audit log and the policy store."""
        return USER_PREFIX + self.username


@dataclass(frozen=True)
class CodeGrant:
    username: str
    scopes: frozenset[str]
    agency: str


def user_info(row: HumanUser) -> UserInfo:
    return UserInfo(
        row.username,
        row.display_name,
        row.agency_code,
        frozenset(row.scope_list),
        row.totp_secret is not None,
        row.disabled,
        row.person_id,
    )


def person_of(session: Session, actor_id: str) -> str | None:
    """The person behind an actor id ``user:NAME`` (None for a client or an unknown user)."""
    if not actor_id.startswith(USER_PREFIX):
        return None
    row = session.get(HumanUser, actor_id.removeprefix(USER_PREFIX))
    return row.person_id if row is not None else None


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class UserService:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, username: str) -> HumanUser | None:
        if not USERNAME.fullmatch(username):
            return None
        return self.session.get(HumanUser, username)

    def list_all(self) -> Sequence[HumanUser]:
        return self.session.scalars(select(HumanUser).order_by(HumanUser.username)).all()

    def add(
        self,
        *,
        username: str,
        display_name: str,
        agency: str,
        scopes: Sequence[str],
        password: str,
        totp: bool = False,
        person_id: str | None = None,
    ) -> tuple[HumanUser, str | None]:
        """Register an account of a person (``person_id``, default: the user name); the TOTP
        secret (to show once) when ``totp``."""
        if not USERNAME.fullmatch(username):
            raise UserError("a user name is 2-48 of a-z 0-9 _ . -, starting with a letter")
        person = username if person_id is None else person_id
        if not PERSON_ID.fullmatch(person):
            raise UserError("a person id is 1-64 of A-Z a-z 0-9 _ . : -, e.g. an officer's number")
        if not AGENCY_CODE.fullmatch(agency):
            raise UserError("the agency code is two capitals and six digits, e.g. ZF640000")
        if not 1 <= len(display_name) <= 128:
            raise UserError("the display name is 1-128 characters")
        others = sorted(set(scopes) - HUMAN_SCOPES)
        if others:
            raise UserError(
                f"a person may hold only {', '.join(sorted(HUMAN_SCOPES))}; not {others}"
            )
        try:
            checked = check_scope_set(scopes)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        self._check_password(password)
        if self.session.get(HumanUser, username) is not None:
            raise UserError(f"user {username} exists already")
        secret = new_totp_secret() if totp else None
        row = HumanUser(
            username=username,
            display_name=display_name,
            person_id=person,
            agency_code=agency,
            scopes=" ".join(checked),
            password_hash=hash_secret(password),
            totp_secret=secret,
            disabled=False,
        )
        self.session.add(row)
        self.session.flush()
        return row, secret

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password has at least {MIN_PASSWORD} characters")

    def set_password(self, username: str, password: str) -> None:
        row = self._existing(username)
        self._check_password(password)
        row.password_hash = hash_secret(password)

    def enrol_totp(self, username: str) -> str:
        """A new TOTP secret for the user (to show once); the codes of an old one stop working."""
        row = self._existing(username)
        row.totp_secret = new_totp_secret()
        row.totp_last_step = None
        return row.totp_secret

    def prune(self, before: datetime) -> tuple[int, int]:
        """Delete codes used or expired, and console sessions ended or expired, before
        ``before``: (codes, sessions). Needs DELETE, which only the tables' owner has."""
        codes = self.session.execute(
            delete(AuthorizationCode).where(
                or_(AuthorizationCode.used_at < before, AuthorizationCode.expires_at < before)
            )
        )
        sessions = self.session.execute(
            delete(ConsoleSession).where(
                or_(ConsoleSession.ended_at < before, ConsoleSession.expires_at < before)
            )
        )
        return int(getattr(codes, "rowcount", 0)), int(getattr(sessions, "rowcount", 0))

    def disable(self, username: str) -> None:
        self._existing(username).disabled = True

    def _existing(self, username: str) -> HumanUser:
        row = self.get(username)
        if row is None:
            raise UserError(f"no user {username}")
        return row

    def accept_totp_step(self, username: str, step: int) -> bool:
        """Record the step a code was accepted for; False if it (or a later one) was used."""
        result = self.session.execute(
            update(HumanUser)
            .where(
                HumanUser.username == username,
                (HumanUser.totp_last_step.is_(None)) | (HumanUser.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- authorization codes ---------------------------------------------------------------

    def issue_code(
        self,
        *,
        client_id: str,
        username: str,
        redirect_uri: str,
        code_challenge: str,
        scopes: Sequence[str],
        now: datetime | None = None,
    ) -> str:
        code = secrets.token_urlsafe(32)
        self.session.add(
            AuthorizationCode(
                code_sha256=_sha256(code),
                client_id=client_id,
                username=username,
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                scopes=" ".join(sorted(scopes)),
                expires_at=(now or utcnow()) + timedelta(seconds=CODE_SECONDS),
            )
        )
        self.session.flush()
        return code

    def redeem_code(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str,
        code_verifier: str,
        now: datetime | None = None,
    ) -> CodeGrant:
        """Redeem a code once (RFC 6749 §4.1.3, RFC 7636 §4.6); :class:`CodeRefused` else."""
        moment = now or utcnow()
        digest = _sha256(code)
        # Used on first presentation, whatever follows: a code is never good twice. Claimed
        # first, read after: on SQLite a transaction that reads and then writes fails at once
        # when another connection (the audit writer) committed in between (authorize.py).
        claimed = self.session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_sha256 == digest,
                AuthorizationCode.used_at.is_(None),
            )
            .values(used_at=moment)
            .execution_options(synchronize_session=False)
        )
        row = (
            self.session.get(AuthorizationCode, digest) if getattr(claimed, "rowcount", 0) else None
        )
        if row is None:
            raise CodeRefused("the code is unknown or was used already")
        if row.expires_at <= moment:
            raise CodeRefused("the code has expired")
        if row.client_id != client_id or row.redirect_uri != redirect_uri:
            raise CodeRefused("the code was issued to another client or redirect URI")
        if not _VERIFIER.fullmatch(code_verifier) or not hmac.compare_digest(
            pkce_challenge(code_verifier), row.code_challenge
        ):
            raise CodeRefused("the code verifier does not match the code challenge (PKCE)")
        user = self.session.get(HumanUser, row.username)
        if user is None or user.disabled:
            raise CodeRefused("the user is disabled")
        return CodeGrant(row.username, frozenset(row.scopes.split()), user.agency_code)
