"""Synthetic identities: Chinese names, GB 11643 citizen ID numbers, addresses, phones.

All functions take an explicit ``random.Random``; nothing here has global state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sandbox.codes import (
    DIVISIONS,
    ETHNICITY_WEIGHTS,
    OUT_OF_PROVINCE,
    OUT_OF_PROVINCE_RATE,
    PREFECTURES,
    SEX_FEMALE,
    SEX_MALE,
)

_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final = "10X98765432"


def id_check_char(first17: str) -> str:
    """Return the GB 11643-1999 check character for the first 17 digits of a citizen ID."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def id_number_valid(id_number: str) -> bool:
    """True if ``id_number`` is 18 chars with a correct GB 11643 check character."""
    if len(id_number) != 18 or not id_number[:17].isascii() or not id_number[:17].isdigit():
        return False
    return id_check_char(id_number[:17]) == id_number[17]


def make_id_number(division: str, birth: date, sex: str, rng: random.Random) -> str:
    """Build a valid ID number: division + yyyymmdd + 3-digit sequence (odd = male) + check."""
    seq = rng.randrange(0, 500) * 2 + (1 if sex == SEX_MALE else 0)
    first17 = f"{division}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


_HAN_SURNAMES: Final = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_HUI_SURNAMES: Final = "马马马马马马马杨杨李李王王丁丁海海金苏田纳沙锁虎拜哈白"
_MALE_CHARS: Final = "伟强军磊勇杰涛斌超明亮刚平辉鹏华飞鑫波宁健永福俊建国文学成志兵海"
_FEMALE_CHARS: Final = "芳娟敏静丽艳霞燕玲娜婷雪慧梅兰琴红英萍洁琳颖倩秀莉佳悦月"
_STREETS: Final = (
    "解放东街",
    "文化西街",
    "北京中路",
    "贺兰山路",
    "正源北街",
    "胜利南街",
    "民族北街",
    "长城中路",
    "朔方路",
    "宝湖路",
    "湖滨西街",
    "新华东街",
    "利民街",
    "开元东路",
)
_VILLAGES: Final = ("镇北村", "新华村", "红星村", "金沙村", "团结村", "双庄村", "杨和村")


@dataclass(frozen=True, slots=True)
class Identity:
    """A synthetic natural person (standard codes).

    ``address`` is where the person lives (现住址, in ``residence_division``, always in
    Ningxia); ``domicile_address`` is the household registration (户籍, in
    ``domicile_division``), elsewhere in China for some (the ID number's address code is it).
    """

    name: str
    sex: str
    ethnicity: str
    birth_date: date
    id_number: str
    domicile_division: str
    address: str
    phone: str
    residence_division: str
    domicile_address: str


def make_name(rng: random.Random, sex: str, ethnicity: str) -> str:
    """Return a plausible Chinese name (Hui surnames weighted towards 马, 丁, 海 …)."""
    surnames = _HUI_SURNAMES if ethnicity == "03" else _HAN_SURNAMES
    chars = _MALE_CHARS if sex == SEX_MALE else _FEMALE_CHARS
    given = "".join(rng.choice(chars) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(surnames) + given


def make_address(rng: random.Random, division: str) -> str:
    """Return a street address in ``division`` (GB/T 2260 county code)."""
    county = DIVISIONS[division]
    city = PREFECTURES[division[:4]]
    if county.endswith("区"):
        street = f"{rng.choice(_STREETS)}{rng.randint(1, 399)}号"
        if rng.random() < 0.7:
            room = f"{rng.randint(1, 28)}0{rng.randint(1, 4)}"
            street += f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元{room}室"
    else:
        street = f"{rng.choice(_VILLAGES)}{rng.randint(1, 12)}组{rng.randint(1, 99)}号"
    return f"宁夏回族自治区{city}{county}{street}"


def make_domicile_address(rng: random.Random, division: str) -> str:
    """Return a household-registration address in an out-of-province county."""
    province, city, county = OUT_OF_PROVINCE[division]
    return f"{province}{city}{county}{rng.choice(_STREETS)}{rng.randint(1, 399)}号"


def make_phone(rng: random.Random) -> str:
    """Return an 11-digit mainland mobile number."""
    return f"1{rng.choice('35789')}{rng.randrange(10**9):09d}"


def make_identity(
    rng: random.Random,
    *,
    born_after: date,
    born_before: date,
    sex: str | None,
    home_division: str,
) -> Identity:
    """Draw an identity born in [born_after, born_before] living in ``home_division`` (70 %)."""
    sex = sex or (SEX_MALE if rng.random() < 0.5 else SEX_FEMALE)
    ethnicity = rng.choices(list(ETHNICITY_WEIGHTS), weights=list(ETHNICITY_WEIGHTS.values()))[0]
    span = max((born_before - born_after).days, 0)
    birth = born_after + timedelta(days=rng.randint(0, span))
    division = home_division if rng.random() < 0.7 else rng.choice(list(DIVISIONS))
    name = make_name(rng, sex, ethnicity)
    id_number = make_id_number(division, birth, sex, rng)
    address = make_address(rng, division)
    phone = make_phone(rng)
    # Drawn last, so that everything above is what it was before persons had a 户籍 of
    # their own: some live in Ningxia with a household registration in another province.
    domicile, domicile_address = division, address
    if rng.random() < OUT_OF_PROVINCE_RATE:
        domicile = rng.choice(sorted(OUT_OF_PROVINCE))
        first17 = domicile + id_number[6:17]
        id_number = first17 + id_check_char(first17)
        domicile_address = make_domicile_address(rng, domicile)
    return Identity(
        name=name,
        sex=sex,
        ethnicity=ethnicity,
        birth_date=birth,
        id_number=id_number,
        domicile_division=domicile,
        address=address,
        phone=phone,
        residence_division=division,
        domicile_address=domicile_address,
    )


def age_on(birth: date, day: date) -> int:
    """Full years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def shift_years(day: date, years: int) -> date:
    """``day`` moved by whole years (29 Feb → 28 Feb)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)
