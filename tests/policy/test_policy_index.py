"""Index selectivity: a decision evaluates only the conditions its index buckets select."""

from __future__ import annotations

from typing import Any

from gateway.policy import PolicyEngine, load_policy_documents
from gateway.standard import Standard
from gateway.standard._yaml import YamlDocument
from tests.policy.conftest import TODAY, perm, person, request


def _unrelated(n: int) -> list[dict[str, Any]]:
    """``n`` permissions with conditions, none for (FY640104/court, person, TRIAL)."""
    kinds = ["public_security", "procuratorate", "prison", "justice"]
    resources = ["case", "judgment", "indictment", "arrest_review", "person"]
    purposes = ["INVESTIGATION", "ARREST_REVIEW", "PROSECUTION_REVIEW", "SENTENCE_EXECUTION"]
    rules = []
    for i in range(n):
        resource = resources[i % len(resources)]
        rules.append(
            perm(
                f"unrelated.{i}",
                grantee={"kind": kinds[i % len(kinds)]},
                resource=resource,
                purposes=[purposes[(i // 7) % len(purposes)]],
                condition=f'request.operator_id != "nobody-{i}"',
                fields=["case_id"],
            )
        )
    return rules


def test_ten_thousand_unrelated_rules_evaluate_nothing(standard: Standard) -> None:
    related = [
        perm("court.trial", condition='request.purpose == "TRIAL"', fields=["person_id", "name"]),
        perm(
            "court.trial.agency",
            grantee={"agency": "FY640104"},
            fields=["person_id"],
            condition='record.role != "WITNESS"',
        ),
    ]
    negative = [
        {
            "id": "nl.rec",
            "resource": "person",
            "action": "withhold_record",
            "condition": "record.juvenile_record_sealed",
            "legal_basis": "x",
        },
        {
            "id": "nl.other-resource",
            "resource": "judgment",
            "action": "deny_request",
            "condition": 'request.purpose == "X"',
            "legal_basis": "x",
        },
        {
            "id": "nl.unrequested",
            "resource": "person",
            "action": "withhold_fields",
            "fields": ["phone"],
            "condition": "record.is_minor",
            "legal_basis": "x",
        },
    ]
    docs = [
        (
            "permissions",
            YamlDocument("generated.yaml", {"permissions": related + _unrelated(10_000)}),
        ),
        ("negative_list", YamlDocument("negative.yaml", {"negative_list": negative})),
    ]
    policy_set = load_policy_documents(standard, docs, today=TODAY)
    assert len(policy_set.permissions) == 10_002
    engine = PolicyEngine(policy_set)
    req = request(fields={"person_id", "name"})
    decision = engine.decide(req)
    # Decide: only the court permissions' request-level condition (one) ran.
    assert decision.allowed
    assert engine.cel_evaluations == 1
    records = [person(f"P{i}", role=f"ROLE{i}", juvenile_record_sealed=i == 0) for i in range(5)]
    before = engine.cel_evaluations
    verdicts = [engine.filter_record(decision, req, record) for record in records]
    assert [v.released for v in verdicts] == [False, True, True, True, True]
    # Per record: at most nl.rec and the record-level permission (the sealed first record
    # stops at nl.rec); nl.unrequested (phone not requested) and nl.other-resource
    # (judgment) are never evaluated. nl.rec's result for sealed=false is memoised.
    assert engine.cel_evaluations - before == 1 + 1 + 4
    # The same request again: the decision comes from the decision memo, and every record
    # condition's result from the condition memo.
    hits, before = engine.cel_memo_hits, engine.cel_evaluations
    decisions = engine.decision_memo_hits
    again = engine.decide(req)
    assert again is decision
    assert engine.decision_memo_hits == decisions + 1
    for record in records:
        engine.filter_record(again, req, record)
    assert engine.cel_evaluations == before
    assert engine.cel_memo_hits - hits == 1 + 4 * 2
