"""``gateway demo``: a whole working gateway on an embedded SQLite, for a newcomer.

It checks that its ports are free, starts the five sample agency systems, migrates the
database in DIR, makes keys in DIR, registers the demo clients (their secrets are kept in
``DIR/demo.json`` and stay the same across restarts of the same DIR), writes ``DIR/demo.json``
and serves. SIGINT and SIGTERM stop the gateway and the sample systems; if the sample systems
die meanwhile, the console says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.auth.clients import ClientService, IssuedCredentials
from gateway.auth.keys import KeyStore
from gateway.auth.passwords import verify_secret
from gateway.auth.scopes import Scope
from gateway.db import create_db_engine, make_session_factory, session_scope
from gateway.demo_console import console_users, saved_passwords
from gateway.demo_examples import demo_examples
from gateway.migrate import upgrade
from gateway.sandbox_runner import (
    SANDBOX_KINDS,
    SandboxSystems,
    SandboxWatch,
    start_sandbox_systems,
)
from gateway.settings import Mode, Settings
from gateway.sharing.demo import sharing_cycle

__all__ = [
    "DEMO_CLIENTS",
    "DemoSetup",
    "busy_port_message",
    "prepare_demo",
    "run_demo",
    "try_it_text",
]

DEMO_CLIENTS: dict[str, tuple[str, list[str]]] = {
    "public_security": ("GA640104", [Scope.EXCHANGE]),
    "procuratorate": ("JC640104", [Scope.EXCHANGE]),
    "court": ("FY640104", [Scope.EXCHANGE]),
    # 银川市中级人民法院: rules on 减刑、假释 (刑更) and answers the demo's 减刑建议书.
    "intermediate_court": ("FY640100", [Scope.EXCHANGE]),
    "prison": ("JY640001", [Scope.EXCHANGE]),
    "justice": ("SF640104", [Scope.EXCHANGE]),
    "committee": ("ZF640000", [Scope.EXCHANGE]),
    "regulator": ("ZF640000", [Scope.AUDIT_READ]),
    "policy_admin": ("ZF640000", [Scope.POLICY_ADMIN]),
    "policy_approver": ("ZF640000", [Scope.POLICY_ADMIN]),
    "prometheus": ("ZF640000", [Scope.METRICS_READ]),
    # Conditional sharing: each owning agency's reviewer (never with exchange).
    "public_security_reviewer": ("GA640104", [Scope.SHARING_REVIEW]),
    "procuratorate_reviewer": ("JC640104", [Scope.SHARING_REVIEW]),
    "court_reviewer": ("FY640104", [Scope.SHARING_REVIEW]),
    "prison_reviewer": ("JY640001", [Scope.SHARING_REVIEW]),
    "justice_reviewer": ("SF640104", [Scope.SHARING_REVIEW]),
}
EXIT_OK, EXIT_FAILED = 0, 1


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
    upstream_identities: dict[str, str] | None = None,
) -> Settings:
    return Settings(
        mode=Mode.DEMO,
        data_dir=data_dir,
        issuer=f"http://{host}:{port}",
        log_json=False,
        host=host,
        port=port,
        checkpoint_interval_seconds=2.0,
        # The demo serves plain http on loopback: the console's cookie without Secure there.
        console_insecure_loopback_cookies=True,
        upstream_urls=upstream_urls or {},
        upstream_secrets=upstream_secrets or {},
        upstream_identities=upstream_identities or {},
    )


# --- ports ---------------------------------------------------------------------------------


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_port_message(host: str, port: int, sandbox_port: int) -> str | None:
    """One line naming the first taken (or impossible) port and the option that changes it."""
    under_make = "MAKELEVEL" in os.environ
    wanted = [(port, "the gateway", "--port", "PORT")] + [
        (sandbox_port + i, f"the sample {kind} system", "--sandbox-port", "SANDBOX_PORT")
        for i, kind in enumerate(SANDBOX_KINDS)
    ]
    for number, what, option, variable in wanted:
        how = f"make demo {variable}=N" if under_make else f"gateway demo {option} N"
        if not 1 <= number <= 65535:
            return f"port {number} for {what} is not a port number; choose others with {how}"
        if _port_taken(host, number):
            return f"port {number} ({what}) is taken on {host}; choose another with {how}"
    return None


# --- clients, with secrets that survive a restart ------------------------------------------


def _earlier(path: Path) -> dict[str, Any]:
    """The demo.json of an earlier run, if any."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _saved_secrets(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``name -> (client_id, secret)`` from the demo.json of an earlier run, if any."""
    try:
        clients = document["clients"]
        return {name: (str(c["client_id"]), str(c["client_secret"])) for name, c in clients.items()}
    except (KeyError, TypeError, AttributeError):
        return {}


def _register(
    settings: Settings, saved: dict[str, tuple[str, str]]
) -> dict[str, IssuedCredentials]:
    engine = create_db_engine(settings.resolved_database_url)
    issued: dict[str, IssuedCredentials] = {}
    try:
        with session_scope(make_session_factory(engine)) as session:
            service = ClientService(session)
            existing = {info.name: info for info in service.list()}
            for name, (agency, scopes) in DEMO_CLIENTS.items():
                info = existing.get(name)
                if info is None:
                    issued[name] = service.register(name=name, agency=agency, scopes=scopes)
                    continue
                row = service.get(info.client_id)
                client_id, secret = saved.get(name, ("", ""))
                if (
                    row is not None
                    and client_id == row.client_id
                    and verify_secret(secret, row.secret_hash)
                ):
                    # Same data directory, same secret: saved scripts keep working.
                    row.disabled, row.disabled_at = False, None
                    issued[name] = IssuedCredentials(
                        row.client_id, secret, name, row.agency_code, row.scope_list
                    )
                else:
                    issued[name] = service.reset_secret(name)
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
        upstream_identities=systems.identities if systems else None,
    )
    upgrade(settings)
    KeyStore(
        settings.resolved_keys_path,
        token_ttl_seconds=settings.token_ttl_seconds,
        algorithm=settings.token_signing_alg,
    ).ensure(rotate_to_algorithm=True)
    path = data_dir / "demo.json"
    earlier = _earlier(path)
    issued = _register(settings, _saved_secrets(earlier))
    users = console_users(settings, saved_passwords(earlier))
    document: dict[str, Any] = {
        "base_url": settings.issuer,
        "admin_command": admin_command(data_dir),
        "clients": {
            name: {
                "client_id": cred.client_id,
                "client_secret": cred.client_secret,
                "agency": cred.agency,
                "scopes": cred.scopes,
            }
            for name, cred in issued.items()
        },
        "console": {
            "url": f"{settings.issuer}/console/",
            "users": {name: {"username": name, **user} for name, user in users.items()},
        },
        "agency_systems": dict(systems.urls) if systems else {},
        "examples": demo_examples(),
        "sharing_cycle": sharing_cycle(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
    return DemoSetup(settings, document, path)


# --- what the console says ------------------------------------------------------------------


def admin_command(data_dir: Path) -> str:
    """The exact command line that administers this demo's data (clients, keys, audit)."""
    program = sys.argv[0] if Path(sys.argv[0]).name == "gateway" else "gateway"
    return f"{shlex.quote(program)} --data-dir {shlex.quote(str(data_dir))}"


# Prints the token, or a readable reason and exits non-zero (never a traceback, never "").
BEARER_FILTER = (
    'python3 -c \'import json,sys; r=json.loads(sys.stdin.read() or "{}"); '
    't=r.get("access_token") or sys.exit("no token: %s" % r.get("error_description", '
    '"no answer from the gateway")); print(t)\''
)


def try_it_text(setup: DemoSetup) -> str:
    base = setup.document["base_url"]
    court = setup.document["clients"]["court"]
    demo_json = shlex.quote(str(setup.path))
    admin = setup.document["admin_command"]
    return f"""
Gateway demo is starting at {base}  (API docs: {base}/docs)
Clients and secrets: {setup.path}  (the same on every restart with this data directory)

Try it:
  TOKEN=$(curl -s -u {court["client_id"]}:{court["client_secret"]} \\
      -d grant_type=client_credentials {base}/oauth/token | {BEARER_FILTER})
  curl -s -H "Authorization: Bearer ${{TOKEN:?no token: see the line above}}" {base}/v1/me
  curl -s -H "Authorization: Bearer ${{TOKEN:?no token}}" -H "X-Purpose: TRIAL" \\
      -H "X-Operator-Id: court-officer-01" \\
      -H "X-Case-Number: (2024)%E5%AE%810104%E5%88%91%E5%88%9D465%E5%8F%B7" \\
      {base}/v1/resources/case/C00000020
  (X-Case-Number is (2024)宁0104刑初465号, percent-encoded UTF-8: see docs/exchange.md)
  curl -s {base}/v1/audit/key

Web console (简体中文): {base}/console/
  users and passwords: "console" in {demo_json}  (admin, admin2: policy:admin, with
  the TOTP code of totp_secret / otpauth_uri from an authenticator app;
  regulator: audit:read; reviewer, reviewer2: sharing:review of the court FY640104 and
  of the procuratorate JC640104)

Administer this demo (clients, keys, audit) from another terminal:
  {admin} clients list
  {admin} audit verify

Every example with its expected status: python3 -m json.tool {demo_json}
Stop with Ctrl-C (or SIGTERM): the sample agency systems stop with the gateway.
"""


def _say(message: str) -> None:
    print(f"gateway demo: {message}", file=sys.stderr, flush=True)


# --- running ----------------------------------------------------------------------------------


class _DemoServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM once it has shut down, which would end the process
    before the sample systems are stopped; this server only records the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_on_signal(sig: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # before the server runs: unwind, so the finally stops the systems


def run_demo(
    data_dir: Path, host: str, port: int, *, sandbox_port: int = 18101, cases: int = 2000
) -> int:
    busy = busy_port_message(host, port, sandbox_port)
    if busy is not None:
        _say(busy)
        return EXIT_FAILED
    data_dir.mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in _STOP_SIGNALS}
    systems: SandboxSystems | None = None
    try:
        _say(
            f"starting the five sample agency systems on ports {sandbox_port}-"
            f"{sandbox_port + 4} ({cases} synthetic cases)…"
        )
        try:
            systems = start_sandbox_systems(
                host=host, base_port=sandbox_port, cases=cases, log_path=data_dir / "sandbox.log"
            )
        except RuntimeError as exc:
            _say(str(exc))
            return EXIT_FAILED
        setup = prepare_demo(data_dir, host, port, systems)
        print(try_it_text(setup), file=sys.stderr, flush=True)
        SandboxWatch(systems, _say).start()
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
        server = _DemoServer(config)
        server.run()
        if not server.started:
            _say(f"the gateway could not serve on {host}:{port} (see the lines above)")
            return EXIT_FAILED
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if systems is not None:
            systems.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
