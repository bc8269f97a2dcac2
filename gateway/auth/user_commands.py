"""``gateway users …``: register, list and disable the people who sign in to the web console,
enrol their TOTP, and prune the used sign-in codes and ended sessions.

A registration is an audit entry (kind ``client_admin``, under ``user:NAME``), written before
the user exists, as a client registration is. The password is read from standard input
(``--password-stdin``) or asked for; it never appears on a command line. Every account names
the person it belongs to (``--person-id``): two accounts of one person are one person for the
two-person rule. A ``policy:admin`` account is enrolled in TOTP at registration while
``GATEWAY_CONSOLE_ADMIN_TOTP_REQUIRED`` holds (the default); ``gateway users totp NAME``
enrols (or re-enrols) any account.

``prune`` deletes, as the tables' owner (``GATEWAY_MIGRATION_DATABASE_URL``), what the
application role may not delete: its role has no DELETE on any table.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.auth.commands import _audit_blocking, _operator
from gateway.auth.scopes import Scope
from gateway.auth.totp import provisioning_uri
from gateway.auth.users import TOTP_ISSUER, USER_PREFIX, UserError, UserService, user_info
from gateway.commands import EXIT_OK, EXIT_USAGE, CommandError, command_settings, database_error
from gateway.db import create_command_engine, make_session_factory, session_scope, utcnow
from gateway.settings import Settings

__all__ = [
    "cmd_users_add",
    "cmd_users_disable",
    "cmd_users_list",
    "cmd_users_prune",
    "cmd_users_totp",
]

ENROL = (
    "add totp_secret to an authenticator app (or scan otpauth_uri as a QR code); the console's "
    "sign-in asks for its 6-digit code"
)

_T = TypeVar("_T")


def _run(settings: Settings, action: Callable[[UserService], _T], *, url: str | None = None) -> _T:
    engine = create_command_engine(url or settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return action(UserService(session))
    except UserError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except SQLAlchemyError as exc:
        raise database_error(settings.resolved_database_url, exc, "manage users") from exc
    finally:
        engine.dispose()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the passwords differ", EXIT_USAGE)
    return first


def _audit_user_action(settings: Settings, username: str, action: str) -> None:
    """The entry of an action on one user, written before the action (fails closed)."""
    _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=USER_PREFIX + username,
            decision=Decision.ALLOW,
            status=200,
            action={"action": action, "operator": _operator()},
        ),
    )


def cmd_users_add(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    scopes = [s for item in args.scopes for s in item.replace(",", " ").split()]
    # An administrator without TOTP could not sign in: enrolled now, the secret shown once.
    totp = bool(args.totp) or (
        settings.console_admin_totp_required and Scope.POLICY_ADMIN.value in scopes
    )
    password = _password(args)
    _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=USER_PREFIX + args.username,
            requester_agency=args.agency,
            decision=Decision.ALLOW,
            status=200,
            action={
                "action": "register_user",
                "scopes": sorted(set(scopes)),
                "totp": totp,
                "person_id": args.person_id,
                "operator": _operator(),
            },
        ),
    )
    row, secret = _run(
        settings,
        lambda service: service.add(
            username=args.username,
            display_name=args.name,
            agency=args.agency,
            scopes=scopes,
            password=password,
            totp=totp,
            person_id=args.person_id,
        ),
    )
    out: dict[str, object] = {
        "username": row.username,
        "person_id": row.person_id,
        "scopes": row.scope_list,
    }
    if secret is not None:
        # Shown once: the person adds it to an authenticator app (RFC 6238, SHA-1, 6 digits).
        out["totp_secret"] = secret
        out["otpauth_uri"] = provisioning_uri(secret, row.username, TOTP_ISSUER)
        out["enrol"] = ENROL
    else:
        out["enrol"] = f"no TOTP: `gateway users totp {row.username}` enrols one"
    print(json.dumps(out, ensure_ascii=False))
    return EXIT_OK


def cmd_users_totp(args: argparse.Namespace) -> int:
    """Enrol (or replace) a user's TOTP secret; printed once, as at registration."""
    settings = command_settings(args)
    _audit_user_action(settings, args.username, "enrol_totp")
    secret = _run(settings, lambda service: service.enrol_totp(args.username))
    out = {
        "username": args.username,
        "totp_secret": secret,
        "otpauth_uri": provisioning_uri(secret, args.username, TOTP_ISSUER),
        "enrol": ENROL,
    }
    print(json.dumps(out, ensure_ascii=False))
    return EXIT_OK


def cmd_users_prune(args: argparse.Namespace) -> int:
    """Delete used or expired sign-in codes and ended or expired console sessions, as the
    tables' owner; an audit entry first (what is pruned), the counts after."""
    settings = command_settings(args)
    before = utcnow() - timedelta(days=args.older_than_days)
    _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=USER_PREFIX + "*",
            decision=Decision.ALLOW,
            status=200,
            action={
                "action": "prune_console_records",
                "ended_before": before.isoformat(timespec="seconds"),
                "operator": _operator(),
            },
        ),
    )
    codes, sessions = _run(
        settings,
        lambda service: service.prune(before),
        url=settings.resolved_migration_database_url,
    )
    print(json.dumps({"authorization_codes": codes, "console_sessions": sessions}))
    return EXIT_OK


def cmd_users_list(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    users = _run(settings, lambda service: [user_info(r) for r in service.list_all()])
    rows = [
        {
            "username": u.username,
            "name": u.display_name,
            "agency": u.agency,
            "scopes": sorted(u.scopes),
            "person_id": u.person_id,
            "totp": u.has_totp,
            "disabled": u.disabled,
        }
        for u in users
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_users_disable(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    _audit_user_action(settings, args.username, "disable_user")
    _run(settings, lambda service: service.disable(args.username))
    return EXIT_OK
