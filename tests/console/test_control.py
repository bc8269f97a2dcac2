"""Version history, emergency freeze and rollback from the console: one person freezes at once,
lifting the freeze is a rollback a second person approves."""

from __future__ import annotations

import re

from tests.console.conftest import Console, csrf_of, current_text, propose


def _post(client: object, path: str, data: dict[str, str]) -> object:
    page = client.get("/console/policies/history")  # type: ignore[attr-defined]
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})  # type: ignore[attr-defined]


def test_freeze_then_rollback_approved_by_another_person(console: Console) -> None:
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    zhang, li = console.signed_in("zhang"), console.signed_in("li")
    # An approved version to come back to (the import from files was never reviewed).
    text_value = current_text(zhang).replace("description: 法院", "description: 人民法院", 1)
    before = re.search(r"sha256:[0-9a-f]{64}", propose(zhang, text_value, "改说明").text).group(0)  # type: ignore[attr-defined,union-attr]
    page = li.get(f"/console/policies/versions/{before}")
    approval = {"csrf_token": csrf_of(page.text), "verdict": "approve", "comment": "同意"}
    assert li.post(f"/console/policies/versions/{before}/review", data=approval).status_code == 200
    assert runtime.policy.current.version == before
    history = zhang.get("/console/policies/history")
    assert history.status_code == 200
    assert before in history.text
    assert "（在用）" in history.text
    assert _post(zhang, "/console/policies/freeze", {"comment": ""}).status_code == 422
    frozen = _post(zhang, "/console/policies/freeze", {"comment": "疑似数据泄露，紧急冻结"})
    assert frozen.status_code == 200, frozen.text
    assert "已紧急冻结" in frozen.text
    assert runtime.policy.current.version != before  # the deny-all set, at once
    again = _post(zhang, "/console/policies/freeze", {"comment": "再冻结一次"})
    assert again.status_code == 409
    assert again.headers["x-audit-index"].isdigit()
    proposed = _post(zhang, "/console/policies/rollback", {"version_id": before, "comment": "恢复"})
    assert proposed.status_code == 200, proposed.text
    assert "已提出回滚" in proposed.text
    page = zhang.get(f"/console/policies/versions/{before}")
    own = zhang.post(
        f"/console/policies/versions/{before}/review",
        data={"csrf_token": csrf_of(page.text), "verdict": "approve", "comment": "自批"},
    )
    assert own.status_code == 403
    page = li.get(f"/console/policies/versions/{before}")
    approved = li.post(
        f"/console/policies/versions/{before}/review",
        data={"csrf_token": csrf_of(page.text), "verdict": "approve", "comment": "核实后解除冻结"},
    )
    assert approved.status_code == 200, approved.text
    assert runtime.policy.current.version == before
    history = li.get("/console/policies/history").text
    assert "user:li" in history
    assert "核实后解除冻结" in history
    assert re.search(r"<td>rollback</td>", history)


def test_rollback_of_a_version_in_force_is_refused(console: Console) -> None:
    runtime = console.client.app.state.runtime  # type: ignore[attr-defined]
    zhang = console.signed_in("zhang")
    answer = _post(
        zhang,
        "/console/policies/rollback",
        {"version_id": runtime.policy.current.version, "comment": "无意义"},
    )
    assert answer.status_code == 409
    assert "操作被拒绝" in answer.text
    assert (
        _post(zhang, "/console/policies/rollback", {"version_id": "x", "comment": "c"}).status_code
        == 404
    )


def test_explain_a_hypothetical_request(console: Console) -> None:
    zhang = console.signed_in("zhang")
    page = zhang.get("/console/policies/explain")
    assert page.status_code == 200
    assert "FY640104" in page.text
    token = csrf_of(page.text)
    form = {
        "csrf_token": token,
        "version": "current",
        "request": (
            '{"requester_agency": "FY640104", "resource": "judgment", '
            '"purpose": "PRIOR_RECORD_CHECK", "filters": {"defendant_id": "P-001"}}'
        ),
        "records": '[{"judgment_id": "J-1", "case_id": "C-2019-050", "defendant_id": "P-001"}]',
        "subjects": "",
    }
    done = zhang.post("/console/policies/explain", data=form)
    assert done.status_code == 200, done.text
    assert 'id="explained"' in done.text
    assert "PRIOR_RECORD_CHECK" in done.text
    bad_json = zhang.post("/console/policies/explain", data={**form, "request": "{"})
    assert bad_json.status_code == 422
    assert "JSON 不正确" in bad_json.text
    unknown = zhang.post(
        "/console/policies/explain",
        data={**form, "request": form["request"].replace("FY640104", "XX000000")},
    )
    assert unknown.status_code == 422
    assert unknown.headers["x-audit-index"].isdigit()
    assert "XX000000" in unknown.text
    regulator = console.signed_in("wang")
    assert regulator.post("/console/policies/explain", data=form).status_code == 403
