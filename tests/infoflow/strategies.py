"""Hypothesis strategies for the information-flow suite: requests worth asking."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from sandbox.records import RESOURCES, record_id
from tests.infoflow.oracle import PERSON_REFS, Ask, Oracle

AGENCIES = {
    "GA640104": "public_security", "GA640105": "public_security", "GA640302": "public_security",
    "JC640104": "procuratorate", "JC640105": "procuratorate", "JC640302": "procuratorate",
    "JC640100": "procuratorate", "JC640200": "procuratorate", "FY640104": "court",
    "FY640105": "court", "FY640302": "court",
    "FY640100": "court", "JY640001": "prison", "JY640002": "prison", "SF640104": "justice",
    "SF640105": "justice", "SF640302": "justice", "ZF640000": "committee",
}  # fmt: skip
N_CASES = 300
# Special records (sandbox/header.py): sealed juveniles, protected witnesses, technical
# investigation, minor victims, a secret case, an unsealed minor, a work secret; repeat
# offenders' cases (prior-record reach) and their earlier cases; an informant at trial, a
# case appealed to the intermediate court and executed in prison, one in investigation.
SPECIAL = [3, 53, 203, 5, 55, 7, 32, 57, 82, 11, 61, 13, 113, 213, 17, 71, 47, 9, 144, 59, 123]
SPECIAL += [46, 27, 6, 263, 2, 23, 259]
NOWHERE = {
    "case_id": "C09999999",
    "person_id": "P0999999901",
    "defendant_id": "P0999999901",
    "court_case_number": "(2023)宁0104刑初99999号",
    "police_case_number": "A640104000000209912" + "9999",
    "id_number": "11010519491231002X",
}
PAGES = 3
# Cases whose defendant re-offended there (sandbox/header.py REPEAT_RATE), and their earlier
# cases' judgments exist: the prior-record reach has something to find.
REPEATS = [47, 81, 123, 144, 234, 27, 106, 112]


def case_header(oracle: Oracle, index: int) -> str:
    case = oracle.case(index)
    return str(case.get("court_case_number") or case["police_case_number"])


def _filterable(resource: str) -> list[str]:
    return list(RESOURCES[resource].filters)


def _weighted(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int) -> Any:
    """``usual`` ``odds`` times in ``odds + 2``, else ``rare``."""
    return st.integers(0, odds + 1).flatmap(lambda n: usual if n < odds else rare)


def _granted(oracle: Oracle, agency: str) -> list[tuple[str, str]]:
    """(resource, purpose) pairs some permission grants ``agency``."""
    kind = AGENCIES[agency]
    return sorted(
        {
            (p["resource"], purpose)
            for p in oracle.permissions
            if p["grantee"].get("kind", kind) == kind
            and p["grantee"].get("agency", agency) == agency
            for purpose in p["purposes"]
        }
    )


@st.composite
def asks(draw: st.DrawFn, oracle: Oracle) -> tuple[Ask, bool, int]:
    """(the request, whether X-Case-Number is sent, the index of another case to draw from).

    Mostly a case with special records and a (handler, resource, purpose) some permission
    grants for it, so that the negative list's subjects are met often; otherwise anything.
    """
    index = draw(_weighted(st.sampled_from(SPECIAL), st.integers(0, N_CASES - 1), 5))
    granted = [
        (agency, resource, purpose)
        for agency in sorted(oracle.parties(index, "EXECUTION_SUPERVISION"))
        for resource, purpose in _granted(oracle, agency)
    ]
    anything = st.tuples(
        st.sampled_from(sorted(AGENCIES)),
        st.sampled_from(sorted(oracle.fields)),
        st.sampled_from(sorted(oracle.needs_case)),
    )
    agency, resource, purpose = draw(
        _weighted(st.sampled_from(granted), anything, 6) if granted else anything
    )
    kind = AGENCIES[agency]
    fields = draw(
        st.one_of(
            st.none(),
            st.sets(st.sampled_from(oracle.fields[resource]), min_size=1).map(frozenset),
        )
    )
    others = st.one_of(st.sampled_from(SPECIAL), st.integers(0, N_CASES - 1))
    earlier = oracle.dataset.case(index).repeat_of
    other = draw(others if earlier is None else st.one_of(st.just(earlier), others))
    send_case = draw(st.booleans().map(lambda b: b or agency != "ZF640000"))
    ask = Ask(agency, kind, purpose, index if send_case else None, resource, fields)
    return ask, send_case, other


@st.composite
def fetch_asks(draw: st.DrawFn, oracle: Oracle, ask: Ask, other: int) -> Ask:
    id_field = oracle.id_field(ask.resource)
    pools = []
    for index in (ask.case_index, other):
        if index is not None:
            records = oracle.dataset.case(index).records(ask.resource)
            if records:
                pools.append(st.sampled_from(sorted(str(r[id_field]) for r in records)))
    missing = st.just("C09999997" if ask.resource == "case" else record_id(ask.resource, other, 98))
    chosen = draw(_weighted(st.one_of(*pools), missing, 6) if pools else missing)
    return replace(ask, record_id=chosen)


@st.composite
def search_asks(draw: st.DrawFn, oracle: Oracle, ask: Ask, other: int) -> Ask:
    names = draw(st.sets(st.sampled_from(_filterable(ask.resource)), min_size=1, max_size=2))
    filters = {}
    for name in sorted(names):
        pools = []
        for index in (ask.case_index, other):
            if index is None:
                continue
            records = oracle.dataset.case(index).records(ask.resource)
            values = sorted({str(r[name]) for r in records if r.get(name) is not None})
            if values:
                pools.append(st.sampled_from(values))
        nowhere = st.just(NOWHERE[name])
        found = st.one_of(*pools) if pools else nowhere
        filters[name] = draw(_weighted(found, nowhere, 6))
    return replace(ask, filters=filters)


def _fields(oracle: Oracle, resource: str) -> st.SearchStrategy[frozenset[str] | None]:
    return st.one_of(
        st.none(), st.sets(st.sampled_from(oracle.fields[resource]), min_size=1).map(frozenset)
    )


def _refers_to(resource: str, record: dict[str, Any], person_id: str) -> bool:
    if resource == "person":
        return record.get("person_id") == person_id
    for name in PERSON_REFS.get(resource, ()):
        value = record.get(name)
        if value == person_id or (isinstance(value, list) and person_id in value):
            return True
    return False


@st.composite
def subject_asks(draw: st.DrawFn, oracle: Oracle) -> tuple[Ask, int]:
    """A request about one person of a special case: their records on any resource.

    The bound case is mostly the person's own, else a case of someone with the same
    公民身份号码 (a reach), else any; the requester mostly one that handles it, with a
    (resource, purpose) some permission grants. It is a fetch of a record about the person
    (or of their case), or a search filtering on the person's id, 身份证号, case or 案号.
    """
    index = draw(st.sampled_from(SPECIAL))
    person = draw(st.sampled_from(sorted(oracle.dataset.case(index).records("person"), key=str)))
    same = oracle.identity_cases(str(person["id_number"]))
    bound = draw(
        _weighted(st.just(index), st.one_of(st.sampled_from(same), st.integers(0, N_CASES - 1)), 5)
    )
    handlers = sorted(oracle.parties(bound, "EXECUTION_SUPERVISION"))
    agency = draw(_weighted(st.sampled_from(handlers), st.sampled_from(sorted(AGENCIES)), 8))
    pairs = _granted(oracle, agency)
    anything = st.tuples(
        st.sampled_from(sorted(oracle.fields)), st.sampled_from(sorted(oracle.needs_case))
    )
    # The person resource itself is where identity fields and filters on them live: weighted.
    about_persons = [pair for pair in pairs if pair[0] == "person"]
    usual = st.sampled_from(pairs)
    if about_persons:
        usual = _weighted(usual, st.sampled_from(about_persons), 1)
    resource, purpose = draw(_weighted(usual, anything, 8) if pairs else anything)
    ask = Ask(agency, AGENCIES[agency], purpose, bound, resource, draw(_fields(oracle, resource)))
    own = oracle.dataset.case(index).records(resource)
    id_field = oracle.id_field(resource)
    if draw(st.booleans()):
        about = sorted(
            str(r[id_field]) for r in own if _refers_to(resource, r, person["person_id"])
        )
        anyone = sorted(str(r[id_field]) for r in own)
        pool = (
            about
            or anyone
            or [record_id(resource, index, 97) if resource != "case" else "C09999996"]
        )
        return replace(ask, record_id=draw(st.sampled_from(pool))), 1
    values = {
        "person_id": person["person_id"],
        "defendant_id": person["person_id"],
        "id_number": person["id_number"],
        "case_id": person["case_id"],
        "court_case_number": oracle.case(index).get("court_case_number"),
        "police_case_number": oracle.case(index).get("police_case_number"),
    }
    names = [n for n in _filterable(resource) if values.get(n)]
    if not names:
        names = _filterable(resource)[:1]
    chosen = draw(st.sets(st.sampled_from(names), min_size=1, max_size=2))
    filters = {n: str(values.get(n) or NOWHERE[n]) for n in sorted(chosen)}
    return replace(ask, filters=filters), draw(st.integers(1, 4))


@st.composite
def reach_asks(draw: st.DrawFn, oracle: Oracle) -> tuple[Ask, int]:
    """A prior-record check (前科审查): a judgment search by defendant, bound to a case.

    The defendant is, half the time, someone with the same 公民身份号码 as a person of the
    bound case (their earlier case: the reach allows it), else anyone's (it must not).
    """
    index = draw(_weighted(st.sampled_from(REPEATS), st.integers(0, N_CASES - 1), 3))
    checkers = [a for a in sorted(oracle.parties(index)) if a[:2] in ("GA", "FY")]
    agency = draw(st.sampled_from(checkers or ["FY640104"]))
    kin: list[str] = []
    for person in oracle.dataset.case(index).records("person"):
        for other in oracle.identity_cases(str(person["id_number"])):
            kin += [
                str(p["person_id"])
                for p in oracle.dataset.case(other).records("person")
                if p["id_number"] == person["id_number"]
            ]
    stranger_case = draw(st.one_of(st.sampled_from(SPECIAL), st.integers(0, N_CASES - 1)))
    strangers = [str(p["person_id"]) for p in oracle.dataset.case(stranger_case).records("person")]
    pools = [st.sampled_from(sorted(x)) for x in (kin, strangers) if x]
    defendant = draw(st.one_of(*pools)) if pools else NOWHERE["defendant_id"]
    fields = draw(_fields(oracle, "judgment"))
    ask = Ask(agency, AGENCIES[agency], "PRIOR_RECORD_CHECK", index, "judgment", fields)
    return replace(ask, filters={"defendant_id": defendant}), draw(st.integers(1, 4))
