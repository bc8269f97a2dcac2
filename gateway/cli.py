"""The ``gateway`` command.

Exit codes: 0 success · 1 the operation failed (e.g. database unreachable) ·
2 bad usage, invalid input or a configuration the gateway refuses.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.checkpoint import (
    Verifier,
    key_hash,
    load_or_create_signer,
    load_signer,
    parse_verifier,
)
from gateway.audit.verifier import progress_printer, verify_database, verify_export
from gateway.auth.commands import register_client_commands
from gateway.auth.keys import SIGNING_ALGORITHMS, KeyStore, KeyStoreError
from gateway.commands import (
    DATA_DIR_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_data_dir_option,
    command_settings,
    database_error,
)
from gateway.db import create_db_engine
from gateway.demo import run_demo
from gateway.migrate import MigrationError, current_revision, upgrade
from gateway.policy.cli import register_policy_commands
from gateway.policy.deployment import import_reviewed_policy_files
from gateway.settings import Settings, SettingsError

__all__ = ["main"]

DEFAULT_DEMO_DIR = "var/demo"


# --- commands ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    try:
        settings.check_production_ready()
    except SettingsError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    if getattr(args, "data_dir", None):
        # uvicorn builds the app (in each worker) from the environment: hand the option on.
        os.environ["GATEWAY_DATA_DIR"] = str(args.data_dir)
    workers = args.workers or settings.workers
    if workers > 1 and not settings.redis_url:
        raise CommandError(
            "several workers need GATEWAY_REDIS_URL so that rate limits hold across them",
            EXIT_USAGE,
        )
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        server_header=False,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or os.environ.get("GATEWAY_DATA_DIR") or DEFAULT_DEMO_DIR
    return run_demo(
        Path(data_dir), args.host, args.port, sandbox_port=args.sandbox_port, cases=args.cases
    )


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    try:
        upgrade(settings, args.revision, app_role=args.app_role)
        print(f"database at revision {current_revision(settings)}")
        role = args.app_role or settings.database_app_role
        if role and settings.resolved_migration_database_url.startswith("postgresql"):
            print(
                f"granted the application role {role} its privileges "
                "(no UPDATE or DELETE of history)"
            )
        if args.policy_files_reviewed:
            print(import_reviewed_policy_files(settings))
    except MigrationError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except SQLAlchemyError as exc:
        raise database_error(settings.resolved_database_url, exc, "run the migrations") from exc
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    algorithm = args.alg or settings.token_signing_alg
    store = KeyStore(
        settings.resolved_keys_path,
        token_ttl_seconds=settings.token_ttl_seconds,
        algorithm=algorithm,
    )
    try:
        kid = store.rotate()
    except (KeyStoreError, OSError) as exc:
        raise CommandError(f"key rotation failed: {exc}") from exc
    print(
        f"new {algorithm} signing key {kid} at {settings.resolved_keys_path}; older keys verify "
        f"until their tokens expire ({settings.token_ttl_seconds} s)"
    )
    return EXIT_OK


def _verifiers(settings: Settings, args: argparse.Namespace) -> list[Verifier]:
    texts: list[str] = list(args.key or [])
    if args.key_file:
        texts.extend(Path(f).read_text(encoding="utf-8").strip() for f in args.key_file)
    if not texts:
        try:
            texts.append(load_signer(settings.resolved_checkpoint_key_path).verifier_text())
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"no verifier key: pass --key NAME+HASH+KEY (GET /v1/audit/key) ({exc})",
                EXIT_USAGE,
            ) from exc
    try:
        given = [parse_verifier(text) for text in texts]
    except ValueError as exc:
        raise CommandError(f"bad verifier key: {exc}", EXIT_USAGE) from exc
    # The same public key under every name this log's key has signed under (the origin, the
    # previous origins, the name before key names followed the origin): old checkpoints verify.
    verifiers = {(v.name, v.key_hash): v for v in given}
    for verifier in given:
        for name in settings.checkpoint_key_names:
            renamed = Verifier(name, key_hash(name, verifier.public_key), verifier.public_key)
            verifiers.setdefault((renamed.name, renamed.key_hash), renamed)
    return list(verifiers.values())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    verifiers = _verifiers(settings, args)
    notes = []
    for name in args.checkpoint or []:
        try:
            notes.append((f"checkpoint file {name}", Path(name).read_text(encoding="utf-8")))
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc}", EXIT_USAGE) from exc
    progress = None if args.quiet else progress_printer(sys.stderr)
    if args.export:
        report = verify_export(
            Path(args.export),
            verifiers,
            notes,
            origin=settings.accepted_audit_origins,
            progress=progress,
        )
    else:
        url = args.database_url or settings.resolved_database_url
        engine = create_db_engine(url)
        try:
            report = verify_database(
                engine,
                verifiers,
                origin=settings.accepted_audit_origins,
                external_notes=notes,
                progress=progress,
            )
        except SQLAlchemyError as exc:
            raise database_error(url, exc, "read the audit log") from exc
        finally:
            engine.dispose()
    if progress is not None:
        print(file=sys.stderr)
    if report.ok:
        root = base64.b64encode(report.root).decode() if report.root else "(empty)"
        print(
            f"OK: {report.entries} entries, root {root}, {report.checkpoints_checked} "
            f"checkpoint(s) matched ({report.external_checked} kept outside the database)"
        )
        return EXIT_OK
    where = (
        f"first bad entry: {report.first_bad_index}" if report.first_bad_index is not None else ""
    )
    print(f"FAILED: {where}", file=sys.stderr)
    for problem in report.problems[:50]:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_FAILED


def cmd_audit_init_key(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    path = settings.resolved_checkpoint_key_path
    try:
        signer = load_or_create_signer(path, settings.audit_origin)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot create the checkpoint key at {path}: {exc}") from exc
    print(signer.verifier_text())
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------


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
    serve.set_defaults(func=cmd_serve)

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
    demo.set_defaults(func=cmd_demo)

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
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    register_client_commands(sub)
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
    rotate.set_defaults(func=cmd_keys_rotate)
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
    verify.set_defaults(func=cmd_audit_verify)
    init_key = audit.add_parser(
        "init-key", help="create the checkpoint signing key if missing; prints the verifier key"
    )
    add_data_dir_option(init_key)
    init_key.set_defaults(func=cmd_audit_init_key)
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
