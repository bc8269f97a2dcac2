"""Working days from the shipped holiday calendar (国办发明电〔2025〕7号)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.settings import REPO_ROOT
from gateway.sharing.calendar import CalendarError, load_calendar

CALENDAR = load_calendar(REPO_ROOT / "policies" / "calendar" / "holidays.yaml")


def test_weekdays_count_and_weekends_do_not() -> None:
    # Monday 2026-12-07 + 5 working days = Monday 2026-12-14.
    assert CALENDAR.add_working_days(date(2026, 12, 7), 5) == date(2026, 12, 14)
    assert CALENDAR.add_working_days(date(2026, 12, 11), 1) == date(2026, 12, 14)


def test_national_day_holiday_and_its_working_saturday() -> None:
    # Applied on Wednesday 30 September: 1-7 October are off, Saturday 10 October works.
    assert CALENDAR.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert CALENDAR.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert CALENDAR.add_working_days(date(2026, 9, 30), 4) == date(2026, 10, 12)


def test_spring_festival() -> None:
    # Friday 13 Feb; Saturday 14 Feb works; 15-23 off.
    assert CALENDAR.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert CALENDAR.add_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)


def test_due_at_is_the_end_of_the_last_working_day_in_china_standard_time() -> None:
    # 23:30 UTC on Sunday 6 December is 07:30 CST on Monday 7 December.
    due = CALENDAR.due_at(datetime(2026, 12, 6, 23, 30, tzinfo=UTC), 5)
    assert due == datetime(2026, 12, 14, 16, 0, tzinfo=UTC)  # 24:00 CST on Monday 14th
    with pytest.raises(ValueError, match="aware"):
        CALENDAR.due_at(datetime(2026, 12, 6), 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("years: [2026]\nholidays: [2027-01-01]\n", "not listed"),
        ("years: [2026]\nworking_days: [2026-12-07]\n", "not a weekend"),
        ("years: [2026]\nholidays: [2026-12-05]\nworking_days: [2026-12-05]\n", "both"),
        ("years: 2026\n", "years"),
        ("- 1\n", "mapping"),
        ("years: [2026]\nholidays: [x]\n", "dates"),
    ],
)
def test_bad_calendars_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "holidays.yaml"
    path.write_text(text)
    with pytest.raises(CalendarError, match=message):
        load_calendar(path)
