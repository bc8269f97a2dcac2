"""``decision_only`` marks a 不予共享 boolean flag: a policy input, no part of a delivery."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.standard import Standard
from gateway.standard.model import FieldSpec


def _field(**changes: Any) -> dict[str, Any]:
    return {
        "name": "flag", "type": "boolean", "label": "标志", "description": "标志。",
        "grade": "一般", "sharing": "不予共享", "basis": "刑事诉讼法 第286条",
        "personal_info": False, "required": True, "decision_only": True, **changes,
    }  # fmt: skip


def test_only_a_not_shared_boolean_may_be_decision_only() -> None:
    assert FieldSpec.model_validate(_field()).decision_only
    # Content (text, or anything shared) is never left out of a delivery by this mark.
    for changes in ({"type": "text"}, {"sharing": "无条件", "basis": None}):
        with pytest.raises(ValidationError, match="decision_only"):
            FieldSpec.model_validate(_field(**changes))


def test_the_shipped_standard_marks_only_the_sealed_juvenile_flag(standard: Standard) -> None:
    marked = {r.name: r.decision_only_fields for r in standard.resources if r.decision_only_fields}
    assert marked == {"case": frozenset({"has_sealed_juvenile"})}
    # technical_investigation.material_summary is 不予共享 content, not a flag: not marked.
    assert not standard.resource("technical_investigation").field("material_summary").decision_only
