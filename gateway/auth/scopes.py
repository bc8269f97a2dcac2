"""Scopes, and the separation of duties GB/T 39477 asks for.

Operation (``exchange``), management (``policy:admin``) and audit (``audit:read``)
are held by different clients: no client holds two of them unless an operator forces it
explicitly, which is recorded with the client and audited (``gateway clients add
--force-combined-roles``). ``metrics:read`` (Prometheus) combines with anything.

``sharing:review`` (the owning agency's reviewer of conditional-sharing applications) is a
duty too, and it is *never* held with ``exchange``, not even when forced: whoever applies
for data must not be able to approve the application (``NEVER_COMBINED``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = [
    "ALL_SCOPES",
    "NEVER_COMBINED",
    "SEPARATED_DUTIES",
    "Scope",
    "SeparationOfDutiesError",
    "check_scope_set",
    "combines_duties",
    "never_combined",
]


class Scope(StrEnum):
    EXCHANGE = "exchange"
    POLICY_ADMIN = "policy:admin"
    AUDIT_READ = "audit:read"
    METRICS_READ = "metrics:read"
    SHARING_REVIEW = "sharing:review"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
# Operation, management and audit: one client holds at most one of them.
SEPARATED_DUTIES = (Scope.EXCHANGE, Scope.POLICY_ADMIN, Scope.AUDIT_READ, Scope.SHARING_REVIEW)
# Pairs no client may hold together, whatever the operator forces.
NEVER_COMBINED = ((Scope.EXCHANGE, Scope.SHARING_REVIEW),)


class SeparationOfDutiesError(ValueError):
    pass


def check_scope_set(scopes: Iterable[str], *, force: bool = False) -> list[str]:
    """Return the scopes sorted and de-duplicated, or raise on unknown or conflicting ones."""
    unique = sorted(set(scopes))
    if not unique:
        raise ValueError("a client needs at least one scope")
    unknown = [s for s in unique if s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {sorted(ALL_SCOPES)}")
    for first, second in NEVER_COMBINED:
        if first in unique and second in unique:
            raise SeparationOfDutiesError(
                f"{first} and {second} are never held by one client: an applicant must not "
                "review its own application (separation of duties)"
            )
    duties = [s for s in SEPARATED_DUTIES if s in unique]
    if len(duties) > 1 and not force:
        raise SeparationOfDutiesError(
            f"{' and '.join(duties)} must be held by different clients (separation of duties, "
            "GB/T 39477); pass --force-combined-roles to override"
        )
    return unique


def combines_duties(scopes: Iterable[str]) -> bool:
    """Does this scope set hold more than one of the separated duties?"""
    held = set(scopes)
    return sum(1 for s in SEPARATED_DUTIES if s in held) > 1


def never_combined(scopes: Iterable[str]) -> bool:
    """Does this scope set hold a pair no client may hold (:data:`NEVER_COMBINED`)?"""
    held = set(scopes)
    return any(first in held and second in held for first, second in NEVER_COMBINED)
