"""The load generators: ``wrk`` for maximum throughput (closed loop, fixed concurrency) and
``h2load --rps`` for latency under a fixed arrival rate (open loop), both compiled tools
pinned away from the server under test.

``h2load --log-file`` writes one line per request (start µs, status, µs to the end of the
response), from which the percentiles are computed here. Its rate is per connection and a
HTTP/1.1 connection carries one request at a time, so the open loop holds while each
connection's interval (``connections / rate``) exceeds the response time; enough connections
are opened for that (see :func:`open_loop`).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ClosedLoop", "OpenLoop", "closed_loop", "open_loop", "percentile"]

_MARK = "E2E-JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\\n', "E2E-JSON ",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""

# Every response's status and audit receipt, to a file (the soak checks each receipt).
_RECEIPTS = """
local out
local seen = 0
init = function(args)
  out = io.open(args[1], "w")
end
response = function(status, headers, body)
  out:write(status, " ", headers["x-audit-index"] or headers["X-Audit-Index"] or "-", "\\n")
  seen = seen + 1
  if seen % 1000 == 0 then out:flush() end
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A POST whose every request carries a new Idempotency-Key (a repeated key is a replay, which
# answers without deciding or storing anything: not the path measured). ``prefix`` is new for
# each wrk run, so a warm-up's keys never come back in the measured run.
_UNIQUE_KEY = """
local sent = 0
request = function()
  sent = sent + 1
  wrk.headers["Idempotency-Key"] = %s .. sent
  return wrk.format()
end
"""


def wrk_script(headers: Mapping[str, str], *, receipts: bool = False,
               delay_ms: float | None = None, post: bytes | None = None) -> str:  # fmt: skip
    """The wrk script: GET with ``headers``; with ``post``, POST that body, each request with
    its own ``Idempotency-Key``."""
    lines = [f'wrk.method = "{"GET" if post is None else "POST"}"']
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if post is not None:
        lines.append(f"wrk.body = {_lua_string(post.decode('utf-8'))}")
    script = "\n".join(lines) + "\n" + _DONE
    if post is not None:
        script += _UNIQUE_KEY % _lua_string(f"bench-{secrets.token_hex(6)}-")
    if receipts:
        script += _RECEIPTS
    if delay_ms is not None:
        script += f"\ndelay = function() return {max(0, round(delay_ms))} end\n"
    return script


@dataclass(frozen=True)
class ClosedLoop:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "rate": self.rate}


def closed_loop(wrk: str, url: str, headers: Mapping[str, str], *, connections: int,
                seconds: float, cores: str | None, workdir: Path, receipts: Path | None = None,
                delay_ms: float | None = None,
                post: bytes | None = None) -> ClosedLoop:  # fmt: skip
    """``wrk`` with ``connections`` connections on one thread for ``seconds`` (``post``: a
    POST of that body, see :func:`wrk_script`)."""
    script = workdir / "wrk.lua"
    script.write_text(
        wrk_script(headers, receipts=receipts is not None, delay_ms=delay_ms, post=post)
    )
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout",
               "10s", "-s", str(script), url]  # fmt: skip
    if receipts is not None:
        command += ["--", str(receipts)]
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)  # fmt: skip
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr}")
    figures = json.loads(line[len(_MARK) :])
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return ClosedLoop(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        errors=errors,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        p999_ms=figures["p999_us"] / 1000,
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class OpenLoop:
    target_rate: float
    achieved_rate: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_COUNTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout")  # fmt: skip


def open_loop(h2load: str, url: str, headers: Mapping[str, str], *, rate: float,
              seconds: float, cores: str | None, workdir: Path) -> OpenLoop:  # fmt: skip
    """``rate`` requests/s spread over enough HTTP/1.1 connections for ``seconds``."""
    # Each connection's interval (connections / rate) must stay above the response time, or
    # requests queue behind each other; too many connections and h2load, one thread on the
    # load core, becomes the bottleneck itself. 64 keeps 6 ms between requests at 10k/s;
    # below 640/s, one connection per 10 requests/s keeps 100 ms.
    connections = max(8, min(64, math.ceil(rate / 10)))
    log = workdir / "h2load.log"
    log.unlink(missing_ok=True)
    command = [h2load, "--h1", "-t1", f"-c{connections}", f"--rps={rate / connections:.3f}",
               f"-D{max(1, round(seconds))}", "--warm-up-time=1", f"--log-file={log}"]  # fmt: skip
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)  # fmt: skip
    counts = _COUNTS.search(done.stdout)
    if counts is None:
        raise RuntimeError(f"h2load failed ({done.returncode}): {done.stdout[-800:]}{done.stderr}")
    latencies: list[float] = []
    bad = 0
    first = last = None
    for line in log.read_text().splitlines():
        start_us, status, elapsed_us = line.split("\t")[:3]
        if not 200 <= int(status) < 300:
            bad += 1
        latencies.append(int(elapsed_us) / 1000)
        started = int(start_us)
        first = started if first is None else min(first, started)
        last = started if last is None else max(last, started)
    latencies.sort()
    span = ((last - first) / 1e6) if first is not None and last is not None else 0.0
    failed = int(counts.group(5)) + int(counts.group(6)) + int(counts.group(7))
    return OpenLoop(
        target_rate=rate,
        achieved_rate=len(latencies) / span if span > 0 else 0.0,
        requests=len(latencies),
        errors=bad + failed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        p999_ms=percentile(latencies, 99.9),
    )
