"""Per-record filtering with the plan a request decision carries.

Contract of :func:`filter_with_plan`: given an allowed request's :class:`Plan`, one record
(standard field names) and the subject records the exchange resolved, it returns the
:class:`RecordDecision`, in this order:

1. a request-level ``withhold_record`` item → withheld (concealed if the item conceals);
2. case binding: a record of another case than the bound one is withheld and concealed (to the
   requester it is not there), unless a permission's ``reach`` covers it: then only that
   permission's fields may be released;
3. record-level ``withhold_record`` items of the record's own resource (concealing first);
4. its subjects: for every field that refers to a person or a case, that subject's
   ``withhold_record`` items, evaluated on the subject's record; a reference that could not be
   resolved withholds and conceals the record (fail closed);
5. record-level permission conditions: the record gets the fields of the unconditional
   permissions plus those whose condition holds; none → withheld;
6. record-level ``withhold_fields``/``mask_fields`` items, its own and its subjects' (on the
   fields that mirror the subject's), then masks are applied;
7. a filter is a read: a record is a match only if every field the request filters on would be
   released to this caller *in the clear* for it (requested or not); otherwise it is withheld
   and concealed, exactly like a record that does not match.

One CEL context per record (and per subject record) holds only the fields and request
attributes that the plan's conditions read. Any CEL failure withholds the record; the reason
names the rule, and the record is concealed if that rule is a concealing item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.cel_env import (
    CelEvaluationError,
    Condition,
    ResultMemo,
    new_context,
    project_record,
    record_memo_key,
)
from gateway.policy.decision import RecordDecision, SubjectRecords
from gateway.policy.index import CompiledException, CompiledItem, CompiledPermission
from gateway.policy.masks import MaskFunction, stronger
from gateway.policy.model import Action, Mask

__all__ = [
    "MaskEntry",
    "Plan",
    "Residual",
    "SubjectCheck",
    "filter_with_plan",
    "stronger_entry",
]

MaskEntry = tuple[Mask, MaskFunction, str]
Evaluator = Callable[[Condition, Any], bool]
Check = Callable[[Condition, str, bool], bool]
Trace = list[dict[str, Any]]
_NONE: frozenset[str] = frozenset()
PERSON = "person"
CASE = "case"


@dataclass(frozen=True, slots=True, eq=False)
class Residual:
    """A negative-list item whose outcome depends on the record (or on a subject's record).

    ``fields`` are the fields of the *filtered* record that a field item touches (for a
    subject's item: the fields that mirror the subject's).
    """

    item: CompiledItem
    check_condition: bool
    exceptions: tuple[CompiledException, ...]
    fields: frozenset[str] = _NONE


@dataclass(frozen=True, slots=True, eq=False)
class SubjectCheck:
    """What a record's reference to a subject (``field`` → ``resource``) is checked for."""

    field: str
    resource: str
    is_list: bool
    withhold_all: CompiledItem | None
    record_items: tuple[Residual, ...]
    field_items: tuple[Residual, ...]
    projection: frozenset[str] | None

    @property
    def needs_record(self) -> bool:
        """The subject's record decides something (else the reference alone is enough)."""
        return bool(self.record_items or self.field_items)


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """What a request decision precomputed for filtering its records (opaque to the exchange)."""

    released: tuple[str, ...]
    permitted: frozenset[str]
    withheld: frozenset[str]
    base_fields: frozenset[str]
    record_perms: tuple[CompiledPermission, ...]
    record_items: tuple[Residual, ...]
    field_items: tuple[Residual, ...]
    masks: Mapping[str, MaskEntry]
    withhold_all: CompiledItem | None
    bound_case_id: str | None
    projection: frozenset[str] | None
    record_request: dict[str, object] | None
    rule_ids: tuple[str, ...]
    subjects: tuple[SubjectCheck, ...] = ()
    # Fields a record outside the bound case may release when a reach covers it; None: no
    # permission reaches beyond the bound case.
    reach_fields: frozenset[str] | None = None
    reach_rule_ids: tuple[str, ...] = ()
    # Fields the request filters on: each must be released in the clear for a match.
    filter_fields: frozenset[str] = _NONE
    # Fields in the clear at request level (granted, not withheld, not masked), requested or not.
    clear: frozenset[str] = _NONE
    # The case the request names, as a subject record the exchange need not resolve again.
    case_record: Mapping[str, Any] | None = None


def stronger_entry(old: MaskEntry | None, new: MaskEntry) -> MaskEntry:
    """The entry with the stronger mask (``old`` on ties)."""
    if old is None:
        return new
    return old if stronger(old[0], new[0]) is old[0] else new


class _Withheld(Exception):
    def __init__(self, reason: str, rule_ids: tuple[str, ...], conceal: bool) -> None:
        super().__init__(reason)
        self.reason, self.rule_ids, self.conceal = reason, rule_ids, conceal


def _note(trace: Trace | None, rule: str, kind: str, effect: str, detail: str = "") -> None:
    if trace is not None:
        trace.append({"rule": rule, "kind": kind, "effect": effect, "detail": detail})


def _applies(residual: Residual, check: Check, trace: Trace | None) -> tuple[bool, str | None]:
    """(item applies to the record, id of the exception that lifted it)."""
    item = residual.item
    if (
        residual.check_condition
        and item.condition is not None
        and not check(item.condition, item.id, item.conceal)
    ):
        _note(trace, item.id, "negative", "skip", "condition is false for the record")
        return False, None
    for exc in residual.exceptions:
        if check(exc.condition, exc.id, item.conceal):
            _note(trace, exc.id, "exception", "lift", f"lifts {item.id} for the record")
            return False, exc.id
    return True, None


def _withhold(item: CompiledItem, what: str = "") -> _Withheld:
    return _Withheld(f"negative list {item.id}{what}: {item.legal_basis}", (item.id,), item.conceal)


def filter_with_plan(
    plan: Plan,
    record: Mapping[str, Any],
    evaluate: Evaluator,
    trace: Trace | None = None,
    memo: ResultMemo | None = None,
    subjects: SubjectRecords | None = None,
) -> RecordDecision:
    """Filter one record (module docstring); never raises.

    With ``memo``, results of conditions that read only named record fields are remembered
    by (condition, those field values), and no CEL context is built when all are known.
    """
    try:
        return _Filter(plan, evaluate, trace, memo, subjects).run(record)
    except _Withheld as out:
        _note(trace, ",".join(out.rule_ids), "record", "withheld", out.reason)
        return RecordDecision(
            False, {}, plan.withheld | plan.permitted, frozenset(), out.rule_ids,
            out.reason, out.conceal,
        )  # fmt: skip


def _checker(
    record: Mapping[str, Any],
    projection: frozenset[str] | None,
    request: dict[str, object] | None,
    evaluate: Evaluator,
    memo: ResultMemo | None,
) -> Check:
    """``check(condition, rule_id, conceal)`` over one record, memoised where pure."""
    env: list[Any] = []

    def check(cond: Condition, rule_id: str, conceal: bool) -> bool:
        key = None if memo is None else record_memo_key(cond, record, request)
        if key is not None and memo is not None and (hit := memo.recall(key)) is not None:
            return hit
        if not env:
            variables: dict[str, Any] = {"record": project_record(record, projection)}
            if request is not None:
                variables["request"] = request
            env.append(new_context(variables))
        try:
            result = evaluate(cond, env[0])
        except CelEvaluationError as exc:
            raise _Withheld(f"CEL error in rule {rule_id}: {exc}", (rule_id,), conceal) from None
        if key is not None and memo is not None:
            memo.remember(key, result)
        return result

    return check


def _ids(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        yield from (v for v in value if isinstance(v, str))


@dataclass
class _Filter:
    plan: Plan
    evaluate: Evaluator
    trace: Trace | None
    memo: ResultMemo | None
    subjects: SubjectRecords | None
    extra: list[str] = field(default_factory=list)  # rule ids beyond the request's

    def _subject(self, resource: str, record_id: str) -> Mapping[str, Any]:
        case = self.plan.case_record
        if resource == CASE and case is not None and case.get("case_id") == record_id:
            return case
        found = None if self.subjects is None else self.subjects.get(resource, record_id)
        if found is None:
            raise _Withheld(f"the {resource} this record refers to could not be checked", (), True)
        return found

    def _reached(self, record: Mapping[str, Any]) -> bool:
        """The record is about the bound case's own persons only (reach bound_case_persons)."""
        plan = self.plan
        if plan.reach_fields is None or plan.bound_case_id is None or self.subjects is None:
            return False
        persons = self.subjects.case_persons.get(plan.bound_case_id)
        if not persons:
            return False
        identities = {p.get("id_number") for p in persons} - {None, ""}
        refs = [
            ref
            for check in plan.subjects
            if check.resource == PERSON
            for ref in _ids(record.get(check.field))
        ]
        if not refs:
            return False
        for ref in refs:
            person = self.subjects.get(PERSON, ref)
            if person is None or person.get("id_number") not in identities:
                return False
        return True

    def run(self, record: Mapping[str, Any]) -> RecordDecision:
        plan, trace = self.plan, self.trace
        if plan.withhold_all is not None:
            raise _withhold(plan.withhold_all)
        reach = False
        if plan.bound_case_id is not None and record.get("case_id") != plan.bound_case_id:
            if not self._reached(record):
                raise _Withheld("case binding: the record belongs to another case", (), True)
            reach = True
            self.extra.extend(plan.reach_rule_ids)
            _note(trace, ",".join(plan.reach_rule_ids), "permission", "reach", "another case")
        check = _checker(record, plan.projection, plan.record_request, self.evaluate, self.memo)
        for residual in plan.record_items:
            applies, lifted = _applies(residual, check, trace)
            if lifted is not None:
                self.extra.append(lifted)
            if applies:
                _note(trace, residual.item.id, "negative", "withhold_record", "")
                raise _withhold(residual.item)
        subject_fields = self._check_subjects(record)
        fields = set(plan.base_fields)
        if plan.record_perms:
            for perm in plan.record_perms:
                if perm.condition is not None and check(perm.condition, perm.id, False):
                    fields |= perm.fields
                    self.extra.append(perm.id)
                    _note(trace, perm.id, "permission", "grant", "condition holds for the record")
                else:
                    _note(trace, perm.id, "permission", "skip", "condition is false for the record")
        else:
            fields = set(plan.permitted | plan.clear)
        if reach and plan.reach_fields is not None:
            fields &= plan.reach_fields
        allowed = plan.permitted & fields
        if not allowed:
            raise _Withheld("no permission covers this record", self._rule_ids(), False)
        considered = allowed | (plan.filter_fields & fields)
        withheld: set[str] = set()
        masks = dict(plan.masks)
        for residual, on in (*((r, check) for r in plan.field_items), *subject_fields):
            applies, lifted = _applies(residual, on, trace)
            if lifted is not None:
                self.extra.append(lifted)
            hit = residual.fields & considered
            if not applies or not hit:
                continue
            item = residual.item
            self.extra.append(item.id)
            _note(trace, item.id, "negative", item.action.value, ", ".join(sorted(hit)))
            if item.action is Action.WITHHOLD_FIELDS:
                withheld |= hit
            elif item.mask is not None and item.mask_fn is not None:
                for name in hit:
                    masks[name] = stronger_entry(
                        masks.get(name), (item.mask, item.mask_fn, item.id)
                    )
        for name in plan.filter_fields:
            if name not in fields or name in withheld or name in masks or name not in plan.clear:
                # A filter is a read: matching on a value the caller may not see reveals it.
                raise _Withheld(
                    f"the filter on {name} reads a field not released in the clear",
                    self._rule_ids(),
                    True,
                )
        return self._release(record, allowed, withheld, masks)

    def _check_subjects(self, record: Mapping[str, Any]) -> list[tuple[Residual, Check]]:
        """Steps 3-4 for every subject; the subjects' field items, each with its checker."""
        pending: list[tuple[Residual, Check]] = []
        for subject in self.plan.subjects:
            for ref in _ids(record.get(subject.field)):
                if subject.withhold_all is not None:
                    raise _withhold(subject.withhold_all, f" ({subject.resource} {subject.field})")
                if not subject.needs_record:
                    continue
                found = self._subject(subject.resource, ref)
                check = _checker(
                    found, subject.projection, self.plan.record_request, self.evaluate, self.memo
                )
                for residual in subject.record_items:
                    applies, lifted = _applies(residual, check, self.trace)
                    if lifted is not None:
                        self.extra.append(lifted)
                    if applies:
                        _note(self.trace, residual.item.id, "subject", "withhold_record", ref)
                        raise _withhold(residual.item, f" ({subject.resource} {subject.field})")
                pending.extend((residual, check) for residual in subject.field_items)
        return pending

    def _rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.plan.rule_ids, *self.extra)))

    def _release(
        self,
        record: Mapping[str, Any],
        allowed: frozenset[str],
        withheld: set[str],
        masks: Mapping[str, MaskEntry],
    ) -> RecordDecision:
        plan = self.plan
        out: dict[str, Any] = {}
        masked: list[str] = []
        for name in plan.released:
            if name not in record or name in withheld or name not in allowed:
                continue
            value = record[name]
            entry = masks.get(name)
            if entry is not None and value is not None:
                value = entry[1](value)
                masked.append(name)
                self.extra.append(entry[2])
            out[name] = value
        if allowed == plan.permitted and not withheld:
            withheld_fields = plan.withheld  # the common case: nothing record-specific
        else:
            withheld_fields = plan.withheld | (plan.permitted - allowed) | withheld
        rule_ids = self._rule_ids() if self.extra else plan.rule_ids
        return RecordDecision(
            True, out, withheld_fields, frozenset(masked) if masked else _NONE, rule_ids, "released"
        )
