"""Running what an administrator wrote in a process of its own, under CPU and memory limits.

A candidate's policy tests, an impact replay and an explain evaluate CEL conditions someone
just typed. Evaluation is synchronous and holds the interpreter: in the gateway's process, a
condition seven comprehensions deep blocked every request (``/healthz`` included) for seconds.
So these jobs run in one long-lived child process (``python -m gateway.policy.isolated``):

* its address space is limited (``RLIMIT_AS``, ``GATEWAY_POLICY_EVAL_MEMORY_MB``), and each job
  gets a CPU-time budget (``RLIMIT_CPU``, ``GATEWAY_POLICY_EVAL_CPU_SECONDS``): the kernel stops
  the child when it spends more, whatever the code is doing;
* the gateway waits for the answer in a worker thread, never on the event loop, and gives up
  after a wall-clock deadline (three times the CPU budget, plus start-up) and kills the child;
* the child gets no ``GATEWAY_*`` variable (no secrets) and talks only over its pipes:
  length-prefixed JSON, never pickle.

A job that exceeds a limit raises :class:`EvaluationLimitExceeded` (the admin API answers 422);
the next job starts a fresh child. Jobs are serialised: one child per gateway process.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import structlog

__all__ = ["EvaluationLimitExceeded", "IsolatedEvaluator"]

log = structlog.get_logger(__name__)

_START_SECONDS = 30.0  # importing the policy engine and loading the standard, on a busy host
_HEADER = 4


class EvaluationLimitExceeded(Exception):
    """The job exceeded a limit (``limit`` is ``cpu``, ``memory`` or ``time``)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def _child_environment() -> dict[str, str]:
    # No GATEWAY_* variable: the child needs none, and they hold the deployment's secrets.
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


class IsolatedEvaluator:
    def __init__(self, standard_dir: Path, *, cpu_seconds: int, memory_mb: int) -> None:
        self.standard_dir = standard_dir
        self.cpu_seconds = cpu_seconds
        self.memory_mb = memory_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.started = 0  # children started so far (a new one after every limit exceeded)

    # --- the child process ------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "gateway.policy.isolated",
            "--standard",
            str(self.standard_dir),
            "--memory-mb",
            str(self.memory_mb),
        ]
        self.started += 1
        return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_environment(),
            close_fds=True,
        )

    def _stop(self, process: subprocess.Popen[bytes]) -> int | None:
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(timeout=10)
        finally:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._stop(self._process)
                self._process = None

    # --- one job ------------------------------------------------------------------------------

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run ``job`` in the child and return its answer (blocking; call it off the loop)."""
        with self._lock:
            fresh = self._process is None or self._process.poll() is not None
            if fresh:
                self._process = self._start()
            process = self._process
            assert process is not None
            budget = self.cpu_seconds * 3.0 + (_START_SECONDS if fresh else 5.0)
            deadline = time.monotonic() + budget
            try:
                self._send(process, {**job, "cpu_seconds": self.cpu_seconds}, deadline)
                answer = self._receive(process, deadline)
            except EvaluationLimitExceeded:
                self._process = None
                raise
            except (OSError, ValueError) as exc:
                self._process = None
                raise self._verdict(process, f"the evaluation process failed: {exc}") from exc
        if answer.get("error") == "memory":
            self.close()  # a child that ran out of memory is not trusted with the next job
            raise EvaluationLimitExceeded(
                "memory", f"the evaluation exceeded its memory limit of {self.memory_mb} MiB"
            )
        return answer

    def _send(self, process: subprocess.Popen[bytes], job: dict[str, Any], deadline: float) -> None:
        """Write the job without blocking past ``deadline``: a bundle is larger than the pipe's
        buffer, and a child that stopped reading must not hold the caller forever."""
        assert process.stdin is not None
        body = orjson.dumps(job)
        pending = memoryview(len(body).to_bytes(_HEADER, "big") + body)
        descriptor = process.stdin.fileno()
        os.set_blocking(descriptor, False)
        while pending:
            self._wait(process, descriptor, deadline, writing=True)
            try:
                written = os.write(descriptor, pending)
            except BlockingIOError:
                continue
            pending = pending[written:]

    def _wait(
        self, process: subprocess.Popen[bytes], descriptor: int, deadline: float, *, writing: bool
    ) -> None:
        """Block until ``descriptor`` is ready, or stop the child at the deadline."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stop(process)
                raise EvaluationLimitExceeded(
                    "time",
                    f"the evaluation did not finish within {self.cpu_seconds * 3} s "
                    f"(its CPU time limit is {self.cpu_seconds} s)",
                )
            watched = ([], [descriptor]) if writing else ([descriptor], [])
            readable, writable, _ = select.select(*watched, [], min(remaining, 1.0))
            if readable or writable:
                return

    def _receive(self, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
        assert process.stdout is not None
        descriptor = process.stdout.fileno()
        size = int.from_bytes(self._read(process, descriptor, _HEADER, deadline), "big")
        answer = orjson.loads(self._read(process, descriptor, size, deadline))
        if not isinstance(answer, dict):
            raise ValueError("the evaluation process answered something that is not an object")
        return answer

    def _read(
        self, process: subprocess.Popen[bytes], descriptor: int, size: int, deadline: float
    ) -> bytes:
        chunks: list[bytes] = []
        missing = size
        while missing:
            self._wait(process, descriptor, deadline, writing=False)
            chunk = os.read(descriptor, min(missing, 1 << 20))
            if not chunk:
                raise self._verdict(process, "the evaluation process ended without an answer")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def _verdict(self, process: subprocess.Popen[bytes], fallback: str) -> EvaluationLimitExceeded:
        """Why the child died: the CPU limit (SIGXCPU), else memory (an allocation failed)."""
        code = self._stop(process)
        if code == -signal.SIGXCPU:
            return EvaluationLimitExceeded(
                "cpu", f"the evaluation exceeded its CPU time limit of {self.cpu_seconds} s"
            )
        log.warning("policy evaluation process died", returncode=code, reason=fallback)
        return EvaluationLimitExceeded(
            "memory",
            f"the evaluation process stopped (exit {code}): it exceeded its memory limit of "
            f"{self.memory_mb} MiB or failed",
        )
