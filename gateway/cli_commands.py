"""What the ``gateway`` commands do (the parser is in :mod:`gateway.cli`, which imports this
module only when one of these commands runs)."""

from __future__ import annotations

import argparse
import base64
import os
import sys
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
from gateway.auth.keys import KeyStore, KeyStoreError
from gateway.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    command_settings,
    database_error,
)
from gateway.db import create_db_engine
from gateway.demo import run_demo
from gateway.migrate import MigrationError, current_revision, upgrade
from gateway.policy.deployment import import_reviewed_policy_files
from gateway.settings import Settings, SettingsError

DEFAULT_DEMO_DIR = "var/demo"


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
        "gateway.app:create_served_app",
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
