"""Compile a policy set into the lookup structures the engine decides from.

Contract: :func:`compile_index` runs once per policy set (at engine construction). Afterwards a
decision touches only the permissions filed under its ``(resource, purpose, requester)`` keys
— one bucket for the requester agency, one for its kind — and the negative-list items of its
resource. Field sets (``"*"`` expanded, 不予共享 fields removed, 有条件 fields kept only where
the permission ``satisfies`` one of their sharing conditions), case bindings, the stages of
each purpose, mask functions and whether each condition needs the record are all precomputed
here.

``references`` lists, per resource, the fields that refer to a subject (``refers_to`` in the
standard) with the fields of this resource that mirror the subject's fields: the engine screens
the subject's items for them (gateway/policy/screen.py).

Negative-list items of a resource are ordered for the engine: ``deny_request`` first, then
``withhold_record`` (concealing items before the others, so that concealment wins), then
``withhold_fields`` and ``mask_fields``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from gateway.policy.cel_env import Condition
from gateway.policy.masks import MaskFunction, mask_function
from gateway.policy.model import (
    ALL_RESOURCES,
    Action,
    CaseBinding,
    Mask,
    NegativeItem,
    ReachKind,
)
from gateway.policy.policy_set import PolicySet
from gateway.standard import ResourceType, SharingClass

__all__ = [
    "CompiledException",
    "CompiledItem",
    "CompiledPermission",
    "PolicyIndex",
    "Reference",
    "compile_index",
    "grantable_fields",
]

_ACTION_ORDER = {
    Action.DENY_REQUEST: 0,
    Action.WITHHOLD_RECORD: 1,
    Action.WITHHOLD_FIELDS: 2,
    Action.MASK_FIELDS: 3,
}


def _in_force(valid_from: date | None, valid_until: date | None, day: date) -> bool:
    if valid_from is not None and day < valid_from:
        return False
    return valid_until is None or day <= valid_until


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPermission:
    """A permission ready to decide: ``record_level`` = its condition reads the record."""

    id: str
    resource: str
    fields: frozenset[str]
    condition: Condition | None
    record_level: bool
    valid_from: date | None
    valid_until: date | None
    binding: CaseBinding
    role: str | None
    reach: ReachKind | None = None

    def in_force(self, day: date) -> bool:
        """True if ``day`` is inside the permission's validity window."""
        return _in_force(self.valid_from, self.valid_until, day)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledException:
    """An exception of a negative-list item."""

    id: str
    condition: Condition
    record_level: bool
    valid_from: date | None
    valid_until: date | None
    legal_basis: str

    def in_force(self, day: date) -> bool:
        """True if ``day`` is inside the exception's validity window."""
        return _in_force(self.valid_from, self.valid_until, day)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledItem:
    """A negative-list item (``fields`` empty for request/record actions)."""

    id: str
    action: Action
    fields: frozenset[str]
    mask: Mask | None
    mask_fn: MaskFunction | None
    conceal: bool
    condition: Condition | None
    record_level: bool
    exceptions: tuple[CompiledException, ...]
    legal_basis: str


@dataclass(frozen=True, slots=True, eq=False)
class Reference:
    """A field of a resource that refers to a subject, and the fields that mirror it.

    ``mirrors`` maps a field of the subject to the fields of the referring resource that
    repeat it through this reference (``person.name`` → ``judgment.defendant_name``).
    """

    field: str
    resource: str
    is_list: bool
    mirrors: Mapping[str, frozenset[str]]


@dataclass(frozen=True, eq=False)
class PolicyIndex:
    """Everything :class:`~gateway.policy.engine.PolicyEngine` looks up per decision.

    ``permissions`` is keyed ``(resource, purpose, "A:<agency>" | "K:<kind>")``.
    """

    permissions: Mapping[tuple[str, str, str], tuple[CompiledPermission, ...]]
    items: Mapping[str, tuple[CompiledItem, ...]]
    item_request_attrs: Mapping[str, frozenset[str] | None]
    field_order: Mapping[str, tuple[str, ...]]
    all_fields: Mapping[str, frozenset[str]]
    not_shared: Mapping[str, frozenset[str]]
    agency_kind: Mapping[str, str]
    purposes: frozenset[str]
    references: Mapping[str, tuple[Reference, ...]]
    # item_request_attrs of a resource and of every subject it refers to, together.
    request_attrs_with_subjects: Mapping[str, frozenset[str] | None]
    # The case stages each purpose is valid in (the standard's ``stages``).
    purpose_stages: Mapping[str, frozenset[str]]
    # Purposes for which a prison's stationed procuratorate is a party of the case.
    stationed_purposes: frozenset[str]
    # Every request attribute any condition reads, sorted; None if one reads the request
    # dynamically or reads ``time``: then a decision cannot be remembered by its inputs.
    decision_attrs: tuple[str, ...] | None = None


def _item(item: NegativeItem, conditions: Mapping[str, Condition]) -> CompiledItem:
    cond = conditions.get(item.id)
    exceptions = tuple(
        CompiledException(
            id=exc.id,
            condition=conditions[exc.id],
            record_level=conditions[exc.id].uses_record,
            valid_from=exc.valid_from,
            valid_until=exc.valid_until,
            legal_basis=exc.legal_basis,
        )
        for exc in item.exceptions
    )
    return CompiledItem(
        id=item.id,
        action=item.action,
        fields=frozenset(item.fields or ()),
        mask=item.mask,
        mask_fn=None if item.mask is None else mask_function(item.mask),
        conceal=item.conceal,
        condition=cond,
        record_level=cond is not None and cond.uses_record,
        exceptions=exceptions,
        legal_basis=item.legal_basis,
    )


def _request_attrs(items: tuple[CompiledItem, ...]) -> frozenset[str] | None:
    attrs: set[str] = set()
    for item in items:
        conds = [item.condition] + [e.condition for e in item.exceptions]
        for cond in conds:
            if cond is None or not cond.uses_request:
                continue
            if cond.request_attrs is None:
                return None
            attrs |= cond.request_attrs
    return frozenset(attrs)


def grantable_fields(resource: ResourceType, satisfies: Iterable[str]) -> frozenset[str]:
    """Fields of ``resource`` a permission satisfying ``satisfies`` may grant.

    Every 无条件 field, and each 有条件 field one of whose sharing conditions is satisfied;
    never a 不予共享 field.
    """
    met = frozenset(satisfies)
    return frozenset(
        f.name
        for f in resource.fields
        if f.sharing is SharingClass.UNCONDITIONAL
        or (f.sharing is SharingClass.CONDITIONAL and met.intersection(f.conditions))
    )


def compile_index(policy_set: PolicySet) -> PolicyIndex:
    """Build the index of ``policy_set`` (see module docstring)."""
    std = policy_set.standard
    needs_case = {p.code: p.needs_case for p in std.purposes}
    shareable = {
        r.name: frozenset(f.name for f in r.fields if f.sharing is not SharingClass.NOT_SHARED)
        for r in std.resources
    }
    buckets: dict[tuple[str, str, str], list[CompiledPermission]] = defaultdict(list)
    for rule in policy_set.permissions:
        cond = policy_set.conditions.get(rule.id)
        fields = shareable[rule.resource] if rule.fields == "*" else frozenset(rule.fields)
        allowed = grantable_fields(std.resource(rule.resource), rule.satisfies)
        compiled = CompiledPermission(
            id=rule.id,
            resource=rule.resource,
            fields=fields & allowed,
            condition=cond,
            record_level=cond is not None and cond.uses_record,
            valid_from=rule.valid_from,
            valid_until=rule.valid_until,
            binding=rule.binding(any(needs_case.get(p, False) for p in rule.purposes)),
            role=rule.grantee.role,
            reach=None if rule.reach is None else rule.reach.kind,
        )
        for purpose in dict.fromkeys(rule.purposes):
            buckets[(rule.resource, purpose, rule.grantee.key)].append(compiled)
    per_resource: dict[str, list[CompiledItem]] = defaultdict(list)
    for item in policy_set.negative_list:
        compiled_item = _item(item, policy_set.conditions)
        names = (
            [r.name for r in std.resources]
            if item.resources == (ALL_RESOURCES,)
            else item.resources
        )
        for name in names:
            per_resource[name].append(compiled_item)
    items = {
        name: tuple(sorted(found, key=lambda i: (_ACTION_ORDER[i.action], not i.conceal)))
        for name, found in per_resource.items()
    }
    item_attrs = {name: _request_attrs(found) for name, found in items.items()}
    references = {r.name: _references(r) for r in std.resources}
    with_subjects: dict[str, frozenset[str] | None] = {}
    for name, refs in references.items():
        attrs: frozenset[str] | None = item_attrs.get(name, frozenset())
        for ref in refs:
            more = item_attrs.get(ref.resource, frozenset())
            attrs = None if attrs is None or more is None else attrs | more
        with_subjects[name] = attrs
    conditions = list(policy_set.conditions.values())
    read: set[str] | None = set()
    for cond in conditions:
        if cond.uses_request and (cond.request_attrs is None or "time" in cond.request_attrs):
            read = None
            break
        if cond.uses_request and cond.request_attrs is not None and read is not None:
            read |= cond.request_attrs
    return PolicyIndex(
        decision_attrs=None if read is None else tuple(sorted(read)),
        permissions={key: tuple(rules) for key, rules in buckets.items()},
        items=items,
        item_request_attrs=item_attrs,
        field_order={r.name: r.field_names for r in std.resources},
        all_fields={r.name: frozenset(r.field_names) for r in std.resources},
        not_shared={r.name: frozenset(r.field_names) - shareable[r.name] for r in std.resources},
        agency_kind={a.code: a.kind for a in std.agencies},
        purposes=frozenset(needs_case),
        purpose_stages={p.code: frozenset(p.stages) for p in std.purposes},
        stationed_purposes=frozenset(p.code for p in std.purposes if p.stationed_supervision),
        references=references,
        request_attrs_with_subjects=with_subjects,
    )


def _references(resource: ResourceType) -> tuple[Reference, ...]:
    out = []
    for spec in resource.references:
        assert spec.refers_to is not None
        mirrors: dict[str, set[str]] = defaultdict(set)
        for other in resource.fields:
            if other.mirrors is not None and other.mirrors.via == spec.name:
                mirrors[other.mirrors.field].add(other.name)
        out.append(
            Reference(
                field=spec.name,
                resource=spec.refers_to,
                is_list=spec.is_list,
                mirrors={k: frozenset(v) for k, v in mirrors.items()},
            )
        )
    return tuple(out)
