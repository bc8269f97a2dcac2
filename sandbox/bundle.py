"""Assemble one synthetic case: plan the flow, cut it at ``AS_OF``, derive stage and
handling agencies, and group the records by resource type (:class:`CaseBundle`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sandbox.codes import CASE_CATEGORIES, DIVISIONS, SECRECY_MARKS
from sandbox.flow import (
    AS_OF,
    CaseState,
    add_people,
    add_technical_investigation,
    investigate,
    iso,
    prosecute,
)
from sandbox.header import case_header, rng_for
from sandbox.records import (
    ArrestReviewRecord,
    CaseRecord,
    CoerciveMeasureRecord,
    CommunityCorrectionRecord,
    CommutationParoleRecord,
    IndictmentRecord,
    JudgmentRecord,
    PersonRecord,
    ProsecutionTransferRecord,
    SentenceExecutionRecord,
    TechnicalInvestigationRecord,
    case_id,
)
from sandbox.sentencing import try_and_execute

#: Any standard record, read-only view.
Record = Mapping[str, object]

_BRIEFS: Final = {
    "050200": "{date}，犯罪嫌疑人{name}在{place}盗窃他人财物，价值人民币{amount}元。",
    "050300": "{date}，犯罪嫌疑人{name}以虚构事实、隐瞒真相的方法骗取被害人财物，"
    "涉案金额人民币{amount}元。",
    "040200": "{date}，犯罪嫌疑人{name}在{place}因琐事与他人发生争执，致被害人轻伤。",
    "020710": "{date}，犯罪嫌疑人{name}醉酒驾驶机动车行至{place}被查获，"
    "血液酒精含量{bac}mg/100ml。",
    "060110": "{date}，犯罪嫌疑人{name}在{place}随意殴打他人，情节恶劣。",
    "060701": "{date}，犯罪嫌疑人{name}在{place}向他人贩卖甲基苯丙胺{grams}克。",
    "050100": "{date}，犯罪嫌疑人{name}在{place}以暴力手段劫取他人财物，价值人民币{amount}元。",
    "040300": "{date}，犯罪嫌疑人{name}违背妇女意志，以暴力手段与被害人发生性关系。",
    "040100": "{date}，犯罪嫌疑人{name}在{place}因纠纷持刀故意杀害被害人。",
    "040520": "{date}，犯罪嫌疑人{name}对不满十四周岁的儿童实施猥亵。",
    "060150": "{date}，犯罪嫌疑人{name}以窃取、刺探等手段非法获取国家秘密。",
}


@dataclass(frozen=True, slots=True)
class CaseBundle:
    """All records of one case, grouped by resource type, in standard form.

    The lists are shared with the dataset's cache: treat every record as read-only.
    """

    index: int
    special: str | None  # special-record kind (see header.SPECIAL_RESIDUES)
    repeat_of: int | None  # earlier case whose primary suspect re-offends here
    case: CaseRecord
    person: list[PersonRecord]
    coercive_measure: list[CoerciveMeasureRecord]
    arrest_review: list[ArrestReviewRecord]
    prosecution_transfer: list[ProsecutionTransferRecord]
    indictment: list[IndictmentRecord]
    judgment: list[JudgmentRecord]
    sentence_execution: list[SentenceExecutionRecord]
    commutation_parole: list[CommutationParoleRecord]
    community_correction: list[CommunityCorrectionRecord]
    technical_investigation: list[TechnicalInvestigationRecord]

    def records(self, resource: str) -> Sequence[Record]:
        """Records of ``resource`` (a resource name of the outline) in id order."""
        if resource == "case":
            return [self.case]
        value: Sequence[Record] = getattr(self, resource)
        return value

    def by_type(self) -> dict[str, Sequence[Record]]:
        """Every resource type (including empty ones) → its records."""
        from sandbox.records import RESOURCES

        return {name: self.records(name) for name in RESOURCES}


def _after(value: str | None) -> bool:
    return value is not None and date.fromisoformat(value) > AS_OF


def _cut(state: CaseState) -> None:
    """Drop what starts after AS_OF; blank what ends after it."""
    state.measures = [m for m in state.measures if not _after(m["start_date"])]
    for m in state.measures:
        if _after(m["end_date"]):
            m["end_date"] = None
    state.reviews = [r for r in state.reviews if not _after(r["request_date"])]
    for r in state.reviews:
        if _after(r["decision_date"]):
            r["decision"] = r["decision_date"] = r["reason"] = None
    state.transfers = [t for t in state.transfers if not _after(t["transfer_date"])]
    for t in state.transfers:
        if _after(t["outcome_date"]):
            t["review_outcome"] = t["outcome_date"] = None
    state.indictments = [i for i in state.indictments if not _after(i["indictment_date"])]
    state.judgments = [j for j in state.judgments if not _after(j["judgment_date"])]
    for j in state.judgments:
        if _after(j["effective_date"]):
            j["effective_date"] = None
        if j["effective_date"] is None or _after(j["execution_notice_date"]):
            j["executing_agency"] = j["execution_notice_date"] = None
    state.executions = [e for e in state.executions if not _after(e["admission_date"])]
    state.corrections = [c for c in state.corrections if not _after(c["start_date"])]
    state.tis = [t for t in state.tis if not _after(t["start_date"])]
    if state.closed_on is not None and state.closed_on > AS_OF:
        state.closed_on = None


def _stage(state: CaseState) -> str:
    if state.judgments:
        # A second-instance judgment supersedes the first: each defendant's last one counts.
        latest = {j["defendant_id"]: j for j in state.judgments}
        if any(j["effective_date"] is None for j in latest.values()):
            return "TRIAL"
        return "EXECUTION" if any(end > AS_OF for end in state.exec_ends) else "CLOSED"
    if state.indictments:
        return "TRIAL"
    if state.closed_on is not None:
        return "CLOSED"
    if state.transfers:
        return "PROSECUTION_REVIEW"
    if any(r["decision"] is None for r in state.reviews):
        return "ARREST_REVIEW"
    return "INVESTIGATION"


def handling_agencies(state: CaseState) -> list[str]:
    """Agencies the police system knows handled the case, in order of first involvement.

    The police know the procuratorates they asked for arrest approval and transferred the case
    to, and the court it was indicted at (they are served its judgment, 刑事诉讼法 第264条).
    They do not know which prison, 司法局 or second-instance court takes it later: the gateway
    finds those parties in the records of the flow (the standard's ``party`` fields).
    """
    codes = [state.police]
    codes += [r["procuratorate"] for r in state.reviews]
    codes += [t["receiving_procuratorate"] for t in state.transfers]
    codes += [i["court"] for i in state.indictments]
    return list(dict.fromkeys(codes))


def _case_record(state: CaseState) -> CaseRecord:
    header = state.header
    rng = rng_for(state.seed, header.index, "case")
    category = CASE_CATEGORIES[header.category]
    first = state.suspects[0]
    offence = header.filing_date - timedelta(days=rng.randint(0, 10))
    brief = _BRIEFS[header.category].format(
        date=f"{offence.year}年{offence.month}月{offence.day}日",
        name=first["name"],
        place=DIVISIONS[header.division] + rng.choice(("某小区", "某商场", "某路口", "某饭店")),
        amount=rng.randint(800, 90000),
        bac=rng.randint(80, 260),
        grams=round(rng.uniform(0.5, 300.0), 1),
    )
    name = first["name"] + ("" if len(state.suspects) == 1 else f"等{len(state.suspects)}人")
    secrecy = "NONE"
    if header.special == "state_secret":
        marks = [m for m in SECRECY_MARKS if m != "NONE"]
        secrecy = rng.choices(marks, weights=(60, 30, 10))[0]
    # 不公开审理 (刑事诉讼法 第188条 个人隐私, 第285条 被告人不满十八周岁): known once indicted.
    minor_defendant = any(p["is_minor"] for p in state.suspects)
    closed = bool(state.indictments) and (category.sexual or minor_defendant)
    seq = 1 + (header.index * 7919) % 9999
    return {
        "case_id": case_id(header.index),
        "police_case_number": f"A{header.police_unit}{header.filing_date:%Y%m}{seq:04d}",
        "case_name": name + category.name,
        "case_category": header.category,
        "filing_date": iso(header.filing_date),
        "division": header.division,
        "stage": _stage(state),
        "handling_agencies": handling_agencies(state),
        "court_case_number": state.court_number if state.indictments else None,
        "secrecy_mark": secrecy,
        "brief": brief,
        "has_sealed_juvenile": any(p["juvenile_record_sealed"] for p in state.persons),
        "closed_trial": closed,
        "work_secret": header.special == "work_secret",
    }


def _last_event(state: CaseState) -> date:
    """The last day of the investigation so far (a transfer can only come after it)."""
    days = [state.header.filing_date]
    days += [date.fromisoformat(m["start_date"]) for m in state.measures]
    days += [date.fromisoformat(r["decision_date"]) for r in state.reviews if r["decision_date"]]
    return max(days)


def build_case(seed: int, index: int) -> CaseBundle:
    """Generate case ``index`` of the dataset with ``seed`` (pure, O(1) in ``index``)."""
    header = case_header(seed, index)
    state = CaseState(seed=seed, header=header, rng=rng_for(seed, index, "flow"))
    add_people(state)
    if header.special == "technical_investigation":
        add_technical_investigation(state)
    transferred = investigate(state)
    if transferred is not None:
        prosecute(state, transferred, _last_event(state))
        if state.indicted_on is not None:
            try_and_execute(state)
    _cut(state)
    if state.indictments:
        for person in state.suspects:
            person["role"] = "DEFENDANT"
    return CaseBundle(
        index=index,
        special=header.special,
        repeat_of=state.repeat_of,
        case=_case_record(state),
        person=state.persons,
        coercive_measure=state.measures,
        arrest_review=state.reviews,
        prosecution_transfer=state.transfers,
        indictment=state.indictments,
        judgment=state.judgments,
        sentence_execution=state.executions,
        commutation_parole=state.applications,
        community_correction=state.corrections,
        technical_investigation=state.tis,
    )
