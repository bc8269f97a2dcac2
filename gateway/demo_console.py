"""The demo's console users: an administrator and a second one (maker-checker), a regulator
and reviewers of the court and of the procuratorate, with passwords made at run time and
kept in ``demo.json``.

As the demo's client secrets: the same on every restart of one data directory (a password
that no longer matches the stored hash is replaced), never committed. Registering a person
is an audit entry (kind ``client_admin``, under ``user:NAME``) as ``gateway users add`` writes.
Each account is a person of its own (``person_id`` ``demo-NAME``). The administrators sign in
with TOTP (``GATEWAY_CONSOLE_ADMIN_TOTP_REQUIRED``): their secrets and ``otpauth://`` URIs are
in ``demo.json`` too, for an authenticator app.
"""

from __future__ import annotations

import secrets
from typing import Any

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.auth.commands import _audit_blocking
from gateway.auth.passwords import verify_secret
from gateway.auth.scopes import Scope
from gateway.auth.totp import provisioning_uri
from gateway.auth.users import USER_PREFIX, UserService
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.settings import Settings

__all__ = ["DEMO_USERS", "console_users", "saved_passwords"]

# user name → (display name, agency, scopes). ``reviewer`` is the court's (FY640104), which
# answers the demo's conditional-sharing cycle; ``reviewer2`` the procuratorate's (JC640104),
# the recipient of the demo's deliveries; the regulator is the political-legal committee's.
DEMO_USERS: dict[str, tuple[str, str, list[str]]] = {
    "admin": ("张管理", "ZF640000", ["policy:admin"]),
    "admin2": ("李复核", "ZF640000", ["policy:admin"]),
    "regulator": ("王监督", "ZF640000", ["audit:read"]),
    "reviewer": ("周审核", "FY640104", ["sharing:review"]),
    "reviewer2": ("孙审核", "JC640104", ["sharing:review"]),
}


def saved_passwords(document: dict[str, Any]) -> dict[str, str]:
    """``name -> password`` from the demo.json of an earlier run, if any."""
    try:
        users = document["console"]["users"]
        return {name: str(u["password"]) for name, u in users.items()}
    except (KeyError, TypeError, AttributeError):
        return {}


def _registered(settings: Settings, name: str, agency: str, scopes: list[str]) -> None:
    _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=USER_PREFIX + name,
            requester_agency=agency,
            decision=Decision.ALLOW,
            status=200,
            action={"action": "register_user", "scopes": sorted(scopes), "operator": "demo"},
        ),
    )


def console_users(settings: Settings, saved: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Register (or keep) :data:`DEMO_USERS`; each one's name, password, agency and scopes."""
    engine = create_db_engine(settings.resolved_database_url)
    factory = make_session_factory(engine)
    out: dict[str, dict[str, Any]] = {}
    try:
        with session_scope(factory) as session:
            existing = {row.username for row in UserService(session).list_all()}
        # The entries first, each before its registration (and outside the session: on
        # SQLite the audit writer would wait for the session's write lock).
        for name, (_, agency, scopes) in DEMO_USERS.items():
            if name not in existing:
                _registered(settings, name, agency, scopes)
        with session_scope(factory) as session:
            service = UserService(session)
            for name, (display, agency, scopes) in DEMO_USERS.items():
                password = saved.get(name, "")
                totp = settings.console_admin_totp_required and Scope.POLICY_ADMIN in scopes
                row = service.get(name)
                if row is None:
                    password = secrets.token_urlsafe(15)
                    row, _ = service.add(
                        username=name,
                        display_name=display,
                        agency=agency,
                        scopes=scopes,
                        password=password,
                        totp=totp,
                        person_id=f"demo-{name}",
                    )
                elif not (password and verify_secret(password, row.password_hash)):
                    password = secrets.token_urlsafe(15)  # saved scripts of this DIR are stale
                    service.set_password(name, password)
                if totp and row.totp_secret is None:
                    service.enrol_totp(name)  # a data directory of an earlier version
                user: dict[str, Any] = {"password": password, "agency": agency, "scopes": scopes}
                if row.totp_secret is not None:
                    user["totp_secret"] = row.totp_secret
                    user["otpauth_uri"] = provisioning_uri(
                        row.totp_secret, name, "政法数据共享网关"
                    )
                out[name] = user
    finally:
        engine.dispose()
    return out
