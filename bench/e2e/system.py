"""The machine side of the end-to-end benchmark: tools, processes, CPU time and memory.

CPU time and peak memory are read from ``/proc`` for a whole process tree (uvicorn's
supervisor and its workers, nginx's master and worker), so a server is charged for every
process it runs, not only the one that answers.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx2

__all__ = [
    "CLOCK_TICKS",
    "Server",
    "cpu_seconds",
    "ensure_tools",
    "free_port",
    "free_port_run",
    "peak_rss_bytes",
    "process_tree",
    "rss_bytes",
    "system_pids",
    "wait_http",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Debian package for each tool the benchmark runs.
TOOLS = {"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client"}


def _which(tool: str) -> str | None:
    # nginx lives in /usr/sbin, which is not on every user's PATH.
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def ensure_tools() -> dict[str, str]:
    """The path of every tool, installing the missing ones from Debian's packages."""
    missing = sorted({TOOLS[t] for t in TOOLS if _which(t) is None})
    if missing:
        command = ["apt-get", "install", "-y", "-q", *missing]
        if os.geteuid() != 0:
            command = ["sudo", "-n", *command]
        print(f"… installing {', '.join(missing)} ({' '.join(command)})", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # The package index may be missing on a fresh machine: update once and retry.
            update = [*command[: command.index("install")], "update", "-q"]
            subprocess.run(update, env=env, capture_output=True, check=False)
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"could not install {missing}: {done.stderr.strip()[-500:]}")
    found = {tool: _which(tool) for tool in TOOLS}
    absent = [tool for tool, path in found.items() if path is None]
    if absent:
        raise RuntimeError(f"still missing after install: {absent}")
    return {tool: str(path) for tool, path in found.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (the sample systems need five)."""
    for _ in range(200):
        base = random.randint(20_000, 60_000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:  # fmt: skip
    """Wait until ``url`` answers (any status), or fail naming the log to read."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.is_file() else ""
            raise RuntimeError(f"{url}: the server exited ({process.returncode}):\n{tail}")
        try:
            httpx2.get(url, timeout=1.0)
            return
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {timeout:.0f} s; see {log}") from None
            time.sleep(0.1)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    tree = _children()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(tree.get(pid, []))
    return pids


def system_pids(command_name: str) -> list[int]:
    """Every process whose command name is ``command_name`` (e.g. the PostgreSQL backends)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(entry.path, "comm").read_text().strip() == command_name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of ``pids`` (reaped children included)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); fields here start at 3.
        total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_bytes(pids: Iterable[int]) -> int:
    """Sum of each process's peak resident set (VmHWM): an upper bound for the tree."""
    return sum(_status_kib(pid, "VmHWM:") for pid in pids) * 1024


def rss_bytes(pids: Iterable[int]) -> int:
    return sum(_status_kib(pid, "VmRSS:") for pid in pids) * 1024


@dataclass
class Server:
    """A server under test: its process, its name and the cores it is pinned to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    # Processes it makes work for outside its own tree (the PostgreSQL server), found afresh
    # at each reading because backends come and go.
    others: Callable[[], list[int]] | None = None

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) + (self.others() if self.others else [])

    def own_pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
