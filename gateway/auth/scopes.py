"""Scopes, and the separation of duties GB/T 39477 asks for.

Operation (``exchange``), management (``policy:admin``) and audit (``audit:read``)
are held by different clients; a client may hold both management and audit only
when an operator forces it explicitly (and that is recorded with the client).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["ALL_SCOPES", "Scope", "SeparationOfDutiesError", "check_scope_set"]


class Scope(StrEnum):
    EXCHANGE = "exchange"
    POLICY_ADMIN = "policy:admin"
    AUDIT_READ = "audit:read"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)


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
    if Scope.POLICY_ADMIN in unique and Scope.AUDIT_READ in unique and not force:
        raise SeparationOfDutiesError(
            "policy:admin and audit:read must be held by different clients (GB/T 39477); "
            "pass --force-combined-roles to override"
        )
    return unique
