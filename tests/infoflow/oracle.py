"""An independent reference oracle: what the shipped lists allow, from the sample data's truth.

It does not use the gateway's policy engine, index or CEL. It reads the permissions list as
data (who is granted which fields of which resource for which purpose, with which case binding
and reach) and restates the negative list's items by hand, as the law they cite reads:

* 保守国家秘密法 第2条、第28条: a case with a secrecy mark, and every record of it, is never
  shared; a request bound to such a case is answered as "not there".
* 刑事诉讼法 第286条: a sealed juvenile's records, on every resource about that person, only
  for judicial organs' case handling (police, procuratorate and court, for investigation,
  arrest review, prosecution review, trial and prior-record checks).
* 刑事诉讼法 第152条: technical-investigation records only for investigation, arrest review,
  prosecution review and trial; the material itself never.
* 刑事诉讼法 第64条 and 未成年人保护法 第110条: a protected witness's, and a minor sexual-offence
  victim's, identity fields are never released (also where another record repeats them:
  a judgment's defendant name).
* 个人信息保护法 第6条: outside case-handling purposes, 身份证号 keeps its first 6 and last 4
  characters, 出生日期 its year, and address and phone are redacted.
* Case binding: a record must belong to the bound case, unless a permission's reach covers it
  (the bound case's own persons, by 公民身份号码, in other cases).
* A filter is a read: only on fields released in the clear for the request, and a record whose
  filtered field would not be released in the clear for it is no match.

:data:`KNOWN_ITEMS` names the negative-list items this oracle restates; the suite fails if the
shipped list has any other, so that a new item cannot go untested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.generator import Dataset

KNOWN_ITEMS = frozenset(
    {
        "nl.juvenile.sealed-record",
        "nl.juvenile.sexual-offence-victim-identity",
        "nl.pi.id-number-partial",
        "nl.pi.contact-redacted",
        "nl.pi.birth-date-year",
        "nl.state-secret.case-record",
        "nl.state-secret.case-request",
        "nl.ti.material",
        "nl.ti.purpose-limit",
        "nl.witness.protected-identity",
    }
)
JUDICIAL_KINDS = frozenset({"public_security", "procuratorate", "court"})
SEALED_EXCEPTION_PURPOSES = frozenset(
    {"INVESTIGATION", "ARREST_REVIEW", "PROSECUTION_REVIEW", "TRIAL", "PRIOR_RECORD_CHECK"}
)
TI_PURPOSES = frozenset({"INVESTIGATION", "ARREST_REVIEW", "PROSECUTION_REVIEW", "TRIAL"})
FULL_ID_PURPOSES = TI_PURPOSES | {
    "PRIOR_RECORD_CHECK",
    "SENTENCE_EXECUTION",
    "COMMUNITY_CORRECTION",
}
CONTACT_PURPOSES = TI_PURPOSES | {"SENTENCE_EXECUTION", "COMMUNITY_CORRECTION"}
WITNESS_FIELDS = frozenset({"name", "id_number", "birth_date", "address", "phone"})
VICTIM_FIELDS = WITNESS_FIELDS | {"domicile_division"}
PERSON_REFS = {
    "judgment": ("defendant_id",),
    "arrest_review": ("person_id",),
    "coercive_measure": ("person_id",),
    "community_correction": ("person_id",),
    "commutation_parole": ("person_id",),
    "sentence_execution": ("person_id",),
    "technical_investigation": ("target_person_id",),
    "indictment": ("defendant_ids",),
    "prosecution_transfer": ("person_ids",),
}
# A field of one record that repeats a field of the person it refers to.
MIRRORS = {("judgment", "defendant_name"): ("defendant_id", "name")}


@dataclass(frozen=True)
class Ask:
    """One request as the oracle sees it."""

    agency: str
    kind: str
    purpose: str
    case_index: int | None  # the case named by X-Case-Number
    resource: str
    fields: frozenset[str] | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    record_id: str | None = None


@dataclass(frozen=True)
class Grant:
    id: str
    fields: frozenset[str]
    bound: bool
    reach: bool
    needs_defendant_filter: bool


@dataclass
class RequestVerdict:
    """``outcome``: allow, deny, not_found (concealed request) or filter_refused."""

    outcome: str
    withheld: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    grants: tuple[Grant, ...] = ()
    permitted: frozenset[str] = frozenset()
    masks: dict[str, str] = field(default_factory=dict)
    bound_case: str | None = None
    refused_filter: str | None = None


def _mask(kind: str, value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    if kind == "keep6-4":
        return text[:6] + "*" * (len(text) - 10) + text[-4:] if len(text) > 10 else "*" * len(text)
    if kind == "year":
        return text[:4]
    return "***"


class Oracle:
    def __init__(self, dataset: Dataset, policy_dir: Path) -> None:
        self.dataset = dataset
        standard = policy_dir / "standard"
        self.fields: dict[str, list[str]] = {}
        self.not_shared: dict[str, frozenset[str]] = {}
        for path in sorted((standard / "resources").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            self.fields[doc["name"]] = [f["name"] for f in doc["fields"]]
            self.not_shared[doc["name"]] = frozenset(
                f["name"] for f in doc["fields"] if f["sharing"] == "不予共享"
            )
        purposes = yaml.safe_load((standard / "purposes.yaml").read_text(encoding="utf-8"))
        self.needs_case = {p["code"]: p["needs_case"] for p in purposes["purposes"]}
        self.permissions: list[dict[str, Any]] = []
        for path in sorted((policy_dir / "permissions").glob("*.yaml")):
            self.permissions += yaml.safe_load(path.read_text(encoding="utf-8"))["permissions"]
        items = set()
        for path in sorted((policy_dir / "negative_list").glob("*.yaml")):
            for item in yaml.safe_load(path.read_text(encoding="utf-8"))["negative_list"]:
                items.add(item["id"])
        self.unknown_items = items ^ KNOWN_ITEMS

    # -- ground truth --------------------------------------------------------------------

    def case(self, index: int) -> Mapping[str, Any]:
        return self.dataset.case(index).case

    def identity_cases(self, id_number: str) -> list[int]:
        """Indices of the cases with a person of this 公民身份号码."""
        if not hasattr(self, "_identities"):
            found: dict[str, list[int]] = {}
            for index in range(len(self.dataset)):
                for person in self.dataset.case(index).records("person"):
                    found.setdefault(str(person["id_number"]), []).append(index)
            self._identities = found
        return self._identities.get(id_number, [])

    def record(self, resource: str, record_id: str) -> Mapping[str, Any] | None:
        return self.dataset.get(resource, record_id)

    def person(self, person_id: str) -> Mapping[str, Any] | None:
        return self.dataset.get("person", person_id)

    def case_of(self, case_id: str) -> Mapping[str, Any] | None:
        return self.dataset.get("case", case_id)

    def matching(self, resource: str, filters: Mapping[str, str]) -> list[Mapping[str, Any]]:
        """Every record of ``resource`` with these exact values, in id order."""
        out = [
            record
            for bundle in self.dataset
            for record in bundle.records(resource)
            if all(str(record.get(k)) == v for k, v in filters.items())
        ]
        return sorted(out, key=lambda r: str(r[self._id_field(resource)]))

    def _id_field(self, resource: str) -> str:
        ids = {
            "case": "case_id", "person": "person_id", "coercive_measure": "measure_id",
            "arrest_review": "review_id", "prosecution_transfer": "transfer_id",
            "indictment": "indictment_id", "judgment": "judgment_id",
            "sentence_execution": "execution_id", "commutation_parole": "application_id",
            "community_correction": "correction_id", "technical_investigation": "ti_id",
        }  # fmt: skip
        return ids[resource]

    # -- the request ---------------------------------------------------------------------

    def _grants(self, ask: Ask) -> list[Grant]:
        """The grants that match the request (case binding included)."""
        grants: list[Grant] = []
        case = None if ask.case_index is None else self.case(ask.case_index)
        for perm in self.permissions:
            grantee = perm["grantee"]
            if grantee.get("kind", ask.kind) != ask.kind:
                continue
            if grantee.get("agency", ask.agency) != ask.agency:
                continue
            if perm["resource"] != ask.resource or ask.purpose not in perm["purposes"]:
                continue
            condition = perm.get("condition")
            assert condition in (None, '"defendant_id" in request.filters'), condition
            if condition is not None and "defendant_id" not in ask.filters:
                continue
            binding = perm.get("case_binding")
            if binding is None:
                binding = any(self.needs_case[p] for p in perm["purposes"])
            bound = binding is not False
            if bound and (case is None or ask.agency not in case["handling_agencies"]):
                continue
            fields = perm["fields"]
            all_fields = frozenset(self.fields[ask.resource]) - self.not_shared[ask.resource]
            granted = all_fields if fields == "*" else frozenset(fields) & all_fields
            grants.append(Grant(perm["id"], granted, bound, "reach" in perm, condition is not None))
        return grants

    def _masks(self, ask: Ask) -> dict[str, str]:
        if ask.resource != "person":
            return {}
        masks = {}
        if ask.purpose not in FULL_ID_PURPOSES:
            masks["id_number"] = "keep6-4"
            masks["birth_date"] = "year"
        if ask.purpose not in CONTACT_PURPOSES:
            masks["address"] = "redact"
            masks["phone"] = "redact"
        return masks

    def request(self, ask: Ask) -> RequestVerdict:
        grants = self._grants(ask)
        if not grants:
            return RequestVerdict("deny")
        granted = frozenset().union(*(g.fields for g in grants))
        requested = frozenset(self.fields[ask.resource]) if ask.fields is None else ask.fields
        permitted = granted & requested
        masks = {k: v for k, v in self._masks(ask).items() if k in granted}
        if not permitted:
            return RequestVerdict("deny")
        case = None if ask.case_index is None else self.case(ask.case_index)
        bound = any(g.bound for g in grants)
        verdict = RequestVerdict(
            "allow",
            withheld=sorted(requested - permitted),
            masked=sorted(set(masks) & permitted),
            grants=tuple(grants),
            permitted=permitted,
            masks=masks,
            bound_case=case["case_id"] if bound and case is not None else None,
        )
        clear = granted - set(masks)
        for name in sorted(ask.filters):
            if name not in clear:
                verdict.outcome, verdict.refused_filter = "filter_refused", name
                return verdict
        secret = case is not None and case["secrecy_mark"] != "NONE"
        ti_limited = ask.resource == "technical_investigation" and ask.purpose not in TI_PURPOSES
        if secret or ti_limited:
            verdict.outcome = "not_found"
        return verdict

    # -- a record ------------------------------------------------------------------------

    def _sealed_lifted(self, ask: Ask) -> bool:
        return ask.kind in JUDICIAL_KINDS and ask.purpose in SEALED_EXCEPTION_PURPOSES

    def _persons(self, ask: Ask, record: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
        if ask.resource == "person":
            return [record]
        refs: list[str] = []
        for name in PERSON_REFS.get(ask.resource, ()):
            value = record.get(name)
            refs += value if isinstance(value, list) else [] if value is None else [value]
        return [self.person(ref) for ref in refs]

    def _reached(self, ask: Ask, verdict: RequestVerdict, record: Mapping[str, Any]) -> bool:
        if not any(g.reach for g in verdict.grants) or ask.case_index is None:
            return False
        bundle = self.dataset.case(ask.case_index)
        identities = {p["id_number"] for p in bundle.records("person")} - {None, ""}
        persons = self._persons(ask, record)
        return bool(persons) and all(
            p is not None and p.get("id_number") in identities for p in persons
        )

    def release(
        self, ask: Ask, verdict: RequestVerdict, record: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The record as the caller must receive it, or None: it is not there for them."""
        if verdict.outcome != "allow":
            return None
        fields = set(verdict.permitted)
        if verdict.bound_case is not None and record.get("case_id") != verdict.bound_case:
            if not self._reached(ask, verdict, record):
                return None
            fields &= frozenset().union(*(g.fields for g in verdict.grants if g.reach))
        own_case = self.case_of(str(record.get("case_id")))
        if own_case is None or own_case["secrecy_mark"] != "NONE":
            return None
        persons = self._persons(ask, record)
        if any(p is None for p in persons):
            return None
        if not self._sealed_lifted(ask) and any(
            p is not None and p["juvenile_record_sealed"] for p in persons
        ):
            return None
        withheld: set[str] = set()
        if ask.resource == "person":
            if record["protected_witness"]:
                withheld |= WITNESS_FIELDS
            if record["sexual_offence_victim"] and record["is_minor"]:
                withheld |= VICTIM_FIELDS
        for (resource, name), (via, _) in MIRRORS.items():
            if resource == ask.resource:
                person = self.person(str(record.get(via)))
                if person is not None and (
                    person["protected_witness"]
                    or (person["sexual_offence_victim"] and person["is_minor"])
                ):
                    withheld.add(name)
        granted = frozenset().union(*(g.fields for g in verdict.grants))
        for name in ask.filters:
            if name in withheld or name in verdict.masks or name not in granted:
                return None  # a filter is a read: this record is no match for this caller
        out: dict[str, Any] = {}
        for name in fields - withheld:
            value = record.get(name)
            if value is None:
                continue
            kind = verdict.masks.get(name)
            out[name] = value if kind is None else _mask(kind, value)
        return out

    def search(self, ask: Ask, verdict: RequestVerdict) -> tuple[list[dict[str, Any]], list[str]]:
        """Released records (in id order) and ids of matching records not released."""
        released, hidden = [], []
        id_field = self._id_field(ask.resource)
        for record in self.matching(ask.resource, ask.filters):
            out = self.release(ask, verdict, record)
            if out is None:
                hidden.append(str(record[id_field]))
            else:
                released.append(out)
        return released, hidden

    def id_field(self, resource: str) -> str:
        return self._id_field(resource)


def present(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without null values (the wire drops them, as the standard reads them)."""
    return {k: v for k, v in record.items() if v is not None}


def ids(records: Iterable[Mapping[str, Any]], id_field: str) -> list[str]:
    return [str(r[id_field]) for r in records]
