"""Attack matrix, existence leaks (E1-E6): neither confirm nor deny.

The political-legal committee (ZF640000) supervises case C00000003 (挂牌督办, with its approval
reference), which holds a sealed juvenile record (P0000000301). The committee is neither a
judicial organ handling the case nor a unit querying under state rules (刑事诉讼法 第286条), so
to it that record must look exactly like one that does not exist (P0000000399, same length):
same status, same body apart from the id it sent, same headers, and - the subtle part - the
same timing. (Until issue 13 this was the justice office; 社区矫正法 第20条 now makes the
justice office one of the units that receive the record.)

How the timing test is made robust (E3)
---------------------------------------
* The owner agency's system is reached through a proxy that adds a fixed 20 ms, as a real
  cross-agency network would. The leak the test is for - one path skipping the upstream call
  - then costs a whole 20 ms, well above what a busy 2-core CI runner does to a median.
  Honest, small systematic differences (mapping and validating a found record: well under
  1 ms) stay far below the bar.
* Requests alternate in a freshly shuffled order each round (seeded), so drift, GC pauses
  and noisy neighbours hit every variant alike; warm-up rounds are dropped.
* Two variants "leak" only if BOTH a Mann-Whitney U test (hand-made, tie-corrected normal
  approximation) rejects equality at p < 0.001 AND the Hodges-Lehmann shift (median of all
  pairwise differences: robust to outliers) is at least half the injected delay. Heavy noise
  can move the shift but then gives no small p; a small real overhead may give a small p,
  but not a 10 ms shift.
* If any comparison comes out other than expected, as many rounds again are measured and
  every comparison is judged once more on all the samples together (sequential testing):
  noise that hid or faked a difference is averaged down, a real difference stays.
* Power is shown, not assumed: the same detector must flag (a) a default-deny 403 that makes
  no data call, measured in the same rounds, and (b) a mutant of the gateway whose
  concealment skips the upstream call for the sealed id, status and body unchanged.
* Checked under load: with two and with four busy processes pinned to the same two cores,
  the honest pair stays clean and both (a) and (b) are still flagged (slower, 20-50 s).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.generator import Dataset
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import MISSING_PERSON, SEALED_PERSON, security_gateway, serve_app
from tests.security.helpers import (
    audit_entry,
    header_shape,
    hodges_lehmann_shift,
    mann_whitney_u,
    median,
    problem_shape,
)

OUT_OF_CASE_PERSON = "P0000002001"  # exists, in case C00000020, not the supervised case
APPROVAL = (
    "%E5%AE%81%E6%94%BF%E6%B3%95%E7%9D%A3%E3%80%942025%E3%80%953%E5%8F%B7"  # 宁政法督〔2025〕3号
)
UPSTREAM_DELAY_S = 0.020
ALPHA = 1e-3
MIN_SHIFT_S = UPSTREAM_DELAY_S / 2
ROUNDS = 30
WARMUP_ROUNDS = 3


def _justice(gw: Gateway, case_number: str) -> dict[str, str]:
    """The requester to whom the sealed record must not exist: the committee, supervising."""
    headers = exchange_headers(gw, "committee", "OVERSIGHT", case_number)
    headers["X-Approval-Reference"] = APPROVAL
    return headers


def _person(gw: Gateway, person_id: str, headers: dict[str, str]) -> httpx2.Response:
    return gw.client.get(f"/v1/resources/person/{person_id}", headers=headers)


# E1
@pytest.mark.parametrize("concealed", [SEALED_PERSON, OUT_OF_CASE_PERSON])
def test_e01_concealed_and_missing_records_look_alike(
    sec: Gateway, sealed_case_number: str, concealed: str
) -> None:
    headers = _justice(sec, sealed_case_number)
    hidden, missing = _person(sec, concealed, headers), _person(sec, MISSING_PERSON, headers)
    assert hidden.status_code == missing.status_code == 404
    assert problem_shape(hidden, concealed) == problem_shape(missing, MISSING_PERSON)
    assert header_shape(hidden) == header_shape(missing)
    assert hidden.headers["content-length"] == missing.headers["content-length"]
    # The audit log keeps the truth for the regulator.
    assert audit_entry(sec, hidden)["decision"] == "deny"
    assert audit_entry(sec, missing)["decision"] == "allow"


# E2
def test_e02_no_other_request_tells_them_apart(sec: Gateway, sealed_case_number: str) -> None:
    """Other spellings of the id, and every field selection, answer alike for both."""
    headers = _justice(sec, sealed_case_number)
    missing = problem_shape(_person(sec, MISSING_PERSON, headers), MISSING_PERSON)
    for variant in ("p0000000301", "P0000000301.", "P0000000301:"):
        response = _person(sec, variant, headers)
        assert response.status_code == 404
        assert problem_shape(response, variant) == missing
    for fields in ("person_id", "juvenile_record_sealed", "person_id,name", "is_minor"):
        hidden, absent = (
            sec.client.get(
                f"/v1/resources/person/{pid}", params={"fields": fields}, headers=headers
            )
            for pid in (SEALED_PERSON, MISSING_PERSON)
        )
        assert hidden.status_code == absent.status_code, fields
        assert problem_shape(hidden, SEALED_PERSON) == problem_shape(absent, MISSING_PERSON)


# --- E3: timing -------------------------------------------------------------------------------


class DelayProxy:
    """Forwards to a sample agency system after a fixed delay (a WAN hop)."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.client: httpx2.AsyncClient | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self.forward)], lifespan=self.lifespan)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx2.AsyncClient(base_url=self.upstream, timeout=30) as client:
            self.client = client
            yield

    async def forward(self, request: Request) -> Response:
        assert self.client is not None
        await asyncio.sleep(self.delay_s)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        upstream = await self.client.get(
            request.url.path, params=request.query_params, headers=headers
        )
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
        )


@pytest.fixture(scope="module")
def timing_gw(
    tmp_path_factory: pytest.TempPathFactory, agency_urls: dict[str, str]
) -> Iterator[Gateway]:
    proxy = DelayProxy(agency_urls["public_security"], UPSTREAM_DELAY_S)
    with (
        serve_app(proxy.app) as port,
        security_gateway(
            tmp_path_factory.mktemp("timing"),
            agency_urls,
            upstream_urls={"public_security": f"http://127.0.0.1:{port}"},
            audit_batch_wait_ms=0,
        ) as gateway,
    ):
        yield gateway


@dataclass(frozen=True)
class Verdict:
    leaks: bool
    p: float
    shift_ms: float
    effect: float
    medians_ms: tuple[float, float]

    def __str__(self) -> str:
        return (
            f"p={self.p:.2g} shift={self.shift_ms:.2f}ms A={self.effect:.2f} "
            f"medians={self.medians_ms[0]:.2f}/{self.medians_ms[1]:.2f}ms"
        )


def verdict(xs: list[float], ys: list[float]) -> Verdict:
    test = mann_whitney_u(xs, ys)
    shift = hodges_lehmann_shift(xs, ys)
    return Verdict(
        leaks=test.p_two_sided < ALPHA and abs(shift) >= MIN_SHIFT_S,
        p=test.p_two_sided,
        shift_ms=shift * 1000,
        effect=test.effect,
        medians_ms=(median(xs) * 1000, median(ys) * 1000),
    )


Probe = Callable[[], httpx2.Response]


def measure(probes: dict[str, tuple[Probe, int]], seed: int) -> dict[str, list[float]]:
    """Wall-clock times of each probe, alternating in a shuffled order every round."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in probes}
    for round_ in range(WARMUP_ROUNDS + ROUNDS):
        order = list(probes)
        rng.shuffle(order)
        for name in order:
            probe, status = probes[name]
            started = time.perf_counter()
            response = probe()
            elapsed = time.perf_counter() - started
            assert response.status_code == status, (name, response.text)
            if round_ >= WARMUP_ROUNDS:
                samples[name].append(elapsed)
    return samples


Pair = tuple[str, str]


def judge(
    probes: dict[str, tuple[Probe, int]], expected: dict[Pair, bool], seed: int
) -> dict[Pair, list[Verdict]]:
    """Verdicts for each pair (a, b) on the same samples. If any verdict is not the expected
    one, as many rounds again are measured and every pair is judged again on all samples
    (twice the evidence, so noise that hid or faked a difference is averaged down)."""
    samples = measure(probes, seed)
    verdicts = {(a, b): [verdict(samples[a], samples[b])] for a, b in expected}
    if any(verdicts[pair][0].leaks != leaks for pair, leaks in expected.items()):
        more = measure(probes, seed + 1)
        for name in samples:
            samples[name].extend(more[name])
        for a, b in expected:
            verdicts[a, b].append(verdict(samples[a], samples[b]))
    return verdicts


def _report(verdicts: list[Verdict]) -> str:
    return "; ".join(map(str, verdicts))


def test_e03_statistics_helpers_are_right() -> None:
    """The hand-made Mann-Whitney U against values worked out by hand and symmetry."""
    low, high = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    assert mann_whitney_u(low, high).u == 0
    assert mann_whitney_u(high, low).u == 9
    tied = mann_whitney_u([1.0, 2.0, 2.0], [2.0, 3.0])
    assert tied.u == 1.0  # (1 vs 2: 0) (1 vs 3: 0) (2 vs 2: .5, twice) (2 vs 3: 0, twice)
    rng = random.Random(7)
    same = [rng.gauss(10, 1) for _ in range(60)]
    other = [rng.gauss(10, 1) for _ in range(60)]
    assert mann_whitney_u(same, other).p_two_sided > 0.01
    shifted = [x + 3 for x in other]
    result = mann_whitney_u(same, shifted)
    assert result.p_two_sided < 1e-9
    assert result.effect < 0.1
    assert abs(hodges_lehmann_shift(shifted, same) - 3) < 0.6


def test_e03_sealed_and_missing_take_the_same_time(
    timing_gw: Gateway, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = timing_gw
    headers = _justice(gw, dataset.case(3).case["court_case_number"])
    deny_headers = exchange_headers(
        gw, "prison", "SENTENCE_EXECUTION", dataset.case(7).case["court_case_number"]
    )

    def sealed() -> httpx2.Response:
        return _person(gw, SEALED_PERSON, headers)

    def missing() -> httpx2.Response:
        return _person(gw, MISSING_PERSON, headers)

    def denied() -> httpx2.Response:  # default deny: 403 before any call for data
        return gw.client.get(
            "/v1/resources/technical_investigation/TI0000000701", headers=deny_headers
        )

    probes = {"sealed": (sealed, 404), "missing": (missing, 404), "denied": (denied, 403)}
    verdicts = judge(probes, {("sealed", "missing"): False, ("denied", "missing"): True}, 2021)
    honest, no_call = verdicts["sealed", "missing"], verdicts["denied", "missing"]
    # The last verdict decides: it has all the evidence there is.
    assert not honest[-1].leaks, "sealed vs missing differ: " + _report(honest)
    assert no_call[-1].leaks, "blind to a skipped call: " + _report(no_call)

    # The mutant: concealment that skips the upstream call for the sealed id. Status and
    # body stay identical; only the clock can tell - and the detector must.
    adapters = gw.client.app.state.runtime.exchange.adapters  # type: ignore[attr-defined]
    original = adapters.fetch

    async def skipping_fetch(
        clearance: Any, agency: str, resource: str, record_id: str, call: Any
    ) -> Any:
        if record_id == SEALED_PERSON:
            call.status = 404
            return None
        return await original(clearance, agency, resource, record_id, call)

    monkeypatch.setattr(adapters, "fetch", skipping_fetch)
    assert problem_shape(sealed(), SEALED_PERSON) == problem_shape(missing(), MISSING_PERSON)
    mutant = judge(
        {"sealed": (sealed, 404), "missing": (missing, 404)}, {("sealed", "missing"): True}, 2023
    )["sealed", "missing"]
    assert mutant[-1].leaks, "the detector missed the mutant: " + _report(mutant)
    print("E3 timing:", _report(honest), "|", _report(no_call), "|", _report(mutant))


def test_e03b_records_about_a_sealed_person_take_the_time_of_missing_ones(
    timing_gw: Gateway, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subject-wide concealment costs no extra call a caller can time.

    The sealed juvenile's judgment (concealed because of its defendant) against a missing
    judgment, and a judgment search whose only match is concealed (by the sealed defendant)
    against one that matches nothing. The persons a request needs are the bound case's,
    loaded for every request of that case alike (gateway/exchange/subjects.py), so neither
    concealment adds a call to the police system behind the 20 ms hop. Power: a mutant that
    looks the defendant up without the cache, for found records only, must be flagged.
    """
    gw = timing_gw
    headers = _justice(gw, dataset.case(3).case["court_case_number"])

    def get(path: str) -> Probe:
        return lambda: gw.client.get(path, headers=headers)

    probes = {
        "judgment": (get("/v1/resources/judgment/JD0000000301"), 404),
        "no judgment": (get("/v1/resources/judgment/JD0000000399"), 404),
        "sealed match": (get(f"/v1/resources/judgment?defendant_id={SEALED_PERSON}"), 200),
        "no match": (get(f"/v1/resources/judgment?defendant_id={MISSING_PERSON}"), 200),
    }
    assert probes["sealed match"][0]().json() == probes["no match"][0]().json()
    pairs = {("judgment", "no judgment"): False, ("sealed match", "no match"): False}
    verdicts = judge(probes, pairs, 2031)
    for pair in pairs:
        assert not verdicts[pair][-1].leaks, f"{pair} differ: " + _report(verdicts[pair])

    resolver = gw.client.app.state.runtime.exchange.subjects  # type: ignore[attr-defined]
    original = resolver.complete

    async def uncached(subjects: Any, decision: Any, resource: Any, records: Any) -> None:
        if records:  # a found record: its defendant looked up, every time
            for key in [k for k in subjects.records if k[0] == "person"]:
                del subjects.records[key]
            resolver._records.clear()
        await original(subjects, decision, resource, records)

    monkeypatch.setattr(resolver, "complete", uncached)
    mutant = judge(
        {"judgment": probes["judgment"], "no judgment": probes["no judgment"]},
        {("judgment", "no judgment"): True},
        2033,
    )["judgment", "no judgment"]
    assert mutant[-1].leaks, "the detector missed the mutant: " + _report(mutant)
    print("E3b timing:", _report(verdicts[("judgment", "no judgment")]), "|", _report(mutant))


# --- E4-E6: search and case binding ----------------------------------------------------------


def _decoded_cursor(cursor: str | None) -> str:
    """The cursor as sent and as its base64 decodes (bytes as Latin-1: nothing is lost)."""
    if cursor is None:
        return ""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return cursor + "\n" + raw.decode("latin-1")


# E4
def test_e04_search_never_lists_the_sealed_record(
    sec: Gateway, sealed_case_number: str, dataset: Dataset
) -> None:
    headers = _justice(sec, sealed_case_number)
    response = sec.client.get(
        "/v1/resources/person", params={"case_id": "C00000003", "limit": 100}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEALED_PERSON not in {r["person_id"] for r in body["records"]}
    assert SEALED_PERSON not in response.text
    assert all(r.get("juvenile_record_sealed") is not True for r in body["records"])
    by_id = sec.client.get(
        "/v1/resources/person",
        params={"id_number": _sealed_id_number(dataset)},
        headers=headers,
    )
    # The committee may not filter on 身份证号 (not released to it): refused before any call.
    assert by_id.status_code in (200, 403, 422), by_id.text
    if by_id.status_code == 200:
        assert by_id.json()["records"] == []
    by_defendant = sec.client.get(
        "/v1/resources/judgment", params={"defendant_id": SEALED_PERSON}, headers=headers
    )
    assert by_defendant.status_code == 200, by_defendant.text
    assert by_defendant.json()["records"] == []


def _sealed_id_number(dataset: Dataset) -> str:
    """The sealed person's ID number, from the sample data's truth."""
    person = dataset.get("person", SEALED_PERSON)
    assert person is not None
    return str(person["id_number"])


# E5
def test_e05_cursors_and_page_sizes_do_not_betray_concealed_records(
    sec: Gateway, sealed_case_number: str
) -> None:
    headers = _justice(sec, sealed_case_number)
    url: str | None = "/v1/resources/person?case_id=C00000003&limit=1"
    pages: list[list[str]] = []
    cursors: list[str] = []
    while url is not None and len(pages) < 20:
        response = sec.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([r["person_id"] for r in body["records"]])
        assert SEALED_PERSON not in _decoded_cursor(body["next_cursor"])
        # a page short of its limit while more follow tells that something was taken out
        assert len(body["records"]) == 1 or body["next_cursor"] is None
        # every page is filled: concealed records cost none of the caller's pages
        assert body["records"], "an empty page after a cursor betrays a concealed record"
        cursor = body["next_cursor"]
        if cursor is not None:
            cursors.append(cursor)
            with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):  # sealed, not JSON
                json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        url = (
            None
            if cursor is None
            else f"/v1/resources/person?case_id=C00000003&limit=1&cursor={cursor}"
        )
    assert url is None
    # paging one by one lists exactly what one big page lists, the sealed record in neither
    whole = sec.client.get(
        "/v1/resources/person", params={"case_id": "C00000003", "limit": 100}, headers=headers
    ).json()
    assert [p for page in pages for p in page] == [r["person_id"] for r in whole["records"]]
    assert len({len(c) for c in cursors}) <= 1  # no length that varies with the position


# E6
def test_e06_a_case_you_do_not_handle_looks_like_no_case(
    sec: Gateway, sealed_case_number: str
) -> None:
    unknown = sealed_case_number.replace("刑初", "刑终")  # well-formed, no such case
    answers = []
    for number in (sealed_case_number, unknown):
        headers = exchange_headers(sec, "prison", "SENTENCE_EXECUTION", number)
        response = sec.client.get("/v1/resources/judgment/JD0000000301", headers=headers)
        body = response.json()
        answers.append(
            (response.status_code, body.get("rule_ids"), body["detail"].replace(number, "<case>"))
        )
    assert answers[0] == answers[1]
    assert "C00000003" not in json.dumps(answers[0], ensure_ascii=False)
