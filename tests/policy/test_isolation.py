"""The isolated evaluation process: jobs answered over pipes, limits enforced by the kernel,
a fresh process after every limit exceeded, no secrets handed over."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.policy.bundle import bundle_from_directory
from gateway.policy.isolation import EvaluationLimitExceeded, IsolatedEvaluator, _child_environment
from tests.policy.conftest import POLICIES

SHIPPED = bundle_from_directory(POLICIES)


@pytest.fixture
def evaluator() -> Iterator[IsolatedEvaluator]:
    isolated = IsolatedEvaluator(POLICIES / "standard", cpu_seconds=2, memory_mb=256)
    yield isolated
    isolated.close()


def _heavy(items: int) -> dict[str, Any]:
    """The shipped set plus a record-level permission evaluated by a test case over a list of
    ``items`` agencies, two comprehensions deep (items² evaluations)."""
    permission = (
        "  - id: fy.review.heavy\n"
        "    grantee: {agency: FY640104}\n"
        "    resource: case\n"
        "    purposes: [OVERSIGHT]\n"
        "    fields: [case_id]\n"
        "    condition: 'record.handling_agencies.all(a, "
        '!record.handling_agencies.exists(b, b == a + "z"))\'\n'
        "    legal_basis: 测试依据\n"
    )
    listed = ", ".join(["FY640104"] * items)
    suite = (
        'suite: heavy\ntime: "2025-06-01T10:00:00+08:00"\ncases:\n'
        "  - name: heavy\n    request: {requester_agency: FY640104, resource: case, "
        "purpose: OVERSIGHT, fields: [case_id]}\n"
        f"    records:\n      - {{case_id: C-1, handling_agencies: [{listed}], "
        "secrecy_mark: NONE, work_secret: false}\n"
        "    expect: {outcome: allow, records: [{released: true}]}\n"
    )
    court = "permissions/court.yaml"
    return {**SHIPPED, court: SHIPPED[court] + permission, "tests/heavy.yaml": suite}


def test_a_check_job_answers_with_the_version_tests_and_diff(
    evaluator: IsolatedEvaluator,
) -> None:
    answer = evaluator.run({"job": "check", "files": _heavy(3), "base_files": SHIPPED})
    assert answer["version_id"].startswith("sha256:")
    assert answer["tests"]["failed"] == 0
    assert answer["tests"]["passed"] > 10
    assert answer["diff"]["added"] == ["fy.review.heavy"]
    assert answer["failures"] == []
    # invalid files come back as problems, the process keeps serving
    broken = evaluator.run({"job": "check", "files": {"permissions/x.yaml": "[", **SHIPPED}})
    assert broken["problems"][0]["code"] == "yaml"
    assert evaluator.started == 1


def test_the_cpu_limit_stops_a_job_and_the_next_job_gets_a_fresh_process(
    evaluator: IsolatedEvaluator,
) -> None:
    started = time.monotonic()
    with pytest.raises(EvaluationLimitExceeded) as exceeded:
        evaluator.run({"job": "check", "files": _heavy(3000)})
    assert exceeded.value.limit == "cpu"
    assert "CPU time limit of 2 s" in str(exceeded.value)
    assert time.monotonic() - started < 60
    answer = evaluator.run({"job": "check", "files": SHIPPED})
    assert answer["tests"]["failed"] == 0
    assert evaluator.started == 2


def test_a_silent_child_is_killed_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    isolated = IsolatedEvaluator(POLICIES / "standard", cpu_seconds=1, memory_mb=256)

    def sleeper(self: IsolatedEvaluator) -> subprocess.Popen[bytes]:
        self.started += 1
        return subprocess.Popen(  # a child that never answers (blocked, not computing)
            [sys.executable, "-c", "import time; time.sleep(600)"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    monkeypatch.setattr(IsolatedEvaluator, "_start", sleeper)
    monkeypatch.setattr("gateway.policy.isolation._START_SECONDS", 1.0)
    started = time.monotonic()
    with pytest.raises(EvaluationLimitExceeded) as exceeded:
        isolated.run({"job": "check", "files": SHIPPED})
    assert exceeded.value.limit == "time"
    assert time.monotonic() - started < 15
    isolated.close()


def test_a_child_that_dies_without_an_answer_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    isolated = IsolatedEvaluator(POLICIES / "standard", cpu_seconds=1, memory_mb=256)

    def crasher(self: IsolatedEvaluator) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", "import os, sys; sys.stdin.read(1); os.abort()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    monkeypatch.setattr(IsolatedEvaluator, "_start", crasher)
    with pytest.raises(EvaluationLimitExceeded) as exceeded:
        isolated.run({"job": "check", "files": SHIPPED})
    assert exceeded.value.limit == "memory"
    assert "exceeded its memory limit of 256 MiB or failed" in str(exceeded.value)
    isolated.close()


def test_the_child_gets_no_gateway_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_SECRETS", '{"court": "s3cret"}')
    monkeypatch.setenv("GATEWAY_CURSOR_SECRET", "x" * 40)
    environment = _child_environment()
    assert not [name for name in environment if name.startswith("GATEWAY_")]
    assert "PATH" in environment
