"""The ``gateway`` command.

Exit codes: 0 success · 1 the operation failed (e.g. database unreachable) ·
2 bad usage, invalid input or a configuration the gateway refuses.

This module builds the parser only; each command's modules are imported when it runs, so that
``gateway --help`` and the policy commands start without the web stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.auth.scopes import ALL_SCOPES
from gateway.commands import (
    DATA_DIR_HELP,
    EXIT_FAILED,
    CommandError,
    add_data_dir_option,
    lazy_command,
)

__all__ = ["main", "register_policy_commands"]

DEFAULT_DEMO_DIR = "var/demo"
# gateway.auth.keys.SIGNING_ALGORITHMS, without importing the key store (a test keeps them equal)
SIGNING_ALGORITHMS = ("RS256", "ES256", "Ed25519")
_REPO_ROOT = Path(__file__).resolve().parents[1]


def register_client_commands(sub: Any) -> None:
    clients = sub.add_parser("clients", help="register and manage API clients").add_subparsers(
        dest="clients_command", required=True, metavar="ACTION"
    )
    add = clients.add_parser("add", help="register a client; prints its secret once, as JSON")
    add.add_argument("--name", required=True)
    add.add_argument("--agency", required=True, help="agency code, e.g. GA640104")
    add.add_argument(
        "--scopes",
        nargs="+",
        required=True,
        metavar="SCOPE",
        help=f"one or more of: {', '.join(sorted(ALL_SCOPES))}",
    )
    add.add_argument(
        "--force-combined-roles",
        action="store_true",
        help="allow more than one of exchange, policy:admin, audit:read (separation of duties; "
        "not recommended: recorded with the client and audited)",
    )
    add.add_argument("--rate-limit", type=float, help="requests per second for this client")
    add.add_argument("--burst", type=int, help="burst size for this client")
    add_data_dir_option(add)
    add.set_defaults(func=lazy_command("gateway.auth.commands:cmd_clients_add"))
    lst = clients.add_parser("list", help="list clients")
    lst.add_argument("--json", action="store_true")
    add_data_dir_option(lst)
    lst.set_defaults(func=lazy_command("gateway.auth.commands:cmd_clients_list"))
    disable = clients.add_parser("disable", help="disable a client by id or name")
    disable.add_argument("client")
    add_data_dir_option(disable)
    disable.set_defaults(func=lazy_command("gateway.auth.commands:cmd_clients_disable"))


def register_user_commands(sub: Any) -> None:
    users = sub.add_parser(
        "users", help="people who sign in to the web console (/console/)"
    ).add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = users.add_parser("add", help="register a person; prints the TOTP secret once, as JSON")
    add.add_argument("--username", required=True)
    add.add_argument("--name", required=True, help="the name the console shows, e.g. 张三")
    add.add_argument("--agency", required=True, help="agency code, e.g. ZF640000")
    add.add_argument(
        "--scopes",
        nargs="+",
        required=True,
        metavar="SCOPE",
        help="one of: policy:admin, audit:read, sharing:review (separation of duties)",
    )
    add.add_argument(
        "--person-id",
        required=True,
        help="the person the account belongs to (e.g. an officer's number): the two-person "
        "rule compares persons, so a second account of the same person cannot approve",
    )
    add.add_argument(
        "--totp",
        action="store_true",
        help="require a TOTP code (RFC 6238); policy:admin accounts are enrolled anyway "
        "(GATEWAY_CONSOLE_ADMIN_TOTP_REQUIRED)",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_data_dir_option(add)
    add.set_defaults(func=lazy_command("gateway.auth.user_commands:cmd_users_add"))
    lst = users.add_parser("list", help="list the console's users")
    add_data_dir_option(lst)
    lst.set_defaults(func=lazy_command("gateway.auth.user_commands:cmd_users_list"))
    disable = users.add_parser("disable", help="disable a user (their sessions end at once)")
    disable.add_argument("username")
    add_data_dir_option(disable)
    disable.set_defaults(func=lazy_command("gateway.auth.user_commands:cmd_users_disable"))
    totp = users.add_parser(
        "totp", help="enrol (or replace) a user's TOTP secret; prints it once, as JSON"
    )
    totp.add_argument("username")
    add_data_dir_option(totp)
    totp.set_defaults(func=lazy_command("gateway.auth.user_commands:cmd_users_totp"))
    prune = users.add_parser(
        "prune",
        help="delete used or expired sign-in codes and ended or expired console sessions, "
        "as the tables' owner (GATEWAY_MIGRATION_DATABASE_URL)",
    )
    prune.add_argument(
        "--older-than-days",
        type=int,
        default=1,
        choices=range(0, 3651),
        metavar="DAYS",
        help="only those that ended at least this many days ago (default 1)",
    )
    add_data_dir_option(prune)
    prune.set_defaults(func=lazy_command("gateway.auth.user_commands:cmd_users_prune"))


def _default_policy_dir() -> Path:
    """``GATEWAY_POLICY_DIR`` if set (the directory ``serve`` reads), else ``./policies`` in a
    checkout, else the policies shipped with the gateway."""
    configured = os.environ.get("GATEWAY_POLICY_DIR")
    if configured:
        return Path(configured)
    here = Path("policies")
    return here if here.is_dir() else _REPO_ROOT / "policies"


def register_policy_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``policy validate|test|diff|explain`` to an argparse ``add_subparsers()`` object."""
    policy: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="validate, test, diff and explain policies"
    )
    sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    validate = sub.add_parser("validate", help="load and check a policy directory")
    validate.add_argument("dir", nargs="?", default=str(_default_policy_dir()))
    validate.add_argument("--strict", action="store_true", help="static-check warnings are errors")
    validate.add_argument("--json", action="store_true", help="print the summary as JSON")
    validate.set_defaults(func=lazy_command("gateway.policy.cli:cmd_validate"))
    test = sub.add_parser("test", help="run the policy test suites (DIR/tests)")
    test.add_argument("dir", nargs="?", default=str(_default_policy_dir()))
    test.add_argument("--suite", help="a suite file or directory (default: DIR/tests)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    test.set_defaults(func=lazy_command("gateway.policy.cli:cmd_test"))
    diff = sub.add_parser("diff", help="rule changes from policy directory OLD to NEW")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=lazy_command("gateway.policy.cli:cmd_diff"))
    explain = sub.add_parser("explain", help="explain the decision on a request (JSON)")
    explain.add_argument("--request", required=True, help="request JSON file")
    explain.add_argument("--records", help="JSON array of standard records to filter")
    explain.add_argument(
        "--subjects",
        help='JSON object of the persons and cases the records refer to: {"person": [...], '
        '"case_persons": [...]}',
    )
    explain.add_argument("--dir", default=str(_default_policy_dir()), help="policy directory")
    explain.set_defaults(func=lazy_command("gateway.policy.cli:cmd_explain"))
    return policy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Cross-agency data-sharing gateway for political-legal agencies. "
        "Configuration comes from GATEWAY_* environment variables (see README); every command "
        "reads the same ones as `gateway serve`.",
        epilog="exit codes: 0 ok, 1 operation failed, 2 bad usage or refused configuration",
    )
    parser.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway (production; config from env)")
    serve.add_argument("--host", help="bind address (default GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port (default GATEWAY_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default GATEWAY_WORKERS)")
    add_data_dir_option(serve)
    serve.set_defaults(func=lazy_command("gateway.cli_commands:cmd_serve"))

    demo = sub.add_parser("demo", help="run a self-contained demo on SQLite")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument(
        "--sandbox-port",
        type=int,
        default=18101,
        help="first of five ports for the sample agency systems (default 18101)",
    )
    demo.add_argument("--cases", type=int, default=2000, help="synthetic cases (default 2000)")
    add_data_dir_option(
        demo,
        "where the demo's database, keys and demo.json go (default GATEWAY_DATA_DIR, else "
        f"{DEFAULT_DEMO_DIR})",
    )
    demo.set_defaults(func=lazy_command("gateway.cli_commands:cmd_demo"))

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    db_upgrade = db.add_parser(
        "upgrade",
        help="run the migrations up to a revision (as the owner: GATEWAY_MIGRATION_DATABASE_URL)",
    )
    db_upgrade.add_argument("--revision", default="head")
    db_upgrade.add_argument(
        "--app-role",
        metavar="NAME",
        help="PostgreSQL: the role the gateway runs as; grant it SELECT/INSERT on the audit and "
        "policy tables and nothing that rewrites them (default GATEWAY_DATABASE_APP_ROLE)",
    )
    db_upgrade.add_argument(
        "--policy-files-reviewed",
        action="store_true",
        help="record that the deployment reviewed the shipped policy files: the initial import "
        "counts as reviewed (otherwise a second administrator approves it)",
    )
    add_data_dir_option(db_upgrade)
    db_upgrade.set_defaults(func=lazy_command("gateway.cli_commands:cmd_db_upgrade"))

    register_client_commands(sub)
    register_user_commands(sub)
    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    rotate = keys.add_parser("rotate", help="make a new signing key (creates the first one)")
    rotate.add_argument(
        "--alg",
        choices=SIGNING_ALGORITHMS,
        help="algorithm of the new key (default GATEWAY_TOKEN_SIGNING_ALG, else RS256)",
    )
    add_data_dir_option(rotate)
    rotate.set_defaults(func=lazy_command("gateway.cli_commands:cmd_keys_rotate"))
    register_policy_commands(sub)

    audit = sub.add_parser("audit", help="the tamper-evident audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify = audit.add_parser(
        "verify", help="recompute every leaf and root, check every checkpoint signature"
    )
    verify.add_argument("--database-url", help="default: GATEWAY_DATABASE_URL")
    verify.add_argument("--export", help="verify a JSON Lines export instead of a database")
    verify.add_argument(
        "--checkpoint",
        action="append",
        metavar="FILE",
        help="a checkpoint note kept outside the database (repeatable); catches truncation",
    )
    verify.add_argument("--key", action="append", help="verifier key text (GET /v1/audit/key)")
    verify.add_argument("--key-file", action="append", help="file holding a verifier key")
    verify.add_argument("--quiet", action="store_true", help="no progress output")
    add_data_dir_option(verify)
    verify.set_defaults(func=lazy_command("gateway.cli_commands:cmd_audit_verify"))
    init_key = audit.add_parser(
        "init-key", help="create the checkpoint signing key if missing; prints the verifier key"
    )
    add_data_dir_option(init_key)
    init_key.set_defaults(func=lazy_command("gateway.cli_commands:cmd_audit_init_key"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CommandError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
