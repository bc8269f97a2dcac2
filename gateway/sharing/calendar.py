"""Working days, from the holiday calendar under ``policies/calendar/holidays.yaml``.

An application's ``due_at`` is the end (24:00 China Standard Time) of the N-th working day
after the day it was made: the owning agency answers within N working days (Shaanxi: 5). A
day of a year the calendar does not list counts Monday to Friday as working days, so a
missing year can only make a deadline earlier, never later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import yaml

__all__ = ["CST", "CalendarError", "WorkingCalendar", "load_calendar"]

CST = timezone(timedelta(hours=8), "CST")


class CalendarError(ValueError):
    """The calendar file cannot be used; the message says why."""


@dataclass(frozen=True)
class WorkingCalendar:
    years: frozenset[int]
    holidays: frozenset[date]
    working_weekend_days: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        if day in self.working_weekend_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day`` (``day`` itself never counts)."""
        if count < 1:
            raise ValueError("count working days from 1")
        found = 0
        while found < count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
        return day

    def due_at(self, applied_at: datetime, working_days: int) -> datetime:
        """End of the ``working_days``-th working day after ``applied_at``'s day (CST), in UTC."""
        if applied_at.tzinfo is None:
            raise ValueError("applied_at must be timezone-aware")
        last = self.add_working_days(applied_at.astimezone(CST).date(), working_days)
        return datetime.combine(last + timedelta(days=1), time(0), CST).astimezone(UTC)


def _days(values: object, name: str, path: Path) -> frozenset[date]:
    if values is None:
        return frozenset()
    if not isinstance(values, list) or not all(isinstance(v, date) for v in values):
        raise CalendarError(f"{path}: {name} must be a list of dates (YYYY-MM-DD)")
    return frozenset(values)


def load_calendar(path: Path) -> WorkingCalendar:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CalendarError(f"cannot read the holiday calendar {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise CalendarError(f"{path}: expected a mapping with years, holidays, working_days")
    years = doc.get("years")
    if not isinstance(years, list) or not all(isinstance(y, int) for y in years):
        raise CalendarError(f"{path}: years must be a list of years")
    holidays = _days(doc.get("holidays"), "holidays", path)
    working = _days(doc.get("working_days"), "working_days", path)
    for day in holidays | working:
        if day.year not in years:
            raise CalendarError(f"{path}: {day} is in a year not listed under years")
    if holidays & working:
        raise CalendarError(f"{path}: {min(holidays & working)} is both a holiday and working")
    for day in working:
        if day.weekday() < 5:
            raise CalendarError(f"{path}: working day {day} is not a weekend day")
    return WorkingCalendar(frozenset(years), holidays, working)
