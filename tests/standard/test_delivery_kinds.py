"""Delivery kinds declared in ``policies/standard/deliveries`` (issue 15, step 1)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.standard import Standard, StandardError, load_standard
from gateway.standard._yaml import read_yaml
from gateway.standard.delivery_kinds import Period, chinese_number

jsonschema_rs = pytest.importorskip("jsonschema_rs")

# The issue's contract: kind -> (senders, recipients, copies).
EXPECTED = {
    "arrest_request": ({"public_security"}, {"procuratorate"}, set()),
    "arrest_decision": ({"procuratorate"}, {"public_security"}, set()),
    "prosecution_transfer": ({"public_security"}, {"procuratorate"}, set()),
    "supplementary_investigation": ({"procuratorate"}, {"public_security"}, set()),
    "indictment": ({"procuratorate"}, {"court"}, set()),
    "judgment_execution": ({"court"}, {"prison", "public_security", "justice"}, {"procuratorate"}),
    "custody_transfer": ({"procuratorate", "court"}, {"public_security"}, set()),
    "community_correction_entry": ({"court"}, {"justice"}, {"procuratorate", "public_security"}),
    "prison_admission": ({"prison"}, {"court"}, {"procuratorate"}),
    "commutation_parole_proposal": ({"prison"}, {"court"}, {"procuratorate"}),
}

_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _read_numeral(text: str) -> int:
    """Independent reading of a Chinese numeral of 1..99 (十五 = 15, 三十 = 30, 十 = 10)."""
    if "十" not in text:
        return _NUMERALS[text]
    head, _, tail = text.partition("十")
    return (_NUMERALS[head] if head else 1) * 10 + (_NUMERALS[tail] if tail else 0)


def test_every_kind_of_the_issue_is_declared(standard: Standard) -> None:
    kinds = {k.code: k for k in standard.deliveries}
    assert set(kinds) == set(EXPECTED)
    for code, (senders, recipients, copies) in EXPECTED.items():
        kind = standard.delivery_kind(code)
        assert (set(kind.senders), set(kind.recipients), set(kind.copies)) == (
            senders,
            recipients,
            copies,
        ), code
        assert {a.value for a in kind.answers} == {"accepted", "returned"}
        assert standard.has_resource(kind.resource)
        for sender in kind.senders:
            assert standard.purpose(kind.purpose_for(sender)).needs_case
    with pytest.raises(KeyError):
        standard.delivery_kind("no_such_kind")


def test_every_recipient_has_the_purpose_it_receives_under(standard: Standard) -> None:
    for kind in standard.deliveries:
        for recipient in (*kind.recipients, *kind.copies):
            purpose = kind.recipient_purpose(recipient)
            assert purpose is not None, (kind.code, recipient)
            assert standard.purpose(purpose).needs_case
    assert standard.delivery_kind("prosecution_transfer").recipient_purpose("procuratorate") == (
        "PROSECUTION_REVIEW"
    )
    # 换押: the 看守所 receives the 换押证 for custody management (羁押管理).
    assert standard.delivery_kind("custody_transfer").recipient_purpose("public_security") == (
        "CUSTODY_MANAGEMENT"
    )


@pytest.mark.parametrize(
    ("code", "days", "months", "basis", "counted_from", "duty"),
    [
        ("arrest_request", 7, None, "刑事诉讼法 第91条第3款", "received", "recipient"),
        ("prosecution_transfer", None, 1, "刑事诉讼法 第172条第1款", "received", "recipient"),
        (
            "supplementary_investigation",
            None,
            1,
            "刑事诉讼法 第175条第3款",
            "received",
            "recipient",
        ),
        ("indictment", None, 2, "刑事诉讼法 第208条第1款", "received", "recipient"),
        ("judgment_execution", 10, None, "刑事诉讼法 第264条第1款", "effective_date", "sender"),
        ("community_correction_entry", 5, None, "社区矫正法 第20条", "effective_date", "sender"),
    ],
)
def test_statutory_time_limits(
    standard: Standard,
    code: str,
    days: int | None,
    months: int | None,
    basis: str,
    counted_from: str,
    duty: str,
) -> None:
    limit = standard.delivery_kind(code).time_limit
    assert limit is not None
    assert (limit.period.days, limit.period.months) == (days, months)
    assert (limit.basis, limit.counted_from, limit.duty) == (basis, counted_from, duty)


def test_kinds_without_a_statutory_day_limit_declare_none(standard: Standard) -> None:
    for code in ("arrest_decision", "custody_transfer", "prison_admission"):
        assert standard.delivery_kind(code).time_limit is None
    assert standard.delivery_kind("commutation_parole_proposal").time_limit is None


def test_extensions_and_related_limits(standard: Standard) -> None:
    transfer = standard.delivery_kind("prosecution_transfer").time_limit
    assert transfer is not None
    major = transfer.extension("major_complex")
    assert major.by == Period(days=15)
    assert major.to is None
    with pytest.raises(KeyError):
        transfer.extension("none")
    trial = standard.delivery_kind("indictment").time_limit
    assert trial is not None
    assert trial.extension("up_to_three_months").to == Period(months=3)
    assert trial.extension("higher_court_approval").by == Period(months=3)
    entry = standard.delivery_kind("community_correction_entry")
    assert [lim.period.days for lim in entry.limits] == [5, 10]
    sup = standard.delivery_kind("supplementary_investigation").per_case
    assert sup is not None
    assert (sup.count, sup.basis) == (2, "刑事诉讼法 第175条第3款")


def test_every_quote_holds_its_period_read_independently(standard: Standard) -> None:
    """The period read back from the article's words equals the declared number."""
    checked = 0
    for kind in standard.deliveries:
        for limit in kind.limits:
            periods = [(limit.period, limit.quote)]
            periods += [(e.by or e.to, e.quote) for e in limit.extensions]  # type: ignore[misc]
            for period, quote in periods:
                assert period is not None
                unit = "日" if period.days is not None else "个月"
                number = period.days if period.days is not None else period.months
                found = [
                    _read_numeral(quote[i - n : i])
                    for i in range(len(quote))
                    if quote.startswith(unit, i)
                    for n in (1, 2, 3)
                    if i - n >= 0 and all(c in "一二三四五六七八九十" for c in quote[i - n : i])
                ]
                assert number in found, (kind.code, quote)
                checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("n", "words"), [(1, "一"), (2, "二"), (7, "七"), (10, "十"), (15, "十五"), (30, "三十")]
)
def test_chinese_numbers(n: int, words: str) -> None:
    assert chinese_number(n) == words
    assert _read_numeral(words) == n


def test_chinese_number_range() -> None:
    for bad in (0, 100):
        with pytest.raises(ValueError, match=r"only 1\.\.99"):
            chinese_number(bad)
    assert all(_read_numeral(chinese_number(n)) == n for n in range(1, 100))


def test_periods_add_days_and_calendar_months() -> None:
    start = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
    assert Period(days=7).after(start) == datetime(2024, 2, 7, 9, 30, tzinfo=UTC)
    assert Period(months=1).after(start) == datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert Period(months=2).after(start) == datetime(2024, 3, 31, 9, 30, tzinfo=UTC)
    assert Period(months=1).after_date(date(2023, 12, 15)) == date(2024, 1, 15)
    assert Period(months=12).after_date(date(2023, 2, 28)) == date(2024, 2, 28)


def _edit(standard_copy: Path, code: str, old: str, new: str) -> Path:
    path = standard_copy / "deliveries" / f"{code}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _problems(standard_copy: Path) -> list[str]:
    with pytest.raises(StandardError) as info:
        load_standard(standard_copy)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("code", "old", "new", "message"),
    [
        ("arrest_request", "period: {days: 7}", "period: {days: 8}", "'八日' is not in the quoted"),
        ("arrest_request", "第91条第3款", "第91条第三款", "String should match pattern"),
        ("arrest_request", "第91条第3款", "第91条第3款 等", "String should match pattern"),
        (
            "custody_transfer",
            "recipients: [public_security]\n"
            "recipient_purposes: {public_security: CUSTODY_MANAGEMENT}",
            "recipients: [jc]\nrecipient_purposes: {jc: CUSTODY_MANAGEMENT}",
            "unknown agency",
        ),
        ("arrest_request", "resource: case", "resource: cases", "unknown resource type"),
        ("arrest_request", "{public_security: ARREST_REVIEW}", "{public_security: NOPE}", "NOPE"),
        ("arrest_request", "ARREST_REVIEW}", "ARREST_REVIEW, court: TRIAL}", "each sender"),
        ("arrest_request", "on_accept_stage: ARREST_REVIEW", "on_accept_stage: APPEAL", "stage"),
        ("arrest_request", "code: arrest_request", "code: arrest_req", "must match the file"),
        ("arrest_request", "answers: [accepted, returned]", "answers: [ok]", "answers"),
        ("arrest_request", "max_count: 5", "max_count: 0", "max_count"),
        ("arrest_request", "application/pdf,", "text/plain,", "media_types"),
        ("arrest_request", "period: {days: 7}", "period: {days: 7, months: 1}", "exactly one"),
        ("judgment_execution", "copies: [procuratorate]", "copies: [prison]", "both a recipient"),
        ("judgment_execution", "counted_from: effective_date", "counted_from: court", "date field"),
        ("prosecution_transfer", "by: {days: 15}", "by: {days: 16}", "'十六日' is not in"),
        ("prosecution_transfer", "by: {days: 15}", "to: {days: 15}\n      by: {days: 1}", "one of"),
        ("supplementary_investigation", "count: 2", "count: 3", "'三次' is not in"),
        ("prison_admission", "purposes: {prison: SENTENCE_EXECUTION}", "purposes: {}", "purposes"),
        ("indictment", "{court: TRIAL}", "{court: NOPE}", "unknown purpose 'NOPE'"),
        ("indictment", "{court: TRIAL}", "{prison: TRIAL}", "recipient and copy kinds"),
    ],
)
def test_broken_delivery_kinds_are_located(
    standard_copy: Path, code: str, old: str, new: str, message: str
) -> None:
    path = _edit(standard_copy, code, old, new)
    problems = _problems(standard_copy)
    mine = [p for p in problems if p.startswith(f"{path}:")]
    assert any(message in p for p in mine), problems
    # Every problem is located in the edited file, with a line number.
    assert mine == problems
    assert all(p.split(":")[1].isdigit() for p in mine)


def test_a_delivery_kind_in_the_wrong_place_is_refused(standard_copy: Path) -> None:
    nested = standard_copy / "deliveries" / "more"
    nested.mkdir()
    (nested / "x.yaml").write_text("code: x\n", encoding="utf-8")
    assert any("unexpected file" in p for p in _problems(standard_copy))


def test_the_directory_is_optional(standard_copy: Path) -> None:
    for path in (standard_copy / "deliveries").iterdir():
        path.unlink()
    (standard_copy / "deliveries").rmdir()
    assert load_standard(standard_copy).deliveries == ()


def test_version_covers_delivery_kinds(standard_copy: Path, standard: Standard) -> None:
    _edit(standard_copy, "custody_transfer", "name: 换押", "name: 换押手续")
    assert load_standard(standard_copy).version != standard.version


def _kind_validator(schema_path: Path) -> object:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    wrapper = copy.deepcopy(schema)
    del wrapper["oneOf"]
    wrapper["$ref"] = "#/$defs/deliveryKindFile"
    return jsonschema_rs.Draft202012Validator(wrapper)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(unknown=1),
        lambda d: d.pop("purposes"),
        lambda d: d.update(answers=["maybe"]),
        lambda d: d["time_limit"].update(basis="刑事诉讼法第91条"),
        lambda d: d["time_limit"].update(period={"days": 7, "months": 1}),
        lambda d: d["time_limit"].update(duty="court"),
        lambda d: d["attachments"].update(media_types=["image/png"]),
        lambda d: d["time_limit"].pop("quote"),
    ],
)
def test_schema_rejects_broken_delivery_kinds(
    standard_dir: Path, schema_path: Path, mutate: object
) -> None:
    data = read_yaml(standard_dir / "deliveries" / "arrest_request.yaml").data
    validator = _kind_validator(schema_path)
    assert validator.is_valid(data)  # type: ignore[attr-defined]
    mutate(data)  # type: ignore[operator]
    assert not validator.is_valid(data)  # type: ignore[attr-defined]
