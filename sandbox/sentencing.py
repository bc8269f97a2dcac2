"""Trial and execution part of a synthetic case: judgments, prison, commutation/parole and
community corrections. Prison-side applications are cut at ``AS_OF`` here (their statuses
depend on it); everything else is cut by the generator.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from sandbox.codes import (
    CASE_CATEGORIES,
    CATEGORY_DANGEROUS_DRIVING,
    CORRECTION_OFFICES,
    COURT_CASE_CODES,
    INTERMEDIATE_COURT,
    PRISONS,
)
from sandbox.flow import AS_OF, CaseState, add_months, days_after, iso
from sandbox.header import rng_for
from sandbox.records import JudgmentRecord, PersonRecord

_ONE_DAY: Final = timedelta(days=1)


class Sentence:
    """Outcome for one defendant."""

    __slots__ = ("penalty", "probation", "term", "verdict")

    def __init__(self, verdict: str, penalty: str, term: int | None, probation: int | None):
        self.verdict = verdict
        self.penalty = penalty
        self.term = term
        self.probation = probation


def _months_text(months: int) -> str:
    years, rest = divmod(months, 12)
    return (f"{years}年" if years else "") + (f"{rest}个月" if rest else "")


def _summary(name: str, charge: str, s: Sentence) -> str:
    if s.verdict == "NOT_GUILTY":
        return f"被告人{name}无罪。"
    if s.verdict == "EXEMPT":
        return f"被告人{name}犯{charge}，免予刑事处罚。"
    if s.penalty == "LIFE":
        text = "判处无期徒刑，剥夺政治权利终身"
    elif s.penalty == "DEATH_WITH_REPRIEVE":
        text = "判处死刑，缓期二年执行，剥夺政治权利终身"
    else:
        label = {
            "FIXED_TERM": "有期徒刑",
            "CRIMINAL_DETENTION": "拘役",
            "PUBLIC_SURVEILLANCE": "管制",
        }[s.penalty]
        text = f"判处{label}{_months_text(s.term or 0)}"
        if s.probation:
            text += f"，缓刑{_months_text(s.probation)}"
    return f"被告人{name}犯{charge}，{text}。"


def _sentence(state: CaseState, k: int) -> Sentence:
    """Sentence of defendant ``k`` (0 = principal)."""
    rng, header = state.rng, state.header
    category = CASE_CATEGORIES[header.category]
    if not header.complete:
        draw = rng.random()
        if draw < 0.01:
            return Sentence("NOT_GUILTY", "NONE", None, None)
        if draw < 0.03:
            return Sentence("EXEMPT", "NONE", None, None)
    if header.special == "sealed_juvenile":
        term = rng.randint(6, 36)
        return Sentence("GUILTY", "FIXED_TERM", term, rng.randint(max(term, 12), 60))
    if header.special == "unsealed_minor":
        return Sentence("GUILTY", "FIXED_TERM", rng.randint(72, 120), None)
    if header.category == CATEGORY_DANGEROUS_DRIVING:
        term = rng.randint(1, 6)
        probation = rng.randint(max(term, 2), 12) if rng.random() < 0.6 else None
        return Sentence("GUILTY", "CRIMINAL_DETENTION", term, probation)
    low, high = category.min_term, category.max_term
    if state.serious:
        draw = rng.random()
        if category.charge == "故意杀人罪" and draw < 0.1:
            return Sentence("GUILTY", "DEATH_WITH_REPRIEVE", None, None)
        if category.charge in ("故意杀人罪", "贩卖毒品罪") and draw < 0.25:
            return Sentence("GUILTY", "LIFE", None, None)
        low = (low + high) // 2
    else:
        draw = rng.random()
        if low <= 6 and draw < 0.05:
            return Sentence("GUILTY", "PUBLIC_SURVEILLANCE", rng.randint(3, 24), None)
        if low <= 6 and draw < 0.13:
            term = rng.randint(1, 6)
            probation = rng.randint(max(term, 2), 12) if rng.random() < 0.5 else None
            return Sentence("GUILTY", "CRIMINAL_DETENTION", term, probation)
    term = rng.randint(low, high)
    if k > 0:
        term = max(6, int(term * rng.uniform(0.5, 0.9)))
    if term <= 36 and not state.serious and rng.random() < 0.45:
        return Sentence("GUILTY", "FIXED_TERM", term, rng.randint(max(term, 12), 60))
    return Sentence("GUILTY", "FIXED_TERM", max(term, 8), None)


def _close_measures(state: CaseState, person_id: str, day: date) -> None:
    for record in [m for m in state.open_measures if m["person_id"] == person_id]:
        record["end_date"] = iso(max(day, date.fromisoformat(record["start_date"])))
        state.open_measures.remove(record)


def correction_office(state: CaseState, person: PersonRecord) -> str:
    """执行地社区矫正机构: where the person lives (社区矫正法 第17条), where the sandbox has an
    office there; otherwise (a county without a sample 司法局) the office of the case's county."""
    return CORRECTION_OFFICES.get(person["residence_division"], "SF" + state.header.division)


def _correction(state: CaseState, person: PersonRecord, kind: str, start: date, end: date) -> None:
    rng = state.rng
    status = "COMPLETED" if end < AS_OF else "ACTIVE"
    last_day = min(end, AS_OF)
    if not state.header.complete and rng.random() < 0.03 and last_day > start + timedelta(30):
        end = days_after(rng, start, 30, (last_day - start).days)
        status = "REVOKED"
    state.exec_ends.append(end)
    office = correction_office(state, person)
    state.corrections.append(
        {
            "correction_id": state.next_id("community_correction"),
            "case_id": person["case_id"],
            "person_id": person["person_id"],
            "correction_type": kind,
            "start_date": iso(start),
            "end_date": iso(end),
            "supervising_office": office,
            "division": office[2:],
            "status": status,
        }
    )


def _imprison(
    state: CaseState,
    person: PersonRecord,
    number: str,
    s: Sentence,
    judged: date,
    effective: date,
    prison: str,
) -> None:
    rng = state.rng
    admitted = days_after(rng, effective, 5, 30)
    _close_measures(state, person["person_id"], admitted)
    start = state.custody_start or judged
    end = add_months(start, s.term) - _ONE_DAY if s.term is not None else None
    paroled: date | None = None
    if end is not None and s.term is not None and s.term >= 36:
        end, paroled = _applications(state, person, admitted, start, end)
    if paroled is not None and paroled <= AS_OF:
        status = "PAROLED"
    elif end is not None and end < AS_OF:
        status = "RELEASED"
    else:
        status = "IN_CUSTODY"
    state.exec_ends.append(end or date.max)
    state.executions.append(
        {
            "execution_id": state.next_id("sentence_execution"),
            "case_id": person["case_id"],
            "person_id": person["person_id"],
            "court_case_number": number,
            "prison": prison,
            "admission_date": iso(admitted),
            "sentence_start": iso(start),
            "sentence_end": iso(end) if end else None,
            "status": status,
        }
    )


def _applications(
    state: CaseState, person: PersonRecord, admitted: date, start: date, end: date
) -> tuple[date, date | None]:
    """Commutation/parole applications; returns (current sentence end, parole date)."""
    rng = state.rng
    filed = add_months(admitted, rng.randint(18, 30))
    for _ in range(3):
        if filed > AS_OF or filed > add_months(end, -6):
            break
        half_served = filed >= start + (end - start) / 2
        kind = "PAROLE" if half_served and rng.random() < 0.5 else "COMMUTATION"
        ruled = days_after(rng, filed, 20, 60)
        reduction = rng.randint(6, 12) if kind == "COMMUTATION" else None
        pending = ruled > AS_OF
        approved = rng.random() < (0.8 if kind == "COMMUTATION" else 0.7)
        seq = 1 + (state.header.index * 13 + len(state.applications)) % 2999
        state.applications.append(
            {
                "application_id": state.next_id("commutation_parole"),
                "case_id": person["case_id"],
                "person_id": person["person_id"],
                "kind": kind,
                "application_date": iso(filed),
                "reduction_months": reduction,
                "court_case_number": f"({filed.year})宁01刑更{seq}号",
                "ruling": "PENDING" if pending else ("APPROVED" if approved else "REJECTED"),
                "ruling_date": None if pending else iso(ruled),
            }
        )
        if pending:
            break
        if approved and reduction is not None:
            end = add_months(end, -reduction)
        if approved and kind == "PAROLE":
            paroled = days_after(rng, ruled, 1, 7)
            if paroled <= AS_OF:
                _correction(state, person, "PAROLE", paroled, end)
            else:
                state.exec_ends.append(end)
            return end, paroled
        filed = add_months(ruled, rng.randint(12, 24))
    return end, None


def _judgment(
    state: CaseState,
    person: PersonRecord,
    number: str,
    court: str,
    s: Sentence,
    judged: date,
    effective: date | None,
    basis: str | None,
) -> JudgmentRecord:
    charge = CASE_CATEGORIES[state.header.category].charge
    record: JudgmentRecord = {
        "judgment_id": state.next_id("judgment"),
        "case_id": person["case_id"],
        "court_case_number": number,
        "court": court,
        "defendant_id": person["person_id"],
        "defendant_name": person["name"],
        "verdict": s.verdict,
        "penalty_type": s.penalty,
        "term_months": s.term,
        "probation_months": s.probation,
        "judgment_date": iso(judged),
        "effective_date": iso(effective) if effective else None,
        "second_instance_basis": basis,
        "executing_agency": None,
        "execution_notice_date": None,
        "summary": _summary(person["name"], charge, s),
    }
    state.judgments.append(record)
    return record


def _second_instance(state: CaseState) -> str | None:
    """上诉 (刑事诉讼法 第227条) or 抗诉 (第228条) of an ordinary district-court judgment.

    Its own stream, so that the rest of the case is drawn as before. Cases tried first by the
    intermediate court would go to the high court, which is no agency of the sample: never.
    """
    if state.header.complete or state.court == INTERMEDIATE_COURT:
        return None
    draw = rng_for(state.seed, state.header.index, "appeal").random()
    return "APPEAL" if draw < 0.12 else "PROTEST" if draw < 0.15 else None


def try_and_execute(state: CaseState) -> None:
    """First-instance judgment of every defendant, a second instance if appealed or
    protested, then execution of the effective judgment's penalties."""
    rng, header = state.rng, state.header
    assert state.indicted_on is not None
    judged = days_after(rng, state.indicted_on, 15, 90)
    effective = judged + timedelta(days=11)
    seq = 1 + (header.index * 6007) % 9973
    number = f"({state.indicted_on.year}){COURT_CASE_CODES[state.court]}刑初{seq}号"
    state.court_number = number
    basis = _second_instance(state)
    appeal = rng_for(state.seed, header.index, "second-instance")
    final_judged = judged
    final_number = number
    if basis is not None:
        # The second-instance judgment is final when pronounced (刑事诉讼法 第259条).
        final_judged = days_after(appeal, judged, 30, 90)
        effective = final_judged
        final_number = f"({judged.year}){COURT_CASE_CODES[INTERMEDIATE_COURT]}刑终{seq}号"
    for k, person in enumerate(state.suspects):
        s = _sentence(state, k)
        first = _judgment(
            state, person, number, state.court, s, judged, None if basis else effective, None
        )
        final = first
        if basis is not None:
            if s.term is not None and appeal.random() < 0.25:
                s = Sentence(
                    s.verdict, s.penalty, max(1, s.term - appeal.randint(1, 6)), s.probation
                )
            final = _judgment(
                state, person, final_number, INTERMEDIATE_COURT, s, final_judged, effective, basis
            )
        agency = _execute(state, person, final_number, s, final_judged, effective)
        if agency is not None:
            final["executing_agency"] = agency
            final["execution_notice_date"] = iso(effective + timedelta(days=3))


def _execute(
    state: CaseState, person: PersonRecord, number: str, s: Sentence, judged: date, effective: date
) -> str | None:
    """Execute the effective sentence; returns the executing agency (交付执行机关), if any."""
    rng = state.rng
    enters = days_after(rng, effective, 3, 10)
    if s.penalty == "NONE":
        _close_measures(state, person["person_id"], judged)
        return None
    if s.probation is not None:
        _close_measures(state, person["person_id"], judged)
        _correction(state, person, "PROBATION", enters, add_months(enters, s.probation) - _ONE_DAY)
        return correction_office(state, person)
    if s.penalty == "PUBLIC_SURVEILLANCE" and s.term is not None:
        _close_measures(state, person["person_id"], judged)
        end = add_months(enters, s.term) - _ONE_DAY
        _correction(state, person, "PUBLIC_SURVEILLANCE", enters, end)
        return correction_office(state, person)
    if s.penalty == "CRIMINAL_DETENTION" and s.term is not None:
        # 拘役 is executed by the police (detention centre): no prison or correction record.
        _close_measures(state, person["person_id"], effective)
        state.exec_ends.append(add_months(state.custody_start or judged, s.term))
        return state.police
    if (
        s.penalty == "FIXED_TERM"
        and s.term is not None
        and s.term <= 60
        and not state.header.complete
        and rng.random() < 0.03
    ):
        _close_measures(state, person["person_id"], judged)
        end = add_months(state.custody_start or judged, s.term) - _ONE_DAY
        if end > enters:
            _correction(state, person, "TEMPORARY_OUTSIDE_EXECUTION", enters, end)
            return correction_office(state, person)
        return None
    # 交付执行 names the prison; drawn from a stream of its own.
    prison = rng_for(state.seed, state.header.index, "prison:" + person["person_id"]).choice(
        PRISONS
    )
    if s.penalty == "FIXED_TERM" and s.term is not None and state.custody_start is not None:
        end = add_months(state.custody_start, s.term) - _ONE_DAY
        if end - effective <= timedelta(days=90):
            # 剩余刑期在三个月以下的，由看守所代为执行 (刑事诉讼法 第264条第2款; 监狱法 第15条).
            _close_measures(state, person["person_id"], end)
            state.exec_ends.append(end)
            return state.police
    _imprison(state, person, number, s, judged, effective, prison)
    return prison
