"""The policy decision point: permissions list + negative list over the unified standard.

Semantics (the contract the exchange relies on):

1. **Default deny.** A request is allowed only if a permission in force matches it: grantee
   (the requester's agency, or its kind; and the role if the permission names one), resource,
   purpose, validity window (inclusive, China Standard Time) and request-level condition.
   Unknown resources, purposes or requester agencies, and a requester kind that disagrees with
   the standard, are denied.
2. **Case binding.** A matching permission with ``case_binding`` ``record``/``request`` counts
   only if the request names a case (``request.case``) whose ``handling_agencies`` include the
   requester (or, for a purpose with ``stationed_supervision``, whose
   ``stationed_procuratorates`` do); ``supervised`` (挂牌督办) only if the request names an
   existing case and carries an approval reference. The case must be in a stage the purpose
   is valid in (the standard's ``stages``). If every candidate fails, the request is denied
   with reason ``case binding: …`` or ``case stage: …``. If any counted permission binds
   records, every record must have ``case_id == case.case_id``; other records are withheld
   and concealed.
3. **The negative list is a top layer**: evaluated after the permissions (so that a requester
   with no permission learns nothing from it), it is never overridden by a permission; only
   the item's own exceptions, while in force and while their condition holds, lift it.
   ``deny_request`` denies (``Outcome.NOT_FOUND`` when ``conceal``); ``withhold_record`` drops
   records (``RecordDecision.conceal`` when ``conceal``); ``withhold_fields`` drops fields;
   ``mask_fields`` masks them (the strongest mask wins). Standard 不予共享 fields are never
   released.
4. **Fields.** Released = granted ∩ requested − 不予共享 − withheld, with masks applied.
   ``RequestDecision.withheld_fields`` = requested − permitted. A request whose permitted set is
   empty is denied. Record-level permission conditions add their fields per record.
5. **Conditions** that read ``record`` are evaluated per record; the others once per request.
   Any CEL runtime failure denies — the request (reason names the rule) or that record
   (withheld, reason names the rule) — and never raises out of the engine. A concealing item
   that fails at request level applies (its exception does not), and the decision is
   otherwise made as usual, so that it answers like any concealed request.
6. **Subjects.** The items of the persons and cases a resource refers to are screened with
   its own (``screen.py``); per record they are evaluated on the subject records the exchange
   resolved (``records.py``).
7. **Cost.** A decision looks up two index buckets and evaluates only the conditions of the
   permissions found there and of its resource's (and subjects') negative-list items; see
   ``index.py``. Decisions are remembered by their inputs (``memo.py``).

8. **Conditional-sharing grants** (``AccessRequest.grants``): a grant that covers the request
   (``Grant.covers``: requester agency, resource, purpose, bound case, record id, window) counts
   as one more permission, ``grant:<id>``, for its fields (不予共享 never), bound to its case
   like a ``record`` case binding (the requester must be a party and the case in a stage the
   purpose is valid in). It satisfies its fields' sharing conditions and nothing more: the
   negative list is applied after it like after any permission. ``RequestDecision.grant_ids``
   names the grants that released a field.

``rule_ids`` name every rule that decided: matching permissions, applied negative-list items,
exceptions that lifted one, and for a record the record-level rules that held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.policy.cel_env import (
    CelEvaluationError,
    Condition,
    ResultMemo,
    evaluate,
    new_context,
    request_day,
    request_map,
    request_memo_key,
)
from gateway.policy.decision import (
    AccessRequest,
    Grant,
    Outcome,
    PolicyDecisionPoint,
    RecordDecision,
    RequestDecision,
    SubjectRecords,
)
from gateway.policy.deliveries import DeliveryDecision, decide_delivery
from gateway.policy.index import CompiledPermission, compile_index
from gateway.policy.memo import covering_grants, decision_key
from gateway.policy.model import CaseBinding
from gateway.policy.policy_set import PolicySet
from gateway.policy.records import (
    Plan,
    filter_with_plan,
    stronger_entry,
)
from gateway.policy.render import explain_document
from gateway.policy.screen import screen_items, screen_subjects
from gateway.standard import Standard

__all__ = ["GRANT_RULE_PREFIX", "NOTHING_RELEASABLE", "PolicyEngine", "Trace"]

Trace = list[dict[str, Any]]
_NOTHING: frozenset[str] = frozenset()
_DECISION_MEMO_SIZE = 8192
_GRANT_PERMISSIONS_SIZE = 4096
#: The reason of a request whose permitted fields are none of those requested.
NOTHING_RELEASABLE = "no requested field may be released"
#: Rule id of a grant's permission: ``grant:<grant id>`` (a policy rule id has no ``:``).
GRANT_RULE_PREFIX = "grant:"


class _Denied(Exception):
    def __init__(self, reason: str, rule_ids: Sequence[str], conceal: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.rule_ids, self.conceal = reason, tuple(rule_ids), conceal


def _note(trace: Trace | None, rule: str, kind: str, effect: str, detail: str = "") -> None:
    if trace is not None:
        trace.append({"rule": rule, "kind": kind, "effect": effect, "detail": detail})


def _union(conds: Sequence[Condition], attr: str) -> frozenset[str] | None:
    out: set[str] = set()
    for cond in conds:
        names = getattr(cond, attr)
        if names is None:
            return None
        out |= names
    return frozenset(out)


class PolicyEngine:
    """Implements :class:`~gateway.policy.decision.PolicyDecisionPoint` (module docstring)."""

    def __init__(self, policy_set: PolicySet, standard: Standard | None = None) -> None:
        if standard is not None and standard.version != policy_set.standard.version:
            raise ValueError("the policy set was validated against another standard version")
        self._policy_set = policy_set
        self._index = compile_index(policy_set)
        #: CEL programs actually executed (for tests and metrics; not synchronised).
        self.cel_evaluations = 0
        self._memo = ResultMemo()
        self._decisions: dict[tuple[object, ...], tuple[RequestDecision, object]] = {}
        #: Decisions served from the memo (for tests and metrics; not synchronised).
        self.decision_memo_hits = 0
        self._grant_permissions: dict[Grant, CompiledPermission] = {}

    @property
    def version(self) -> str:
        """Content hash of the policy set in force (standard version included)."""
        return self._policy_set.version

    @property
    def policy_set(self) -> PolicySet:
        """The policy set this engine decides with."""
        return self._policy_set

    def _eval(self, cond: Condition, activation: Any) -> bool:
        self.cel_evaluations += 1
        return evaluate(cond, activation)

    @property
    def cel_memo_hits(self) -> int:
        """Condition results served from the memo instead of running CEL."""
        return self._memo.hits

    def decide_delivery(self, sender_kind: str, recipient_kind: str, kind: str) -> DeliveryDecision:
        """May ``sender_kind`` send delivery ``kind`` to ``recipient_kind``? The delivery rules
        of the set in force (:func:`gateway.policy.deliveries.decide_delivery`)."""
        return decide_delivery(self._policy_set, sender_kind, recipient_kind, kind)

    # -- request -------------------------------------------------------------------------

    def decide(self, request: AccessRequest, *, remember: bool = True) -> RequestDecision:
        """Decide from the request alone (module docstring); never raises.

        A decision is a pure function of the request's inputs that any rule can read
        (:func:`~gateway.policy.memo.decision_key`): it is remembered by them, so a case's
        repeated requests are decided once (the memo is bounded and starts afresh when full).
        ``remember=False`` decides afresh and leaves the memo alone (benchmarks, tests).
        """
        key = decision_key(self._index.decision_attrs, request) if remember else None
        if key is not None:
            hit = self._decisions.get(key)
            if hit is not None:
                self.decision_memo_hits += 1
                return hit[0]
        decision = self._decide(request, None)
        if key is not None:
            if len(self._decisions) >= _DECISION_MEMO_SIZE:
                self._decisions.clear()
            # The case record is kept with the entry: its id() in the key stays its own.
            self._decisions[key] = (decision, request.case.record if request.case else None)
        return decision

    def _decide(self, request: AccessRequest, trace: Trace | None) -> RequestDecision:
        try:
            return self._decide_or_raise(request, trace)
        except _Denied as denied:
            outcome = Outcome.NOT_FOUND if denied.conceal else Outcome.DENY
            _note(trace, ",".join(denied.rule_ids), "decision", outcome.value, denied.reason)
            return RequestDecision(outcome, denied.reason, denied.rule_ids, self.version)

    def _binding_problem(self, request: AccessRequest, binding: CaseBinding) -> str | None:
        case = request.case
        # One wording whether the case is unknown or only not handled by the requester:
        # a refusal must not tell which (it would reveal that a sealed case exists).
        if case is None and not request.case_number:
            return "the purpose needs a case: send X-Case-Number"
        if binding is CaseBinding.SUPERVISED:
            if case is None:
                return f"no case numbered {request.case_number!r} to supervise"
            if not request.approval_reference:
                return "挂牌督办 needs its approval reference (X-Approval-Reference)"
            return None
        agency = request.requester_agency
        party = case is not None and (
            agency in case.handling_agencies
            or (
                request.purpose in self._index.stationed_purposes
                and agency in case.stationed_procuratorates
            )
        )
        if not party:
            return f"{agency} handles no case numbered {request.case_number!r}"
        return None

    def _grant_permission(self, grant: Grant) -> CompiledPermission:
        """The permission a covering grant counts as (compiled once per grant)."""
        compiled = self._grant_permissions.get(grant)
        if compiled is None:
            idx = self._index
            shareable = idx.all_fields.get(grant.resource, _NOTHING) - idx.not_shared.get(
                grant.resource, _NOTHING
            )
            compiled = CompiledPermission(
                id=GRANT_RULE_PREFIX + grant.grant_id,
                resource=grant.resource,
                fields=grant.fields & shareable,
                condition=None,
                record_level=False,
                valid_from=None,
                valid_until=None,
                binding=CaseBinding.RECORD,
                role=None,
            )
            if len(self._grant_permissions) >= _GRANT_PERMISSIONS_SIZE:
                self._grant_permissions.clear()
            self._grant_permissions[grant] = compiled
        return compiled

    def _concealed(self, res: str, check: Any, day: Any) -> bool:
        """A concealing ``deny_request`` item of ``res`` applies to the request."""
        screened = screen_items(
            self._index.items.get(res, ()),
            fields_of=lambda item: item.fields,
            candidates=frozenset(),
            check=check,
            day=day,
            trace=None,
        )
        return screened.concealed_by is not None

    def _stage_problem(self, request: AccessRequest) -> str | None:
        """The bound case's stage is not one the purpose is valid in (fail closed if unknown)."""
        stages = self._index.purpose_stages.get(request.purpose, frozenset())
        stage = None if request.case is None else request.case.stage
        if stage in stages:
            return None
        return (
            f"case stage: purpose {request.purpose} is valid in stages "
            f"{', '.join(sorted(stages))}; the case is in stage {stage or 'unknown'}"
        )

    def _decide_or_raise(self, request: AccessRequest, trace: Trace | None) -> RequestDecision:
        idx, res, purpose = self._index, request.resource, request.purpose
        all_fields = idx.all_fields.get(res)
        if all_fields is None:
            raise _Denied(f"unknown resource {res!r}", ())
        if purpose not in idx.purposes:
            raise _Denied(f"unknown purpose {purpose!r}", ())
        kind = idx.agency_kind.get(request.requester_agency)
        if kind is None or kind != request.requester_kind:
            raise _Denied(
                f"requester {request.requester_agency} is not a {request.requester_kind} "
                "agency of the standard",
                (),
            )
        day = request_day(request)
        candidates = idx.permissions.get((res, purpose, "A:" + request.requester_agency), ())
        candidates += idx.permissions.get((res, purpose, "K:" + kind), ())
        granting: dict[str, str] = {}  # rule id of a grant's permission -> the grant's id
        if request.grants:
            for grant in covering_grants(request):
                compiled = self._grant_permission(grant)
                granting[compiled.id] = grant.grant_id
                candidates += (compiled,)
        items = idx.items.get(res, ())
        attrs = _union(
            [p.condition for p in candidates if p.condition is not None], "request_attrs"
        )
        item_attrs = idx.request_attrs_with_subjects.get(res, _NOTHING)
        wanted = None if attrs is None or item_attrs is None else attrs | item_attrs
        env: dict[str, Any] = {}

        failures: list[str] = []

        def check(
            cond: Condition, rule_id: str, conceal: bool = False, assume: bool = True
        ) -> bool:
            key = request_memo_key(cond, request)
            if key is not None and (hit := self._memo.recall(key)) is not None:
                return hit
            if not env:
                env["ctx"] = new_context({"request": request_map(request, wanted)})
            try:
                result = self._eval(cond, env["ctx"])
            except CelEvaluationError as exc:
                failure = f"CEL error in rule {rule_id}: {exc}"
                if not conceal:
                    raise _Denied(failure, (rule_id,)) from None
                # Fail closed without a different answer: the concealing item applies (or its
                # exception does not), and the rest of the decision is made as usual.
                _note(trace, rule_id, "condition", "error", failure)
                failures.append(failure)
                return assume
            if key is not None:
                self._memo.remember(key, result)
            return result

        matched: list[CompiledPermission] = []
        unbound: list[str] = []
        staged: list[CompiledPermission] = []  # bound to the case, but not in this stage
        problem: str | None = None
        for perm in candidates:
            if not perm.in_force(day):
                _note(trace, perm.id, "permission", "skip", "outside its validity window")
            elif perm.role is not None and perm.role != request.role:
                _note(trace, perm.id, "permission", "skip", f"needs role {perm.role!r}")
            elif perm.condition and not perm.record_level and not check(perm.condition, perm.id):
                _note(trace, perm.id, "permission", "skip", "condition is false")
            elif perm.binding is not CaseBinding.NONE and (
                problem := self._binding_problem(request, perm.binding)
            ):
                unbound.append(perm.id)
                _note(trace, perm.id, "permission", "skip", f"case binding: {problem}")
            elif perm.binding is not CaseBinding.NONE and (problem := self._stage_problem(request)):
                staged.append(perm)
                _note(trace, perm.id, "permission", "skip", problem)
            else:
                matched.append(perm)
                _note(trace, perm.id, "permission", "grant", ", ".join(sorted(perm.fields)))
        if not matched and staged and self._concealed(res, check, day):
            # A case that is not there for anyone (a secret case) is not there for a party
            # either, whatever its stage: it is answered exactly as in its stage (not found).
            matched = staged
        if not matched:
            if staged:
                raise _Denied(self._stage_problem(request) or "", [p.id for p in staged])
            if unbound:
                raise _Denied(f"case binding: {problem}", unbound)
            raise _Denied(
                f"default deny: no permission grants {request.requester_agency} "
                f"{res} for {purpose}",
                (),
            )
        rule_ids = [p.id for p in matched]
        granted: set[str] = set()
        base: set[str] = set()
        for perm in matched:
            granted |= perm.fields
            if not perm.record_level:
                base |= perm.fields
        requested = (
            all_fields
            if request.requested_fields is None
            else request.requested_fields & all_fields
        )
        grantable = frozenset(granted) - idx.not_shared[res]
        own = screen_items(
            items,
            fields_of=lambda item: item.fields,
            candidates=grantable,
            check=check,
            day=day,
            trace=trace,
        )
        rule_ids.extend(own.rule_ids)
        if own.denied_by is not None:
            item = own.denied_by
            raise _Denied(f"negative list {item.id}: {item.legal_basis}", (item.id,))
        # The subjects' items applied, and the exceptions that lifted them, for the whole
        # request: e.g. 第286条's exception at trial, for any sealed defendant a record names.
        subjects = screen_subjects(idx, res, grantable, check, day, trace)
        for subject in subjects:
            rule_ids.extend(r for r in subject.rule_ids if r not in rule_ids)
        withheld_by = dict(own.withheld_by)
        masks = dict(own.masks)
        for subject in subjects:
            withheld_by.update(
                {k: v for k, v in subject.withheld_by.items() if k not in withheld_by}
            )
            for name, entry in subject.masks.items():
                masks[name] = stronger_entry(masks.get(name), entry)
        checks = tuple(subject.check for subject in subjects)
        permitted = frozenset((grantable & requested) - withheld_by.keys())
        withheld = frozenset(requested - permitted)
        if not permitted:
            raise _Denied(NOTHING_RELEASABLE, rule_ids)
        record_perms = tuple(p for p in matched if p.record_level)
        conds: list[Condition] = [p.condition for p in record_perms if p.condition]
        residuals = [
            *own.record_items,
            *own.field_items,
            *(r for c in checks for r in (*c.record_items, *c.field_items)),
        ]
        for res_item in residuals:
            if res_item.check_condition and res_item.item.condition is not None:
                conds.append(res_item.item.condition)
            conds.extend(e.condition for e in res_item.exceptions)
        req_conds = [c for c in conds if c.uses_request]
        bound = any(p.binding is not CaseBinding.NONE for p in matched)
        reaching = [p for p in matched if p.reach is not None]
        reach_fields = (
            frozenset().union(*(p.fields for p in reaching)) if reaching and bound else None
        )
        records_bound = bound and reach_fields is None and request.case is not None
        case = request.case
        plan = Plan(
            released=tuple(f for f in idx.field_order[res] if f in permitted),
            permitted=permitted,
            withheld=withheld,
            base_fields=frozenset(base) if record_perms else permitted,
            record_perms=record_perms,
            record_items=tuple(own.record_items),
            field_items=tuple(own.field_items),
            masks={k: v for k, v in masks.items() if k in permitted},
            withhold_all=own.withhold_all,
            bound_case_id=case.case_id if bound and case else None,
            projection=_union(
                [p.condition for p in record_perms if p.condition]
                + [
                    c
                    for r in (*own.record_items, *own.field_items)
                    for c in (r.item.condition, *(e.condition for e in r.exceptions))
                    if c is not None
                ],
                "record_fields",
            ),
            record_request=request_map(request, _union(req_conds, "request_attrs"))
            if req_conds
            else None,
            rule_ids=tuple(rule_ids),
            subjects=checks,
            reach_fields=reach_fields,
            reach_rule_ids=tuple(p.id for p in reaching),
            filter_fields=frozenset(request.filters) & all_fields,
            clear=frozenset(grantable - withheld_by.keys() - masks.keys()),
            case_record=case.as_record() if case is not None else None,
        )
        outcome, reason = Outcome.ALLOW, "allowed by " + ", ".join(p.id for p in matched)
        rules = plan.rule_ids
        if own.concealed_by is not None:
            item = own.concealed_by
            outcome, reason = Outcome.NOT_FOUND, f"negative list {item.id}: {item.legal_basis}"
            if failures:
                reason += " (" + "; ".join(failures) + ")"
            rules = (item.id,)
            _note(trace, item.id, "decision", outcome.value, reason)
        needed = frozenset(c.resource for c in checks if c.needs_record)
        grant_ids = tuple(
            granting[p.id] for p in matched if p.id in granting and p.fields & permitted
        )
        return RequestDecision(
            outcome,
            reason,
            rules,
            self.version,
            permitted,
            withheld,
            plan.bound_case_id,
            plan if outcome is Outcome.ALLOW else None,
            masked_fields=frozenset(plan.masks),
            clear_fields=plan.clear,
            subject_resources=needed,
            needs_case_persons=reach_fields is not None,
            records_bound=records_bound,
            # Named for a concealed request too: a concealed page has the shape of an empty one.
            grant_ids=grant_ids,
        )

    # -- records -------------------------------------------------------------------------

    def _plan_for(self, decision: RequestDecision, request: AccessRequest) -> RequestDecision:
        if decision.policy_version == self.version and (
            isinstance(decision.plan, Plan) or not decision.allowed
        ):
            return decision
        return self.decide(request)  # a decision from another policy version: decide anew

    def filter_record(
        self,
        decision: RequestDecision,
        request: AccessRequest,
        record: Mapping[str, Any],
        subjects: SubjectRecords | None = None,
    ) -> RecordDecision:
        """Filter one upstream record under an allowed ``decision``; never raises.

        A record under a denied decision is withheld (concealed if the decision was
        ``NOT_FOUND``). ``subjects`` holds the records of the persons and cases the record
        refers to, as far as ``decision.subject_resources`` needs them; a reference that is
        needed and missing withholds and conceals the record. See
        :mod:`gateway.policy.records` for the per-record steps.
        """
        return self._filter(decision, request, record, None, subjects)

    def _filter(
        self,
        decision: RequestDecision,
        request: AccessRequest,
        record: Mapping[str, Any],
        trace: Trace | None,
        subjects: SubjectRecords | None = None,
    ) -> RecordDecision:
        decision = self._plan_for(decision, request)
        if not decision.allowed or not isinstance(decision.plan, Plan):
            return RecordDecision(
                False, {}, decision.withheld_fields, frozenset(), decision.rule_ids,
                f"request not allowed: {decision.reason}", decision.outcome is Outcome.NOT_FOUND,
            )  # fmt: skip
        return filter_with_plan(decision.plan, record, self._eval, trace, self._memo, subjects)

    def explain(
        self,
        request: AccessRequest,
        records: Sequence[Mapping[str, Any]] = (),
        subjects: SubjectRecords | None = None,
    ) -> dict[str, Any]:
        """The request decision and each record's, with rule ids, reasons and a trace.

        JSON-ready (see :func:`gateway.policy.render.explain_document`); for
        ``POST /v1/admin/policies/explain`` and ``gateway policy explain``. ``subjects`` are
        the persons and cases the records refer to (the request's case is one already).
        """
        trace: Trace = []
        decision = self._decide(request, trace)
        outcomes = []
        for record in records:
            record_trace: Trace = []
            outcomes.append(
                (
                    record,
                    self._filter(decision, request, record, record_trace, subjects),
                    record_trace,
                )
            )
        return explain_document(self._policy_set, request, decision, trace, outcomes)


def _implements_the_protocol(engine: PolicyEngine) -> PolicyDecisionPoint:
    """Never called: mypy checks here that the engine implements the exchange's interface."""
    return engine
