"""Delivery kinds (协同办案 文书送达) declared in ``policies/standard/deliveries/<code>.yaml``.

Contracts:

* A :class:`DeliveryKind` says which agency kinds send it (``senders``) to which agency kinds
  (``recipients``, plus ``copies`` 抄送), the resource type it carries (``resource``), the
  purpose each sender kind sends it under (``purposes``) and each recipient kind receives it
  under (``recipient_purposes``; the policy decision for the recipient is made for that
  purpose), its attachments, the answers the recipient may give, and its statutory time limit
  with the legal basis.
* A time limit's ``quote`` is the article's own words; the model checks that the period, written
  the way the law writes it (``七日``, ``一个月``, ``十五日``), appears in the quote, and that
  ``basis`` names one article (``刑事诉讼法 第91条`` or ``... 第172条第1款``) of a known law.
* ``counted_from`` is ``received`` (the recipient's duty runs from the delivery) or a date field
  of the carried record (e.g. ``effective_date``: 判决生效后十日以内); the loader checks the
  field. ``duty`` says who must act within the limit.
* Intrinsic consistency is checked here; references to agency kinds, resources, purposes and
  code tables are checked by the standard's loader (``gateway.standard.delivery_checks``).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

__all__ = [
    "ATTACHMENT_MEDIA_TYPES",
    "LAWS",
    "Answer",
    "AttachmentRule",
    "DeliveryKind",
    "Extension",
    "PerCaseLimit",
    "Period",
    "TimeLimit",
    "chinese_number",
]

#: Laws a time limit may cite (short names as used throughout the standard).
LAWS = ("刑事诉讼法", "社区矫正法", "监狱法")
#: Attachment media types the gateway can recognise by content (PDF and OFD).
ATTACHMENT_MEDIA_TYPES = ("application/pdf", "application/ofd")

_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
_Text = Annotated[str, Field(min_length=1)]
_Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
_Basis = Annotated[
    str, Field(pattern=r"^(" + "|".join(LAWS) + r") 第[1-9][0-9]*条(第[1-9][0-9]*款)?$")
]
_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """``n`` (1..99) as the law writes it: 7 -> 七, 10 -> 十, 15 -> 十五, 30 -> 三十."""
    if not 1 <= n <= 99:
        raise ValueError("only 1..99 are written")
    tens, units = divmod(n, 10)
    if tens == 0:
        return _DIGITS[units]
    head = "" if tens == 1 else _DIGITS[tens]
    return head + "十" + (_DIGITS[units] if units else "")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Answer(StrEnum):
    """A recipient's answer: 签收 (accepted) or 退回 (returned, with a reason)."""

    ACCEPTED = "accepted"
    RETURNED = "returned"


class Period(_Frozen):
    """A period of whole days or whole calendar months (exactly one of the two)."""

    days: Annotated[StrictInt, Field(ge=1, le=99)] | None = None
    months: Annotated[StrictInt, Field(ge=1, le=12)] | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Period:
        if (self.days is None) == (self.months is None):
            raise ValueError("a period has exactly one of days or months")
        return self

    @property
    def words(self) -> str:
        """The period as the law writes it: ``七日``, ``一个月``."""
        if self.days is not None:
            return chinese_number(self.days) + "日"
        return chinese_number(self.months or 0) + "个月"

    def after(self, start: datetime) -> datetime:
        """``start`` plus this period (months: same day of month, clamped to the month's end)."""
        if self.days is not None:
            return start + timedelta(days=self.days)
        months = start.month - 1 + (self.months or 0)
        year, month = start.year + months // 12, months % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day)

    def after_date(self, start: date) -> date:
        """``start`` plus this period, for a date."""
        return self.after(datetime(start.year, start.month, start.day)).date()


def _quote_has(quote: str, words: str, what: str) -> None:
    if words not in quote:
        raise ValueError(f"{what} {words!r} is not in the quoted words of the article")


class _Cited(_Frozen):
    basis: _Basis
    quote: _Text


class Extension(_Cited):
    """An extension the law allows (an event with its basis when applied).

    ``by`` adds a period to the current deadline; ``to`` sets the whole limit (counted from the
    same start) — exactly one of them.
    """

    code: _Name
    name: _Text
    by: Period | None = None
    to: Period | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Extension:
        if (self.by is None) == (self.to is None):
            raise ValueError("an extension has exactly one of by or to")
        period = self.by or self.to
        assert period is not None
        _quote_has(self.quote, period.words, "the extension")
        return self


class TimeLimit(_Cited):
    """A statutory time limit: ``period`` from ``counted_from``, a duty of ``duty``."""

    name: _Text
    period: Period
    counted_from: Annotated[str, Field(pattern=r"^(received|[a-z][a-z0-9_]*)$")] = "received"
    duty: Literal["recipient", "sender"]
    extensions: tuple[Extension, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> TimeLimit:
        _quote_has(self.quote, self.period.words, "the period")
        codes = [e.code for e in self.extensions]
        if len(set(codes)) != len(codes):
            raise ValueError("an extension code is listed twice")
        return self

    def extension(self, code: str) -> Extension:
        """Extension by code; ``KeyError`` if unknown."""
        for ext in self.extensions:
            if ext.code == code:
                return ext
        raise KeyError(code)


class PerCaseLimit(_Cited):
    """At most ``count`` deliveries of the kind per case (补充侦查以二次为限)."""

    count: Annotated[StrictInt, Field(ge=1, le=9)]

    @model_validator(mode="after")
    def _consistent(self) -> PerCaseLimit:
        _quote_has(self.quote, chinese_number(self.count) + "次", "the count")
        return self


class AttachmentRule(_Frozen):
    """Attachments a delivery may carry: media types (checked by content), count and size."""

    media_types: tuple[Literal["application/pdf", "application/ofd"], ...] = Field(min_length=1)
    max_count: Annotated[StrictInt, Field(ge=1, le=20)]
    max_bytes: Annotated[StrictInt, Field(ge=1, le=20 * 1024 * 1024)]
    required: StrictBool = False


def _unique(values: tuple[str, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists a value twice")


class DeliveryKind(_Frozen):
    """One kind of delivery between agencies (see module docstring)."""

    code: _Name
    name: _Text
    document: _Text
    description: _Text
    legal_basis: _Text
    senders: tuple[_Name, ...] = Field(min_length=1)
    recipients: tuple[_Name, ...] = Field(min_length=1)
    copies: tuple[_Name, ...] = ()
    resource: _Name
    purposes: dict[_Name, _Code] = Field(min_length=1)
    recipient_purposes: dict[_Name, _Code] = Field(default_factory=dict)
    attachments: AttachmentRule | None = None
    answers: tuple[Answer, ...] = Field(min_length=1)
    time_limit: TimeLimit | None = None
    related_limits: tuple[TimeLimit, ...] = ()
    per_case: PerCaseLimit | None = None
    on_accept_stage: _Code | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DeliveryKind:
        for values, what in (
            (self.senders, "senders"),
            (self.recipients, "recipients"),
            (self.copies, "copies"),
            (tuple(a.value for a in self.answers), "answers"),
        ):
            _unique(values, what)
        if set(self.copies) & set(self.recipients):
            raise ValueError("an agency kind is both a recipient and a copy")
        if set(self.purposes) != set(self.senders):
            raise ValueError("purposes names one purpose for each sender kind, and no other")
        if not set(self.recipient_purposes) <= set(self.recipients) | set(self.copies):
            raise ValueError("recipient_purposes names only recipient and copy kinds")
        if self.related_limits and self.time_limit is None:
            raise ValueError("related_limits need a time_limit")
        return self

    def purpose_for(self, sender_kind: str) -> str:
        """The purpose a sender of ``sender_kind`` sends this kind under; ``KeyError`` if none."""
        return self.purposes[sender_kind]

    def recipient_purpose(self, recipient_kind: str) -> str | None:
        """The purpose a recipient (or copy) of ``recipient_kind`` receives this kind under.

        ``None``: the standard declares none yet, and the kind cannot go to that kind.
        """
        return self.recipient_purposes.get(recipient_kind)

    @property
    def limits(self) -> tuple[TimeLimit, ...]:
        """``time_limit`` (the one ``due_at`` follows) and then the related limits."""
        return (() if self.time_limit is None else (self.time_limit,)) + self.related_limits
