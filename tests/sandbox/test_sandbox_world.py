"""What a received delivery changes in the shared sample world (sandbox/world.py, NATIVE.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import sandbox.__main__ as sandbox_main
from sandbox.generator import Dataset
from sandbox.systems import create_app
from sandbox.systems.court import INBOUND as COURT_INBOUND
from sandbox.systems.justice import INBOUND as JUSTICE_INBOUND
from sandbox.systems.prison import INBOUND as PRISON_INBOUND
from sandbox.systems.procuratorate import INBOUND as PROCURATORATE_INBOUND
from sandbox.systems.public_security import INBOUND as POLICE_INBOUND
from sandbox.world import ADVANCES_TO, advance, court_case_number_for
from tests.sandbox.test_sandbox_systems import CREDS, auth_headers, make_client

ROOT = Path(__file__).resolve().parents[2]
INVESTIGATING = 23  # C00000023, 立案侦查 in 兴庆区, no 案号 yet
POLICE_NUMBER = "A6401040000002024112156"
INBOUNDS = {
    "public_security": POLICE_INBOUND,
    "procuratorate": PROCURATORATE_INBOUND,
    "court": COURT_INBOUND,
    "prison": PRISON_INBOUND,
    "justice": JUSTICE_INBOUND,
}


def _case(dataset: Dataset, index: int = INVESTIGATING) -> dict[str, Any]:
    return dict(dataset.case(index).case)


def test_the_stages_are_the_kinds_on_accept_stages() -> None:
    declared = {}
    for path in sorted((ROOT / "policies/standard/deliveries").glob("*.yaml")):
        kind = yaml.safe_load(path.read_text(encoding="utf-8"))
        if kind.get("on_accept_stage"):
            declared[kind["code"]] = kind["on_accept_stage"]
    assert declared == ADVANCES_TO


@pytest.mark.parametrize("agency", sorted(INBOUNDS))
def test_each_system_reads_the_kind_codes_its_agency_file_declares(agency: str) -> None:
    # The gateway's write mapping and the system's own reading must agree on every code.
    mapping = yaml.safe_load((ROOT / f"adapters/agencies/{agency}.yaml").read_text("utf-8"))
    fields = mapping["deliveries"]["fields"]
    world = INBOUNDS[agency].world
    assert world is not None
    assert dict(world.kinds) == {str(k): v for k, v in fields["kind"]["codes"].items()}
    root = (mapping["deliveries"]["root"],) if "root" in mapping["deliveries"] else ()
    assert world.kind == (*root, fields["kind"]["from"])
    assert world.to_agency == (*root, fields["to_agency"])
    assert world.case_number == (*root, fields["case_number"])


def test_a_received_delivery_moves_the_case_and_adds_the_recipient() -> None:
    dataset = Dataset(2021, 100)
    before = _case(dataset)
    assert before["stage"] == "INVESTIGATION"
    assert before["handling_agencies"] == ["GA640104", "JC640104"]
    assert advance(dataset, "arrest_request", "JC640104", POLICE_NUMBER) == "C00000023"
    after = _case(dataset)
    assert after["stage"] == "ARREST_REVIEW"
    assert after["handling_agencies"] == ["GA640104", "JC640104"]  # not twice
    advance(dataset, "custody_transfer", "GA640104", POLICE_NUMBER)  # no on_accept_stage
    assert _case(dataset)["stage"] == "ARREST_REVIEW"
    assert {k: v for k, v in _case(dataset).items() if k != "stage"} == {
        k: v for k, v in before.items() if k != "stage"
    }
    assert dataset.case(24).case == Dataset(2021, 100).case(24).case  # other cases untouched


def test_an_indictment_gives_the_case_its_court_number_once() -> None:
    dataset = Dataset(2021, 100)
    assert _case(dataset)["court_case_number"] is None
    advance(dataset, "indictment", "FY640104", POLICE_NUMBER)
    case = _case(dataset)
    number = court_case_number_for(INVESTIGATING, "FY640104")
    assert number is not None
    assert number.startswith("(2025)宁0104刑初")
    assert case["court_case_number"] == number
    assert case["stage"] == "TRIAL"
    assert case["handling_agencies"] == ["GA640104", "JC640104", "FY640104"]
    assert dataset.index().lookup("case", "court_case_number", number) == ["C00000023"]
    # Named by its new 案号, the case moves on; a second indictment keeps the number.
    assert advance(dataset, "judgment_execution", "JY640001", number) == "C00000023"
    advance(dataset, "indictment", "FY640105", number)
    case = _case(dataset)
    assert case["court_case_number"] == number
    assert case["stage"] == "TRIAL"
    assert "JY640001" in case["handling_agencies"]
    # A case that already has a 案号 keeps it.
    at_trial = _case(dataset, 20)
    advance(dataset, "indictment", "FY640104", str(at_trial["court_case_number"]))
    assert _case(dataset, 20)["court_case_number"] == at_trial["court_case_number"]


def test_an_unknown_case_changes_nothing() -> None:
    dataset = Dataset(2021, 20)
    assert advance(dataset, "indictment", "FY640104", "A0000000000000000000000") is None
    assert advance(dataset, "indictment", "FY640104", POLICE_NUMBER) is None  # not served
    assert court_case_number_for(1, "FY999999") is None
    assert all(dataset.case(i).case == Dataset(2021, 20).case(i).case for i in range(20))


def test_the_same_deliveries_give_the_same_world() -> None:
    worlds = []
    for _ in range(2):
        dataset = Dataset(2021, 100)
        for kind, to in [("arrest_request", "JC640104"), ("indictment", "FY640104")]:
            advance(dataset, kind, to, POLICE_NUMBER)
        worlds.append(_case(dataset))
    assert worlds[0] == worlds[1]


def _court_delivery(delivery_id: str, case_number: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<SD><SDBH>{delivery_id}</SDBH>'
        f"<WSLX>QSS</WSLX><FSDW>JC640104</FSDW><JSDW>FY640104</JSDW><AH>{case_number}</AH>"
        "<WSNR><AJID>C00000023</AJID></WSNR></SD>"
    ).encode()


@pytest.mark.parametrize("shared", [True, False])
async def test_the_police_record_shows_what_the_court_received(shared: bool) -> None:
    dataset = Dataset(2021, 100)
    court, police = (create_app(k, dataset, CREDS) for k in ("court", "public_security"))
    if shared:  # as serve-all does
        court.state.world = police.state.world = dataset
    async with make_client(court) as to_court, make_client(police) as to_police:
        auth = await auth_headers("court", to_court)
        for _ in range(2):  # a repeated push is kept once and changes nothing more
            sent = await to_court.post(
                "/court/deliveries",
                content=_court_delivery("DL1", POLICE_NUMBER),
                headers={**auth, "Idempotency-Key": "DL1"},
            )
            assert sent.status_code == 200, sent.text
        police_auth = await auth_headers("public_security", to_police)
        row = orjson.loads(
            (await to_police.get("/api/v1/ajxx/C00000023", headers=police_auth)).content
        )
        record = row["data"]
        number = court_case_number_for(INVESTIGATING, "FY640104")
        if not shared:  # a system served alone keeps its snapshot
            assert (record["AJZT"], record["BLDWDM"], record["FYAH"]) == (
                "10",
                "GA640104,JC640104",
                "",
            )
            return
        assert (record["AJZT"], record["BLDWDM"], record["FYAH"]) == (
            "40",
            "GA640104,JC640104,FY640104",
            number,
        )
        found = await to_police.get("/api/v1/ajxx", params={"FYAH": number}, headers=police_auth)
        assert [r["XXZJBH"] for r in found.json()["data"]["rows"]] == ["C00000023"]


@pytest.mark.parametrize(
    ("argv", "shared"),
    [
        (["serve-all", "--cases", "30"], True),
        (["serve", "--agency", "court", "--port", "1", "--cases", "30"], False),
    ],
)
def test_only_serve_all_makes_the_systems_one_world(
    argv: list[str], shared: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[Any] = []

    async def capture(apps: Any, log_level: str = "info") -> None:
        served.extend(app for app, _, _ in apps)

    monkeypatch.setattr(sandbox_main, "serve_apps", capture)
    sandbox_main.main([*argv, "--credentials-out", str(tmp_path / "creds.json")])
    worlds = [getattr(app.state, "world", None) for app in served]
    if shared:
        assert len(served) == 5
        assert all(
            w is worlds[0] and w is app.state.dataset for w, app in zip(worlds, served, strict=True)
        )
    else:
        assert worlds == [None]
