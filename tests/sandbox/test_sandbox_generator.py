"""Synthetic-data generator: determinism, realism, special records at documented indices."""

from __future__ import annotations

import re
import time
from datetime import date

import pytest

from sandbox.codes import (
    AGENCIES,
    CASE_CATEGORIES,
    COURT_CASE_CODES,
    DIVISIONS,
    OUT_OF_PROVINCE,
    PROCURATORATE_ABBREVIATIONS,
    STAGES,
)
from sandbox.generator import CaseBundle, Dataset, special_cases
from sandbox.records import RESOURCES

N = 600
AS_OF = date(2024, 12, 31)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def gb11643_ok(number: str) -> bool:
    """Independent GB 11643 check (weights, mod 11, map to 10X98765432)."""
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    total = sum(int(c) * w for c, w in zip(number[:17], _WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17]


def d(value: object) -> date:
    assert isinstance(value, str)
    return date.fromisoformat(value)


def age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@pytest.fixture(scope="module")
def bundles() -> list[CaseBundle]:
    return list(Dataset(2021, N))


def test_known_check_characters() -> None:
    assert gb11643_ok("11010519491231002X")
    assert gb11643_ok("440524188001010014")
    assert not gb11643_ok("440524188001010015")


def test_same_seed_same_records_and_random_access() -> None:
    first, second = Dataset(7, 100), Dataset(7, 100)
    assert [b.by_type() for b in first] == [b.by_type() for b in second]
    # record i does not depend on n_cases nor on generating 0..i-1 first
    assert Dataset(7, 10_000_000).case(57).by_type() == first.case(57).by_type()


def test_different_seed_different_records() -> None:
    a, b = Dataset(1, 50), Dataset(2, 50)
    assert [x.case for x in a] != [x.case for x in b]
    assert a.case(0).case["case_id"] == b.case(0).case["case_id"]


def test_huge_dataset_is_lazy() -> None:
    ds = Dataset(2021, 50_000_000)
    started = time.perf_counter()
    bundle = ds.case(49_999_999)
    assert bundle.case["case_id"] == "C49999999"
    person = bundle.person[0]
    assert ds.get("person", person["person_id"]) == person
    assert time.perf_counter() - started < 1.0


def test_ids_and_references(bundles: list[CaseBundle]) -> None:
    for bundle in bundles:
        cid = bundle.case["case_id"]
        persons = {p["person_id"]: p for p in bundle.person}
        suspects = {p["person_id"] for p in bundle.person if p["role"] in ("SUSPECT", "DEFENDANT")}
        for name, spec in RESOURCES.items():
            for record in bundle.records(name):
                assert re.fullmatch(r"[A-Z]{1,2}\d{8}(\d{2})?", str(record[spec.id_field]))
                assert record["case_id"] == cid
        for m in bundle.coercive_measure:
            assert m["person_id"] in suspects
        for r in bundle.arrest_review:
            assert r["person_id"] in suspects
        for t in bundle.prosecution_transfer:
            assert set(t["person_ids"]) == suspects
        for j in bundle.judgment:
            assert persons[j["defendant_id"]]["name"] == j["defendant_name"]
        for ti in bundle.technical_investigation:
            assert ti["target_person_id"] in suspects


def test_people_are_realistic(bundles: list[CaseBundle]) -> None:
    ethnicities: set[str] = set()
    out_of_province = 0
    for bundle in bundles:
        filing = d(bundle.case["filing_date"])
        for p in bundle.person:
            number = p["id_number"]
            assert gb11643_ok(number), number
            assert number[6:14] == p["birth_date"].replace("-", "")
            # 户籍 in Ningxia or in another province; the person lives in Ningxia.
            assert number[:6] == p["domicile_division"]
            assert p["domicile_division"] in DIVISIONS or p["domicile_division"] in OUT_OF_PROVINCE
            assert p["residence_division"] in DIVISIONS
            if p["domicile_division"] in OUT_OF_PROVINCE:
                out_of_province += 1
                assert p["domicile_address"] != p["address"]
                assert not p["domicile_address"].startswith("宁夏")
            assert int(number[16]) % 2 == (1 if p["sex"] == "1" else 0)
            assert p["sex"] in ("1", "2")
            assert p["is_minor"] == (age(d(p["birth_date"]), filing) < 18)
            assert re.fullmatch(r"1[35789]\d{9}", p["phone"])
            assert 2 <= len(p["name"]) <= 3
            ethnicities.add(p["ethnicity"])
            if p["role"] in ("SUSPECT", "DEFENDANT"):
                assert age(d(p["birth_date"]), filing) >= 14
    assert {"01", "03"} <= ethnicities
    assert out_of_province > 0


def test_document_numbers(bundles: list[CaseBundle]) -> None:
    for bundle in bundles:
        case = bundle.case
        assert re.fullmatch(r"A\d{12}\d{6}\d{4}", case["police_case_number"])
        assert len(case["police_case_number"]) == 23
        assert case["police_case_number"][1:7] == case["division"]
        assert case["police_case_number"][13:19] == case["filing_date"][:7].replace("-", "")
        assert case["case_category"] in CASE_CATEGORIES
        for ind in bundle.indictment:
            receiving = bundle.prosecution_transfer[0]["receiving_procuratorate"]
            abbreviation = PROCURATORATE_ABBREVIATIONS[receiving]
            year = ind["indictment_date"][:4]
            assert re.fullmatch(rf"{abbreviation}刑诉〔{year}〕\d+号", ind["document_number"])
            pattern = r"\((\d{4})\)(宁\d{2}(?:\d{2})?)刑初(\d+)号"
            match = re.fullmatch(pattern, str(case["court_case_number"]))
            assert match is not None
            assert match.group(1) == year
            assert match.group(2) == COURT_CASE_CODES[ind["court"]]
        finals = {}
        for j in bundle.judgment:
            if j["second_instance_basis"] is None:  # 刑初, by the court indicted at
                assert j["court_case_number"] == case["court_case_number"]
                assert j["court"] == bundle.indictment[0]["court"]
            else:  # 刑终, by the intermediate court; the 刑初 judgment never took effect
                assert re.fullmatch(r"\(\d{4}\)宁01刑终\d+号", j["court_case_number"])
                assert j["court"] == "FY640100"
            finals[j["defendant_id"]] = j
        for e in bundle.sentence_execution:
            assert e["court_case_number"] == finals[e["person_id"]]["court_case_number"]
        for a in bundle.commutation_parole:
            assert re.fullmatch(r"\(\d{4}\)宁01刑更\d+号", a["court_case_number"])


def test_dates_in_order(bundles: list[CaseBundle]) -> None:
    for bundle in bundles:
        chain = [d(bundle.case["filing_date"])]
        for r in bundle.arrest_review[:1]:
            chain.append(d(r["request_date"]))
            if r["decision_date"]:
                chain.append(d(r["decision_date"]))
        chain += [d(t["transfer_date"]) for t in bundle.prosecution_transfer]
        chain += [d(i["indictment_date"]) for i in bundle.indictment]
        chain += [d(j["judgment_date"]) for j in bundle.judgment[:1]]
        for j in bundle.judgment[:1]:
            if j["effective_date"]:
                chain.append(d(j["effective_date"]))
        chain += [d(e["admission_date"]) for e in bundle.sentence_execution[:1]]
        assert chain == sorted(chain), bundle.case["case_id"]
        assert len(set(chain)) == len(chain), bundle.case["case_id"]
        assert chain[-1] <= AS_OF
        for m in bundle.coercive_measure:
            assert d(m["start_date"]) >= chain[0]
            assert m["end_date"] is None or d(m["end_date"]) >= d(m["start_date"])
        for c in bundle.community_correction:
            assert d(c["start_date"]) < d(c["end_date"])
            assert d(c["start_date"]) <= AS_OF
        for e in bundle.sentence_execution:
            if e["sentence_end"]:
                assert d(e["sentence_start"]) < d(e["sentence_end"])
        for a in bundle.commutation_parole:
            assert d(a["application_date"]) > d(bundle.sentence_execution[0]["admission_date"])
            assert (a["ruling"] == "PENDING") == (a["ruling_date"] is None)


def expected_agencies(bundle: CaseBundle) -> list[str]:
    """Handling agencies the police know, re-derived from the records (documented rule).

    Not the prison, the 司法局 or the second-instance court: the police do not know them
    ahead; the gateway finds them in the flow.
    """
    codes = ["GA" + bundle.case["division"]]
    codes += [r["procuratorate"] for r in bundle.arrest_review]
    codes += [t["receiving_procuratorate"] for t in bundle.prosecution_transfer]
    codes += [i["court"] for i in bundle.indictment]
    return list(dict.fromkeys(codes))


def test_handling_agencies_and_stage(bundles: list[CaseBundle]) -> None:
    stages: set[str] = set()
    for bundle in bundles:
        case = bundle.case
        assert case["handling_agencies"] == expected_agencies(bundle)
        assert set(case["handling_agencies"]) <= set(AGENCIES)
        stage = case["stage"]
        stages.add(stage)
        if stage in ("INVESTIGATION", "ARREST_REVIEW"):
            assert not bundle.prosecution_transfer
            assert not bundle.judgment
        if stage == "ARREST_REVIEW":
            assert any(r["decision"] is None for r in bundle.arrest_review)
        if stage == "PROSECUTION_REVIEW":
            assert bundle.prosecution_transfer
            assert not bundle.indictment
        if stage == "TRIAL":
            assert bundle.indictment
        latest = {j["defendant_id"]: j for j in bundle.judgment}
        for j in bundle.judgment:
            if j is not latest[j["defendant_id"]]:
                assert j["effective_date"] is None  # superseded by the second instance
                assert j["executing_agency"] is None
        if bundle.sentence_execution or bundle.community_correction:
            assert stage in ("EXECUTION", "CLOSED")
        roles = {p["role"] for p in bundle.person}
        assert ("DEFENDANT" in roles) == bool(bundle.indictment)
    assert stages == set(STAGES)


def test_special_cases_at_documented_indices(bundles: list[CaseBundle]) -> None:
    special = special_cases(N)
    assert special["sealed_juvenile"][:4] == ["C00000003", "C00000053", "C00000103", "C00000153"]
    assert special["state_secret"][:2] == ["C00000013", "C00000113"]
    by_id = {b.case["case_id"]: b for b in bundles}
    flagged: dict[str, set[str]] = {kind: set() for kind in special}
    for bundle in bundles:
        cid = bundle.case["case_id"]
        for p in bundle.person:
            if p["juvenile_record_sealed"]:
                assert p["is_minor"]
                assert p["role"] in ("SUSPECT", "DEFENDANT")
                flagged["sealed_juvenile"].add(cid)
            if p["protected_witness"]:
                assert p["role"] == "WITNESS"
                flagged["protected_witness"].add(cid)
            if p["sexual_offence_victim"] and p["is_minor"]:
                assert CASE_CATEGORIES[bundle.case["case_category"]].sexual
                flagged["minor_sexual_offence_victim"].add(cid)
        if bundle.technical_investigation:
            flagged["technical_investigation"].add(cid)
        if bundle.case["secrecy_mark"] != "NONE":
            flagged["state_secret"].add(cid)
    kinds = ("sealed_juvenile", "protected_witness", "technical_investigation")
    for kind in (*kinds, "minor_sexual_offence_victim", "state_secret"):
        assert flagged[kind] == set(special[kind]), kind
    for cid in special["sealed_juvenile"]:
        bundle = by_id[cid]
        assert bundle.judgment
        assert bundle.judgment[0]["penalty_type"] == "FIXED_TERM"
        assert (bundle.judgment[0]["term_months"] or 0) <= 60
    for cid in special["unsealed_minor"]:
        first = by_id[cid].person[0]
        assert first["is_minor"]
        assert not first["juvenile_record_sealed"]
        assert (by_id[cid].judgment[0]["term_months"] or 0) > 60
    assert len(special["technical_investigation"]) == 4 * N // 100


def test_repeat_offenders_share_identity(bundles: list[CaseBundle]) -> None:
    repeats = [b for b in bundles if b.repeat_of is not None]
    assert repeats
    for bundle in repeats:
        assert bundle.repeat_of is not None
        earlier = bundles[bundle.repeat_of]
        assert bundle.person[0]["id_number"] == earlier.person[0]["id_number"]
        assert bundle.person[0]["name"] == earlier.person[0]["name"]


def test_lookup_by_id(bundles: list[CaseBundle]) -> None:
    ds = Dataset(2021, N)
    bundle = bundles[42]
    assert ds.get("case", "C00000042") == bundle.case
    assert ds.get("person", bundle.person[-1]["person_id"]) == bundle.person[-1]
    assert ds.get("person", "P0000004299") is None
    assert ds.get("case", f"C{N:08d}") is None
    assert ds.get("case", "../etc") is None
    with pytest.raises(IndexError):
        ds.case(N)


def test_flow_outcomes_appear(bundles: list[CaseBundle]) -> None:
    """二审 and 抗诉, 不起诉 and 退回补充侦查, 看守所 short sentences, informants, health."""
    seen: set[str] = set()
    for bundle in bundles:
        transfers = bundle.prosecution_transfer
        for t in transfers[:-1]:
            assert t["review_outcome"] == "RETURNED"  # only the last may be decided otherwise
            seen.add("returned")
        assert len(transfers) <= 3  # 补充侦查以二次为限 (刑事诉讼法 第175条)
        if transfers and transfers[-1]["review_outcome"] == "NOT_PROSECUTED":
            assert not bundle.indictment
            assert bundle.case["stage"] == "CLOSED"
            seen.add("not_prosecuted")
        latest = {j["defendant_id"]: j for j in bundle.judgment}
        for j in bundle.judgment:
            if j["second_instance_basis"]:
                seen.add(j["second_instance_basis"])
            agency = j["executing_agency"]
            if agency is None:
                continue
            assert j["effective_date"] is not None
            assert j["execution_notice_date"] is not None
            if agency.startswith("GA") and j["penalty_type"] == "FIXED_TERM":
                seen.add("detention_centre")  # 剩余刑期三个月以下，看守所代为执行
        for e in bundle.sentence_execution:
            assert latest[e["person_id"]]["executing_agency"] == e["prison"]
        for c in bundle.community_correction:
            if c["correction_type"] != "PAROLE":  # a paroled convict comes from prison
                assert latest[c["person_id"]]["executing_agency"] == c["supervising_office"]
        for p in bundle.person:
            if p["role"] == "INFORMANT":
                seen.add("informant")
            if p["health_status"]:
                seen.add("health")
        if bundle.case["closed_trial"]:
            seen.add("closed_trial")
        assert bundle.case["has_sealed_juvenile"] == any(
            p["juvenile_record_sealed"] for p in bundle.person
        )
        for m in bundle.coercive_measure:
            if m["measure_type"] == "DESIGNATED_RESIDENTIAL_SURVEILLANCE":
                seen.add("designated")
    assert seen >= {
        "returned",
        "not_prosecuted",
        "APPEAL",
        "PROTEST",
        "detention_centre",
        "informant",
        "health",
        "closed_trial",
        "designated",
    }
