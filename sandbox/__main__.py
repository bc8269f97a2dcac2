"""CLI of the sandbox.

``python -m sandbox serve --agency public_security --port 18101 [--host 127.0.0.1]
[--seed 2021] [--cases 2000] [--api-key KEY] [--client-id gateway] [--faults]``
    Serve one sample system with uvicorn.

``python -m sandbox serve-all --base-port 18101 [same options]``
    Serve all five systems in ONE process (five uvicorn servers on one event loop, one shared
    dataset and index) on ports base+0 … base+4 in the order public_security, procuratorate,
    court, prison, justice. The shared dataset is one world: a delivery any system receives
    moves its case on there (sandbox/world.py; NATIVE.md, "What a received delivery changes").

``python -m sandbox dump --agency court [--resource judgment] --limit 20
[--after ID] [--format page|jsonl]``
    Print native records: ``page`` (default) = the exact body of one search page,
    ``jsonl`` = one native record per line as JSON.

Credentials: ``--api-key`` or env ``SANDBOX_SECRET`` (per system in serve-all:
``SANDBOX_SECRET_<KIND>``, e.g. ``SANDBOX_SECRET_PROCURATORATE``); ``--client-id`` or env
``SANDBOX_CLIENT_ID`` (OAuth client id / Basic user, default ``gateway``). Without any, a
random secret is generated. Identity: each system's ``GET /health`` answers an ``instance``
(env ``SANDBOX_INSTANCE_<KIND>``, else random), so a caller can tell it started that process.
On start the servers' URLs, auth schemes and credentials are
printed as one JSON line on stdout, or written to ``--credentials-out FILE`` (mode 0600).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from sandbox.generator import DEFAULT_CASES, DEFAULT_SEED, Dataset
from sandbox.records import RESOURCES
from sandbox.server import serve_apps
from sandbox.systems import AGENCY_KINDS, Credentials, create_app, system_spec
from sandbox.systems.common import DEFAULT_INDEX_LIMIT, NativeRecord

AUTH_SCHEMES = {
    "public_security": "api-key header X-Api-Key",
    "procuratorate": "oauth2 client_credentials, POST /oauth/token (client_secret_basic)",
    "court": "api-key header X-Court-Key",
    "prison": "http basic (client_id:secret)",
    "justice": "api-key header X-Sfj-Token",
}


def _credentials(kind: str, args: argparse.Namespace) -> Credentials:
    secret = (
        os.environ.get(f"SANDBOX_SECRET_{kind.upper()}")
        or args.api_key
        or os.environ.get("SANDBOX_SECRET")
        or secrets.token_urlsafe(24)
    )
    client_id = args.client_id or os.environ.get("SANDBOX_CLIENT_ID") or "gateway"
    return Credentials(secret=secret, client_id=client_id)


def _announce(entries: dict[str, dict[str, object]], out: str | None) -> None:
    body = orjson.dumps(entries)
    if out:
        path = Path(out)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_bytes(body + b"\n")
        print(f"credentials written to {out}", file=sys.stderr)
    else:
        print(body.decode(), flush=True)


def _serve(kinds: Sequence[str], ports: Sequence[int], args: argparse.Namespace) -> None:
    dataset = Dataset(args.seed, args.cases)
    apps = []
    entries: dict[str, dict[str, object]] = {}
    for kind, port in zip(kinds, ports, strict=True):
        creds = _credentials(kind, args)
        app = create_app(
            kind, dataset, creds, faults_enabled=args.faults, index_limit=args.index_limit
        )
        app.state.instance = os.environ.get(
            f"SANDBOX_INSTANCE_{kind.upper()}"
        ) or secrets.token_hex(8)
        if len(kinds) > 1:  # serve-all: one shared world, moved on by what the systems receive
            app.state.world = dataset
        apps.append((app, args.host, port))
        entries[kind] = {
            "url": f"http://{args.host}:{port}",
            "auth": AUTH_SCHEMES[kind],
            "client_id": creds.client_id,
            "secret": creds.secret,
            "instance": app.state.instance,
        }
    _announce(entries, args.credentials_out)
    asyncio.run(serve_apps(apps, log_level=args.log_level))


def _dump(args: argparse.Namespace) -> None:
    dataset = Dataset(args.seed, args.cases)
    spec = system_spec(args.agency, dataset)
    chosen = [r for r in spec.resources if args.resource in (None, r.resource)]
    if not chosen:
        raise SystemExit(f"{args.agency} does not serve {args.resource}")
    for res in chosen:
        id_field = RESOURCES[res.resource].id_field
        natives: list[NativeRecord] = []
        for record in dataset.records(res.resource):
            if len(natives) == args.limit:
                break
            if args.after is None or str(record[id_field]) > args.after:
                natives.append(res.to_native(record))
        if args.format == "jsonl":
            for native in natives:
                sys.stdout.write(orjson.dumps(native).decode() + "\n")
        else:
            sys.stdout.write(spec.renderer.page(res.resource, natives, None).decode() + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=DEFAULT_SEED)
    common.add_argument("--cases", type=int, default=DEFAULT_CASES)
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--api-key", help="secret (API key / OAuth client secret / password)")
    serving.add_argument("--client-id", help="OAuth client id / Basic user (default gateway)")
    serving.add_argument("--faults", action="store_true", help="enable X-Sandbox-Fault")
    serving.add_argument("--index-limit", type=int, default=DEFAULT_INDEX_LIMIT)
    serving.add_argument("--credentials-out", help="write URLs and credentials here (0600)")
    serving.add_argument("--log-level", default="info")
    one = sub.add_parser("serve", parents=[common, serving], help="serve one system")
    one.add_argument("--agency", required=True, choices=AGENCY_KINDS)
    one.add_argument("--port", type=int, required=True)
    every = sub.add_parser("serve-all", parents=[common, serving], help="serve all five")
    every.add_argument("--base-port", type=int, default=18101)
    dump = sub.add_parser("dump", parents=[common], help="print native records")
    dump.add_argument("--agency", required=True, choices=AGENCY_KINDS)
    dump.add_argument("--resource", help="one resource of the agency (default: all)")
    dump.add_argument("--limit", type=int, default=20)
    dump.add_argument("--after", help="start after this id")
    dump.add_argument("--format", choices=("page", "jsonl"), default="page")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve([args.agency], [args.port], args)
    elif args.command == "serve-all":
        ports = [args.base_port + n for n in range(len(AGENCY_KINDS))]
        _serve(AGENCY_KINDS, ports, args)
    else:
        _dump(args)


if __name__ == "__main__":
    main()
