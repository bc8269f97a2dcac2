"""Per-case header: the cheap, independently derivable facts of case ``index``.

Everything here is a pure function of ``(seed, index)``: it never looks at other cases, except
that a repeat offender's identity is re-derived from the *header* of an earlier case (which is
itself cheap), so any case can be built without generating the cases before it.

Special records (targets of the negative list) sit at fixed residues of the case index modulo
:data:`SPECIAL_MODULUS`, independent of the seed: see :data:`SPECIAL_RESIDUES`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sandbox.codes import (
    CASE_CATEGORIES,
    CASE_DIVISION_WEIGHTS,
    CASE_DIVISIONS,
    CATEGORY_CHILD_MOLESTATION,
    CATEGORY_DRUGS,
    CATEGORY_RAPE,
    CATEGORY_STATE_SECRETS,
    POLICE_SUBUNITS,
    SEX_MALE,
)
from sandbox.people import Identity, age_on, make_identity, shift_years

SPECIAL_MODULUS: Final = 100
#: kind → residues of ``index % SPECIAL_MODULUS``; the residues of different kinds are disjoint.
#: * sealed_juvenile: suspect 01 aged 14–17 at filing, sentenced ≤ 5 years (probation) →
#:   is_minor, juvenile_record_sealed (刑诉法 第286条).            rate 2 %
#: * protected_witness: witness 01 has protected_witness (第64条).  rate 2 %
#: * technical_investigation: drug case with 1–3 technical_investigation rows (第150–154条). 4 %
#: * minor_sexual_offence_victim: 猥亵儿童/强奸 case, victim 01 a minor with
#:   sexual_offence_victim.                                          rate 2 %
#: * state_secret: 非法获取国家秘密案 with secrecy_mark SECRET/CONFIDENTIAL/TOP_SECRET. 1 %
#: * unsealed_minor: suspect 01 a minor sentenced to > 5 years (is_minor but NOT sealed). 1 %
#: * work_secret: a case its police system marks 工作秘密 (work_secret). 1 %
SPECIAL_RESIDUES: Final = {
    "sealed_juvenile": (3, 53),
    "protected_witness": (5, 55),
    "technical_investigation": (7, 32, 57, 82),
    "minor_sexual_offence_victim": (11, 61),
    "state_secret": (13,),
    "unsealed_minor": (17,),
    "work_secret": (71,),
}
_KIND_BY_RESIDUE: Final = {r: k for k, rs in SPECIAL_RESIDUES.items() for r in rs}
_SPECIAL_CATEGORIES: Final = {
    "sealed_juvenile": ("050200", "040200", "060110"),
    "protected_witness": ("060701", "050100", "040100"),
    "technical_investigation": (CATEGORY_DRUGS,),
    "minor_sexual_offence_victim": (CATEGORY_CHILD_MOLESTATION, CATEGORY_RAPE),
    "state_secret": (CATEGORY_STATE_SECRETS,),
    "unsealed_minor": ("050100",),
    "work_secret": ("050300",),
}
_FIRST_DAY: Final = date(2018, 1, 1)
_LAST_FILING: Final = date(2024, 12, 20)
_LAST_COMPLETE_FILING: Final = date(2021, 6, 30)
REPEAT_RATE: Final = 0.06
RECENT_RATE: Final = 0.3


def rng_for(seed: int, index: int, purpose: str) -> random.Random:
    """Independent PRNG for one purpose of one case (str seeds hash via SHA-512: stable)."""
    return random.Random(f"{seed}:{index}:{purpose}")


def special_kind(index: int) -> str | None:
    """The special-record kind of case ``index``, or None for an ordinary case."""
    return _KIND_BY_RESIDUE.get(index % SPECIAL_MODULUS)


@dataclass(frozen=True, slots=True)
class CaseHeader:
    """Facts fixed before the flow is simulated."""

    index: int
    special: str | None
    category: str
    division: str  # one of CASE_DIVISIONS
    police_unit: str  # 12-digit unit code (division + 6 digits)
    filing_date: date
    #: special cases are forced through the whole flow (no early stop, filed ≤ 2021-06).
    complete: bool
    repeat_of: int | None  # case whose primary suspect re-offends here


def case_header(seed: int, index: int) -> CaseHeader:
    """Derive the header of case ``index``; O(1) and independent of other cases."""
    rng = rng_for(seed, index, "header")
    special = special_kind(index)
    if special is not None:
        category = rng.choice(_SPECIAL_CATEGORIES[special])
    else:
        codes = [c for c, cat in CASE_CATEGORIES.items() if cat.weight > 0]
        category = rng.choices(codes, weights=[CASE_CATEGORIES[c].weight for c in codes])[0]
    division = rng.choices(CASE_DIVISIONS, weights=CASE_DIVISION_WEIGHTS)[0]
    if special:
        filing = _FIRST_DAY + timedelta(
            days=rng.randint(0, (_LAST_COMPLETE_FILING - _FIRST_DAY).days)
        )
    elif rng.random() < RECENT_RATE:  # recent cases, many of them still in progress
        filing = _LAST_FILING - timedelta(days=rng.randint(0, 364))
    else:
        filing = _FIRST_DAY + timedelta(days=rng.randint(0, (_LAST_FILING - _FIRST_DAY).days))
    repeat_of: int | None = None
    if special is None and index >= 10 and rng.random() < REPEAT_RATE:
        candidate = rng.randrange(0, index)
        if special_kind(candidate) is None and not _is_repeat(seed, candidate):
            repeat_of = candidate
    return CaseHeader(
        index=index,
        special=special,
        category=category,
        division=division,
        police_unit=division + rng.choice(POLICE_SUBUNITS),
        filing_date=filing,
        complete=special is not None,
        repeat_of=repeat_of,
    )


def _is_repeat(seed: int, index: int) -> bool:
    return case_header(seed, index).repeat_of is not None if index >= 10 else False


def own_primary_suspect(seed: int, header: CaseHeader) -> Identity:
    """The primary suspect this case would have if it were not a repeat offence."""
    rng = rng_for(seed, header.index, "suspect01")
    if header.special in ("sealed_juvenile", "unsealed_minor"):
        youngest, oldest = (14, 17) if header.special == "sealed_juvenile" else (16, 17)
    else:
        youngest, oldest = 18, 65
    born_after = shift_years(header.filing_date, -(oldest + 1)) + timedelta(days=1)
    born_before = shift_years(header.filing_date, -youngest)
    sexual = CASE_CATEGORIES[header.category].sexual
    sex = SEX_MALE if sexual or rng.random() < 0.85 else None
    return make_identity(
        rng,
        born_after=born_after,
        born_before=born_before,
        sex=sex,
        home_division=header.division,
    )


def primary_suspect(seed: int, header: CaseHeader) -> tuple[Identity, int | None]:
    """Identity of suspect 01 and, for a repeat offender, the earlier case it comes from.

    A repeat offender keeps the identity of the earlier case's primary suspect, provided he or
    she is 18–70 at this filing date (otherwise the case gets its own suspect).
    """
    if header.repeat_of is not None:
        earlier = case_header(seed, header.repeat_of)
        identity = own_primary_suspect(seed, earlier)
        sexual = CASE_CATEGORIES[header.category].sexual
        adult = 18 <= age_on(identity.birth_date, header.filing_date) <= 70
        if adult and (identity.sex == SEX_MALE or not sexual):
            return identity, header.repeat_of
    return own_primary_suspect(seed, header), None
