"""diff_policy_sets: added, removed and changed rules with attribute-level changes."""

from __future__ import annotations

import json

from gateway.policy import diff_policy_sets
from gateway.standard import Standard
from tests.policy.conftest import PolicyWriter, item, load, perm


def test_diff(standard: Standard, write_policies: PolicyWriter, tmp_path: object) -> None:
    old = load(
        write_policies(
            [perm("keep"), perm("gone"), perm("edit", fields=["name", "sex"])],
            [
                item(
                    "nl.a",
                    condition="record.is_minor",
                    exceptions=[{"id": "nl.a.e", "condition": "true", "legal_basis": "x"}],
                )
            ],
        ),
        standard,
    )
    new = load(
        write_policies(
            [
                perm("keep"),
                perm("edit", fields=["name", "phone"], valid_until="2030-01-01"),
                perm("fresh", purposes=["COMMUTATION_PAROLE"]),
            ],
            [
                item(
                    "nl.a",
                    condition="record.is_minor",
                    exceptions=[{"id": "nl.a.e", "condition": "false", "legal_basis": "x"}],
                )
            ],
        ),
        standard,
    )
    diff = diff_policy_sets(old, new)
    assert diff.added == ("fresh",)
    assert diff.removed == ("gone",)
    changed = {c.rule_id: c for c in diff.changed}
    assert set(changed) == {"edit", "nl.a.e"}
    fields = changed["edit"].changes["fields"]
    assert fields["added"] == ["phone"]
    assert fields["removed"] == ["sex"]
    assert changed["edit"].changes["valid_until"] == {"old": None, "new": "2030-01-01"}
    assert changed["nl.a.e"].kind == "exception"
    assert changed["nl.a.e"].changes["condition"] == {"old": "true", "new": "false"}
    assert not diff.standard_changed
    assert not diff.empty
    assert json.loads(json.dumps(diff.to_json())) == diff.to_json()
    text = diff.format()
    assert "+ fresh" in text
    assert "- gone" in text
    assert "fields: +phone -sex" in text
    assert diff_policy_sets(old, old).empty
