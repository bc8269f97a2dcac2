"""The CEL environment of policy conditions: compile, check statically, evaluate.

Contracts:

* A condition sees two variables. ``request`` is a map with the keys of
  :data:`REQUEST_ATTRIBUTES` (absent values are ``null``; ``time`` is a CEL timestamp in China
  Standard Time, ``date`` its ``YYYY-MM-DD``). ``record`` is the record being filtered, with
  absent and ``null`` fields both absent from the map (``has(record.x)`` is false, reading
  ``record.x`` is a runtime error — which denies the record).
* Before anything else, :func:`compile_condition` applies static limits (problems starting
  ``CEL limit``): at most :data:`MAX_CONDITION_CHARS` characters, brackets nested at most
  :data:`MAX_NESTING` deep, comprehensions (``all``, ``exists``, ``exists_one``, ``map``,
  ``filter``) nested at most :data:`MAX_COMPREHENSION_DEPTH` deep and at most
  :data:`MAX_COMPREHENSIONS` of them. Each level of nested comprehension multiplies the work
  by the size of a list (seven levels over ten items took seconds), and only a comprehension
  can use a value more than once, which any blow-up needs. The CEL library used here
  (common-expression-language) gives no cost estimate, so none is applied: these limits bound
  the shape, not the cost, and candidate policy tests run under a CPU time and memory limit
  (gateway/policy/isolation.py); docs/security.md says what remains.
* :func:`compile_condition` compiles once (cached by source) and checks statically: CEL syntax,
  only ``request``/``record`` (and comprehension variables) are referenced, every function is a
  CEL standard function, every ``request.<attr>`` is a known attribute, every ``record.<field>``
  is a field of each covered resource, and ``record`` is not used where no record exists
  (request-level rules). It raises :class:`ConditionError` with every problem found.
* Static analysis also yields the referenced record fields and request attributes, so the
  engine converts only those into CEL values (conversion dominates evaluation cost).
* :func:`evaluate` returns a ``bool`` or raises :class:`CelEvaluationError` — on any runtime
  failure and on a non-boolean result. Callers turn that into a denial; it never allows.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

# The ``cel`` package imports its interactive shell (typer, rich, prompt_toolkit) when it is
# imported: 160 ms of every ``gateway`` command and worker start, for a module the gateway
# never uses. An empty module stands in for it.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

from gateway.policy.decision import AccessRequest  # noqa: E402

__all__ = [
    "CHINA_TZ",
    "MAX_COMPREHENSIONS",
    "MAX_COMPREHENSION_DEPTH",
    "MAX_CONDITION_CHARS",
    "MAX_NESTING",
    "REQUEST_ATTRIBUTES",
    "CelEvaluationError",
    "Condition",
    "ConditionError",
    "ResultMemo",
    "compile_condition",
    "evaluate",
    "hashable_value",
    "new_context",
    "project_record",
    "record_memo_key",
    "request_day",
    "request_map",
    "request_memo_key",
]

#: Static limits of a condition (see the module docstring).
MAX_CONDITION_CHARS = 2048
MAX_NESTING = 32
MAX_COMPREHENSION_DEPTH = 2
MAX_COMPREHENSIONS = 4

#: China Standard Time: validity windows and ``request.date`` are read in it.
CHINA_TZ = timezone(timedelta(hours=8), "CST")


def _china_time(request: AccessRequest) -> datetime:
    moment = request.time
    if moment.tzinfo is None:  # naive times are taken as China Standard Time
        return moment.replace(tzinfo=CHINA_TZ)
    return moment.astimezone(CHINA_TZ)


def request_day(request: AccessRequest) -> date:
    """The request's calendar day in China Standard Time (for validity windows)."""
    return _china_time(request).date()


def _case_attr(name: str) -> Callable[[AccessRequest], object]:
    def get(request: AccessRequest) -> object:
        return None if request.case is None else getattr(request.case, name)

    return get


#: Attributes of the CEL ``request`` map and how each is read from an ``AccessRequest``.
REQUEST_ATTRIBUTES: Mapping[str, Callable[[AccessRequest], object]] = {
    "requester_agency": lambda r: r.requester_agency,
    "requester_kind": lambda r: r.requester_kind,
    "purpose": lambda r: r.purpose,
    "resource": lambda r: r.resource,
    "operator_id": lambda r: r.operator_id,
    "role": lambda r: r.role,
    "approval_reference": lambda r: r.approval_reference,
    "channel": lambda r: r.channel,
    "time": _china_time,
    "date": lambda r: request_day(r).isoformat(),
    "case_number": lambda r: r.case_number,
    "has_case": lambda r: r.case is not None,
    "case_id": _case_attr("case_id"),
    "case_stage": _case_attr("stage"),
    "case_secrecy_mark": _case_attr("secrecy_mark"),
    "case_closed_trial": lambda r: None if r.case is None else r.case.flag("closed_trial"),
    "case_work_secret": lambda r: None if r.case is None else r.case.flag("work_secret"),
    "handling_agencies": lambda r: None if r.case is None else sorted(r.case.handling_agencies),
    "record_id": lambda r: r.record_id,
    "filters": lambda r: dict(r.filters),
    "requested_fields": lambda r: (
        None if r.requested_fields is None else sorted(r.requested_fields)
    ),
}

_ALL_ATTRS = frozenset(REQUEST_ATTRIBUTES)

_FUNCTIONS = frozenset(
    {
        "size", "startsWith", "endsWith", "contains", "matches", "timestamp", "duration",
        "int", "uint", "double", "string", "bytes", "type", "dyn", "getFullYear", "getMonth",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_COMPREHENSION = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_QUOTE = re.compile(r"(?:[rRbB]{1,2})?('''|\"\"\"|'|\")")
_MACRO_OPENING = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*$")
_REF = r"(?<![\w.]){var}\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*\"#(\d+)\"\s*\])?"
_RECORD_REF = re.compile(_REF.format(var="record"))
_REQUEST_REF = re.compile(_REF.format(var="request"))


class ConditionError(Exception):
    """A condition does not compile or fails a static check; ``messages`` lists why."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = tuple(messages)
        super().__init__("; ".join(self.messages))


class CelEvaluationError(Exception):
    """A condition failed at run time (or did not yield a bool)."""


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    """A compiled condition and what it reads (``None`` = read as a whole, dynamically).

    ``record_key``/``request_key`` are the sorted names a result depends on when it can be
    memoised: a condition is a pure function of the record fields and request attributes it
    reads, so ``record_key`` is set only when it reads no request attribute and names its
    fields statically, and ``request_key`` only when it reads no record, names its attributes
    statically and does not read ``time`` (unique per request).
    """

    source: str
    program: Any
    record_fields: frozenset[str] | None
    request_attrs: frozenset[str] | None
    uses_record: bool
    uses_request: bool
    record_key: tuple[str, ...] | None = None
    request_key: tuple[str, ...] | None = None
    # A record-level condition that also reads request attributes, all named statically and
    # not ``time``: memoised by both (the record fields, then the request attributes).
    mixed_key: tuple[tuple[str, ...], tuple[str, ...]] | None = None


@lru_cache(maxsize=65536)
def _mask_strings(source: str) -> tuple[str, tuple[str, ...]]:
    """Replace string literals with ``"#<n>"`` and drop ``//`` comments (for reference scans)."""
    out: list[str] = []
    literals: list[str] = []
    i, n = 0, len(source)
    while i < n:
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        match = _QUOTE.match(source, i)
        if match is None or (match.start(1) > i and i > 0 and source[i - 1].isalnum()):
            out.append(source[i])
            i += 1
            continue
        quote = match.group(1)
        raw = "r" in source[i : match.start(1)].lower()
        j = match.end()
        while j < n and not source.startswith(quote, j):
            j += 2 if (source[j] == "\\" and not raw) else 1
        literals.append(source[match.end() : j])
        out.append(f'"#{len(literals) - 1}"')
        i = j + len(quote)
    return "".join(out), tuple(literals)


def _references(
    pattern: re.Pattern[str], masked: str, literals: tuple[str, ...]
) -> tuple[set[str], bool, bool]:
    """(named members, used dynamically, used at all) of one variable."""
    names: set[str] = set()
    dynamic = used = False
    for match in pattern.finditer(masked):
        used = True
        if match.group(1) is not None:
            names.add(match.group(1))
        elif match.group(2) is not None:
            names.add(literals[int(match.group(2))])
        else:
            dynamic = True
    return names, dynamic, used


def _static_limits(source: str) -> list[str]:
    """Problems with the condition's size and shape, found without compiling it."""
    if len(source) > MAX_CONDITION_CHARS:
        return [
            f"CEL limit: the condition has {len(source)} characters; at most "
            f"{MAX_CONDITION_CHARS} are allowed"
        ]
    masked, _ = _mask_strings(source)
    opened: list[bool] = []  # per open bracket: does it open a comprehension?
    deepest = deepest_comprehension = comprehensions = 0
    for position, char in enumerate(masked):
        if char in "([{":
            macro = char == "(" and bool(
                _MACRO_OPENING.search(masked[max(0, position - 64) : position])
            )
            opened.append(macro)
            comprehensions += macro
            deepest = max(deepest, len(opened))
            deepest_comprehension = max(deepest_comprehension, sum(opened))
        elif char in ")]}" and opened:
            opened.pop()
    problems = []
    if deepest > MAX_NESTING:
        problems.append(
            f"CEL limit: brackets nested {deepest} deep; at most {MAX_NESTING} are allowed"
        )
    if deepest_comprehension > MAX_COMPREHENSION_DEPTH:
        problems.append(
            f"CEL limit: comprehensions (all, exists, exists_one, map, filter) nested "
            f"{deepest_comprehension} deep; at most {MAX_COMPREHENSION_DEPTH} are allowed "
            "(each level multiplies the work by the size of a list)"
        )
    if comprehensions > MAX_COMPREHENSIONS:
        problems.append(
            f"CEL limit: {comprehensions} comprehensions; at most {MAX_COMPREHENSIONS} are allowed"
        )
    return problems


@lru_cache(maxsize=65536)
def _compile(source: str) -> Any:
    return cel.compile(source)


def compile_condition(
    source: str,
    *,
    record_fields: Iterable[frozenset[str]] | None,
) -> Condition:
    """Compile ``source`` and check it statically (see module docstring).

    ``record_fields`` holds the field names of each resource the rule covers (a reference must
    exist on all of them); ``None`` means the rule is request-level and may not use ``record``.
    """
    limits = _static_limits(source)
    if limits:
        raise ConditionError(limits)
    try:
        program = _compile(source)
    except (ValueError, RuntimeError) as exc:
        text = str(exc).replace("\n", " ").replace("<input>:", "CEL ")
        raise ConditionError([f"CEL does not compile: {text}"]) from None
    problems: list[str] = []
    masked, literals = _mask_strings(source)
    bound = set(_COMPREHENSION.findall(masked))
    unknown_vars = sorted(set(program.variables()) - {"request", "record"} - bound)
    if unknown_vars:
        problems.append(
            f"unknown variable(s) {', '.join(unknown_vars)}: conditions see only request and record"
        )
    for fn in program.functions():
        if fn[0] not in "_@!-" and fn not in _FUNCTIONS:
            problems.append(f"unknown CEL function {fn!r}")
    attrs, request_dynamic, request_used = _references(_REQUEST_REF, masked, literals)
    for attr in sorted(attrs - _ALL_ATTRS):
        problems.append(
            f"unknown request attribute {attr!r} (known: {', '.join(sorted(_ALL_ATTRS))})"
        )
    fields, record_dynamic, record_used = _references(_RECORD_REF, masked, literals)
    if record_used and record_fields is None:
        problems.append("this condition is request-level: it may not use 'record'")
    elif record_fields is not None:
        for resource_fields in record_fields:
            for name in sorted(fields - resource_fields):
                problems.append(f"record field {name!r} does not exist on the resource")
    if problems:
        raise ConditionError(dict.fromkeys(problems))
    record_fields_set = None if record_dynamic else frozenset(fields)
    request_attrs_set = None if request_dynamic else frozenset(attrs & _ALL_ATTRS)
    record_key = None
    if record_fields_set is not None and not request_used:
        record_key = tuple(sorted(record_fields_set))
    request_key = None
    if request_attrs_set is not None and not record_used and "time" not in request_attrs_set:
        request_key = tuple(sorted(request_attrs_set))
    mixed_key = None
    if (
        record_fields_set is not None
        and request_attrs_set is not None
        and record_used
        and request_used
        and "time" not in request_attrs_set
    ):
        mixed_key = (tuple(sorted(record_fields_set)), tuple(sorted(request_attrs_set)))
    return Condition(
        source=source,
        program=program,
        record_fields=record_fields_set,
        request_attrs=request_attrs_set,
        uses_record=record_used,
        uses_request=request_used,
        record_key=record_key,
        request_key=request_key,
        mixed_key=mixed_key,
    )


class ResultMemo:
    """Remembered results of pure conditions, keyed by :func:`request_memo_key` /
    :func:`record_memo_key`; at most ``limit`` entries (then it starts afresh). Safe to share
    between threads for CPython's atomic dict operations; ``hits`` is approximate.
    """

    def __init__(self, limit: int = 65536) -> None:
        self._results: dict[object, bool] = {}
        self._limit = limit
        self.hits = 0

    def recall(self, key: object) -> bool | None:
        """The remembered result for ``key``, if any."""
        hit = self._results.get(key)
        if hit is not None:
            self.hits += 1
        return hit

    def remember(self, key: object, result: bool) -> None:
        """Remember ``result`` under ``key``."""
        if len(self._results) >= self._limit:
            self._results.clear()
        self._results[key] = result


def hashable_value(value: object) -> object:
    """``value`` with lists and dicts made tuples, so that it can be part of a key."""
    if isinstance(value, list):
        return tuple(hashable_value(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, hashable_value(v)) for k, v in value.items()))
    return value


def request_memo_key(condition: Condition, request: AccessRequest) -> object | None:
    """Key under which the result of a request-level ``condition`` may be memoised, or None."""
    if condition.request_key is None:
        return None
    values = (REQUEST_ATTRIBUTES[a](request) for a in condition.request_key)
    return (condition, tuple((type(v), hashable_value(v)) for v in values))


def record_memo_key(
    condition: Condition,
    record: Mapping[str, Any],
    request: Mapping[str, object] | None = None,
) -> object | None:
    """Key under which the result of a record-level ``condition`` may be memoised, or None.

    ``request`` is the CEL ``request`` map the condition is evaluated with: a condition that
    reads both (``mixed_key``) is keyed by the request attributes it reads as well.
    """
    key: object
    # Types are part of the key: True == 1 in Python, not in CEL.
    if condition.record_key is not None:
        key = (condition, tuple((type(v), v) for v in map(record.get, condition.record_key)))
    elif condition.mixed_key is not None and request is not None:
        fields, attrs = condition.mixed_key
        try:
            asked = tuple((type(v), hashable_value(v)) for v in map(request.get, attrs))
        except TypeError:
            return None
        key = (condition, tuple((type(v), v) for v in map(record.get, fields)), asked)
    else:
        return None
    try:
        hash(key)
    except TypeError:  # a list value: not worth converting
        return None
    return key


def request_map(request: AccessRequest, attrs: Iterable[str] | None) -> dict[str, object]:
    """The CEL ``request`` map restricted to ``attrs`` (``None``: every attribute)."""
    names = _ALL_ATTRS if attrs is None else attrs
    return {name: REQUEST_ATTRIBUTES[name](request) for name in names}


def project_record(record: Mapping[str, Any], fields: Iterable[str] | None) -> dict[str, Any]:
    """The CEL ``record`` map: ``fields`` only (``None``: all), ``null`` values dropped."""
    if fields is None:
        return {k: v for k, v in record.items() if v is not None}
    out: dict[str, Any] = {}
    for name in fields:
        value = record.get(name)
        if value is not None:
            out[name] = value
    return out


def evaluate(condition: Condition, activation: Any) -> bool:
    """Run ``condition`` on ``activation`` (a dict or ``cel.Context``); see module docstring."""
    try:
        result = condition.program.execute(activation)
    except Exception as exc:
        raise CelEvaluationError(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(result, bool):
        raise CelEvaluationError(f"condition yielded {type(result).__name__}, not bool")
    return result


def new_context(variables: dict[str, Any]) -> Any:
    """A ``cel.Context`` for several evaluations over the same variables."""
    return cel.Context(variables)
