"""What a received delivery changes in the sample world (NATIVE.md, "What a received delivery
changes").

The sample data is a snapshot: a case under investigation never advances by itself. The real
police case system records that a case moved on when the next agency takes it; here the
systems that share one :class:`~sandbox.generator.Dataset` (``serve-all``) simulate that: when a
system receives a delivery, :func:`advance` moves the case in the shared data, so the owner's
case record (served by the public security system) reports the new stage and handling agency.

Only what the chain of deliveries needs, and deterministic: the stage each kind leaves the
case at (the kind's ``on_accept_stage`` in ``policies/standard/deliveries/*.yaml``, copied
here: the sample systems are the independent side and read no gateway file), the recipient
among the case's handling agencies, and for an indictment the court's 案号 if the case has
none. The change is made in place in the dataset's cached case record, which stays cached
while the systems run (the cache holds more cases than ``serve-all`` serves by default).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Final, cast

from sandbox.codes import COURT_CASE_CODES
from sandbox.generator import Dataset
from sandbox.records import case_index_of

__all__ = ["ADVANCES_TO", "advance", "court_case_number_for"]

#: Delivery kind → the stage a received delivery of it leaves the case at (its
#: ``on_accept_stage``); kinds without one leave the stage alone.
ADVANCES_TO: Final = {
    "arrest_request": "ARREST_REVIEW",
    "arrest_decision": "INVESTIGATION",
    "prosecution_transfer": "PROSECUTION_REVIEW",
    "supplementary_investigation": "INVESTIGATION",
    "indictment": "TRIAL",
    "judgment_execution": "EXECUTION",
    "community_correction_entry": "EXECUTION",
}
#: The year of the 案号 a received indictment gets: after the snapshot's reference date
#: (2024-12-31), so it never collides with a generated 案号.
_FILED_YEAR: Final = 2025


def court_case_number_for(index: int, court: str) -> str | None:
    """The first-instance 案号 the court gives case ``index`` (None for no known court)."""
    code = COURT_CASE_CODES.get(court)
    if code is None:
        return None
    return f"({_FILED_YEAR}){code}刑初{1 + (index * 6007) % 9973}号"


def _case_id(dataset: Dataset, case_number: str) -> str | None:
    index = dataset.index()
    for field in ("police_case_number", "court_case_number"):
        found = index.lookup("case", field, case_number)
        if found:
            return found[0]
    return None


def advance(dataset: Dataset, kind: str, to_agency: str, case_number: str) -> str | None:
    """Move the case named ``case_number`` on, as a received delivery of ``kind`` to
    ``to_agency`` does; returns the case id (None: no such case, nothing changed)."""
    case_id = _case_id(dataset, case_number)
    record = dataset.get("case", case_id) if case_id is not None else None
    if case_id is None or record is None:
        return None
    case = cast("MutableMapping[str, object]", record)  # the cached record, changed in place
    stage = ADVANCES_TO.get(kind)
    if stage is not None:
        case["stage"] = stage
    agencies = case.get("handling_agencies")
    current = [str(a) for a in agencies] if isinstance(agencies, list) else []
    if to_agency not in current:
        case["handling_agencies"] = [*current, to_agency]
    if kind == "indictment" and not case.get("court_case_number"):
        index = case_index_of("case", case_id)
        number = court_case_number_for(index, to_agency) if index is not None else None
        if number is not None:
            case["court_case_number"] = number
            dataset.index().add("case", "court_case_number", number, case_id)
    return case_id
