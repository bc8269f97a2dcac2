"""Fault switches (X-Sandbox-Fault / _fault), the CLI dump and one real-HTTP round trip."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import orjson
import pytest

from sandbox.__main__ import main
from sandbox.generator import Dataset
from sandbox.server import serve_in_thread
from sandbox.systems import Credentials, create_app

CREDS = Credentials(secret="fault-secret-42")
KEY = {"X-Api-Key": CREDS.secret}
COURT_KEY = {"X-Court-Key": CREDS.secret}
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_char_ok(number: str) -> bool:
    total = sum(int(c) * w for c, w in zip(number[:17], _WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(2021, 120)


def client_for(
    dataset: Dataset, kind: str = "public_security", faults: bool = True
) -> httpx.AsyncClient:
    app = create_app(kind, dataset, CREDS, faults_enabled=faults)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


async def test_status_fault_by_header_and_query(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        by_header = await client.get(
            "/api/v1/ajxx", headers={**KEY, "X-Sandbox-Fault": "status=503"}
        )
        assert by_header.status_code == 503
        assert by_header.json()["code"] == 503
        by_query = await client.get(
            "/api/v1/ajxx/C00000001", params={"_fault": "status=429"}, headers=KEY
        )
        assert by_query.status_code == 429


async def test_faults_need_auth_and_are_off_by_default(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        response = await client.get("/api/v1/ajxx", headers={"X-Sandbox-Fault": "status=503"})
        assert response.status_code == 401
    async with client_for(dataset, faults=False) as client:
        response = await client.get("/api/v1/ajxx", headers={**KEY, "X-Sandbox-Fault": "garbage"})
        assert response.status_code == 200
        assert response.json()["code"] == 0


async def test_slow_fault(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        started = time.perf_counter()
        response = await client.get(
            "/api/v1/ajxx/C00000001", headers={**KEY, "X-Sandbox-Fault": "slow=250"}
        )
        assert response.status_code == 200
        assert time.perf_counter() - started >= 0.25


async def test_garbage_fault(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        response = await client.get("/api/v1/ajxx", headers={**KEY, "X-Sandbox-Fault": "garbage"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_huge_fault_streams_many_megabytes(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        response = await client.get("/api/v1/ryxx", headers={**KEY, "X-Sandbox-Fault": "huge=3"})
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert len(response.content) >= 3 * 1024 * 1024
    assert len(orjson.loads(response.content)["data"]["rows"]) > 1000


async def test_invalid_fault_breaks_the_standard(dataset: Dataset) -> None:
    person = dataset.case(5).person[0]
    async with client_for(dataset) as client:
        url = f"/api/v1/ryxx/{person['person_id']}"
        good = (await client.get(url, headers=KEY)).json()["data"]
        bad = (await client.get(url, headers={**KEY, "X-Sandbox-Fault": "invalid"})).json()["data"]
        assert check_char_ok(good["GMSFHM"])
        assert not check_char_ok(bad["GMSFHM"])
        assert bad["GMSFHM"][:17] == good["GMSFHM"][:17]
        again = (await client.get(url, headers=KEY)).json()["data"]
        assert again == good  # the cached standard record was not mutated
    async with client_for(dataset, "court") as client:
        page = await client.get(
            "/court/judgments", headers={**COURT_KEY, "X-Sandbox-Fault": "invalid"}
        )
        assert "<PJJG>9</PJJG>" in page.text


async def test_hang_fault(dataset: Dataset) -> None:
    async with client_for(dataset) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                client.get("/api/v1/ajxx", headers={**KEY, "X-Sandbox-Fault": "hang"}), 0.3
            )


def test_cli_dump(capsys: pytest.CaptureFixture[str]) -> None:
    main(["dump", "--agency", "justice", "--cases", "60", "--limit", "3", "--format", "jsonl"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\d{4}年\d{2}月\d{2}日", json.loads(lines[0])["矫正起始日期"])
    main(["dump", "--agency", "court", "--cases", "60", "--limit", "2"])
    out = capsys.readouterr().out
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert out.count("<Judgment>") == 2


def test_real_http_on_loopback(dataset: Dataset) -> None:
    app = create_app("court", dataset, CREDS)
    with serve_in_thread(app) as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/health").json()["status"] == "UP"
            judgment = dataset.case(3).judgment[0]
            response = client.get(f"/court/judgments/{judgment['judgment_id']}", headers=COURT_KEY)
            assert response.status_code == 200
            assert f"<AH>{judgment['court_case_number']}</AH>" in response.text
            assert client.get("/court/judgments/JD9999999901", headers=COURT_KEY).status_code == 404
