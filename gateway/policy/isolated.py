"""The child process of :mod:`gateway.policy.isolation`: policy jobs under CPU and memory limits.

Run as ``python -m gateway.policy.isolated --standard DIR --memory-mb N``. It limits its own
address space, loads the standard, then answers jobs read from stdin (4-byte big-endian length,
then JSON) on stdout in the same framing, until stdin closes. Before each job it allows itself
``cpu_seconds`` more CPU time (``RLIMIT_CPU``); the kernel ends it with SIGXCPU past that.

Jobs: ``check`` (load a candidate bundle, run its policy tests, diff it against its base),
``impact`` (replay audited requests against a candidate and the set in force) and ``explain``
(dry-run one request, with records, against a version).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from gateway.policy.bundle import load_bundle
from gateway.policy.diff import diff_policy_sets
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.impact import replay
from gateway.policy.render import request_from_json, subjects_from_json
from gateway.standard import Standard, load_standard

__all__ = ["main"]

_HEADER = 4
_CACHED_ENGINES = 8


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, hard))


def _allow_cpu(seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _limit(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime) + seconds)


class Jobs:
    def __init__(self, standard: Standard) -> None:
        self.standard = standard
        self._engines: OrderedDict[bytes, PolicyEngine] = OrderedDict()

    def engine(self, files: dict[str, str]) -> PolicyEngine:
        key = hashlib.sha256(orjson.dumps(files, option=orjson.OPT_SORT_KEYS)).digest()
        engine = self._engines.get(key)
        if engine is None:
            engine = load_bundle(files, self.standard, run_tests=False).engine
            self._engines[key] = engine
            while len(self._engines) > _CACHED_ENGINES:
                self._engines.popitem(last=False)
        self._engines.move_to_end(key)
        return engine

    def check(self, job: dict[str, Any]) -> dict[str, Any]:
        loaded = load_bundle(job["files"], self.standard, run_tests=True)
        suite = loaded.suite
        answer: dict[str, Any] = {
            "version_id": loaded.engine.version,
            "warnings": [str(w) for w in loaded.engine.policy_set.warnings],
            "tests": None if suite is None else {"passed": suite.passed, "failed": suite.failed},
            "failures": []
            if suite is None
            else [
                {"file": c.file, "line": c.line, "case": c.name, "reason": "; ".join(c.failures)}
                for c in suite.cases
                if not c.passed
            ][:50],
        }
        if job.get("base_files") is not None:
            try:
                base = self.engine(job["base_files"])
            except PolicyError:
                # The base does not load here (a damaged or foreign set in force): nothing to
                # compare with; the candidate itself is what is checked.
                answer["diff"] = None
            else:
                diff = diff_policy_sets(base.policy_set, loaded.engine.policy_set)
                answer["diff"] = diff.to_json()
        return answer

    def impact(self, job: dict[str, Any]) -> dict[str, Any]:
        current, candidate = self.engine(job["current"]), self.engine(job["candidate"])
        documents = [(int(index), document) for index, document in job["documents"]]
        return replay(current, candidate, self.standard, documents)

    def explain(self, job: dict[str, Any]) -> dict[str, Any]:
        engine = self.engine(job["files"])
        try:
            request = request_from_json(job["request"], self.standard)
        except ValueError as exc:
            return {"invalid": str(exc)}
        try:
            subjects = subjects_from_json(job.get("subjects"), self.standard, request)
        except ValueError as exc:
            return {"invalid": str(exc), "field": "subjects"}
        explained: dict[str, Any] = engine.explain(request, job["records"], subjects)
        return {"explained": explained}

    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "check": self.check,
            "impact": self.impact,
            "explain": self.explain,
        }
        try:
            return handlers[job["job"]](job)
        except PolicyError as exc:
            return {"problems": [p.to_json() for p in exc.problems]}
        except MemoryError:
            return {"error": "memory"}


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def serve(jobs: Jobs, source: BinaryIO, sink: BinaryIO) -> None:
    while True:
        header = _read(source, _HEADER)
        if header is None:
            return
        body = _read(source, int.from_bytes(header, "big"))
        if body is None:
            return
        job = orjson.loads(body)
        _allow_cpu(int(job.get("cpu_seconds", 5)))
        try:
            answer = jobs.handle(job)
        except MemoryError:
            answer = {"error": "memory"}
        except Exception as exc:  # the job failed: say so, keep serving
            answer = {"error": "failed", "detail": f"{type(exc).__name__}: {exc}"[:500]}
        encoded = orjson.dumps(answer)
        sink.write(len(encoded).to_bytes(_HEADER, "big") + encoded)
        sink.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.policy.isolated")
    parser.add_argument("--standard", required=True, type=Path)
    parser.add_argument("--memory-mb", required=True, type=int)
    args = parser.parse_args(argv)
    _limit(resource.RLIMIT_AS, args.memory_mb * 1024 * 1024)
    # The answers own stdout: anything printed by mistake goes to stderr instead.
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(Jobs(load_standard(args.standard)), sys.stdin.buffer, sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
