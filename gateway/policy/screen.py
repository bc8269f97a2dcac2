"""Screen negative-list items against one request, before any record is seen.

The engine screens two kinds of items:

* the items of the requested resource itself, and
* the items of every *subject* the resource refers to (the standard's ``refers_to`` fields:
  a judgment's ``defendant_id`` refers to a ``person``, every ``case_id`` to a ``case``).
  Protection belongs to the subject: a ``withhold_record`` item that protects a sealed person
  or a secret case protects every record that refers to them, under the same exceptions.
  Field items of the subject act on the fields that mirror the subject's fields
  (``mirrors`` in the standard), e.g. ``person.name`` on ``judgment.defendant_name``.
  ``deny_request`` items do not travel: they are about requests for the subject's resource.

Each item ends in one of three states: it does not apply to this request (condition false,
or an exception lifts it), it applies to every record (request-level), or it depends on the
record (a :class:`~gateway.policy.records.Residual`, decided per record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.policy.cel_env import Condition
from gateway.policy.index import CompiledException, CompiledItem, PolicyIndex
from gateway.policy.model import Action
from gateway.policy.records import MaskEntry, Residual, SubjectCheck, stronger_entry

__all__ = ["Screened", "SubjectScreen", "screen_items", "screen_subjects"]

# check(condition, rule_id, conceal, assume): ``assume`` is what a concealing item's condition
# counts as when it cannot be evaluated (fail closed: the item applies, an exception does not).
Check = Callable[[Condition, str, bool, bool], bool]
Trace = list[dict[str, Any]]
_FIELD_ACTIONS = (Action.WITHHOLD_FIELDS, Action.MASK_FIELDS)


@dataclass
class Screened:
    """What the items decided for the request as a whole, and what is left for each record."""

    withheld_by: dict[str, str] = field(default_factory=dict)
    masks: dict[str, MaskEntry] = field(default_factory=dict)
    record_items: list[Residual] = field(default_factory=list)
    field_items: list[Residual] = field(default_factory=list)
    withhold_all: CompiledItem | None = None
    # Item ids that applied and exception ids that lifted an item, in decision order.
    rule_ids: list[str] = field(default_factory=list)
    # A concealing deny_request that applies: the request is answered as "not found".
    concealed_by: CompiledItem | None = None
    # A deny_request that applies and does not conceal: screening stopped there.
    denied_by: CompiledItem | None = None


def _note(trace: Trace | None, rule: str, kind: str, effect: str, detail: str = "") -> None:
    if trace is not None:
        trace.append({"rule": rule, "kind": kind, "effect": effect, "detail": detail})


def screen_items(
    items: Iterable[CompiledItem],
    *,
    fields_of: Callable[[CompiledItem], frozenset[str]],
    candidates: frozenset[str],
    check: Check,
    day: date,
    trace: Trace | None,
    kind: str = "negative",
    requests: bool = True,
) -> Screened:
    """Screen ``items`` (module docstring).

    ``fields_of(item)`` names the fields of the screened record that a field item touches;
    only those in ``candidates`` matter. ``requests=False`` skips ``deny_request`` items (the
    items of a subject). ``check(condition, rule_id, conceal, assume)`` evaluates a
    request-level condition; when it fails, a non-concealing rule raises the engine's denial,
    and a concealing one counts as ``assume`` (the item applies, its exception does not), so
    that a concealed request still gets the lists of an ordinary one.
    """
    out = Screened()
    for item in items:
        if item.action is Action.DENY_REQUEST and (not requests or out.concealed_by):
            continue  # subjects' request items do not travel; concealment wins over denial
        touched = fields_of(item) & candidates if item.action in _FIELD_ACTIONS else frozenset()
        if item.action in _FIELD_ACTIONS and not touched:
            continue
        active: bool | None = None
        if item.condition is None:
            active = True
        elif not item.record_level:
            active = check(item.condition, item.id, item.conceal, True)
        if active is False:
            _note(trace, item.id, kind, "skip", "condition is false")
            continue
        pending: list[CompiledException] = []
        lifted = None
        for exc in item.exceptions:
            if not exc.in_force(day):
                _note(trace, exc.id, "exception", "skip", "outside its validity window")
            elif exc.record_level:
                pending.append(exc)
            elif check(exc.condition, exc.id, item.conceal, False):
                lifted = exc.id
                break
            else:
                _note(trace, exc.id, "exception", "skip", "condition is false")
        if lifted is not None:
            out.rule_ids.append(lifted)
            _note(trace, lifted, "exception", "lift", f"lifts {item.id}")
            continue
        if active is None or pending:
            residual = Residual(item, active is None, tuple(pending), touched)
            if item.action is Action.WITHHOLD_RECORD:
                out.record_items.append(residual)
            elif item.action is not Action.DENY_REQUEST:
                out.field_items.append(residual)
            _note(trace, item.id, kind, "per-record", "depends on the record")
            continue
        _note(trace, item.id, kind, item.action.value, item.legal_basis)
        out.rule_ids.append(item.id)
        if item.action is Action.DENY_REQUEST:
            if not item.conceal:
                out.denied_by = item
                return out
            out.concealed_by = item
        elif item.action is Action.WITHHOLD_RECORD:
            out.withhold_all = out.withhold_all or item
        elif item.action is Action.WITHHOLD_FIELDS:
            for name in touched:
                out.withheld_by.setdefault(name, item.id)
        elif item.mask is not None and item.mask_fn is not None:
            for name in touched:
                out.masks[name] = stronger_entry(
                    out.masks.get(name), (item.mask, item.mask_fn, item.id)
                )
    return out


@dataclass
class SubjectScreen:
    """One reference's screening: the per-record check, and what holds for every record."""

    check: SubjectCheck
    withheld_by: dict[str, str]
    masks: dict[str, MaskEntry]
    # Items applied and exceptions lifting them for the whole request.
    rule_ids: list[str]


def _record_fields(conds: Iterable[Condition]) -> frozenset[str] | None:
    out: set[str] = set()
    for cond in conds:
        if cond.record_fields is None:
            return None
        out |= cond.record_fields
    return frozenset(out)


def screen_subjects(
    index: PolicyIndex,
    resource: str,
    candidates: frozenset[str],
    check: Check,
    day: date,
    trace: Trace | None,
) -> list[SubjectScreen]:
    """Screen the items of every subject ``resource`` refers to (module docstring)."""
    out: list[SubjectScreen] = []
    for ref in index.references.get(resource, ()):
        mirrors = ref.mirrors

        def fields_of(item: CompiledItem, mirrors: Any = mirrors) -> frozenset[str]:
            return frozenset(f for name in item.fields for f in mirrors.get(name, ()))

        screened = screen_items(
            index.items.get(ref.resource, ()),
            fields_of=fields_of,
            candidates=candidates,
            check=check,
            day=day,
            trace=trace,
            kind=f"subject {ref.resource} ({ref.field})",
            requests=False,
        )
        residuals = (*screened.record_items, *screened.field_items)
        subject = SubjectCheck(
            field=ref.field,
            resource=ref.resource,
            is_list=ref.is_list,
            withhold_all=screened.withhold_all,
            record_items=tuple(screened.record_items),
            field_items=tuple(screened.field_items),
            projection=_record_fields(
                c
                for r in residuals
                for c in (r.item.condition, *(e.condition for e in r.exceptions))
                if c is not None
            ),
        )
        out.append(SubjectScreen(subject, screened.withheld_by, screened.masks, screened.rule_ids))
    return out
