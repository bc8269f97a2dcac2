"""Inbound deliveries of the five sample systems (sandbox/NATIVE.md § Inbound deliveries).

The documents here are written by hand in each system's native format, independently of the
gateway's write mappings (tests/deliveries/test_push_e2e.py checks what the gateway sends).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from sandbox.generator import Dataset
from sandbox.systems import AGENCY_KINDS, create_app
from tests.sandbox.test_sandbox_systems import CREDS, auth_headers, make_client

PATHS = {
    "public_security": "/api/v1/sdjs",
    "procuratorate": "/api/v2/inbound-deliveries",
    "court": "/court/deliveries",
    "prison": "/prison/api/inbound-documents",
    "justice": "/sqjz/api/sdjs",
}


def native_document(kind: str, delivery_id: str, case_id: str = "C00000001") -> bytes:
    """A minimal delivery in ``kind``'s native format."""
    if kind == "public_security":
        return orjson.dumps({"SDBH": delivery_id, "WSLX": "DBJD", "WSNR": {"AJXXZJBH": case_id}})
    if kind == "procuratorate":
        return orjson.dumps(
            {"deliveryId": delivery_id, "documentType": "YSSC", "content": {"caseId": case_id}}
        )
    if kind == "court":
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<SD><SDBH>{delivery_id}</SDBH>'
            f"<WSLX>QSS</WSLX><WSNR><AJID>{case_id}</AJID></WSNR>"
            "<FJ><WJ><WJMC>a.pdf</WJMC></WJ><WJ><WJMC>b.pdf</WJMC></WJ></FJ></SD>"
        ).encode()
    if kind == "prison":
        return orjson.dumps({"delivery_no": delivery_id, "document": {"case_ref": case_id}})
    return orjson.dumps({"送达编号": delivery_id, "文书内容": {"案件编号": case_id}})


def receipt_of(kind: str, response: httpx.Response) -> str:
    if kind == "court":
        return response.text.split("<QSBH>")[1].split("</QSBH>")[0]
    body: dict[str, Any] = response.json()
    if kind == "public_security":
        return str(body["data"]["QSBH"])
    if kind == "procuratorate":
        return str(body["receiptNo"])
    if kind == "prison":
        return str(body["result"]["receipt_no"])
    return str(body["data"]["签收编号"])


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(2021, 30)


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_a_delivery_is_kept_once_per_idempotency_key(kind: str, dataset: Dataset) -> None:
    async with make_client(create_app(kind, dataset, CREDS)) as client:
        auth = await auth_headers(kind, client)
        path, document = PATHS[kind], native_document(kind, "DL1")
        first = await client.post(
            path, content=document, headers={**auth, "Idempotency-Key": "DL1"}
        )
        assert first.status_code == (201 if kind == "procuratorate" else 200), first.text
        again = await client.post(
            path, content=document, headers={**auth, "Idempotency-Key": "DL1"}
        )
        assert again.status_code == first.status_code
        assert receipt_of(kind, again) == receipt_of(kind, first)
        other = await client.post(
            path, content=native_document(kind, "DL2"), headers={**auth, "Idempotency-Key": "DL2"}
        )
        assert receipt_of(kind, other) != receipt_of(kind, first)
        listing = (await client.get(path, headers=auth)).json()
        assert listing["posts"] == 3
        assert [r["idempotency_key"] for r in listing["received"]] == ["DL1", "DL2"]
        assert listing["received"][0]["receipt_id"] == receipt_of(kind, first)
        if kind == "court":  # XML as data: repeated elements are a list
            files = listing["received"][0]["document"]["SD"]["FJ"]["WJ"]
            assert [f["WJMC"] for f in files] == ["a.pdf", "b.pdf"]


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_refusals_auth_key_and_document(kind: str, dataset: Dataset) -> None:
    async with make_client(create_app(kind, dataset, CREDS)) as client:
        auth = await auth_headers(kind, client)
        path, document = PATHS[kind], native_document(kind, "DL1")
        assert (await client.post(path, content=document)).status_code == 401
        assert (await client.get(path)).status_code == 401
        no_key = await client.post(path, content=document, headers=auth)
        assert no_key.status_code == 400
        other_id = await client.post(
            path, content=document, headers={**auth, "Idempotency-Key": "X"}
        )
        assert other_id.status_code == 400
        garbage = await client.post(path, content=b"<{", headers={**auth, "Idempotency-Key": "DL1"})
        assert garbage.status_code == 400
        assert (await client.get(path, headers=auth)).json()["received"] == []


async def test_a_received_prosecution_transfer_moves_the_stage_at_the_procuratorate(
    dataset: Dataset,
) -> None:
    case = next(
        b.case
        for b in (dataset.case(i) for i in range(len(dataset)))
        if b.case["stage"] != "PROSECUTION_REVIEW"
    )
    case_id = str(case["case_id"])
    async with make_client(create_app("procuratorate", dataset, CREDS)) as client:
        auth = await auth_headers("procuratorate", client)
        before = (await client.get(f"/api/v2/cases/{case_id}", headers=auth)).json()
        assert before == {"caseId": case_id, "stage": case["stage"], "stageChangedBy": None}
        arrest = orjson.dumps(
            {"deliveryId": "DL0", "documentType": "TQPB", "content": {"caseId": case_id}}
        )
        await client.post(
            PATHS["procuratorate"], content=arrest, headers={**auth, "Idempotency-Key": "DL0"}
        )
        unchanged = (await client.get(f"/api/v2/cases/{case_id}", headers=auth)).json()
        assert unchanged["stage"] == case["stage"]  # only a 移送审查起诉 moves it
        await client.post(
            PATHS["procuratorate"],
            content=native_document("procuratorate", "DL9", case_id),
            headers={**auth, "Idempotency-Key": "DL9"},
        )
        after = (await client.get(f"/api/v2/cases/{case_id}", headers=auth)).json()
        assert after == {"caseId": case_id, "stage": "PROSECUTION_REVIEW", "stageChangedBy": "DL9"}
        assert (await client.get("/api/v2/cases/C99999999", headers=auth)).status_code == 404
        assert (await client.get(f"/api/v2/cases/{case_id}")).status_code == 401


async def test_sticky_faults_reach_the_inbound_route(dataset: Dataset) -> None:
    app = create_app("court", dataset, CREDS, faults_enabled=True)
    async with make_client(app) as client:
        auth = {**(await auth_headers("court", client)), "Idempotency-Key": "DL1"}
        document = native_document("court", "DL1")
        assert (await client.put("/_sandbox/fault", content=b"status=503")).status_code == 204
        down = await client.post(PATHS["court"], content=document, headers=auth)
        assert down.status_code == 503
        assert "<Code>503</Code>" in down.text  # the native error format
        await client.put("/_sandbox/fault", content=b"slow=150")
        started = time.monotonic()
        slow = await client.post(PATHS["court"], content=document, headers=auth)
        assert slow.status_code == 200
        assert time.monotonic() - started >= 0.15
        await client.put("/_sandbox/fault", content=b"")
        listing = (await client.get(PATHS["court"], headers=auth)).json()
        assert len(listing["received"]) == 1
        header = await client.post(
            PATHS["court"], content=document, headers={**auth, "X-Sandbox-Fault": "status=502"}
        )
        assert header.status_code == 502
    plain = create_app("court", dataset, CREDS)  # faults off: no fault route
    async with make_client(plain) as client:
        assert (await client.put("/_sandbox/fault", content=b"status=503")).status_code in (
            404,
            405,
        )
