"""Sample prison (监狱) system: snake_case keys of its own, ``yyyy-MM-dd HH:mm:ss`` timestamps,
its own code values (ZY/SF/JS, JX/JS, DS/HZ/BH, gender M/F), envelope
``{"success", "result"}``, HTTP Basic auth. See NATIVE.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from starlette.applications import Starlette

from sandbox.generator import Dataset, Record
from sandbox.systems.auth import Credentials, basic
from sandbox.systems.common import (
    DEFAULT_INDEX_LIMIT,
    NativeRecord,
    NativeResource,
    Renderer,
    SystemSpec,
    build_app,
    json_bytes,
    number,
    opt_text,
    set_field,
    text,
)
from sandbox.systems.inbound import Header, InboundSpec

STATUS_CODES: Final = {"IN_CUSTODY": "ZY", "RELEASED": "SF", "PAROLED": "JS"}
KIND_CODES: Final = {"COMMUTATION": "JX", "PAROLE": "JS"}
RULING_CODES: Final = {"PENDING": "DS", "APPROVED": "HZ", "REJECTED": "BH"}
GENDER_CODES: Final = {"1": "M", "2": "F"}


def _timestamp(value: str | None) -> str | None:
    """ISO date → ``yyyy-MM-dd 00:00:00`` (None stays None)."""
    return f"{value} 00:00:00" if value else None


def execution_converter(dataset: Dataset) -> Callable[[Record], NativeRecord]:
    """sentence_execution → prison record; looks up name and sex of the offender."""

    def convert(r: Record) -> NativeRecord:
        person = dataset.get("person", text(r, "person_id"))
        return {
            "record_no": text(r, "execution_id"),
            "case_ref": text(r, "case_id"),
            "offender_ref": text(r, "person_id"),
            "offender_name": text(person, "name") if person else None,
            "gender": GENDER_CODES.get(text(person, "sex")) if person else None,
            "verdict_no": text(r, "court_case_number"),
            "prison_code": text(r, "prison"),
            "admitted_at": _timestamp(text(r, "admission_date")),
            "term_from": _timestamp(text(r, "sentence_start")),
            "term_to": _timestamp(opt_text(r, "sentence_end")),
            "custody_status": STATUS_CODES[text(r, "status")],
        }

    return convert


def application_to_native(r: Record) -> NativeRecord:
    """commutation_parole → prison application record."""
    return {
        "app_no": text(r, "application_id"),
        "case_ref": text(r, "case_id"),
        "offender_ref": text(r, "person_id"),
        "app_type": KIND_CODES[text(r, "kind")],
        "filed_at": _timestamp(text(r, "application_date")),
        "reduce_months": number(r, "reduction_months"),
        "ruling_no": text(r, "court_case_number"),
        "ruling_result": RULING_CODES[text(r, "ruling")],
        "ruled_at": _timestamp(opt_text(r, "ruling_date")),
    }


def _page(_: str, records: Sequence[NativeRecord], next_after: str | None) -> bytes:
    return json_bytes({"success": True, "result": {"records": records, "next_after": next_after}})


def _error(status: int, message: str) -> bytes:
    return json_bytes({"success": False, "error": {"code": status, "message": message}})


RENDERER: Final = Renderer(
    media_type="application/json",
    one=lambda _, record: json_bytes({"success": True, "result": record}),
    page=_page,
    error=_error,
)


#: Inbound documents: {"delivery_no", "doc_type", "sender_code", "receiver_code", "case_no",
#: "document", "files"}; the answer names the receipt_no (NATIVE.md).
INBOUND: Final = InboundSpec(
    path="/prison/api/inbound-documents",
    xml=False,
    id_path=("delivery_no",),
    answer=lambda receipt: json_bytes({"success": True, "result": {"receipt_no": receipt}}),
    receipt_prefix="JYQS",
    world=Header(
        ("doc_type",), ("receiver_code",), ("case_no",), {"EXEC_NOTICE": "judgment_execution"}
    ),
)


def spec(dataset: Dataset) -> SystemSpec:
    """The prison system description (its execution converter needs the dataset)."""
    resources = (
        NativeResource(
            "sentence_execution",
            "/prison/api/executions",
            {"case_ref": "case_id", "offender_ref": "person_id", "verdict_no": "court_case_number"},
            execution_converter(dataset),
            set_field("custody_status", "XX"),
        ),
        NativeResource(
            "commutation_parole",
            "/prison/api/applications",
            {"case_ref": "case_id", "offender_ref": "person_id", "ruling_no": "court_case_number"},
            application_to_native,
            set_field("app_type", "ZZ"),
        ),
    )
    return SystemSpec(
        "prison",
        resources,
        RENDERER,
        "max_results",
        100,
        1000,
        error_headers={401: {"WWW-Authenticate": 'Basic realm="prison"'}},
        inbound=INBOUND,
    )


def create_app(
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
) -> Starlette:
    """Prison app; clients use HTTP Basic ``credentials.client_id:credentials.secret``."""
    return build_app(
        spec(dataset),
        dataset,
        basic(credentials),
        faults_enabled=faults_enabled,
        index_limit=index_limit,
    )
