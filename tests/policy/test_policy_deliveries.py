"""Delivery rules of the permissions list (issue 15): who may send which delivery kinds to whom.

The oracle for the shipped list is the standard's delivery kinds read independently: a pair
(sender kind, recipient kind) of a kind is allowed exactly when the kind declares both and a
purpose for that recipient, and nothing else is allowed (deny by default).
"""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy import PolicyEngine, PolicyError, load_policy_set
from gateway.policy.decision import Outcome
from gateway.standard import Standard
from tests.policy.conftest import POLICIES, PolicyWriter, load


def _rule(rule_id: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": rule_id,
        "senders": ["public_security"],
        "recipients": ["procuratorate"],
        "kinds": ["arrest_request"],
        "legal_basis": "刑事诉讼法 第87条",
    }
    base.update(kw)
    return base


def _write(writer: PolicyWriter, rules: list[dict[str, Any]]) -> Path:
    return writer(files={"permissions/deliveries.yaml": {"deliveries": rules}}, negative=[])


def _codes(excinfo: pytest.ExceptionInfo[PolicyError]) -> dict[str, str]:
    return {p.code or "": p.message for p in excinfo.value.problems}


def test_shipped_rules_allow_exactly_what_the_kinds_declare(standard: Standard) -> None:
    engine = PolicyEngine(load_policy_set(POLICIES))
    kinds = {k.code for k in standard.agency_kinds}
    checked = 0
    for delivery, sender, recipient in product(standard.deliveries, kinds, kinds):
        expected = (
            sender in delivery.senders
            and (recipient in delivery.recipients or recipient in delivery.copies)  # 抄送
            and delivery.recipient_purpose(recipient) is not None
        )
        decision = engine.decide_delivery(sender, recipient, delivery.code)
        assert decision.allowed is expected, (delivery.code, sender, recipient)
        assert decision.policy_version == engine.version
        if expected:
            assert decision.rule_ids
            assert decision.legal_basis
            checked += 1
        else:
            assert decision.outcome is Outcome.DENY
            assert decision.rule_ids == ()
    assert checked >= 9


def test_every_copy_the_standard_declares_has_its_own_rule_with_its_basis() -> None:
    """抄送 is allowed by rules of its own (``*.copy``/``*.copies``), each citing the article
    that makes the copy: 社区矫正法 第20条 for 入矫, 刑事诉讼法 第273条第2款 for 减刑假释建议书,
    第276条 (execution supervision) for the others."""
    engine = PolicyEngine(load_policy_set(POLICIES))
    supervision = "人民检察院对执行机关执行刑罚的活动是否合法实行监督"
    bases = {
        ("community_correction_entry", "procuratorate"): "同时抄送人民检察院和执行地公安机关",
        ("community_correction_entry", "public_security"): "同时抄送人民检察院和执行地公安机关",
        ("commutation_parole_proposal", "procuratorate"): "并将建议书副本抄送人民检察院",
        ("judgment_execution", "procuratorate"): supervision,
        ("prison_admission", "procuratorate"): supervision,
    }
    for (kind, copy), words in bases.items():
        sender = {"commutation_parole_proposal": "prison", "prison_admission": "prison"}.get(
            kind, "court"
        )
        decision = engine.decide_delivery(sender, copy, kind)
        assert decision.allowed, (kind, copy)
        assert all(r.endswith((".copy", ".copies")) for r in decision.rule_ids), decision
        assert any(words in basis for basis in decision.legal_basis), decision.legal_basis


def test_custody_transfer_goes_from_the_receiving_agency_to_the_detention_centre() -> None:
    engine = PolicyEngine(load_policy_set(POLICIES))
    for sender in ("procuratorate", "court"):
        decision = engine.decide_delivery(sender, "public_security", "custody_transfer")
        assert decision.allowed
        assert decision.rule_ids == ("dl.custody-transfer",)
    for sender, recipient in (("public_security", "procuratorate"), ("court", "prison")):
        assert not engine.decide_delivery(sender, recipient, "custody_transfer").allowed


def test_unknown_kind_and_unknown_agency_kind_are_denied() -> None:
    engine = PolicyEngine(load_policy_set(POLICIES))
    assert not engine.decide_delivery("public_security", "procuratorate", "nope").allowed
    assert not engine.decide_delivery("nope", "procuratorate", "arrest_request").allowed


def test_no_rule_no_delivery(standard: Standard, write_policies: PolicyWriter) -> None:
    engine = PolicyEngine(load(_write(write_policies, []), standard))
    assert not engine.decide_delivery("public_security", "procuratorate", "arrest_request").allowed
    engine = PolicyEngine(load(_write(write_policies, [_rule("d.one")]), standard))
    assert engine.decide_delivery("public_security", "procuratorate", "arrest_request").allowed
    # The rule allows its own triple only.
    assert not engine.decide_delivery("public_security", "procuratorate", "indictment").allowed
    assert not engine.decide_delivery("procuratorate", "public_security", "arrest_request").allowed


def test_delivery_rules_change_the_policy_version(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    first = load(_write(write_policies, [_rule("d.one")]), standard).version
    second = load(_write(write_policies, [_rule("d.one", description="x")]), standard).version
    assert first != second


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (_rule("d.x", senders=["army"]), "unknown-agency-kind"),
        (_rule("d.x", recipients=["army"]), "unknown-agency-kind"),
        (_rule("d.x", kinds=["nope"]), "unknown-delivery-kind"),
        (_rule("d.x", senders=["court"]), "delivery-sender"),
        (_rule("d.x", recipients=["court"]), "delivery-recipient"),
        (_rule("d.x", kinds=[]), "schema"),
        ({k: v for k, v in _rule("d.x").items() if k != "legal_basis"}, "schema"),
        (_rule("d.x", extra=1), "schema"),
    ],
)
def test_bad_rules_are_refused_with_their_code(
    standard: Standard, write_policies: PolicyWriter, rule: dict[str, Any], code: str
) -> None:
    with pytest.raises(PolicyError) as excinfo:
        load(_write(write_policies, [rule]), standard)
    problems = _codes(excinfo)
    assert code in problems, problems
    assert all(p.rule_id in (None, "d.x") and p.line is not None for p in excinfo.value.problems)


def test_delivery_ids_share_the_rule_namespace(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = _write(write_policies, [_rule("jc.arrest-review.case-file")])
    (root / "permissions" / "jc.yaml").write_text(
        yaml.safe_dump(
            {
                "permissions": [
                    yaml.safe_load(
                        (POLICIES / "permissions" / "procuratorate.yaml").read_text(
                            encoding="utf-8"
                        )
                    )["permissions"][0]
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as excinfo:
        load(root, standard)
    assert "duplicate-id" in _codes(excinfo)


def test_a_permissions_file_needs_one_of_its_lists(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    root = write_policies(files={"permissions/empty.yaml": {"description": "x"}}, negative=[])
    with pytest.raises(PolicyError):
        load(root, standard)


def test_a_rule_to_a_recipient_kind_without_a_purpose_is_refused(
    standard: Standard, write_policies: PolicyWriter
) -> None:
    """Every shipped kind declares its recipients' purposes (换押 since CUSTODY_MANAGEMENT);
    a standard where custody_transfer declares none still refuses a rule for it."""
    data = standard.model_dump(by_alias=True)
    for kind in data["deliveries"]:
        if kind["code"] == "custody_transfer":
            kind["recipient_purposes"] = {}
    without = Standard.model_validate(data)
    rule = _rule(
        "d.x", senders=["court"], recipients=["public_security"], kinds=["custody_transfer"]
    )
    assert load(_write(write_policies, [rule]), standard).deliveries
    with pytest.raises(PolicyError) as excinfo:
        load(_write(write_policies, [rule]), without)
    assert "delivery-without-purpose" in _codes(excinfo)
