"""The five sample systems over httpx.ASGITransport: routes, auth, search, pagination."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from xml.etree import ElementTree as ET

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.generator import Dataset
from sandbox.systems import AGENCY_KINDS, Credentials, create_app, system_spec
from sandbox.systems.common import NativeRecord

N = 300
CREDS = Credentials(secret="test-secret-0123", client_id="gateway")
Clients = dict[str, tuple[httpx.AsyncClient, dict[str, str]]]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(2021, N)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def auth_headers(kind: str, client: httpx.AsyncClient) -> dict[str, str]:
    """Valid credentials for ``kind`` (fetches a bearer token for the procuratorate)."""
    if kind == "public_security":
        return {"X-Api-Key": CREDS.secret}
    if kind == "court":
        return {"X-Court-Key": CREDS.secret}
    if kind == "justice":
        return {"X-Sfj-Token": CREDS.secret}
    if kind == "prison":
        return basic(CREDS.client_id, CREDS.secret)
    response = await client.post(
        "/oauth/token",
        headers=basic(CREDS.client_id, CREDS.secret),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def make_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")


@pytest.fixture
async def clients(dataset: Dataset) -> AsyncIterator[Clients]:
    result: Clients = {}
    for kind in AGENCY_KINDS:
        client = make_client(create_app(kind, dataset, CREDS))
        result[kind] = (client, await auth_headers(kind, client))
    yield result
    for client, _ in result.values():
        await client.aclose()


def xml_records(body: bytes) -> tuple[list[dict[str, str]], str | None]:
    root = ET.fromstring(body)  # noqa: S314 - our own sandbox output
    rows = [{c.tag: c.text or "" for c in j} for j in root.iter("Judgment")]
    return rows, root.findtext("NextAfter") or None


def page_of(kind: str, response: httpx.Response) -> tuple[list[NativeRecord], str | None]:
    """(records, next cursor) of a search response in each system's envelope."""
    assert response.status_code == 200, response.text
    if kind == "court":
        rows, cursor = xml_records(response.content)
        return [dict(r) for r in rows], cursor
    body = response.json()
    if kind == "public_security":
        return body["data"]["rows"], body["data"]["next"] or None
    if kind == "procuratorate":
        return body["items"], body["nextAfter"]
    if kind == "prison":
        return body["result"]["records"], body["result"]["next_after"]
    return body["data"], body["next"]


def one_of(kind: str, response: httpx.Response) -> NativeRecord:
    assert response.status_code == 200, response.text
    if kind == "court":
        rows, _ = xml_records(response.content)
        return dict(rows[0])
    body = response.json()
    envelopes = {"public_security": "data", "prison": "result", "justice": "data"}
    record: NativeRecord = body[envelopes[kind]] if kind in envelopes else body
    return record


def as_text(record: NativeRecord) -> dict[str, str]:
    """Court records compare as element texts."""
    return {k: "" if v is None else str(v) for k, v in record.items()}


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_health_needs_no_auth(kind: str, dataset: Dataset) -> None:
    async with make_client(create_app(kind, dataset, CREDS)) as client:
        response = await client.get("/health")
    assert response.json() == {"status": "UP", "agency": kind, "seed": 2021, "cases": N}


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_auth_rejected(kind: str, dataset: Dataset) -> None:
    spec = system_spec(kind, dataset)
    path = spec.resources[0].path
    wrong = {
        "public_security": {"X-Api-Key": "nope"},
        "court": {"X-Court-Key": "nope"},
        "justice": {"X-Sfj-Token": "nope"},
        "prison": basic("gateway", "nope"),
        "procuratorate": {"Authorization": "Bearer forged-token"},
    }[kind]
    async with make_client(create_app(kind, dataset, CREDS)) as client:
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=wrong)).status_code == 401
        assert (await client.get(f"{path}/anything", headers=wrong)).status_code == 401


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_fetch_by_id_and_404(kind: str, dataset: Dataset, clients: Clients) -> None:
    client, headers = clients[kind]
    for res in system_spec(kind, dataset).resources:
        records = list(dataset.records(res.resource))
        assert records, res.resource
        for record in (records[0], records[-1]):
            record_id = str(next(iter(record.values())))
            got = one_of(kind, await client.get(f"{res.path}/{record_id}", headers=headers))
            expected = res.to_native(record)
            assert (as_text(got) if kind == "court" else got) == (
                as_text(expected) if kind == "court" else expected
            )
        prefix = record_id.rstrip("0123456789")
        for missing in (f"{prefix}{N:08d}01", f"{prefix}0000000099", "nonsense"):
            response = await client.get(f"{res.path}/{missing}", headers=headers)
            assert response.status_code == 404


async def test_police_native_fields(dataset: Dataset, clients: Clients) -> None:
    client, headers = clients["public_security"]
    case = dataset.case(3).case
    body = (await client.get(f"/api/v1/ajxx/{case['case_id']}", headers=headers)).json()
    assert body["code"] == 0
    assert body["msg"] == "ok"
    row = body["data"]
    assert row["AJBH"] == case["police_case_number"]
    assert row["LASJ"] == case["filing_date"].replace("-", "")
    assert row["BLDWDM"] == ",".join(case["handling_agencies"])
    person = dataset.case(3).person[0]
    row = (await client.get(f"/api/v1/ryxx/{person['person_id']}", headers=headers)).json()["data"]
    assert row["GMSFHM"] == person["id_number"]
    assert row["SFFC"] == "1"
    assert row["SFWCN"] == "1"


SEARCHES = [
    ("public_security", "/api/v1/ajxx", "AJBH", "case", "police_case_number"),
    ("public_security", "/api/v1/ajxx", "FYAH", "case", "court_case_number"),
    ("public_security", "/api/v1/ryxx", "GMSFHM", "person", "id_number"),
    ("public_security", "/api/v1/ryxx", "AJXXZJBH", "person", "case_id"),
    ("public_security", "/api/v1/qzcs", "RYBH", "coercive_measure", "person_id"),
    ("public_security", "/api/v1/jzcs", "AJXXZJBH", "technical_investigation", "case_id"),
    ("procuratorate", "/api/v2/arrest-reviews", "suspectId", "arrest_review", "person_id"),
    ("procuratorate", "/api/v2/indictments", "caseId", "indictment", "case_id"),
    ("court", "/court/judgments", "AH", "judgment", "court_case_number"),
    ("court", "/court/judgments", "BGRID", "judgment", "defendant_id"),
    ("prison", "/prison/api/executions", "verdict_no", "sentence_execution", "court_case_number"),
    ("prison", "/prison/api/applications", "offender_ref", "commutation_parole", "person_id"),
    ("justice", "/sqjz/api/jzdx", "rybh", "community_correction", "person_id"),
    ("justice", "/sqjz/api/jzdx", "ajbh", "community_correction", "case_id"),
]


@pytest.mark.parametrize(("kind", "path", "param", "resource", "field"), SEARCHES)
async def test_search_filter(
    kind: str, path: str, param: str, resource: str, field: str, dataset: Dataset, clients: Clients
) -> None:
    client, headers = clients[kind]
    sample = list(dataset.records(resource))[len(list(dataset.records(resource))) // 2]
    value = str(sample[field])
    expected = [r for r in dataset.records(resource) if r[field] == value]
    response = await client.get(path, params={param: value}, headers=headers)
    records, cursor = page_of(kind, response)
    assert len(records) == len(expected) >= 1
    assert cursor is None
    response = await client.get(path, params={param: "no-such-value"}, headers=headers)
    assert page_of(kind, response) == ([], None)


@pytest.mark.parametrize("kind", AGENCY_KINDS)
async def test_keyset_pagination(kind: str, dataset: Dataset, clients: Clients) -> None:
    client, headers = clients[kind]
    spec = system_spec(kind, dataset)
    res = spec.resources[-1]
    expected = [res.to_native(r) for r in dataset.records(res.resource)]
    seen: list[NativeRecord] = []
    after: str | None = None
    for _ in range(1000):
        params = {spec.limit_param: "37", **({"after": after} if after else {})}
        records, after = page_of(kind, await client.get(res.path, params=params, headers=headers))
        assert len(records) <= 37
        seen += records
        if after is None:
            break
    if kind == "court":
        assert [as_text(r) for r in seen] == [as_text(r) for r in expected]
    else:
        assert seen == expected
    too_big = {spec.limit_param: str(spec.max_limit + 1)}
    assert (await client.get(res.path, params=too_big, headers=headers)).status_code == 400
    ok = {spec.limit_param: str(spec.max_limit)}
    assert (await client.get(res.path, params=ok, headers=headers)).status_code == 200


async def test_oauth_token_endpoint(dataset: Dataset) -> None:
    async with make_client(create_app("procuratorate", dataset, CREDS)) as client:
        grant = {"grant_type": "client_credentials"}
        bad = await client.post("/oauth/token", headers=basic("gateway", "wrong"), data=grant)
        assert bad.status_code == 401
        assert bad.json() == {"error": "invalid_client"}
        none = await client.post("/oauth/token", data=grant)
        assert none.status_code == 401
        wrong_grant = await client.post(
            "/oauth/token", headers=basic("gateway", CREDS.secret), data={"grant_type": "password"}
        )
        assert wrong_grant.status_code == 400
        headers = await auth_headers("procuratorate", client)
        ok = await client.get("/api/v2/indictments", headers=headers)
        assert ok.status_code == 200
        assert (
            await client.get("/api/v2/indictments", headers=basic("gateway", CREDS.secret))
        ).status_code == 401


async def test_oauth_token_expires(dataset: Dataset) -> None:
    from sandbox.systems import procuratorate

    app = procuratorate.create_app(dataset, CREDS, token_ttl_seconds=0)
    async with make_client(app) as client:
        headers = await auth_headers("procuratorate", client)
        response = await client.get("/api/v2/indictments", headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_large_dataset_without_index() -> None:
    big = Dataset(2021, 200_000)
    app = create_app("public_security", big, CREDS, index_limit=1000)
    headers = {"X-Api-Key": CREDS.secret}
    async with make_client(app) as client:
        case = big.case(199_999).case
        got = await client.get(f"/api/v1/ajxx/{case['case_id']}", headers=headers)
        assert got.json()["data"]["AJBH"] == case["police_case_number"]
        persons = await client.get(
            "/api/v1/ryxx", params={"AJXXZJBH": case["case_id"]}, headers=headers
        )
        assert len(persons.json()["data"]["rows"]) == len(big.case(199_999).person)
        first = await client.get("/api/v1/ryxx", params={"rows": "5"}, headers=headers)
        rows = first.json()["data"]["rows"]
        assert len(rows) == 5
        assert first.json()["data"]["next"] == rows[-1]["RYBH"]
        unindexed = await client.get("/api/v1/ajxx", params={"AJBH": "x"}, headers=headers)
        assert unindexed.status_code == 400
