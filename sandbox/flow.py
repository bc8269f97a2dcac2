"""Pre-trial part of a synthetic case: people, coercive measures, arrest review, technical
investigation, transfer for prosecution and indictment.

The flow is first planned with real dates (possibly after :data:`AS_OF`); the generator then
cuts everything that lies after the reference date (see ``sandbox.generator``).
"""

from __future__ import annotations

import calendar
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

from sandbox.codes import (
    AS_OF_ISO,
    CASE_CATEGORIES,
    CATEGORY_DANGEROUS_DRIVING,
    CITY_PROCURATORATE,
    DETENTION_CENTRES,
    HEALTH_STATUSES,
    INTERMEDIATE_COURT,
    PROCURATORATE_ABBREVIATIONS,
    SEX_FEMALE,
    SEX_MALE,
    TI_APPROVAL_PREFIX,
    TI_APPROVERS,
    TI_MEASURE_TYPES,
)
from sandbox.header import CaseHeader, primary_suspect, rng_for
from sandbox.people import Identity, age_on, make_identity, shift_years
from sandbox.records import (
    ArrestReviewRecord,
    CoerciveMeasureRecord,
    CommunityCorrectionRecord,
    CommutationParoleRecord,
    IndictmentRecord,
    JudgmentRecord,
    PersonRecord,
    ProsecutionTransferRecord,
    SentenceExecutionRecord,
    TechnicalInvestigationRecord,
    record_id,
)

AS_OF: Final = date.fromisoformat(AS_OF_ISO)
_APPROVE_REASON: Final = (
    "有证据证明有犯罪事实，可能判处徒刑以上刑罚，采取取保候审不足以防止发生社会危险性"
)
_TRANSFER_OPINION: Final = "犯罪事实清楚，证据确实、充分，依法移送审查起诉。"
_DISAPPROVE_REASONS: Final = ("不构成犯罪", "证据不足", "无逮捕必要")


def iso(day: date) -> str:
    """ISO ``YYYY-MM-DD``."""
    return day.isoformat()


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (day clamped to the month's length)."""
    total = day.year * 12 + day.month - 1 + months
    year, month = divmod(total, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def days_after(rng: random.Random, day: date, low: int, high: int) -> date:
    """A date ``low``..``high`` days after ``day`` (inclusive)."""
    return day + timedelta(days=rng.randint(low, high))


@dataclass
class CaseState:
    """Everything planned for one case; records are mutated until the case is finalised."""

    seed: int
    header: CaseHeader
    rng: random.Random
    persons: list[PersonRecord] = field(default_factory=list)
    suspects: list[PersonRecord] = field(default_factory=list)
    measures: list[CoerciveMeasureRecord] = field(default_factory=list)
    reviews: list[ArrestReviewRecord] = field(default_factory=list)
    transfers: list[ProsecutionTransferRecord] = field(default_factory=list)
    indictments: list[IndictmentRecord] = field(default_factory=list)
    judgments: list[JudgmentRecord] = field(default_factory=list)
    executions: list[SentenceExecutionRecord] = field(default_factory=list)
    applications: list[CommutationParoleRecord] = field(default_factory=list)
    corrections: list[CommunityCorrectionRecord] = field(default_factory=list)
    tis: list[TechnicalInvestigationRecord] = field(default_factory=list)
    #: measures still in force, waiting for the flow to decide their end date
    open_measures: list[CoerciveMeasureRecord] = field(default_factory=list)
    custody_start: date | None = None
    closed_on: date | None = None  # withdrawal (撤案) or non-prosecution (不起诉)
    indicted_on: date | None = None
    court_number: str | None = None  # first-instance 案号, fixed when the court registers
    serious: bool = False
    procuratorate: str = ""
    court: str = ""
    #: end dates of every penalty being executed (date.max for life / death with reprieve)
    exec_ends: list[date] = field(default_factory=list)
    repeat_of: int | None = None
    _ordinals: Counter[str] = field(default_factory=Counter)

    def next_id(self, resource: str) -> str:
        """Allocate the next record id of ``resource`` within this case."""
        self._ordinals[resource] += 1
        return record_id(resource, self.header.index, self._ordinals[resource])

    @property
    def police(self) -> str:
        """The investigating police agency code."""
        return "GA" + self.header.division


def _person(state: CaseState, who: Identity, role: str) -> PersonRecord:
    minor = age_on(who.birth_date, state.header.filing_date) < 18
    record: PersonRecord = {
        "person_id": state.next_id("person"),
        "case_id": record_id("case", state.header.index, 0),
        "name": who.name,
        "sex": who.sex,
        "ethnicity": who.ethnicity,
        "id_number": who.id_number,
        "birth_date": iso(who.birth_date),
        "domicile_division": who.domicile_division,
        "domicile_address": who.domicile_address,
        "address": who.address,
        "residence_division": who.residence_division,
        "phone": who.phone,
        "health_status": None,
        "role": role,
        "is_minor": minor,
        "juvenile_record_sealed": minor
        and role == "SUSPECT"
        and state.header.special == "sealed_juvenile",
        "protected_witness": False,
        "sexual_offence_victim": False,
    }
    state.persons.append(record)
    return record


def _other(state: CaseState, purpose: str, ages: tuple[int, int], sex: str | None) -> Identity:
    rng = rng_for(state.seed, state.header.index, purpose)
    filing = state.header.filing_date
    return make_identity(
        rng,
        born_after=shift_years(filing, -(ages[1] + 1)) + timedelta(days=1),
        born_before=shift_years(filing, -ages[0]),
        sex=sex,
        home_division=state.header.division,
    )


def add_people(state: CaseState) -> None:
    """Suspects first (01 = primary), then victims, then witnesses, then an informant."""
    rng, header = state.rng, state.header
    category = CASE_CATEGORIES[header.category]
    first, state.repeat_of = primary_suspect(state.seed, header)
    n_suspects = 1 if header.special else rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
    state.suspects.append(_person(state, first, "SUSPECT"))
    for k in range(2, n_suspects + 1):
        sex = SEX_MALE if category.sexual else None
        state.suspects.append(
            _person(state, _other(state, f"suspect{k}", (18, 60), sex), "SUSPECT")
        )
    n_victims = rng.randint(*category.victims)
    for k in range(1, n_victims + 1):
        ages = (18, 80)
        if header.special == "minor_sexual_offence_victim" and k == 1:
            ages = (6, 13) if header.category != "040300" else (12, 17)
        elif not category.sexual and rng.random() < 0.05:
            ages = (8, 17)
        sex = SEX_FEMALE if category.sexual else None
        victim = _person(state, _other(state, f"victim{k}", ages, sex), "VICTIM")
        victim["sexual_offence_victim"] = category.sexual
    n_witnesses = rng.choices((0, 1, 2), weights=(40, 40, 20))[0]
    if header.special == "protected_witness":
        n_witnesses = max(n_witnesses, 1)
    for k in range(1, n_witnesses + 1):
        witness = _person(state, _other(state, f"witness{k}", (18, 75), None), "WITNESS")
        witness["protected_witness"] = header.special == "protected_witness" and k == 1
    # Streams of their own, so that the persons above are what they were before.
    extra = rng_for(state.seed, header.index, "informant")
    if extra.random() < 0.15:
        _person(state, _other(state, "informant", (18, 70), None), "INFORMANT")
    health = rng_for(state.seed, header.index, "health")
    for suspect in state.suspects:
        if health.random() < 0.1:
            suspect["health_status"] = health.choices(HEALTH_STATUSES, weights=(60, 30, 10))[0]


def _measure(
    state: CaseState, person: PersonRecord, kind: str, by: str, start: date, end: date | None
) -> CoerciveMeasureRecord:
    custody = kind in ("DETENTION", "ARREST")
    record: CoerciveMeasureRecord = {
        "measure_id": state.next_id("coercive_measure"),
        "case_id": person["case_id"],
        "person_id": person["person_id"],
        "measure_type": kind,
        "decided_by": by,
        "start_date": iso(start),
        "end_date": iso(end) if end else None,
        "custody_place": DETENTION_CENTRES[state.header.division] if custody else None,
    }
    state.measures.append(record)
    if end is None:
        state.open_measures.append(record)
    return record


def close_open_measures(state: CaseState, day: date) -> None:
    """End every measure still in force on ``day``."""
    for record in state.open_measures:
        record["end_date"] = iso(max(day, date.fromisoformat(record["start_date"])))
    state.open_measures.clear()


def investigate(state: CaseState) -> date | None:
    """Measures and arrest review; returns the transfer date, or None if the case stops."""
    rng, header = state.rng, state.header
    filing = header.filing_date
    district_jc = "JC" + header.division
    if header.category == CATEGORY_DANGEROUS_DRIVING:
        path = "detention" if rng.random() < 0.1 else "bail"
    elif header.special == "sealed_juvenile":
        path = "bail"
    elif header.special:
        path = "detention"
    else:
        path = rng.choices(("detention", "bail", "surveillance"), weights=(75, 15, 10))[0]
    if rng.random() < 0.1:
        summoned = days_after(rng, filing, 0, 1)
        for person in state.suspects:
            _measure(state, person, "SUMMONS", state.police, summoned, summoned)
    if path != "detention":
        kind = "BAIL" if path == "bail" else "RESIDENTIAL_SURVEILLANCE"
        designated = rng_for(state.seed, header.index, "designated").random() < 0.3
        if kind == "RESIDENTIAL_SURVEILLANCE" and designated:
            kind = "DESIGNATED_RESIDENTIAL_SURVEILLANCE"  # 刑事诉讼法 第75条
        since = days_after(rng, filing, 2, 10)
        for person in state.suspects:
            _measure(state, person, kind, state.police, since, None)
        return days_after(rng, since, 20, 110)
    detained = days_after(rng, filing, 0, 2)
    state.custody_start = detained
    request = days_after(rng, max(detained, filing + timedelta(days=1)), 3, 30)
    decided = days_after(rng, request, 1, 7)
    approved = header.complete or rng.random() < 0.85
    withdrawn = not approved and rng.random() < 0.4
    reason = _APPROVE_REASON if approved else "无逮捕必要"
    if withdrawn:
        reason = rng.choice(_DISAPPROVE_REASONS)
    for person in state.suspects:
        _measure(state, person, "DETENTION", state.police, detained, decided)
        state.reviews.append(
            {
                "review_id": state.next_id("arrest_review"),
                "case_id": person["case_id"],
                "person_id": person["person_id"],
                "request_date": iso(request),
                "decision": "APPROVED" if approved else "DISAPPROVED",
                "decision_date": iso(decided),
                "procuratorate": district_jc,
                "reason": reason,
            }
        )
        if approved:
            _measure(state, person, "ARREST", district_jc, decided, None)
        else:
            _measure(state, person, "BAIL", state.police, decided, None)
    if withdrawn:
        state.closed_on = days_after(rng, decided, 30, 150)
        close_open_measures(state, state.closed_on)
        return None
    return days_after(rng, decided, 20, 110)


def _returned_transfers(
    state: CaseState, suspect_ids: list[str], charge: str, transferred: date, earliest: date
) -> None:
    """Earlier transfers returned for 补充侦查 (刑事诉讼法 第175条: at most twice, one month
    each), before the transfer on ``transferred``; only where the investigation leaves room.

    A stream of its own, and placed before the final transfer, so that every later date of the
    case is what it would be without them.
    """
    if state.header.complete:
        return
    rng = rng_for(state.seed, state.header.index, "returns")
    count = rng.choices((0, 1, 2), weights=(80, 15, 5))[0]
    plan: list[tuple[date, date]] = []
    resent = transferred
    for _ in range(count):
        returned = resent - timedelta(days=rng.randint(10, 30))  # supplementary investigation
        sent = returned - timedelta(days=rng.randint(15, 30))  # the review before returning
        if sent <= earliest:
            break
        plan.append((sent, returned))
        resent = sent
    for sent, returned in reversed(plan):
        _transfer(state, suspect_ids, charge, sent, "RETURNED", returned)


def prosecute(state: CaseState, transferred: date, earliest: date) -> None:
    """Transfer for prosecution and (unless not prosecuted) indictment."""
    rng, header = state.rng, state.header
    category = CASE_CATEGORIES[header.category]
    state.serious = rng.random() < category.serious_rate
    state.procuratorate = CITY_PROCURATORATE if state.serious else "JC" + header.division
    state.court = INTERMEDIATE_COURT if state.serious else "FY" + header.division
    suspect_ids = [p["person_id"] for p in state.suspects]
    _returned_transfers(state, suspect_ids, category.charge, transferred, earliest)
    final = _transfer(state, suspect_ids, category.charge, transferred, None, None)
    if not header.complete and rng.random() < 0.06:
        state.closed_on = days_after(rng, transferred, 20, 45)
        final["review_outcome"], final["outcome_date"] = "NOT_PROSECUTED", iso(state.closed_on)
        close_open_measures(state, state.closed_on)
        return
    state.indicted_on = days_after(rng, transferred, 10, 45)
    final["review_outcome"], final["outcome_date"] = "INDICTED", iso(state.indicted_on)
    seq = 1 + (header.index * 7907) % 9973
    abbreviation = PROCURATORATE_ABBREVIATIONS[state.procuratorate]
    state.indictments.append(
        {
            "indictment_id": state.next_id("indictment"),
            "case_id": state.suspects[0]["case_id"],
            "document_number": f"{abbreviation}刑诉〔{state.indicted_on.year}〕{seq}号",
            "defendant_ids": suspect_ids,
            "charges": [category.charge],
            "indictment_date": iso(state.indicted_on),
            "court": state.court,
        }
    )


def _transfer(
    state: CaseState,
    suspect_ids: list[str],
    charge: str,
    day: date,
    outcome: str | None,
    decided: date | None,
) -> ProsecutionTransferRecord:
    record: ProsecutionTransferRecord = {
        "transfer_id": state.next_id("prosecution_transfer"),
        "case_id": state.suspects[0]["case_id"],
        "person_ids": suspect_ids,
        "transfer_date": iso(day),
        "receiving_procuratorate": state.procuratorate,
        "charges": [charge],
        "review_outcome": outcome,
        "outcome_date": iso(decided) if decided else None,
        "opinion": f"犯罪嫌疑人涉嫌{charge}，{_TRANSFER_OPINION}",
    }
    state.transfers.append(record)
    return record


_TI_SUMMARIES: Final = {
    "COMMUNICATIONS_INTERCEPT": "调取通话及短信记录{n}条，发现涉案联络线索{k}条",
    "LOCATION_TRACKING": "获取目标手机位置轨迹{n}条，锁定活动区域{k}处",
    "RECORD_MONITORING": "调取网络通讯及交易记录{n}条，固定交易线索{k}条",
    "PREMISES_MONITORING": "对涉案场所实施监控{k}处，获取影像资料{n}段",
    "COVERT_INVESTIGATION": "侦查人员隐匿身份接触目标{k}次，取得交易证据{n}项",
    "CONTROLLED_DELIVERY": "对涉案包裹实施控制下交付{k}次，查获可疑物品{n}克",
}
_TI_METHODS: Final = {
    "COMMUNICATIONS_INTERCEPT": "通信数据调取",
    "LOCATION_TRACKING": "基站定位与轨迹分析",
    "RECORD_MONITORING": "电子数据提取",
    "PREMISES_MONITORING": "隐蔽摄录设备",
    "COVERT_INVESTIGATION": "化装侦查",
    "CONTROLLED_DELIVERY": "物流跟踪",
}


def add_technical_investigation(state: CaseState) -> None:
    """1–3 technical-investigation measures on the primary suspect (special cases only)."""
    rng, header = state.rng, state.header
    approver = TI_APPROVERS[header.division]
    kinds = rng.sample(TI_MEASURE_TYPES, rng.randint(1, 3))
    for n, kind in enumerate(kinds):
        start = days_after(rng, header.filing_date, 1 + n, 15 + n)
        seq = 1 + (header.index * 31 + n) % 997
        # 刑事诉讼法 第151条: three months from the approval, extensions of at most three
        # months each (a stream of its own).
        extra = rng_for(state.seed, header.index, f"ti{n}")
        extensions = extra.choices((0, 1, 2), weights=(70, 20, 10))[0]
        alias = f"侦查员（化名：{extra.choice('甲乙丙丁')}某）"
        state.tis.append(
            {
                "ti_id": state.next_id("technical_investigation"),
                "case_id": state.suspects[0]["case_id"],
                "target_person_id": state.suspects[0]["person_id"],
                "measure_type": kind,
                "approval_number": f"{TI_APPROVAL_PREFIX[approver]}〔{start.year}〕{seq}号",
                "approved_by": approver,
                "approval_date": iso(start - timedelta(days=extra.randint(0, 3))),
                "start_date": iso(start),
                "end_date": iso(start + timedelta(days=89 + 90 * extensions)),
                "extension_count": extensions,
                "operative_identity": alias if kind == "COVERT_INVESTIGATION" else None,
                "technical_method": _TI_METHODS[kind],
                "material_summary": _TI_SUMMARIES[kind].format(
                    n=rng.randint(20, 900), k=rng.randint(1, 12)
                ),
            }
        )
