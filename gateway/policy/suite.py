"""Policy test suites (like ``opa test``): YAML cases run against an engine.

File shape (``policies/tests/*.yaml``; schema ``policies/schema/policy-tests.schema.json``)::

    suite: 办案流转
    time: 2025-06-01T10:00:00+08:00        # default request time (optional: now)
    cases:
      - name: court reads a sealed juvenile record for TRIAL
        request: {requester_agency: FY640104, resource: person, purpose: TRIAL,
                  case: {case_id: C1, handling_agencies: [FY640104]}, fields: [name]}
        records: [{person_id: P1, case_id: C1, name: 张三, juvenile_record_sealed: true}]
        subjects:                           # optional: persons and cases the records refer to
          person: [{person_id: P1, …}]      # by resource type; the request's case is one already
          case_persons: [{person_id: …}]    # the persons of the request's case (for a reach)
        expect:
          outcome: allow                    # allow | deny | not_found
          reason_contains: …                # optional
          permitted_fields: [name]          # optional, exact set
          withheld_fields: []               # optional, exact set
          rule_ids: [...]                   # optional, exact set; rule_ids_include: subset
          records:                          # optional, one per record, in order
            - released: true
              conceal: false
              fields: [name]                # exact set of released keys
              withheld_fields: [], masked_fields: [], values: {name: 张三}
              rule_ids: [...], rule_ids_include: [...], reason_contains: …

The request format is :func:`gateway.policy.render.request_from_json` (``requester_kind``
defaults to the agency's kind in the standard). Contract of :func:`run_suite`: it never
raises for a bad suite file — a file that does not parse becomes a failed case naming
file:line:column — and returns a :class:`SuiteResult` whose ``format()`` ends with the line
``N passed, M failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from gateway.policy.engine import PolicyEngine
from gateway.policy.render import request_from_json, subjects_from_json
from gateway.standard import StandardError
from gateway.standard._yaml import YamlDocument, read_yaml

__all__ = ["CaseResult", "SuiteResult", "run_suite"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _RecordExpect(_Model):
    released: StrictBool | None = None
    conceal: StrictBool | None = None
    fields: tuple[str, ...] | None = None
    withheld_fields: tuple[str, ...] | None = None
    masked_fields: tuple[str, ...] | None = None
    values: dict[str, Any] | None = None
    rule_ids: tuple[str, ...] | None = None
    rule_ids_include: tuple[str, ...] | None = None
    reason_contains: str | None = None


class _Expect(_Model):
    outcome: Literal["allow", "deny", "not_found"]
    reason_contains: str | None = None
    permitted_fields: tuple[str, ...] | None = None
    withheld_fields: tuple[str, ...] | None = None
    rule_ids: tuple[str, ...] | None = None
    rule_ids_include: tuple[str, ...] | None = None
    records: tuple[_RecordExpect, ...] | None = None


class _Case(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    request: dict[str, Any]
    records: tuple[dict[str, Any], ...] = ()
    subjects: dict[str, Any] | None = None
    expect: _Expect


class _Suite(_Model):
    suite: str = Field(min_length=1)
    description: str = ""
    time: datetime | None = None
    cases: tuple[_Case, ...] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    """One case: where it is, and why it failed (empty ``failures`` = passed)."""

    file: str
    line: int | None
    name: str
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True if every expectation held."""
        return not self.failures


@dataclass(frozen=True)
class SuiteResult:
    """All cases run; ``ok`` when every case passed and at least one ran."""

    cases: tuple[CaseResult, ...]

    @property
    def passed(self) -> int:
        """Number of passed cases."""
        return sum(1 for c in self.cases if c.passed)

    @property
    def failed(self) -> int:
        """Number of failed cases."""
        return len(self.cases) - self.passed

    @property
    def ok(self) -> bool:
        """Every case passed (and there was one)."""
        return bool(self.cases) and self.failed == 0

    def format(self, *, verbose: bool = False) -> str:
        """Report: each failure with file:line and reasons; the last line ``N passed, M failed``."""
        lines: list[str] = []
        for case in self.cases:
            where = f"{case.file}:{case.line}" if case.line else case.file
            if case.failures:
                lines.append(f"FAIL {where} {case.name}")
                lines += [f"  - {failure}" for failure in case.failures]
            elif verbose:
                lines.append(f"ok   {where} {case.name}")
        lines.append(f"{self.passed} passed, {self.failed} failed")
        return "\n".join(lines)


def _compare_set(what: str, expected: Sequence[str] | None, actual: Any, out: list[str]) -> None:
    if expected is None:
        return
    want, got = set(expected), set(actual)
    if want != got:
        detail = []
        if want - got:
            detail.append(f"missing {sorted(want - got)}")
        if got - want:
            detail.append(f"unexpected {sorted(got - want)}")
        out.append(f"{what}: expected {sorted(want)}, got {sorted(got)} ({'; '.join(detail)})")


def _compare_include(
    what: str, expected: Sequence[str] | None, actual: Any, out: list[str]
) -> None:
    if expected is not None and not set(expected) <= set(actual):
        out.append(f"{what}: missing {sorted(set(expected) - set(actual))} in {list(actual)}")


def _run_case(engine: PolicyEngine, case: _Case, default_time: datetime | None) -> list[str]:
    failures: list[str] = []
    try:
        data = dict(case.request)
        if default_time is not None:
            data.setdefault("time", default_time)
        request = request_from_json(data, engine.policy_set.standard)
    except ValueError as exc:
        return [f"request: {exc}"]
    try:
        subjects = subjects_from_json(case.subjects, engine.policy_set.standard, request)
    except ValueError as exc:
        return [str(exc)]  # it names the subjects' key
    decision = engine.decide(request)
    exp = case.expect
    if decision.outcome.value != exp.outcome:
        failures.append(
            f"outcome: expected {exp.outcome}, got {decision.outcome.value} "
            f"(reason: {decision.reason}; rules: {list(decision.rule_ids)})"
        )
    if exp.reason_contains is not None and exp.reason_contains not in decision.reason:
        failures.append(f"reason: {decision.reason!r} does not contain {exp.reason_contains!r}")
    _compare_set("permitted_fields", exp.permitted_fields, decision.permitted_fields, failures)
    _compare_set("withheld_fields", exp.withheld_fields, decision.withheld_fields, failures)
    _compare_set("rule_ids", exp.rule_ids, decision.rule_ids, failures)
    _compare_include("rule_ids", exp.rule_ids_include, decision.rule_ids, failures)
    if exp.records is None:
        return failures
    if len(exp.records) != len(case.records):
        return [
            *failures,
            f"expect.records has {len(exp.records)} entries for {len(case.records)} records",
        ]
    for i, (record, want) in enumerate(zip(case.records, exp.records, strict=True)):
        got = engine.filter_record(decision, request, record, subjects)
        out: list[str] = []
        if want.released is not None and got.released != want.released:
            out.append(f"released: expected {want.released}, got {got.released} ({got.reason})")
        if want.conceal is not None and got.conceal != want.conceal:
            out.append(f"conceal: expected {want.conceal}, got {got.conceal}")
        _compare_set("fields", want.fields, got.record.keys(), out)
        _compare_set("withheld_fields", want.withheld_fields, got.withheld_fields, out)
        _compare_set("masked_fields", want.masked_fields, got.masked_fields, out)
        _compare_set("rule_ids", want.rule_ids, got.rule_ids, out)
        _compare_include("rule_ids", want.rule_ids_include, got.rule_ids, out)
        if want.reason_contains is not None and want.reason_contains not in got.reason:
            out.append(f"reason: {got.reason!r} does not contain {want.reason_contains!r}")
        for name, value in (want.values or {}).items():
            if name not in got.record:
                out.append(f"values.{name}: expected {value!r}, field not released")
            elif got.record[name] != value:
                out.append(f"values.{name}: expected {value!r}, got {got.record[name]!r}")
        failures += [f"record[{i}] {line}" for line in out]
    return failures


def _suite_file(engine: PolicyEngine, path: Path) -> list[CaseResult]:
    file = str(path)
    try:
        doc: YamlDocument = read_yaml(path)
    except StandardError as exc:
        return [CaseResult(file, exc.line, "<suite file>", tuple(str(p) for p in exc.problems))]
    try:
        suite = _Suite.model_validate(doc.data)
    except ValidationError as exc:
        failures = []
        for err in exc.errors(include_url=False):
            line, column = doc.locate(tuple(err["loc"]))
            where = ".".join(str(p) for p in err["loc"])
            failures.append(f"{file}:{line}:{column}: {where}: {err['msg']}")
        return [CaseResult(file, 1, "<suite file>", tuple(failures))]
    results = []
    for i, case in enumerate(suite.cases):
        line, _ = doc.locate(("cases", i))
        try:
            failures = _run_case(engine, case, suite.time)
        except Exception as exc:
            failures = [f"error: {type(exc).__name__}: {exc}"]
        results.append(CaseResult(file, line, f"{suite.suite}: {case.name}", tuple(failures)))
    return results


def run_suite(engine: PolicyEngine, path: Path) -> SuiteResult:
    """Run one suite file, or every ``*.yaml`` under a directory (sorted); see module docstring."""
    root = Path(path)
    if root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*.yaml")
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    else:
        files = [root]
    cases: list[CaseResult] = []
    for file in files:
        if not file.is_file():
            cases.append(CaseResult(str(file), None, "<suite file>", ("file not found",)))
            continue
        cases += _suite_file(engine, file)
    return SuiteResult(tuple(cases))
