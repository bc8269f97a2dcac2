"""Where the gateway's CPU goes: py-spy samples folded into the request path's components.

``py-spy record --gil --format raw`` samples only the thread holding the GIL (the one using
the CPU for Python), 250 times a second. Each sample's stack is charged to the first
component, from the leaf up, whose marker it contains; what matches none is the server and
event loop (uvicorn, httptools, uvloop, asyncio). The shares are of all samples, the audit
writer's thread included.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["COMPONENTS", "fold", "record"]

# (component, markers): a frame containing a marker belongs to the component; the first
# component found walking from the leaf towards the root wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("audit: RFC 8785 leaf encoding", ("gateway/audit/leaf.py", "rfc8785/")),
    ("audit: writer (SQL, tree, commit)", ("gateway/audit/",)),
    ("token check and rate limit", ("gateway/auth/",)),
    ("policy decision and field filtering", ("gateway/policy/",)),
    ("standard validation", ("gateway/standard/",)),
    ("adapter mapping (native → standard)", ("adapters/mapping.py", "adapters/mapped.py",
                                             "adapters/codecs", "defusedxml", "xml/")),
    ("upstream HTTP client", ("adapters/transports/", "httpx2/", "httpx_aiohttp/", "aiohttp/",
                              "authlib/")),
    ("exchange service (headers, body, hashing)", ("gateway/exchange/",)),
    ("metrics, logs, request id", ("gateway/observability/", "prometheus_client/",
                                   "structlog/")),
    ("FastAPI / Starlette (routing, dependencies, responses)", ("fastapi/", "starlette/",
                                                                "pydantic")),
    ("uvicorn + httptools (HTTP server)", ("uvicorn/",)),
)  # fmt: skip
OTHER = "event loop and the rest"


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start py-spy on ``pid`` for ``seconds``; None when py-spy is not installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate",
         "250", "--gil", "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def fold(raw: str) -> dict[str, float]:
    """Share of samples per component, largest first."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        counts[_component(frames)] += samples
    if total == 0:
        return {}
    return {name: n / total for name, n in counts.most_common()}


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in COMPONENTS:
            if any(marker in frame for marker in markers):
                return name
    return OTHER
