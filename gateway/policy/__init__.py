"""Policy decision point: the permissions list (权限清单) and the negative list (负面清单).

Typical use::

    from gateway.policy import PolicyEngine, load_policy_set

    policy_set = load_policy_set(Path("policies"))     # raises PolicyError, never half-loads
    engine = PolicyEngine(policy_set)
    decision = engine.decide(request)                   # before any upstream call
    verdict = engine.filter_record(decision, request, record)   # per upstream record
    engine.explain(request, records)                    # JSON-ready, for admins

Modules: ``decision`` (the interface the exchange calls), ``model`` (file models), ``loader``
(load + validate), ``cel_env`` (CEL conditions and their static limits), ``checks`` (static
safety checks), ``index`` and ``engine`` (compiled index, decide/filter/explain), ``records``
(per-record filtering), ``masks``, ``render`` (JSON forms), ``suite`` (policy test suites),
``diff`` and ``cli``. Administration (``admin``, a facade): ``store`` (append-only tables),
``versions`` (storage, the initial import, the deny-all set), ``review`` (candidates and
maker-checker), ``rollback`` (rollback candidates, the freeze), ``follower`` (the set in
force on each worker), ``impact``, ``admin_log``, ``deployment`` (``db upgrade
--policy-files-reviewed``), ``isolation`` and ``isolated`` (the limited evaluation process).
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.decision import (
    AccessRequest,
    CaseContext,
    Grant,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    RequestDecision,
)
from gateway.policy.diff import PolicyDiff, RuleChange, diff_policy_sets
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError, PolicyProblem, Severity
from gateway.policy.loader import load_policy_documents, load_policy_set
from gateway.policy.policy_set import PolicySet, RuleLocation
from gateway.policy.render import request_from_json, request_to_json
from gateway.policy.suite import CaseResult, SuiteResult, run_suite
from gateway.standard import Standard

__all__ = [
    "AccessRequest",
    "CaseContext",
    "CaseResult",
    "Grant",
    "Outcome",
    "PolicyDecisionPoint",
    "PolicyDiff",
    "PolicyEngine",
    "PolicyError",
    "PolicyProblem",
    "PolicySet",
    "RecordDecision",
    "RequestDecision",
    "RuleChange",
    "RuleLocation",
    "Severity",
    "SuiteResult",
    "diff_policy_sets",
    "load_policy_documents",
    "load_policy_engine",
    "load_policy_set",
    "request_from_json",
    "request_to_json",
    "run_suite",
]


def load_policy_engine(policy_dir: Path, standard: Standard) -> PolicyEngine:
    """Load ``policy_dir`` against the already-loaded ``standard`` and build the engine.

    Raises :class:`PolicyError` (every problem, with file:line:column) if the set is invalid;
    static-check findings stay warnings (``engine.policy_set.warnings``).
    """
    return PolicyEngine(load_policy_set(Path(policy_dir), standard=standard), standard)
