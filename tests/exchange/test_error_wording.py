"""The refusals a newcomer meets first say what is wrong, in words (no repr, no stutter)."""

from __future__ import annotations

import pytest

from sandbox.generator import Dataset
from tests.auth.helpers import assert_problem
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.problem_text import wording_problems

CASE_PATH = "/v1/resources/case/C00000020"


@pytest.mark.parametrize(
    "detail",
    [
        "this route needs scope <Scope.EXCHANGE: 'exchange'>",
        "case binding: case binding: FY640104 handles no case numbered 'x'",
        "lookup failed: <object object at 0x7f3a2c>",
    ],
)
def test_the_wording_check_catches_what_it_is_for(detail: str) -> None:
    assert wording_problems(detail)


def test_case_binding_is_said_once(shared_exchange_gateway: Gateway, dataset: Dataset) -> None:
    gw = shared_exchange_gateway
    other = dataset.case(2).case  # handled by FY640105, not by the court client's FY640104
    response = gw.client.get(
        "/v1/resources/case/C00000002",
        headers=exchange_headers(gw, "court", "TRIAL", other["court_case_number"]),
    )
    body = assert_problem(response, 403)
    assert body["detail"].count("case binding") == 1, body["detail"]
    assert "FY640104 handles no case numbered" in body["detail"]


def test_wrong_scope_names_the_scope_as_text(shared_exchange_gateway: Gateway) -> None:
    gw = shared_exchange_gateway
    response = gw.client.get(
        CASE_PATH, headers={**gw.auth("regulator"), "X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    )
    body = assert_problem(response, 403, "insufficient-scope")
    assert body["detail"] == "this route needs scope 'exchange'"
    assert body["required_scope"] == "exchange"


@pytest.mark.parametrize(
    ("operator", "said"),
    [
        ("张三".encode(), "non-ASCII"),  # a name, as curl sends it: raw UTF-8 bytes
        (b"officer 7", "outside [A-Za-z0-9_.:-]"),
        (b"o" * 65, "65 characters long"),
        (b"", "is required"),
    ],
)
def test_a_bad_operator_id_is_told_what_is_wrong(
    shared_exchange_gateway: Gateway, operator: bytes, said: str
) -> None:
    gw = shared_exchange_gateway
    headers: dict[str, str | bytes] = {**gw.auth("court"), "X-Purpose": "TRIAL"}
    headers["X-Operator-Id"] = operator
    body = assert_problem(gw.client.get(CASE_PATH, headers=headers), 400)
    assert said in body["detail"], body["detail"]
    if operator:
        assert "is required" not in body["detail"]
