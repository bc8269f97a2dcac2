"""Starting the servers under test: nginx, the bare pass-through and the gateway itself.

Each runs as its own process (tree), pinned with ``taskset`` to the cores it is given, so its
CPU time can be read from ``/proc`` and the load generator can be kept off its core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx2

from bench.e2e.system import Server, process_tree, system_pids, wait_http

__all__ = ["GatewayDeployment", "start_gateway", "start_nginx", "start_passthrough"]

BIN = Path(sys.executable).parent


def _popen(command: list[str], cores: str | None, log: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
    handle = log.open("ab")
    return subprocess.Popen(command, stdout=handle, stderr=handle, env=env)


def start_nginx(name: str, nginx: str, conf_text: str, root: Path, cores: str | None,
                check_url: str) -> Server:  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(conf_text, encoding="utf-8")
    log = root / "stderr.log"
    process = _popen(
        [nginx, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")], cores, log
    )
    wait_http(check_url, process=process, log=root / "error.log")
    return Server(name, process, log)


def start_passthrough(client: str, upstream: str, port: int, cores: str | None,
                      log: Path, token: str = "") -> Server:  # fmt: skip
    env = {**os.environ, "BENCH_UPSTREAM": upstream, "BENCH_CLIENT": client, "BENCH_TOKEN": token}
    process = _popen(
        [str(BIN / "uvicorn"), "bench.e2e.passthrough:app", "--host", "127.0.0.1",
         "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log", "--log-level", "warning"],
        cores, log, env,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/__ready", process=process, log=log)
    return Server(f"pass-through ({client})", process, log)


@dataclass
class GatewayDeployment:
    """A prepared gateway: data directory, database and a benchmark client that may call it."""

    data_dir: Path
    database_url: str
    client_id: str
    client_secret: str
    upstream_secrets: dict[str, str]

    def env(self, port: int, upstream_urls: dict[str, str], *, workers: int) -> dict[str, str]:
        env = {
            **os.environ,
            "GATEWAY_MODE": "demo",
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_DATABASE_URL": self.database_url,
            "GATEWAY_ISSUER": f"http://127.0.0.1:{port}",
            "GATEWAY_UPSTREAM_URLS": json.dumps(upstream_urls),
            "GATEWAY_UPSTREAM_SECRETS": json.dumps(self.upstream_secrets),
            # One token for the whole run, the soak included.
            "GATEWAY_TOKEN_TTL_SECONDS": "7200",
            "GATEWAY_TOKEN_MAX_LIFETIME_SECONDS": "7200",  # at least the TTL (settings check)
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_WORKERS": str(workers),
        }
        if workers > 1:
            env["GATEWAY_REDIS_URL"] = os.environ.get(
                "GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"
            )
        return env

    def token(self, base_url: str) -> str:
        answer = httpx2.post(
            f"{base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=10.0,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token


def prepare_gateway(data_dir: Path, database_url: str, agency: str,
                    upstream_secrets: dict[str, str]) -> GatewayDeployment:  # fmt: skip
    """Migrate, make the signing and checkpoint keys and register an unthrottled client."""
    from gateway.audit.checkpoint import load_or_create_signer
    from gateway.auth.clients import ClientService
    from gateway.auth.keys import KeyStore
    from gateway.auth.scopes import Scope
    from gateway.db import create_db_engine, make_session_factory, session_scope
    from gateway.migrate import upgrade
    from gateway.settings import Mode, Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(mode=Mode.DEMO, data_dir=data_dir, database_url=database_url)
    upgrade(settings)
    KeyStore(settings.resolved_keys_path, token_ttl_seconds=7200).ensure()
    # Made before the workers start, so that two of them never race to create it.
    load_or_create_signer(settings.resolved_checkpoint_key_path, settings.audit_origin)
    engine = create_db_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            issued = ClientService(session).register(
                name=f"bench-{os.getpid()}-{len(list(data_dir.iterdir()))}",
                agency=agency,
                scopes=[Scope.EXCHANGE],
                # The benchmark measures the gateway, not its rate limiter's refusals.
                rate_limit_per_second=1_000_000.0,
                rate_limit_burst=1_000_000,
            )
    finally:
        engine.dispose()
    return GatewayDeployment(
        data_dir, database_url, issued.client_id, issued.client_secret, upstream_secrets
    )


def _dump_stacks(process: subprocess.Popen[bytes], log: Path) -> None:
    spy = BIN / "py-spy"
    if not spy.exists():
        return
    with log.open("a") as out:
        for pid in process_tree(process.pid):
            out.write(f"\n--- py-spy dump --pid {pid}\n")
            out.flush()
            subprocess.run([str(spy), "dump", "--pid", str(pid)], stdout=out, stderr=out,
                           check=False, timeout=30)  # fmt: skip


def start_gateway(deployment: GatewayDeployment, port: int, upstream_urls: dict[str, str], *,
                  workers: int, cores: str | None, log: Path,
                  extra_env: dict[str, str] | None = None) -> Server:  # fmt: skip
    env = {**deployment.env(port, upstream_urls, workers=workers), **(extra_env or {})}
    command = [str(BIN / "gateway"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    for attempt in (1, 2):
        process = _popen(command, cores, log, env)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", process=process, log=log, timeout=90)
            break
        except RuntimeError:
            # Seen twice with two workers on a fresh database: no answer and nothing logged.
            # Keep the workers' stacks for the report, then try once more.
            _dump_stacks(process, log)
            Server("gateway", process, log).stop()
            if attempt == 2:
                raise
            print(f"… the gateway did not start; stacks in {log}; retrying", file=sys.stderr)
    others = (
        (lambda: system_pids("postgres"))
        if deployment.database_url.startswith("postgresql")
        else None
    )
    label = "PostgreSQL" if others else "SQLite"
    return Server(f"gateway, {workers} worker{'s' * (workers > 1)}, {label}", process, log, others)
