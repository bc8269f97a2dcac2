"""Policy decision point: the permissions list (权限清单) and the negative list (负面清单)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.policy.decision import (
    AccessRequest,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    RequestDecision,
)
from gateway.standard import Standard

__all__ = ["load_policy_engine"]


class _DenyAll:
    """Interim PDP while the engine is being wired: default deny, everything refused."""

    version = "deny-all"

    def decide(self, request: AccessRequest) -> RequestDecision:
        return RequestDecision(Outcome.DENY, "no policy engine loaded", (), self.version)

    def filter_record(
        self, decision: RequestDecision, request: AccessRequest, record: Mapping[str, Any]
    ) -> RecordDecision:
        return RecordDecision(False, {}, frozenset(), frozenset(), ())

    def explain(self, request: AccessRequest, records: Sequence[Mapping[str, Any]]) -> Any:
        return {"outcome": "deny"}


def load_policy_engine(policy_dir: Path, standard: Standard) -> PolicyDecisionPoint:
    return _DenyAll()
