"""A real ``gateway demo`` process on free loopback ports, for the tests that need one."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

__all__ = ["CASES", "GATEWAY", "Demo", "demo_command", "free_ports", "running_demo"]

CASES = "300"
GATEWAY = [sys.executable, "-m", "gateway.cli"]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count < 65535 and all(_free(first + i) for i in range(count)):
            return first
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    console: Path
    data_dir: Path
    base_url: str

    def text(self) -> str:
        return self.console.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not on the console:\n{self.text()}")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                response = httpx2.get(f"{self.base_url}/readyz", timeout=5)
                if response.status_code == 200:
                    body: dict[str, object] = response.json()
                    return body
            except httpx2.HTTPError:
                pass
            assert self.process.poll() is None, self.text()
            time.sleep(0.3)
        raise AssertionError(f"the demo never got ready:\n{self.text()}")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]


def demo_command(data_dir: Path, port: int, sandbox_port: int) -> list[str]:
    """``gateway demo`` on these ports, with a small synthetic dataset."""
    return [
        *GATEWAY, "demo", "--data-dir", str(data_dir), "--port", str(port),
        "--sandbox-port", str(sandbox_port), "--cases", CASES,
    ]  # fmt: skip


@contextmanager
def running_demo(data_dir: Path, port: int, sandbox_port: int) -> Iterator[Demo]:
    console = data_dir.parent / f"{data_dir.name}-console-{time.monotonic_ns()}.txt"
    with console.open("wb") as out:
        process = subprocess.Popen(
            demo_command(data_dir, port, sandbox_port),
            stdout=out,
            stderr=out,
        )
    demo = Demo(process, console, data_dir, f"http://127.0.0.1:{port}")
    try:
        yield demo
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
