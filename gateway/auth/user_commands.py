"""``gateway users …``: register, list and disable the people who sign in to the web console.

A registration is an audit entry (kind ``client_admin``, under ``user:NAME``), written before
the user exists, as a client registration is. The password is read from standard input
(``--password-stdin``) or asked for; it never appears on a command line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.auth.commands import _audit_blocking, _operator
from gateway.auth.totp import provisioning_uri
from gateway.auth.users import USER_PREFIX, UserError, UserService, user_info
from gateway.commands import EXIT_OK, EXIT_USAGE, CommandError, command_settings, database_error
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.settings import Settings

__all__ = ["cmd_users_add", "cmd_users_disable", "cmd_users_list"]

_T = TypeVar("_T")


def _run(settings: Settings, action: Callable[[UserService], _T]) -> _T:
    engine = create_db_engine(settings.resolved_database_url)
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


def cmd_users_add(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    scopes = [s for item in args.scopes for s in item.replace(",", " ").split()]
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
                "totp": bool(args.totp),
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
            totp=args.totp,
        ),
    )
    out: dict[str, object] = {"username": row.username, "scopes": row.scope_list}
    if secret is not None:
        # Shown once: the person adds it to an authenticator app (RFC 6238, SHA-1, 6 digits).
        out["totp_secret"] = secret
        out["otpauth_uri"] = provisioning_uri(secret, row.username, "政法数据共享网关")
    print(json.dumps(out, ensure_ascii=False))
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
            "totp": u.has_totp,
            "disabled": u.disabled,
        }
        for u in users
    ]
    print(json.dumps(rows, ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_users_disable(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=USER_PREFIX + args.username,
            decision=Decision.ALLOW,
            status=200,
            action={"action": "disable_user", "operator": _operator()},
        ),
    )
    _run(settings, lambda service: service.disable(args.username))
    return EXIT_OK
