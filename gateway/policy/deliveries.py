"""Permission to send a delivery (协同办案): the delivery rules of the permissions list.

Contract of :func:`decide_delivery`: agencies of ``sender_kind`` may send a delivery of
``kind`` to agencies of ``recipient_kind`` only if a delivery rule of the policy set
(``policies/permissions/*.yaml``, key ``deliveries``) names all three; otherwise the decision is
a DENY naming what is missing. Deny by default: no rule, no delivery. The loader guarantees a
rule never allows a pair the delivery kind does not declare, nor a recipient kind the kind
declares no purpose for (换押 today), so an ALLOW here always has the recipient's purpose.

This decides only who may send what to whom. What the delivery carries is decided for the
recipient as a read by :func:`gateway.deliveries.recipient.check_for_recipient` (the
permissions and the negative list, refused with the field named, never stripped).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.decision import Outcome
from gateway.policy.policy_set import PolicySet

__all__ = ["DeliveryDecision", "decide_delivery"]


@dataclass(frozen=True)
class DeliveryDecision:
    outcome: Outcome
    reason: str
    rule_ids: tuple[str, ...]
    policy_version: str
    legal_basis: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW


def decide_delivery(
    policy_set: PolicySet, sender_kind: str, recipient_kind: str, kind: str
) -> DeliveryDecision:
    """May ``sender_kind`` send ``kind`` to ``recipient_kind``? (see module docstring)"""
    rules = [
        rule
        for rule in policy_set.deliveries
        if kind in rule.kinds and sender_kind in rule.senders and recipient_kind in rule.recipients
    ]
    if not rules:
        return DeliveryDecision(
            Outcome.DENY,
            f"no delivery rule lets agencies of kind {sender_kind} send {kind} "
            f"to agencies of kind {recipient_kind}",
            (),
            policy_set.version,
        )
    return DeliveryDecision(
        Outcome.ALLOW,
        "allowed by delivery rule " + ", ".join(rule.id for rule in rules),
        tuple(rule.id for rule in rules),
        policy_set.version,
        tuple(rule.legal_basis for rule in rules),
    )
