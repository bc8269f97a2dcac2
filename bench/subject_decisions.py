"""Decide + filter one record of the sample data, fresh and remembered: the cost of subjects.

Run: ``python -m bench.subject_decisions [--iterations 20000] [--rounds 3]``.

A prison asks for ``SENTENCE_EXECUTION`` records of case C00000002 with the shipped lists:
a ``person`` record and a ``judgment`` that refers to a person (so the person's negative-list
items are screened with it and evaluated on the defendant's record). Each round measures CPU
µs per decide + filter with a fresh decision (``decide(remember=False)``) and as the gateway
runs it (the decision remembered); the lowest round is printed. Compare trees by running it
in each (``PYTHONPATH=. python -m bench.subject_decisions``).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.policy import AccessRequest, CaseContext, load_policy_engine
from gateway.policy.decision import SubjectRecords
from gateway.standard import load_standard
from sandbox.generator import Dataset

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = (("person", "P0000000201"), ("judgment", "JD0000000201"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    data = Dataset(2021, 300)
    engine = load_policy_engine(ROOT / "policies", load_standard(ROOT / "policies" / "standard"))
    bundle = data.case(2)
    case: dict[str, Any] = dict(bundle.case)
    context = CaseContext(
        case_id=case["case_id"],
        police_case_number=case.get("police_case_number"),
        court_case_number=case.get("court_case_number"),
        handling_agencies=frozenset(case["handling_agencies"]),
        stage=case.get("stage"),
        secrecy_mark=case.get("secrecy_mark"),
        record=case,
    )
    persons = bundle.records("person")
    subjects = SubjectRecords(case_persons={case["case_id"]: persons})
    subjects.add("person", "person_id", persons)
    print("| request | fresh decision µs | decision remembered µs |\n|---|---:|---:|")
    for resource, record_id in REQUESTS:
        record = data.get(resource, record_id)
        assert record is not None
        request = AccessRequest(
            "JY640001", "prison", resource, "SENTENCE_EXECUTION", "bench",
            datetime.now(UTC), case["court_case_number"], context, None, record_id,
        )  # fmt: skip
        best: dict[bool, float] = {}
        for _ in range(args.rounds):
            for remember in (False, True):
                started = time.process_time()
                for _ in range(args.iterations):
                    decision = engine.decide(request, remember=remember)
                    verdict = engine.filter_record(decision, request, record, subjects)
                elapsed = (time.process_time() - started) / args.iterations * 1e6
                assert verdict.released, verdict.reason
                best[remember] = min(best.get(remember, elapsed), elapsed)
        print(f"| `{resource}/{record_id}` | {best[False]:.1f} | {best[True]:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
