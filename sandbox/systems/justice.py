"""Sample justice-administration (司法行政, 社区矫正) system: Chinese JSON keys, dates as
``yyyy年MM月dd日``, its own correction-type codes and Chinese status words, envelope
``{"status", "data"}``, API key in ``X-Sfj-Token``. See NATIVE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from starlette.applications import Starlette

from sandbox.generator import Dataset, Record
from sandbox.systems.auth import Credentials, api_key
from sandbox.systems.common import (
    DEFAULT_INDEX_LIMIT,
    NativeRecord,
    NativeResource,
    Renderer,
    SystemSpec,
    build_app,
    json_bytes,
    set_field,
    text,
)
from sandbox.systems.inbound import Header, InboundSpec

API_KEY_HEADER: Final = "X-Sfj-Token"
TYPE_CODES: Final = {
    "PUBLIC_SURVEILLANCE": "01",
    "PROBATION": "02",
    "PAROLE": "03",
    "TEMPORARY_OUTSIDE_EXECUTION": "04",
}
STATUS_WORDS: Final = {"ACTIVE": "在矫", "COMPLETED": "解矫", "REVOKED": "撤销"}


def chinese_date(value: str) -> str:
    """ISO ``2021-03-05`` → ``2021年03月05日``."""
    year, month, day = value.split("-")
    return f"{year}年{month}月{day}日"


def correction_converter(dataset: Dataset) -> Callable[[Record], NativeRecord]:
    """community_correction → 矫正对象 record; looks up the person's name."""

    def convert(r: Record) -> NativeRecord:
        person = dataset.get("person", text(r, "person_id"))
        return {
            "矫正编号": text(r, "correction_id"),
            "案件编号": text(r, "case_id"),
            "人员编号": text(r, "person_id"),
            "姓名": text(person, "name") if person else None,
            "矫正类别": TYPE_CODES[text(r, "correction_type")],
            "矫正起始日期": chinese_date(text(r, "start_date")),
            "矫正期满日期": chinese_date(text(r, "end_date")),
            "负责司法局": text(r, "supervising_office"),
            "居住地区划": text(r, "division"),
            "矫正状态": STATUS_WORDS[text(r, "status")],
        }

    return convert


def _page(_: str, records: Sequence[NativeRecord], next_after: str | None) -> bytes:
    return json_bytes({"status": "success", "data": records, "next": next_after})


RENDERER: Final = Renderer(
    media_type="application/json; charset=utf-8",
    one=lambda _, record: json_bytes({"status": "success", "data": record}),
    page=_page,
    error=lambda status, message: json_bytes(
        {"status": "error", "errcode": status, "message": message}
    ),
)


#: 送达接收: {"送达编号", "文书类型", "发送单位", "接收单位", "案号", "文书内容", "附件"}; the
#: answer names the 签收编号 (NATIVE.md).
INBOUND: Final = InboundSpec(
    path="/sqjz/api/sdjs",
    xml=False,
    id_path=("送达编号",),
    answer=lambda receipt: json_bytes({"status": "success", "data": {"签收编号": receipt}}),
    receipt_prefix="SFQS",
    world=Header(
        ("文书类型",),
        ("接收单位",),
        ("案号",),
        {"01": "community_correction_entry", "02": "judgment_execution"},
    ),
)


def spec(dataset: Dataset) -> SystemSpec:
    """The justice system description (its converter needs the dataset)."""
    resource = NativeResource(
        "community_correction",
        "/sqjz/api/jzdx",
        {"ajbh": "case_id", "rybh": "person_id"},
        correction_converter(dataset),
        set_field("矫正类别", "99"),
    )
    return SystemSpec("justice", (resource,), RENDERER, "num", 20, 100, inbound=INBOUND)


def create_app(
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
) -> Starlette:
    """Justice app; clients send ``X-Sfj-Token: <credentials.secret>``."""
    return build_app(
        spec(dataset),
        dataset,
        api_key(API_KEY_HEADER, credentials.secret),
        faults_enabled=faults_enabled,
        index_limit=index_limit,
    )
