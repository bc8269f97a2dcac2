"""The loaded, validated policy set (权限清单 + 负面清单 + the standard they refer to).

Contract: a :class:`PolicySet` exists only fully validated — every name it uses exists in its
``standard``, every condition compiled, every id unique. It is immutable. ``version`` is
``"sha256:<hex>"`` over the standard's version and the policy files' contents (see
:func:`gateway.policy.loader.load_policy_set`), so any change to either changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.policy.cel_env import Condition
from gateway.policy.errors import PolicyProblem
from gateway.policy.model import DeliveryPermission, NegativeException, NegativeItem, Permission
from gateway.standard import Standard

__all__ = ["PolicySet", "RuleLocation"]


@dataclass(frozen=True, slots=True)
class RuleLocation:
    """Where a rule (or exception) is defined: file and 1-based line/column of its ``id``."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


@dataclass(frozen=True, eq=False)
class PolicySet:
    """Permissions, negative-list items, their compiled conditions and where they came from.

    ``conditions`` maps a rule or exception id to its compiled condition (rules without a
    condition are absent). ``warnings`` holds the static-check findings that were not errors.
    """

    version: str
    standard: Standard
    permissions: tuple[Permission, ...]
    negative_list: tuple[NegativeItem, ...]
    # Delivery rules (协同办案): who may send which delivery kinds to whom.
    deliveries: tuple[DeliveryPermission, ...] = ()
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    locations: Mapping[str, RuleLocation] = field(default_factory=dict)
    warnings: tuple[PolicyProblem, ...] = ()
    files: tuple[str, ...] = ()

    def permission(self, rule_id: str) -> Permission:
        """The permission with ``rule_id``; ``KeyError`` if there is none."""
        for rule in self.permissions:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def negative_item(self, rule_id: str) -> NegativeItem:
        """The negative-list item with ``rule_id``; ``KeyError`` if there is none."""
        for item in self.negative_list:
            if item.id == rule_id:
                return item
        raise KeyError(rule_id)

    def exception(self, rule_id: str) -> tuple[NegativeItem, NegativeException]:
        """The exception with ``rule_id`` and its item; ``KeyError`` if there is none."""
        for item in self.negative_list:
            for exc in item.exceptions:
                if exc.id == rule_id:
                    return item, exc
        raise KeyError(rule_id)

    def location(self, rule_id: str) -> RuleLocation | None:
        """Where ``rule_id`` is defined, if known."""
        return self.locations.get(rule_id)

    @property
    def rule_count(self) -> int:
        """Permissions + negative-list items (exceptions not counted)."""
        return len(self.permissions) + len(self.negative_list)

    def summary(self) -> Mapping[str, object]:
        """A short JSON-ready description (for ``gateway policy validate`` and admin routes)."""
        return {
            "version": self.version,
            "standard_version": self.standard.version,
            "permissions": len(self.permissions),
            "negative_list": len(self.negative_list),
            "deliveries": len(self.deliveries),
            "exceptions": sum(len(item.exceptions) for item in self.negative_list),
            "warnings": len(self.warnings),
            "files": list(self.files),
        }
