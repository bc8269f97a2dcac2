"""What every response must be, given the oracle: used by each property of the suite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.records import record_id
from tests.conftest import Gateway
from tests.infoflow.conftest import TALLY
from tests.infoflow.oracle import FORBIDDEN, Ask, Oracle, RequestVerdict, SharingGrant, present
from tests.infoflow.strategies import PAGES, case_header


def _headers(gw: Gateway, oracle: Oracle, ask: Ask) -> dict[str, str]:
    headers = {**gw.auth(ask.agency.lower()), "X-Purpose": ask.purpose, "X-Operator-Id": "flow-1"}
    if ask.case_index is not None:
        headers["X-Case-Number"] = quote(case_header(oracle, ask.case_index), safe="()")
    return headers


def _query(ask: Ask, **extra: Any) -> str:
    params: dict[str, Any] = dict(ask.filters)
    if ask.fields is not None:
        params["fields"] = ",".join(sorted(ask.fields))
    params.update(extra)
    return urlencode(params)


def _get(gw: Gateway, path: str, headers: Mapping[str, str]) -> Any:
    TALLY["requests"] += 1
    response = gw.client.get(path, headers=headers)
    assert response.status_code != 500, response.text
    return response


def _comparable(response: Any, record_id: str | None = None) -> dict[str, Any]:
    body = dict(response.json())
    body.pop("request_id", None)
    body.pop("instance", None)
    if record_id is not None and isinstance(body.get("detail"), str):
        body["detail"] = body["detail"].replace(record_id, "<id>")
    return {"status": response.status_code, "body": body}


def _check_request_refusal(verdict: RequestVerdict, response: Any) -> bool:
    """Deny and filter refusals (True when the request ended there)."""
    if verdict.outcome == "deny":
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("/forbidden")
        return True
    if verdict.outcome == "filter_refused":
        assert response.status_code == 403, response.text
        problem = response.json()
        assert problem["type"].endswith("/filter-not-permitted")
        assert problem["field"] == verdict.refused_filter
        return True
    return False


def _grant_ids(verdict: RequestVerdict) -> list[str] | None:
    """The ``grant_ids`` a released page or record names (absent when none was used)."""
    # A concealed request's empty page names them too: it must look like any empty page.
    ids = list(verdict.sharing_ids) if verdict.outcome in ("allow", "not_found") else []
    return ids or None


def check_fetch(
    gw: Gateway, oracle: Oracle, ask: Ask, sharing: tuple[SharingGrant, ...] = ()
) -> None:
    verdict = oracle.request(ask, sharing)
    headers = _headers(gw, oracle, ask)
    assert ask.record_id is not None
    response = _get(gw, f"/v1/resources/{ask.resource}/{ask.record_id}?{_query(ask)}", headers)
    TALLY[f"fetch {verdict.outcome}"] += 1
    if _check_request_refusal(verdict, response):
        return
    truth = oracle.record(ask.resource, ask.record_id)
    expected = None if truth is None else oracle.release(ask, verdict, truth)
    if expected is FORBIDDEN:
        # Refused for this record (no permission covers it), not concealed.
        assert response.status_code == 403, response.text
        TALLY["fetch refused"] += 1
        return
    if expected is None:
        # Concealed, of another case, or missing: one answer for all of them.
        assert response.status_code == 404, response.text
        missing = "C09999998" if ask.resource == "case" else record_id(ask.resource, 9, 99)
        twin = _get(gw, f"/v1/resources/{ask.resource}/{missing}?{_query(ask)}", headers)
        assert _comparable(response, ask.record_id) == _comparable(twin, missing)
        assert len(response.content) - len(ask.record_id) == len(twin.content) - len(missing)
        TALLY["fetch hidden" if truth is not None else "fetch missing"] += 1
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert present(body["record"]) == expected
    assert body["withheld"] == verdict.withheld
    assert body["masked"] == verdict.masked
    assert body.get("grant_ids") == _grant_ids(verdict)
    TALLY["fetch released"] += 1


def check_search(
    gw: Gateway, oracle: Oracle, ask: Ask, limit: int, sharing: tuple[SharingGrant, ...] = ()
) -> None:
    verdict = oracle.request(ask, sharing)
    headers = _headers(gw, oracle, ask)
    response = _get(gw, f"/v1/resources/{ask.resource}?{_query(ask, limit=limit)}", headers)
    TALLY[f"search {verdict.outcome}"] += 1
    if _check_request_refusal(verdict, response):
        return
    assert response.status_code == 200, response.text
    released, hidden = oracle.search(ask, verdict)
    if verdict.outcome == "not_found":
        released = []
    id_field = oracle.id_field(ask.resource)
    got: list[dict[str, Any]] = []
    body = response.json()
    for page in range(PAGES):
        # The lists come from the request alone: never from what the page holds.
        assert body["withheld"] == verdict.withheld
        assert body["masked"] == verdict.masked
        assert body.get("grant_ids") == _grant_ids(verdict)
        records = [present(r) for r in body["records"]]
        assert len(records) <= limit
        got += records
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert records, "a cursor after an empty page betrays concealed records"
        if page == PAGES - 1:
            break
        response = _get(
            gw,
            f"/v1/resources/{ask.resource}?{_query(ask, limit=limit, cursor=cursor)}",
            headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
    # Exactly the oracle's records, in id order, as far as the pages went (a page may end
    # early at its bound on upstream calls, never with a record the oracle withholds).
    assert got == released[: len(got)]
    if body["next_cursor"] is None and len(got) < len(released):
        lost = released[len(got) :]
        assert len(hidden) > gw.settings.search_upstream_calls, (
            f"records missing without a long concealed run: {[r.get(id_field) for r in lost]}"
        )
    if not released:
        empty = {
            "resource": ask.resource,
            "records": [],
            "withheld": verdict.withheld,
            "masked": verdict.masked,
            "next_cursor": None,
            "policy_version": body["policy_version"],
        }
        if _grant_ids(verdict):
            empty["grant_ids"] = _grant_ids(verdict)
        assert body == empty
        TALLY["search empty, matches hidden" if hidden else "search empty"] += 1
    else:
        TALLY["search released"] += 1
