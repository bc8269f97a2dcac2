"""Statutory deadlines with a clock we control (issue 15, step 5's computation)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.deliveries.deadlines import CHINA, DeadlineError, due_at, extend, is_overdue
from gateway.standard import Standard

# 2026-03-02 09:00 in China.
RECEIVED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _cst(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=CHINA)


def test_seven_days_for_an_arrest_request_the_first_day_not_counted(standard: Standard) -> None:
    # 刑事诉讼法 第105条: the starting day is not counted; the 7th day ends at 24:00.
    due = due_at(standard.delivery_kind("arrest_request"), {}, RECEIVED)
    assert due == _cst(2026, 3, 10)
    assert not is_overdue("delivered", due, _cst(2026, 3, 9).replace(hour=23, minute=59))
    assert is_overdue("delivered", due, _cst(2026, 3, 10).replace(second=1))
    assert is_overdue("pending", due, _cst(2026, 3, 11))
    for answered in ("accepted", "returned", "failed"):
        assert not is_overdue(answered, due, _cst(2027, 1, 1))
    assert not is_overdue("pending", None, _cst(2099, 1, 1))


def test_a_received_time_late_at_night_utc_is_the_next_day_in_china(standard: Standard) -> None:
    late = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # 01:00 on 2 March in China
    assert due_at(standard.delivery_kind("arrest_request"), {}, late) == _cst(2026, 3, 10)


def test_one_month_and_the_fifteen_day_extension(standard: Standard) -> None:
    kind = standard.delivery_kind("prosecution_transfer")
    due = due_at(kind, {}, RECEIVED)
    assert due == _cst(2026, 4, 3)  # last day 2 April
    extended, extension = extend(kind, {}, RECEIVED, due, "major_complex")
    assert extended == _cst(2026, 4, 18)  # 2 April + 15 days = 17 April, ends at 24:00
    assert extension.basis == "刑事诉讼法 第172条第1款"
    with pytest.raises(DeadlineError, match="already applied"):
        extend(kind, {}, RECEIVED, extended, "major_complex", applied=["major_complex"])
    with pytest.raises(DeadlineError, match="unknown extension"):
        extend(kind, {}, RECEIVED, due, "because")


def test_trial_limit_up_to_three_months_then_higher_court(standard: Standard) -> None:
    kind = standard.delivery_kind("indictment")
    due = due_at(kind, {}, RECEIVED)
    assert due == _cst(2026, 5, 3)
    three, _ = extend(kind, {}, RECEIVED, due, "up_to_three_months")
    assert three == _cst(2026, 6, 3)
    six, _ = extend(kind, {}, RECEIVED, three, "higher_court_approval", ["up_to_three_months"])
    assert six == _cst(2026, 9, 3)
    # Setting the whole limit to three months after a longer deadline would shorten it.
    with pytest.raises(DeadlineError, match="would not extend"):
        extend(kind, {}, RECEIVED, six, "up_to_three_months")


def test_limits_counted_from_the_judgments_effective_date(standard: Standard) -> None:
    execution = standard.delivery_kind("judgment_execution")
    record = {"effective_date": "2026-02-20"}
    assert due_at(execution, record, RECEIVED) == _cst(2026, 3, 3)  # 10 days after 20 Feb
    entry = standard.delivery_kind("community_correction_entry")
    assert due_at(entry, record, RECEIVED) == _cst(2026, 2, 26)  # 5 days: already late
    assert is_overdue("pending", due_at(entry, record, RECEIVED), RECEIVED)
    for bad in ({}, {"effective_date": None}, {"effective_date": "2026-02-30"}):
        with pytest.raises(DeadlineError, match="effective_date"):
            due_at(execution, bad, RECEIVED)


def test_kinds_without_a_limit_have_no_deadline(standard: Standard) -> None:
    kind = standard.delivery_kind("custody_transfer")
    assert due_at(kind, {}, RECEIVED) is None
    with pytest.raises(DeadlineError, match="no statutory time limit"):
        extend(kind, {}, RECEIVED, RECEIVED, "x")
