"""``gateway clients …``: register, list and disable API clients.

Every registration is an audit entry (kind ``client_admin``), written before the client
exists; a client forced across the separation of duties is marked for good and says so in it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.auth.clients import ClientError, ClientService, new_client_id
from gateway.auth.scopes import combines_duties
from gateway.commands import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    command_settings,
    database_error,
)
from gateway.db import create_command_engine, make_session_factory, session_scope
from gateway.settings import Settings

__all__ = ["cmd_clients_add", "cmd_clients_disable", "cmd_clients_list"]

_T = TypeVar("_T")


def _client_service_run(
    settings: Settings, action: Callable[[ClientService], _T], doing: str = "manage clients"
) -> _T:
    engine = create_command_engine(settings.resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return action(ClientService(session))
    except ClientError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except SQLAlchemyError as exc:
        raise database_error(settings.resolved_database_url, exc, doing) from exc
    finally:
        engine.dispose()


def _operator() -> str:
    """Who ran the command, as the operating system says (for the audit entry)."""
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "unknown"


def _audit_blocking(settings: Settings, draft: EntryDraft) -> int:
    """Append one entry from a command; fails (nothing changes) if it cannot be written."""
    writer = AuditWriter(settings.resolved_database_url)
    writer.start()
    try:
        return writer.append_blocking(draft)
    except AuditUnavailable as exc:
        raise CommandError(f"the audit log cannot record this; nothing changed ({exc})") from exc
    finally:
        writer.stop()


def cmd_clients_add(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    requested = [s for item in args.scopes for s in item.replace(",", " ").split()]
    scopes = _client_service_run(
        settings,
        lambda service: service.check_registration(
            name=args.name,
            agency=args.agency,
            scopes=requested,
            force_combined_roles=args.force_combined_roles,
            rate_limit_per_second=args.rate_limit,
        ),
    )
    client_id = new_client_id()
    combined = combines_duties(scopes)
    # The registration is an audit entry, written first: a client whose scopes cross the
    # separation of duties exists only with the entry that says who forced it.
    index = _audit_blocking(
        settings,
        EntryDraft(
            kind=AuditKind.CLIENT_ADMIN,
            client_id=client_id,
            requester_agency=args.agency,
            decision=Decision.ALLOW,
            status=200,
            action={
                "action": "register",
                "name": args.name,
                "scopes": scopes,
                "duties_combined": combined,
                "operator": _operator(),
            },
        ),
    )
    issued = _client_service_run(
        settings,
        lambda service: service.register(
            name=args.name,
            agency=args.agency,
            scopes=scopes,
            force_combined_roles=args.force_combined_roles,
            rate_limit_per_second=args.rate_limit,
            rate_limit_burst=args.burst,
            client_id=client_id,
        ),
    )
    if combined:
        print(
            f"warning: {issued.name} holds {' and '.join(issued.scopes)} across the separation "
            f"of duties (forced); recorded with the client and in audit entry {index}",
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "client_id": issued.client_id,
                "client_secret": issued.client_secret,
                "name": issued.name,
                "agency": issued.agency,
                "scopes": issued.scopes,
                "duties_combined": issued.duties_combined,
                "audit_index": index,
                "note": "the secret is shown once; store it now",
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return EXIT_OK


def cmd_clients_list(args: argparse.Namespace) -> int:
    clients = _client_service_run(command_settings(args), lambda service: service.list())
    rows: list[dict[str, Any]] = [
        {
            "client_id": c.client_id,
            "name": c.name,
            "agency": c.agency,
            "scopes": sorted(c.scopes),
            "disabled": c.disabled,
            "rate_limit_per_second": c.rate_limit_per_second,
            "duties_combined": c.duties_combined,
        }
        for c in clients
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            state = "disabled" if row["disabled"] else "enabled"
            forced = "  (duties combined, forced)" if row["duties_combined"] else ""
            print(
                f"{row['client_id']}  {row['name']:<20} {row['agency']}  {state:<8} "
                f"{' '.join(row['scopes'])}{forced}"
            )
    return EXIT_OK


def cmd_clients_disable(args: argparse.Namespace) -> int:
    info = _client_service_run(command_settings(args), lambda service: service.disable(args.client))
    print(
        f"disabled {info.client_id} ({info.name}); its live tokens stop working within "
        f"{command_settings(args).client_cache_seconds:g} s"
    )
    return EXIT_OK
