"""Starting the five sample agency systems for the demo, as one child process.

The child is ``python -m sandbox serve-all``; the secrets are made here
and handed over through its environment, never on its command line.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

__all__ = ["SANDBOX_KINDS", "SandboxSystems", "start_sandbox_systems"]

SANDBOX_KINDS = ("public_security", "procuratorate", "court", "prison", "justice")


@dataclass
class SandboxSystems:
    process: subprocess.Popen[bytes]
    urls: dict[str, str]
    secrets: dict[str, str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sandbox_systems(
    *, host: str, base_port: int, cases: int, log_path: Path, timeout_s: float = 60.0
) -> SandboxSystems:
    made = {kind: secrets.token_urlsafe(24) for kind in SANDBOX_KINDS}
    env = dict(os.environ)
    env.update({f"SANDBOX_SECRET_{kind.upper()}": secret for kind, secret in made.items()})
    env["SANDBOX_CLIENT_ID"] = "gateway"
    log = log_path.open("ab")
    process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve-all",
            "--host",
            host,
            "--base-port",
            str(base_port),
            "--cases",
            str(cases),
            "--credentials-out",
            str(log_path.with_suffix(".json")),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    urls = {kind: f"http://{host}:{base_port + i}" for i, kind in enumerate(SANDBOX_KINDS)}
    systems = SandboxSystems(process, urls, made)
    deadline = time.monotonic() + timeout_s
    pending = set(SANDBOX_KINDS)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"the sample agency systems exited; see {log_path}")
        if time.monotonic() > deadline:
            systems.stop()
            raise RuntimeError(f"the sample agency systems did not start in time; see {log_path}")
        for kind in list(pending):
            try:
                if httpx2.get(urls[kind] + "/health", timeout=1.0).status_code == 200:
                    pending.discard(kind)
            except httpx2.HTTPError:
                pass
        if pending:
            time.sleep(0.2)
    return systems
