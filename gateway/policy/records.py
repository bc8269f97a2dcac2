"""Per-record filtering with the plan a request decision carries.

Contract of :func:`filter_with_plan`: given an allowed request's :class:`Plan` and one record
(standard field names), it returns the :class:`RecordDecision`, in this order:

1. a request-level ``withhold_record`` item → withheld (concealed if the item conceals);
2. case binding: ``record["case_id"]`` differs from the bound case → withheld and concealed
   (a record outside the requester's case is, to the requester, not there);
3. record-level ``withhold_record`` items (concealing ones first) → withheld;
4. record-level permission conditions: the record gets the fields of the unconditional
   permissions plus those whose condition holds; none → withheld;
5. record-level ``withhold_fields``/``mask_fields`` items, then masks are applied.

One CEL context per record holds only the record fields (and request attributes) that the
plan's record-level conditions read. Any CEL failure withholds the record; the reason names
the rule, and the record is concealed if that rule is a concealing item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.policy.cel_env import (
    CelEvaluationError,
    Condition,
    ResultMemo,
    new_context,
    project_record,
    record_memo_key,
)
from gateway.policy.decision import RecordDecision
from gateway.policy.index import CompiledException, CompiledItem, CompiledPermission
from gateway.policy.masks import MaskFunction, stronger
from gateway.policy.model import Action, Mask

__all__ = ["MaskEntry", "Plan", "Residual", "filter_with_plan", "stronger_entry"]

MaskEntry = tuple[Mask, MaskFunction, str]
Evaluator = Callable[[Condition, Any], bool]
Trace = list[dict[str, Any]]
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, eq=False)
class Residual:
    """A negative-list item whose outcome depends on the record."""

    item: CompiledItem
    check_condition: bool
    exceptions: tuple[CompiledException, ...]


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


def _applies(
    residual: Residual, check: Callable[[Condition, str, bool], bool], trace: Trace | None
) -> tuple[bool, str | None]:
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


def filter_with_plan(
    plan: Plan,
    record: Mapping[str, Any],
    evaluate: Evaluator,
    trace: Trace | None = None,
    memo: ResultMemo | None = None,
) -> RecordDecision:
    """Filter one record (module docstring); never raises.

    With ``memo``, results of conditions that read only named record fields are remembered
    by (condition, those field values), and no CEL context is built when all are known.
    """
    try:
        return _filter(plan, record, evaluate, trace, memo)
    except _Withheld as out:
        _note(trace, ",".join(out.rule_ids), "record", "withheld", out.reason)
        return RecordDecision(
            False, {}, plan.withheld | plan.permitted, frozenset(), out.rule_ids,
            out.reason, out.conceal,
        )  # fmt: skip


def _filter(
    plan: Plan,
    record: Mapping[str, Any],
    evaluate: Evaluator,
    trace: Trace | None,
    memo: ResultMemo | None,
) -> RecordDecision:
    if plan.withhold_all is not None:
        item = plan.withhold_all
        raise _Withheld(f"negative list {item.id}: {item.legal_basis}", (item.id,), item.conceal)
    if plan.bound_case_id is not None and record.get("case_id") != plan.bound_case_id:
        raise _Withheld("case binding: the record belongs to another case", (), True)
    env: list[Any] = []

    def check(cond: Condition, rule_id: str, conceal: bool) -> bool:
        key = None if memo is None else record_memo_key(cond, record)
        if key is not None and memo is not None and (hit := memo.recall(key)) is not None:
            return hit
        if not env:
            variables: dict[str, Any] = {"record": project_record(record, plan.projection)}
            if plan.record_request is not None:
                variables["request"] = plan.record_request
            env.append(new_context(variables))
        try:
            result = evaluate(cond, env[0])
        except CelEvaluationError as exc:
            raise _Withheld(f"CEL error in rule {rule_id}: {exc}", (rule_id,), conceal) from None
        if key is not None and memo is not None:
            memo.remember(key, result)
        return result

    extra: list[str] = []  # rule ids beyond the request's, in decision order
    for residual in plan.record_items:
        applies, lifted = _applies(residual, check, trace)
        if lifted is not None:
            extra.append(lifted)
        if applies:
            item = residual.item
            _note(trace, item.id, "negative", "withhold_record", item.legal_basis)
            raise _Withheld(
                f"negative list {item.id}: {item.legal_basis}", (item.id,), item.conceal
            )
    allowed = plan.permitted
    if plan.record_perms:
        fields = set(plan.base_fields)
        for perm in plan.record_perms:
            if perm.condition is not None and check(perm.condition, perm.id, False):
                fields |= perm.fields
                extra.append(perm.id)
                _note(trace, perm.id, "permission", "grant", "condition holds for the record")
            else:
                _note(trace, perm.id, "permission", "skip", "condition is false for the record")
        allowed = plan.permitted & fields
        if not allowed:
            raise _Withheld("no permission covers this record", (*plan.rule_ids, *extra), False)
    withheld: set[str] = set()
    masks = plan.masks
    for residual in plan.field_items:
        applies, lifted = _applies(residual, check, trace)
        if lifted is not None:
            extra.append(lifted)
        if not applies:
            continue
        item = residual.item
        hit = item.fields & allowed
        if not hit:
            continue
        extra.append(item.id)
        _note(trace, item.id, "negative", item.action.value, ", ".join(sorted(hit)))
        if item.action is Action.WITHHOLD_FIELDS:
            withheld |= hit
        elif item.mask is not None and item.mask_fn is not None:
            masks = dict(masks)
            for name in hit:
                masks[name] = stronger_entry(masks.get(name), (item.mask, item.mask_fn, item.id))
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
            if entry[2] not in plan.rule_ids and entry[2] not in extra:
                extra.append(entry[2])
        out[name] = value
    if allowed is plan.permitted and not withheld:
        withheld_fields = plan.withheld  # the common case: nothing record-specific
    else:
        withheld_fields = plan.withheld | (plan.permitted - allowed) | withheld
    rule_ids = tuple(dict.fromkeys((*plan.rule_ids, *extra))) if extra else plan.rule_ids
    return RecordDecision(
        True, out, withheld_fields, frozenset(masked) if masked else _NONE, rule_ids, "released"
    )
