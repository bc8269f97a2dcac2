"""Static safety checks: each finding, warnings by default, errors in strict mode."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from gateway.policy import PolicyError, PolicyProblem, Severity
from gateway.standard import Standard
from tests.policy.conftest import PolicyWriter, item, load, perm


def _warnings(
    standard: Standard,
    writer: PolicyWriter,
    permissions: list[dict[str, Any]],
    negative: list[dict[str, Any]] | None = None,
) -> list[PolicyProblem]:
    """The findings about these rules; ``condition-unsatisfied`` (about the whole set, which
    a handful of rules never is) is tested on its own below."""
    found = load(writer(permissions, negative or []), standard).warnings
    return [w for w in found if w.code != "condition-unsatisfied"]


def _codes(problems: list[PolicyProblem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(p.code, []).append(p.rule_id or "")
    return out


def test_clean_set_has_no_warnings(standard: Standard, write_policies: PolicyWriter) -> None:
    assert _warnings(standard, write_policies, [perm("a")]) == []


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (perm("r", valid_from="2025-05-01", valid_until="2025-04-01"), "empty validity window"),
        (perm("r", valid_until="2025-01-31"), "expired on 2025-01-31"),
        (perm("r", purposes=[]), "no purposes"),
        (perm("r", fields=[]), "grants no fields"),
        (
            perm(
                "r",
                grantee={"kind": "committee"},
                resource="case",
                fields=["case_id"],
                purposes=["OVERSIGHT"],
            ),
            "",
        ),
    ],
)
def test_never_matches(
    standard: Standard, write_policies: PolicyWriter, rule: dict[str, Any], needle: str
) -> None:
    found = _codes(_warnings(standard, write_policies, [rule]))
    if needle:
        assert found.get("never-matches") == ["r"]
        problem = next(
            p for p in _warnings(standard, write_policies, [rule]) if p.code == "never-matches"
        )
        assert needle in problem.message
        assert problem.severity is Severity.WARNING
        assert problem.line is not None
    else:  # committee has one agency: the rule can match
        assert "never-matches" not in found


def test_grantee_kind_without_agencies(standard: Standard) -> None:
    from gateway.policy.checks import run_static_checks
    from gateway.policy.model import Permission
    from gateway.policy.policy_set import PolicySet

    no_committee = standard.model_copy(
        update={"agencies": tuple(a for a in standard.agencies if a.kind != "committee")}
    )
    rule = Permission.model_validate(
        perm(
            "zf",
            grantee={"kind": "committee"},
            resource="case",
            fields=["case_id"],
            purposes=["OVERSIGHT"],
        )
    )
    ps = PolicySet("v", no_committee, (rule,), ())
    findings = [
        f
        for f in run_static_checks(ps, today=date(2025, 6, 1))
        if f.code != "condition-unsatisfied"
    ]
    assert [f.code for f in findings] == ["never-matches"]
    assert "no agency of kind 'committee'" in findings[0].message


def test_expired_and_empty_exceptions(standard: Standard, write_policies: PolicyWriter) -> None:
    exceptions = [
        {"id": "x.old", "condition": "true", "legal_basis": "b", "valid_until": "2024-12-31"},
        {
            "id": "x.empty",
            "condition": "true",
            "legal_basis": "b",
            "valid_from": "2026-01-01",
            "valid_until": "2025-12-31",
        },
        {"id": "x.fine", "condition": "true", "legal_basis": "b", "valid_until": "2030-01-01"},
    ]
    found = _codes(
        _warnings(
            standard,
            write_policies,
            [],
            [item("x", condition="record.is_minor", exceptions=exceptions)],
        )
    )
    assert sorted(found["exception-never-applies"]) == ["x.empty", "x.old"]


def test_negative_listed_grant_without_covering_exception(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    withhold = item("nl.name", action="withhold_fields", fields=["name", "phone"])
    findings = _warnings(
        standard,
        write_policies,
        [perm("p.list", fields=["person_id", "name"]), perm("p.star")],
        [withhold],
    )
    flagged = [f for f in findings if f.code == "negative-listed-grant"]
    assert [f.rule_id for f in flagged] == ["p.list"]  # "*" grants are not reported
    assert "person.{name}" in flagged[0].message
    assert "nl.name" in flagged[0].message


def test_mask_items_count_too(standard: Standard, write_policies: PolicyWriter) -> None:
    mask = item("nl.mask", action="mask_fields", fields=["id_number"], mask={"kind": "redact"})
    findings = _warnings(
        standard, write_policies, [perm("p", fields=["person_id", "id_number"])], [mask]
    )
    assert [f.code for f in findings] == ["negative-listed-grant"]
    assert "masks" in findings[0].message


def test_conditional_items_are_not_reported(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    conditional = item(
        "nl.c", action="withhold_fields", fields=["name"], condition="record.is_minor == true"
    )
    assert _warnings(standard, write_policies, [perm("p", fields=["name"])], [conditional]) == []


@pytest.mark.parametrize(
    ("exception", "flagged"),
    [
        ({"condition": 'request.purpose == "TRIAL"'}, False),  # lifts it for this grant
        ({"condition": 'request.purpose == "STATISTICS"'}, True),  # never for this grant
        ({"condition": 'request.requester_kind == "court"'}, False),
        ({"condition": 'request.requester_agency == "JC640104"'}, True),
        ({"condition": 'request.case_stage == "TRIAL"'}, False),  # undecidable: may lift
        ({"condition": "record.is_minor == false"}, False),  # record-dependent: may lift
        ({"condition": "true", "valid_until": "2025-01-01"}, True),  # expired
        ({"condition": "true", "valid_from": "2027-01-01"}, False),  # will lift from 2027
    ],
)
def test_exception_coverage_is_sound(
    standard: Standard, write_policies: PolicyWriter, exception: dict[str, Any], flagged: bool
) -> None:
    exc = {"id": "nl.x.e", "legal_basis": "b", **exception}
    negative = [item("nl.x", action="withhold_fields", fields=["name"], exceptions=[exc])]
    findings = _warnings(standard, write_policies, [perm("p", fields=["name"])], negative)
    grants = [f.rule_id for f in findings if f.code == "negative-listed-grant"]
    assert grants == (["p"] if flagged else []), findings


def test_resource_always_refused(standard: Standard, write_policies: PolicyWriter) -> None:
    deny = item("nl.deny", action="deny_request")
    findings = _warnings(standard, write_policies, [perm("p.star")], [deny])
    assert [f.code for f in findings] == ["negative-listed-grant"]
    assert "always refused" in findings[0].message


def test_contradictory_case_binding(standard: Standard, write_policies: PolicyWriter) -> None:
    rules = [
        perm("a", purposes=["TRIAL", "COMMUTATION_PAROLE"]),
        perm("b", grantee={"agency": "FY640104"}, case_binding=False),
    ]
    found = _codes(_warnings(standard, write_policies, rules))
    assert found["contradictory-overlap"] == ["b"]
    assert found["case-binding-disabled"] == ["b"]


def test_conflicting_field_sets(standard: Standard, write_policies: PolicyWriter) -> None:
    rules = [
        perm("a", fields=["person_id", "name"]),
        perm("b", fields=["person_id"]),
        perm("c", fields=["person_id"], condition='request.case_stage == "TRIAL"'),
        perm("d", fields=["person_id"], grantee={"kind": "court", "role": "judge"}),
    ]
    findings = [
        f for f in _warnings(standard, write_policies, rules) if f.code == "contradictory-overlap"
    ]
    messages = sorted(f.message for f in findings)
    # a/b conflict; c has a condition (not compared on fields); d (role judge) meets a and b.
    assert len(findings) == 2
    assert any("'a' and 'b'" in m for m in messages)
    assert any("'a' and 'd'" in m for m in messages)


def test_non_overlapping_permissions_are_fine(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    rules = [
        perm("a", fields=["name"]),
        perm("b", fields=["person_id"], purposes=["COMMUTATION_PAROLE"]),
        perm("c", fields=["person_id"], grantee={"kind": "procuratorate"}),
        perm("d", fields=["person_id"], grantee={"kind": "court", "role": "x"}),
        perm("e", fields=["sex"], grantee={"kind": "court", "role": "y"}),
        perm("f", fields=["role"], valid_until="2025-12-31"),
        perm("g", fields=["sex"], valid_from="2026-01-01"),
    ]
    findings = _warnings(standard, write_policies, rules)
    pairs = sorted(f.message.split(" overlap")[0] for f in findings)
    # a overlaps f and g (different windows for f/g: f/g themselves do not overlap), d and e.
    assert "permissions 'f' and 'g'" not in pairs
    assert "permissions 'd' and 'e'" not in pairs
    assert all("'b'" not in p and "'c'" not in p for p in pairs)


def test_strict_mode_turns_warnings_into_errors(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies([perm("old", valid_until="2020-01-01")])
    warnings = load(root, standard).warnings
    assert [w.code for w in warnings if w.rule_id] == ["never-matches"]
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard, strict=True)
    assert {p.severity for p in excinfo.value.problems} == {Severity.ERROR}
    assert [p.rule_id for p in excinfo.value.problems if p.rule_id] == ["old"]


def test_shipped_set_is_clean_even_in_strict_mode(standard: Standard) -> None:
    from tests.policy.conftest import POLICIES

    assert load(POLICIES, standard, strict=True).warnings == ()


def test_a_conditional_field_no_rule_satisfies_is_reported(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    # The shipped set grants every 有条件 field under some condition; drop the prison's and
    # the justice bureau's rules and person.domicile_address (execution) is still granted by
    # the case-handling rules, but a set of one rule leaves nearly all of them ungranted.
    only = [perm("a", fields=["person_id", "name"], satisfies=["case-handling"])]
    found = load(write_policies(only), standard).warnings
    unsatisfied = [w.message for w in found if w.code == "condition-unsatisfied"]
    assert any("person.health_status" in m for m in unsatisfied)
    assert not any("person.name" in m for m in unsatisfied)  # granted by rule a
    assert all(w.rule_id is None for w in found if w.code == "condition-unsatisfied")


def test_satisfies_is_checked_against_the_conditions(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    def errors(rule: dict[str, Any]) -> list[tuple[str, str]]:
        with pytest.raises(PolicyError) as excinfo:
            load(write_policies([rule]), standard)
        return [(p.code, p.message) for p in excinfo.value.problems]

    # A 有条件 field listed by name needs a condition the rule satisfies.
    found = errors(perm("a", fields=["person_id", "health_status"], satisfies=None))
    assert found[0][0] == "unsatisfied-condition"
    assert "person.health_status is 有条件" in found[0][1]
    # A rule cannot claim a condition that does not hold for its purposes.
    found = errors(perm("b", purposes=["STATISTICS"], satisfies=["case-handling"]))
    assert found[0][0] == "condition-purpose"
    assert "cannot be satisfied for purpose(s) STATISTICS" in found[0][1]
    assert errors(perm("c", satisfies=["whim"]))[0][0] == "unknown-condition"


def test_star_grants_only_the_conditional_fields_a_rule_satisfies(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    from gateway.policy import PolicyEngine
    from tests.policy.conftest import request

    engine = PolicyEngine(load(write_policies([perm("a", satisfies=None)]), standard))
    decision = engine.decide(request())
    assert "sex" in decision.permitted_fields  # 无条件
    assert "name" not in decision.permitted_fields  # 有条件, no condition satisfied
    engine = PolicyEngine(load(write_policies([perm("b", satisfies=["case-handling"])]), standard))
    assert "name" in engine.decide(request()).permitted_fields
