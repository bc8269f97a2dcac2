"""Differences between two policy sets (for review before publishing, ``gateway policy diff``).

Contract of :func:`diff_policy_sets`: rules are matched by id across permissions, negative-list
items and exceptions. A rule present only in ``b`` is *added*, only in ``a`` *removed*; a rule
in both whose canonical content differs is *changed*, with one entry per top-level attribute
that differs (``old``/``new`` values, and for list values the ``added``/``removed`` elements).
An item's exceptions are compared as rules of their own, not as an attribute of the item.
Descriptions count as changes (they are part of the reviewed text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.policy.policy_set import PolicySet

__all__ = ["PolicyDiff", "RuleChange", "diff_policy_sets"]


@dataclass(frozen=True)
class RuleChange:
    """How one rule changed: ``changes[attribute] = {"old", "new"[, "added", "removed"]}``."""

    rule_id: str
    kind: str
    changes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class PolicyDiff:
    """Added, removed and changed rule ids between two policy sets."""

    old_version: str
    new_version: str
    standard_changed: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[RuleChange, ...]

    @property
    def empty(self) -> bool:
        """True if no rule differs (the standard may still have changed)."""
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "standard_changed": self.standard_changed,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [
                {"rule_id": c.rule_id, "kind": c.kind, "changes": dict(c.changes)}
                for c in self.changed
            ],
        }

    def format(self) -> str:
        """Human-readable summary, one line per rule and attribute."""
        lines = [f"{self.old_version} -> {self.new_version}"]
        if self.standard_changed:
            lines.append("standard changed")
        lines += [f"+ {rule_id}" for rule_id in self.added]
        lines += [f"- {rule_id}" for rule_id in self.removed]
        for change in self.changed:
            lines.append(f"~ {change.rule_id} ({change.kind})")
            for attr, detail in change.changes.items():
                if "added" in detail or "removed" in detail:
                    parts = [f"+{v}" for v in detail.get("added", [])]
                    parts += [f"-{v}" for v in detail.get("removed", [])]
                    lines.append(f"    {attr}: {' '.join(parts) or '(reordered)'}")
                else:
                    lines.append(f"    {attr}: {detail['old']!r} -> {detail['new']!r}")
        if self.empty:
            lines.append("no rule changes")
        return "\n".join(lines)


def _rules(policy_set: PolicySet) -> dict[str, tuple[str, dict[str, Any]]]:
    rules: dict[str, tuple[str, dict[str, Any]]] = {}
    for perm in policy_set.permissions:
        rules[perm.id] = ("permission", perm.model_dump(mode="json", exclude_defaults=False))
    for item in policy_set.negative_list:
        body = item.model_dump(mode="json", exclude={"exceptions"})
        body["exceptions"] = [exc.id for exc in item.exceptions]
        rules[item.id] = ("negative", body)
        for exc in item.exceptions:
            rules[exc.id] = ("exception", {**exc.model_dump(mode="json"), "item": item.id})
    return rules


def _attribute_change(old: Any, new: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"old": old, "new": new}
    if isinstance(old, list) and isinstance(new, list):
        old_keys = [repr(v) for v in old]
        new_keys = [repr(v) for v in new]
        out["added"] = [v for v, k in zip(new, new_keys, strict=True) if k not in old_keys]
        out["removed"] = [v for v, k in zip(old, old_keys, strict=True) if k not in new_keys]
    return out


def diff_policy_sets(a: PolicySet, b: PolicySet) -> PolicyDiff:
    """Compare ``a`` (old) with ``b`` (new); see module docstring."""
    old, new = _rules(a), _rules(b)
    changed: list[RuleChange] = []
    for rule_id in sorted(old.keys() & new.keys()):
        (old_kind, old_body), (new_kind, new_body) = old[rule_id], new[rule_id]
        changes: dict[str, Mapping[str, Any]] = {}
        if old_kind != new_kind:
            changes["kind"] = {"old": old_kind, "new": new_kind}
        for attr in sorted(old_body.keys() | new_body.keys()):
            if old_body.get(attr) != new_body.get(attr):
                changes[attr] = _attribute_change(old_body.get(attr), new_body.get(attr))
        if changes:
            changed.append(RuleChange(rule_id, new_kind, changes))
    return PolicyDiff(
        old_version=a.version,
        new_version=b.version,
        standard_changed=a.standard.version != b.standard.version,
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=tuple(changed),
    )
