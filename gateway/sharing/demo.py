"""The demo's conditional-sharing cycle (demo.json ``sharing_cycle``), run in order.

A 有条件 field refused; the application; its approval by the owning court's reviewer; the same
fetch now released (naming the grant); the revocation; refused again; the statistics. A step's
``path`` may hold ``{application_id}``: the ``id`` of the application the ``apply`` step made.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = ["CYCLE_CASE_NUMBER", "sharing_cycle"]

# The 案号 of case C00000006 in the sample systems' data (seed 2021; tests check it), written
# out here: product code does not import the sample systems.
CYCLE_CASE_NUMBER = "(2024)宁0104刑初6124号"


def sharing_cycle() -> list[dict[str, Any]]:
    # C00000006: in execution (兴庆区); JC640104 supervises the execution. Its judgment's
    # 判决主文 (summary) is 有条件 and no rule of the permissions list releases it to
    # EXECUTION_SUPERVISION: the procuratorate applies, the owning court (FY640104) answers.
    number = CYCLE_CASE_NUMBER
    exchange = {
        "X-Purpose": "EXECUTION_SUPERVISION",
        "X-Operator-Id": "procuratorate-officer-01",
        "X-Case-Number": quote(number, safe="()"),
    }
    fetch = "/v1/resources/judgment/JD0000000601?fields=summary"
    apps = "/v1/sharing/applications"

    def step(
        name: str, client: str, method: str, path: str, status: int, note: str, **more: Any
    ) -> dict[str, Any]:
        headers = exchange if client == "procuratorate" else {}
        return {
            "name": name, "client": client, "method": method, "path": path,
            "headers": dict(headers), "expect_status": status, "note": note, **more,
        }  # fmt: skip

    return [
        step("sharing-refused", "procuratorate", "GET", fetch, 403,
             "判决主文 is 有条件: no rule releases it for execution supervision"),
        step("sharing-apply", "procuratorate", "POST", apps, 201,
             "the application: pending, with its due date in working days",
             body={"resource": "judgment", "fields": ["summary"], "record_ids": None,
                   "reason": "刑罚执行监督需核对判决主文", "days": 5},
             saves="application_id"),
        step("sharing-to-review", "court_reviewer", "GET",
             f"{apps}?role=review&status=pending", 200,
             "the owning court's reviewer sees what waits for an answer"),
        step("sharing-approve", "court_reviewer", "POST", apps + "/{application_id}/approve",
             200, "approved for 3 days (at most the 5 asked for): a grant",
             body={"comment": "同意，限执行监督使用", "days": 3}),
        step("sharing-released", "procuratorate", "GET", fetch, 200,
             "the same fetch now releases the field, and names the grant (grant_ids)"),
        step("sharing-revoke", "court_reviewer", "POST", apps + "/{application_id}/revoke",
             200, "the grant ends at once (every worker within 2 s)",
             body={"reason": "监督事项已办结"}),
        step("sharing-refused-again", "procuratorate", "GET", fetch, 403,
             "refused again, as before the application"),
        step("sharing-stats", "regulator", "GET", "/v1/sharing/stats", 200,
             "per owning agency: counts, time to answer, overdue, refusal rate"),
    ]  # fmt: skip
