"""Starting the five sample agency systems for the demo, as one child process, and watching it.

The child is ``python -m sandbox serve-all``; the secrets and the systems' identities are made
here and handed over through its environment, never on its command line. The child runs in its
own session (a Ctrl-C in the terminal reaches only the demo, which then stops it in order), and
on Linux it is told to stop when the demo process dies, however it dies.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

__all__ = ["SANDBOX_KINDS", "SandboxSystems", "SandboxWatch", "log_tail", "start_sandbox_systems"]

SANDBOX_KINDS = ("public_security", "procuratorate", "court", "prison", "justice")
_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:  # pragma: no cover (runs in the child before exec)
    """Linux: the kernel sends SIGTERM to the child when the demo process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def log_tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file, indented, for a console message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "".join(f"    {line}\n" for line in tail)


@dataclass
class SandboxSystems:
    process: subprocess.Popen[bytes]
    urls: dict[str, str]
    secrets: dict[str, str]
    identities: dict[str, str]
    log_path: Path
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stopping.set()
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
    identities = {kind: f"{kind}-{secrets.token_hex(8)}" for kind in SANDBOX_KINDS}
    env = dict(os.environ)
    env.update({f"SANDBOX_SECRET_{kind.upper()}": secret for kind, secret in made.items()})
    env.update({f"SANDBOX_INSTANCE_{kind.upper()}": ident for kind, ident in identities.items()})
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
        start_new_session=True,
        preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
    )
    log.close()
    urls = {kind: f"http://{host}:{base_port + i}" for i, kind in enumerate(SANDBOX_KINDS)}
    systems = SandboxSystems(process, urls, made, identities, log_path)
    deadline = time.monotonic() + timeout_s
    pending = set(SANDBOX_KINDS)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sample agency systems exited at start (exit code {process.returncode}); "
                f"the end of {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            systems.stop()
            raise RuntimeError(f"the sample agency systems did not start in time; see {log_path}")
        for kind in list(pending):
            if _answers_as(urls[kind], identities[kind]) is True:
                pending.discard(kind)
        if pending:
            time.sleep(0.2)
    return systems


def _answers_as(url: str, identity: str) -> bool | None:
    """True if the system at ``url`` answers with ``identity``, False if another one answers,
    None if nothing answers."""
    try:
        response = httpx2.get(url + "/health", timeout=2.0)
    except httpx2.HTTPError:
        return None
    try:
        answered = response.json().get("instance") if response.status_code == 200 else None
    except ValueError:
        answered = None
    return answered == identity


class SandboxWatch:
    """Tells the console when the sample systems' process dies or one system stops answering
    (or another process answers in its place), and when it answers again."""

    def __init__(
        self,
        systems: SandboxSystems,
        say: Callable[[str], None],
        *,
        interval_s: float = 1.0,
        health_every: int = 5,
    ) -> None:
        self.systems = systems
        self.say = say
        self.interval_s = interval_s
        self.health_every = health_every
        self._thread = threading.Thread(target=self._run, name="sandbox-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        systems = self.systems
        down: set[str] = set()
        tick = 0
        while not systems.stopping.wait(self.interval_s):
            code = systems.process.poll()
            if code is not None:
                if not systems.stopping.is_set():
                    self.say(
                        f"the sample agency systems (pid {systems.process.pid}) stopped "
                        f"unexpectedly (exit code {code}): requests to the agencies now fail "
                        f"(502). The end of {systems.log_path}:\n{log_tail(systems.log_path)}"
                    )
                return
            tick += 1
            if tick % self.health_every:
                continue
            for kind, url in systems.urls.items():
                answers = _answers_as(url, systems.identities[kind])
                if answers is not True and kind not in down:
                    down.add(kind)
                    what = "does not answer" if answers is None else "answers as another system"
                    self.say(f"the sample {kind} system at {url} {what}")
                elif answers is True and kind in down:
                    down.discard(kind)
                    self.say(f"the sample {kind} system at {url} answers again")
