"""``gateway demo``: a whole working gateway on an embedded SQLite, for a newcomer.

It migrates the database in DIR, makes keys in DIR, registers the demo clients
(fresh secrets on every start), writes ``DIR/demo.json`` and serves.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.auth.clients import ClientService, IssuedCredentials
from gateway.auth.keys import KeyStore
from gateway.auth.scopes import Scope
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.demo_examples import demo_examples
from gateway.migrate import upgrade
from gateway.sandbox_runner import SandboxSystems, start_sandbox_systems
from gateway.settings import Mode, Settings

__all__ = ["DEMO_CLIENTS", "DemoSetup", "prepare_demo", "run_demo", "try_it_text"]

DEMO_CLIENTS: dict[str, tuple[str, list[str]]] = {
    "public_security": ("GA640104", [Scope.EXCHANGE]),
    "procuratorate": ("JC640104", [Scope.EXCHANGE]),
    "court": ("FY640104", [Scope.EXCHANGE]),
    "prison": ("JY640001", [Scope.EXCHANGE]),
    "justice": ("SF640104", [Scope.EXCHANGE]),
    "regulator": ("ZF640000", [Scope.AUDIT_READ]),
    "policy_admin": ("ZF640000", [Scope.POLICY_ADMIN]),
    "policy_approver": ("ZF640000", [Scope.POLICY_ADMIN]),
    "prometheus": ("ZF640000", [Scope.METRICS_READ]),
}


@dataclass(frozen=True)
class DemoSetup:
    settings: Settings
    document: dict[str, Any]
    path: Path


def demo_settings(
    data_dir: Path,
    host: str,
    port: int,
    *,
    upstream_urls: dict[str, str] | None = None,
    upstream_secrets: dict[str, str] | None = None,
) -> Settings:
    return Settings(
        mode=Mode.DEMO,
        data_dir=data_dir,
        issuer=f"http://{host}:{port}",
        log_json=False,
        host=host,
        port=port,
        checkpoint_interval_seconds=2.0,
        upstream_urls=upstream_urls or {},
        upstream_secrets=upstream_secrets or {},
    )


def _register(settings: Settings) -> dict[str, IssuedCredentials]:
    engine = create_db_engine(settings.resolved_database_url)
    issued: dict[str, IssuedCredentials] = {}
    try:
        with session_scope(make_session_factory(engine)) as session:
            service = ClientService(session)
            existing = {info.name for info in service.list()}
            for name, (agency, scopes) in DEMO_CLIENTS.items():
                if name in existing:
                    issued[name] = service.reset_secret(name)
                else:
                    issued[name] = service.register(name=name, agency=agency, scopes=scopes)
    finally:
        engine.dispose()
    return issued


def prepare_demo(
    data_dir: Path, host: str, port: int, systems: SandboxSystems | None = None
) -> DemoSetup:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(
        data_dir,
        host,
        port,
        upstream_urls=systems.urls if systems else None,
        upstream_secrets=systems.secrets if systems else None,
    )
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
    issued = _register(settings)
    document: dict[str, Any] = {
        "base_url": settings.issuer,
        "clients": {
            name: {
                "client_id": cred.client_id,
                "client_secret": cred.client_secret,
                "agency": cred.agency,
                "scopes": cred.scopes,
            }
            for name, cred in issued.items()
        },
        "agency_systems": dict(systems.urls) if systems else {},
        "examples": demo_examples(),
    }
    path = data_dir / "demo.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
    return DemoSetup(settings, document, path)


def try_it_text(setup: DemoSetup) -> str:
    base = setup.document["base_url"]
    court = setup.document["clients"]["court"]
    demo_json = shlex.quote(str(setup.path))
    return f"""
Gateway demo is starting at {base}  (API docs: {base}/docs)
Clients and secrets: {setup.path}

Try it:
  TOKEN=$(curl -s -u {court["client_id"]}:{court["client_secret"]} \\
      -d grant_type=client_credentials {base}/oauth/token \\
      | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/me
  curl -s -H "Authorization: Bearer $TOKEN" -H "X-Purpose: TRIAL" \\
      -H "X-Operator-Id: court-officer-01" \\
      -H "X-Case-Number: (2024)%E5%AE%810104%E5%88%91%E5%88%9D465%E5%8F%B7" \\
      {base}/v1/resources/case/C00000020
  (X-Case-Number is (2024)宁0104刑初465号, percent-encoded UTF-8: see docs/exchange.md)
  curl -s {base}/v1/audit/key

Every example with its expected status: python3 -m json.tool {demo_json}
"""


def run_demo(
    data_dir: Path, host: str, port: int, *, sandbox_port: int = 18101, cases: int = 2000
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"starting the five sample agency systems on ports {sandbox_port}-{sandbox_port + 4} "
        f"({cases} synthetic cases)…",
        file=sys.stderr,
        flush=True,
    )
    systems = start_sandbox_systems(
        host=host, base_port=sandbox_port, cases=cases, log_path=data_dir / "sandbox.log"
    )
    try:
        setup = prepare_demo(data_dir, host, port, systems)
        print(try_it_text(setup), file=sys.stderr, flush=True)
        config = uvicorn.Config(
            create_app(setup.settings),
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            server_header=False,
            access_log=False,
            log_level="warning",
        )
        uvicorn.Server(config).run()
    finally:
        systems.stop()
    return 0
