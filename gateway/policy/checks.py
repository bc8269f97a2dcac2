"""Static safety checks over a validated policy set.

Findings are *warnings* by default (kept on ``PolicySet.warnings``, printed by
``gateway policy validate``) and *errors* in strict mode (``--strict``). Each check is sound in
the sense that it reports only what is certain from the files; where a CEL condition's outcome
cannot be known statically, the check assumes it may hold and reports nothing.

``never-matches`` — a permission that can never grant anything: empty validity window
(``valid_from`` after ``valid_until``); ``valid_until`` before today; an empty ``purposes`` or
``fields`` list; a grantee kind with no agency in the standard. For exceptions:
``exception-never-applies`` (empty window, or expired).

``negative-listed-grant`` — a permission that grants something the negative list always
removes for it: (a) an explicitly listed field covered by a ``withhold_fields``/``mask_fields``
item that has no ``condition``, or (b) a resource covered by a ``deny_request`` or
``withhold_record`` item that has no ``condition`` — in both cases with no exception that
could lift the item for the permission's grantee and purposes. An exception could lift it
unless it is out of force during the permission's window, or its condition reads only
``requester_agency``/``requester_kind``/``purpose``/``resource`` and is false for every
(agency of the grantee, purpose of the permission). ``fields: "*"`` means "whatever may be
shared", so it is not reported for field items.

``contradictory-overlap`` — two permissions for overlapping grantees (the same agency, the
same kind, or a kind and one of its agencies; roles equal or one unset), the same resource, a
common purpose and intersecting validity windows that (a) bind cases differently
(``case_binding``), or (b) both have no condition and grant different field sets — grants are
unioned, so the narrower rule's restriction is silently void.

A ``supervised`` (挂牌督办) permission beside an unbound one for the same grantee, resource and
purpose is not reported: the unbound one is the statistics view, and where both match (a case
and an approval reference are given) records are bound to the supervised case, as intended.

``case-binding-disabled`` — ``case_binding: false`` on a permission whose purposes include one
the standard marks ``needs_case``.

``condition-unsatisfied`` — a 有条件 field of the standard that no permission grants: none
satisfies any of its sharing conditions (or none that does lists it). Such a field can never
be shared, which the standard's 有条件 class says it may be: either a rule is missing, or the
field should be 不予共享 with a legal basis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time

from gateway.policy.cel_env import (
    CHINA_TZ,
    CelEvaluationError,
    Condition,
    evaluate,
    request_map,
)
from gateway.policy.decision import AccessRequest
from gateway.policy.errors import PolicyProblem, Severity
from gateway.policy.index import grantable_fields
from gateway.policy.model import ALL_RESOURCES, Action, CaseBinding, NegativeItem, Permission
from gateway.policy.policy_set import PolicySet
from gateway.standard import SharingClass

__all__ = ["run_static_checks"]

_DECISIVE = frozenset({"requester_agency", "requester_kind", "purpose", "resource"})
_FIELD_ACTIONS = (Action.WITHHOLD_FIELDS, Action.MASK_FIELDS)


def _today() -> date:
    return datetime.now(CHINA_TZ).date()


def _overlap(
    a_from: date | None, a_until: date | None, b_from: date | None, b_until: date | None
) -> bool:
    lo = max((d for d in (a_from, b_from) if d is not None), default=None)
    hi = min((d for d in (a_until, b_until) if d is not None), default=None)
    return lo is None or hi is None or lo <= hi


class _Checker:
    def __init__(self, policy_set: PolicySet, today: date) -> None:
        self.ps = policy_set
        self.std = policy_set.standard
        self.today = today
        self.findings: list[PolicyProblem] = []
        self.kind_of = {a.code: a.kind for a in self.std.agencies}
        self.needs_case = {p.code: p.needs_case for p in self.std.purposes}
        self._signatures: dict[str, tuple[CaseBinding, frozenset[str] | None]] = {}

    def report(self, rule_id: str, code: str, message: str) -> None:
        loc = self.ps.location(rule_id)
        self.findings.append(
            PolicyProblem(
                message,
                loc.file if loc else None,
                loc.line if loc else None,
                loc.column if loc else None,
                rule_id,
                code,
                Severity.WARNING,
            )
        )

    # -- never matches -------------------------------------------------------------------

    def never_matches(self, rule: Permission) -> None:
        reasons: list[str] = []
        if rule.valid_from and rule.valid_until and rule.valid_from > rule.valid_until:
            reasons.append(f"empty validity window ({rule.valid_from} > {rule.valid_until})")
        elif rule.valid_until and rule.valid_until < self.today:
            reasons.append(f"expired on {rule.valid_until}")
        if not rule.purposes:
            reasons.append("no purposes")
        if rule.fields != "*" and not rule.fields:
            reasons.append("grants no fields")
        kind = rule.grantee.kind
        if kind is not None and next(self.std.agencies_of_kind(kind), None) is None:
            reasons.append(f"no agency of kind {kind!r} in the standard")
        if reasons:
            self.report(rule.id, "never-matches", "permission never matches: " + "; ".join(reasons))
        binding = rule.binding(any(self.needs_case.get(p, False) for p in rule.purposes))
        needing = [p for p in rule.purposes if self.needs_case.get(p)]
        if binding is CaseBinding.NONE and needing:
            self.report(
                rule.id,
                "case-binding-disabled",
                f"case_binding is false but purpose(s) {', '.join(needing)} need a case",
            )

    def exceptions_in_force(self, item: NegativeItem) -> None:
        for exc in item.exceptions:
            if exc.valid_from and exc.valid_until and exc.valid_from > exc.valid_until:
                why = f"empty validity window ({exc.valid_from} > {exc.valid_until})"
            elif exc.valid_until and exc.valid_until < self.today:
                why = f"expired on {exc.valid_until}"
            else:
                continue
            self.report(exc.id, "exception-never-applies", f"exception never applies: {why}")

    # -- negative-listed grants ----------------------------------------------------------

    def _agencies(self, rule: Permission) -> list[tuple[str, str]]:
        if rule.grantee.agency is not None:
            return [(rule.grantee.agency, self.kind_of.get(rule.grantee.agency, ""))]
        return [(a.code, a.kind) for a in self.std.agencies_of_kind(rule.grantee.kind or "")]

    def _may_lift(self, item: NegativeItem, rule: Permission) -> bool:
        for exc in item.exceptions:
            if exc.valid_from and exc.valid_until and exc.valid_from > exc.valid_until:
                continue
            if exc.valid_until and exc.valid_until < self.today:
                continue
            if not _overlap(rule.valid_from, rule.valid_until, exc.valid_from, exc.valid_until):
                continue
            cond = self.ps.conditions.get(exc.id)
            if cond is None or not self._decidable(cond):
                return True
            if self._holds_for_some(cond, rule):
                return True
        return False

    @staticmethod
    def _decidable(cond: Condition) -> bool:
        return (
            not cond.uses_record
            and cond.request_attrs is not None
            and cond.request_attrs <= _DECISIVE
        )

    def _holds_for_some(self, cond: Condition, rule: Permission) -> bool:
        moment = datetime.combine(self.today, time(12), CHINA_TZ)
        for agency, kind in self._agencies(rule):
            for purpose in rule.purposes:
                req = AccessRequest(agency, kind, rule.resource, purpose, "static-check", moment)
                try:
                    if evaluate(cond, {"request": request_map(req, cond.request_attrs)}):
                        return True
                except CelEvaluationError:
                    return True  # unknown: assume it may lift
        return False

    def negative_listed(self, rule: Permission, items: Iterable[NegativeItem]) -> None:
        for item in items:
            if item.condition is not None:
                continue
            if item.action in _FIELD_ACTIONS:
                if rule.fields == "*":
                    continue
                hit = sorted(set(rule.fields) & set(item.fields or ()))
                if not hit or self._may_lift(item, rule):
                    continue
                verb = "withholds" if item.action is Action.WITHHOLD_FIELDS else "masks"
                self.report(
                    rule.id,
                    "negative-listed-grant",
                    f"grants {rule.resource}.{{{', '.join(hit)}}} which negative-list item "
                    f"{item.id!r} always {verb} for this grantee and purpose(s)",
                )
            elif not self._may_lift(item, rule):
                self.report(
                    rule.id,
                    "negative-listed-grant",
                    f"resource {rule.resource!r} is always refused by negative-list item "
                    f"{item.id!r} ({item.action.value}) for this grantee and purpose(s)",
                )

    # -- overlaps ------------------------------------------------------------------------

    def _signature(self, rule: Permission) -> tuple[CaseBinding, frozenset[str] | None]:
        """(binding, field set if unconditional): only differing signatures can conflict."""
        sig = self._signatures.get(rule.id)
        if sig is None:
            needs = any(self.needs_case.get(p, False) for p in rule.purposes)
            fields = None if rule.condition is not None else self._field_set(rule)
            sig = self._signatures[rule.id] = (rule.binding(needs), fields)
        return sig

    @staticmethod
    def _may_conflict(
        a: tuple[CaseBinding, frozenset[str] | None], b: tuple[CaseBinding, frozenset[str] | None]
    ) -> bool:
        if a[0] is not b[0]:
            return True
        return a[1] is not None and b[1] is not None and a[1] != b[1]

    def _cross(
        self, left: list[Permission], right: list[Permission] | None, seen: set[tuple[str, str]]
    ) -> None:
        """Compare rules of ``left`` with ``right`` (``None``: within ``left``), by signature."""
        groups_l: dict[object, list[Permission]] = defaultdict(list)
        for rule in left:
            groups_l[self._signature(rule)].append(rule)
        groups_r = groups_l
        if right is not None:
            groups_r = defaultdict(list)
            for rule in right:
                groups_r[self._signature(rule)].append(rule)
        keys_l, keys_r = list(groups_l), list(groups_r)
        for i, sig_l in enumerate(keys_l):
            for sig_r in keys_r[i + 1 :] if right is None else keys_r:
                if self._may_conflict(sig_l, sig_r):  # type: ignore[arg-type]
                    for a in groups_l[sig_l]:
                        for b in groups_r[sig_r]:
                            self._pair(a, b, seen)

    def overlaps(self, rules: list[Permission]) -> None:
        groups: dict[tuple[str, str], dict[str, list[Permission]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for rule in rules:
            for purpose in set(rule.purposes):
                groups[(rule.resource, purpose)][rule.grantee.key].append(rule)
        seen: set[tuple[str, str]] = set()
        for by_grantee in groups.values():
            for key, same in by_grantee.items():
                self._cross(same, None, seen)
                if key.startswith("K:"):
                    kind = key[2:]
                    for other_key, agency_rules in by_grantee.items():
                        if other_key.startswith("A:") and self.kind_of.get(other_key[2:]) == kind:
                            self._cross(same, agency_rules, seen)

    def _pair(self, a: Permission, b: Permission, seen: set[tuple[str, str]]) -> None:
        ids = (a.id, b.id) if a.id < b.id else (b.id, a.id)
        if ids in seen:
            return
        roles_meet = a.grantee.role is None or b.grantee.role is None
        if not (roles_meet or a.grantee.role == b.grantee.role):
            return
        if not _overlap(a.valid_from, a.valid_until, b.valid_from, b.valid_until):
            return
        seen.add(ids)
        common = sorted(set(a.purposes) & set(b.purposes))
        needs = any(self.needs_case.get(p, False) for p in a.purposes)
        needs_b = any(self.needs_case.get(p, False) for p in b.purposes)
        bind_a, bind_b = a.binding(needs), b.binding(needs_b)
        if {bind_a, bind_b} == {CaseBinding.SUPERVISED, CaseBinding.NONE}:
            return  # a supervised case view beside the unbound statistics view (docstring)
        if bind_a is not bind_b:
            self.report(
                ids[1],
                "contradictory-overlap",
                f"permissions {ids[0]!r} and {ids[1]!r} overlap on {a.resource} for "
                f"{', '.join(common)} but bind cases differently ({a.id}: {bind_a.value}, "
                f"{b.id}: {bind_b.value})",
            )
        elif a.condition is None and b.condition is None:
            fields_a = self._field_set(a)
            fields_b = self._field_set(b)
            if fields_a != fields_b:
                self.report(
                    ids[1],
                    "contradictory-overlap",
                    f"permissions {ids[0]!r} and {ids[1]!r} overlap on {a.resource} for "
                    f"{', '.join(common)} with different field sets; grants are unioned, so "
                    f"the narrower one restricts nothing (only in {a.id}: "
                    f"{sorted(fields_a - fields_b)}; "
                    f"only in {b.id}: {sorted(fields_b - fields_a)})",
                )

    def _field_set(self, rule: Permission) -> frozenset[str]:
        if rule.fields != "*":
            return frozenset(rule.fields)
        resource = self.std.resource(rule.resource)
        return frozenset(
            f.name for f in resource.fields if f.sharing is not SharingClass.NOT_SHARED
        )

    def unsatisfied_conditions(self) -> None:
        granted: dict[str, set[str]] = defaultdict(set)
        for rule in self.ps.permissions:
            if not self.std.has_resource(rule.resource):
                continue
            allowed = grantable_fields(self.std.resource(rule.resource), rule.satisfies)
            listed = allowed if rule.fields == "*" else frozenset(rule.fields)
            granted[rule.resource] |= listed & allowed
        for resource in self.std.resources:
            for spec in resource.fields:
                if spec.sharing is not SharingClass.CONDITIONAL:
                    continue
                if spec.name in granted[resource.name]:
                    continue
                self.findings.append(
                    PolicyProblem(
                        f"有条件 field {resource.name}.{spec.name} is granted by no permission: "
                        f"none satisfies any of its conditions ({', '.join(spec.conditions)}) "
                        "and lists it",
                        None,
                        None,
                        None,
                        None,
                        "condition-unsatisfied",
                        Severity.WARNING,
                    )
                )

    def run(self) -> list[PolicyProblem]:
        by_resource: dict[str, list[NegativeItem]] = defaultdict(list)
        for item in self.ps.negative_list:
            self.exceptions_in_force(item)
            if item.resources == (ALL_RESOURCES,):
                for resource in self.std.resources:
                    by_resource[resource.name].append(item)
            else:
                for name in item.resources:
                    by_resource[name].append(item)
        for rule in self.ps.permissions:
            self.never_matches(rule)
            self.negative_listed(rule, by_resource.get(rule.resource, ()))
        self.overlaps(list(self.ps.permissions))
        self.unsatisfied_conditions()
        return self.findings


def run_static_checks(policy_set: PolicySet, *, today: date | None = None) -> list[PolicyProblem]:
    """Run every check (see module docstring); returns warnings in file order."""
    findings = _Checker(policy_set, today or _today()).run()
    return sorted(findings, key=lambda p: (p.file or "", p.line or 0, p.column or 0, p.code))
