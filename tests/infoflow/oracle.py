"""An independent reference oracle: what the shipped lists allow, from the sample data's truth.

It does not use the gateway's policy engine, index or CEL. It reads the standard and the
permissions list as data (who is granted which fields of which resource for which purpose,
under which sharing conditions, with which case binding and reach; each purpose's case stages)
and restates the negative list's items by hand, as the law they cite reads:

* 保守国家秘密法 第2条, 政务数据共享条例 第3条: a case with a secrecy mark or marked 工作秘密,
  and every record of it, is never shared; a request bound to such a case is "not there".
* 刑事诉讼法 第286条: a sealed juvenile's records, on every resource about that person, only
  for judicial organs' case handling (police, procuratorate and court, for their case-handling
  and supervision purposes), or for the prison and the 社区矫正机构 executing the sentence
  (根据国家规定进行查询); the case's name and brief likewise (应封尽封).
* 刑事诉讼法 第152条、第154条: technical-investigation records only for investigation, arrest
  review, prosecution review, trial, and the committee's approval oversight, which sees the
  approval metadata only; the material never; the operative and method only for the court.
* 刑事诉讼法 第64条: a protected witness's identity only for the trial court (verification).
* 刑事诉讼法 第111条: an informant's identity only for the investigating police.
* 未成年人保护法 第103条: a minor victim's or witness's identity only for case handling (police,
  procuratorate, court: investigation, arrest review, prosecution review, trial).
* 性侵害案件被害人 of any age: identity never.
* 刑事诉讼法 第188条、第285条: in a case tried in camera, the case's name and brief, and the
  identity of victims, witnesses, experts and informants, only for judicial case handling.
* 个人信息保护法 第6条、第28条: outside case-handling and execution purposes, 身份证号 keeps its
  first 6 and last 4 characters, 出生日期 its year, and addresses and phone are redacted; health
  only for the trial court, the prison, the 社区矫正机构 and the procuratorate's execution and
  investigation supervision.
* Case binding: the requester must be a party of the case (the police record's agencies, or
  one the flow's records name, or a prison's stationed procuratorate for supervision) and the
  case must be in a stage the purpose is valid in; a record must belong to the bound case,
  unless a permission's reach covers it (the bound case's own persons in other cases).
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
        "nl.juvenile.sealed-case-details",
        "nl.minor.victim-witness-identity",
        "nl.victim.sexual-offence-identity",
        "nl.informant.identity",
        "nl.closed-trial.case-details",
        "nl.closed-trial.participant-identity",
        "nl.pi.id-number-partial",
        "nl.pi.contact-redacted",
        "nl.pi.birth-date-year",
        "nl.pi.health",
        "nl.state-secret.case-record",
        "nl.state-secret.case-request",
        "nl.work-secret.case-record",
        "nl.work-secret.case-request",
        "nl.ti.material",
        "nl.ti.purpose-limit",
        "nl.ti.approval-metadata-only",
        "nl.ti.covert-identity",
        "nl.witness.protected-identity",
    }
)
JUDICIAL_KINDS = frozenset({"public_security", "procuratorate", "court"})
CASE_HANDLING = frozenset({"INVESTIGATION", "ARREST_REVIEW", "PROSECUTION_REVIEW", "TRIAL"})
SUPERVISION = frozenset(
    {
        "PROTEST",
        "TRIAL_SUPERVISION",
        "CASE_FILING_SUPERVISION",
        "INVESTIGATION_SUPERVISION",
        "EXECUTION_SUPERVISION",
        "COMMUTATION_PAROLE",
    }
)
SEALED_EXCEPTION_PURPOSES = CASE_HANDLING | {"PRIOR_RECORD_CHECK"} | SUPERVISION
CLOSED_TRIAL_CASE_PURPOSES = CASE_HANDLING | SUPERVISION
TI_PURPOSES = CASE_HANDLING | {"OVERSIGHT"}
EXECUTION_PURPOSES = frozenset({"SENTENCE_EXECUTION", "COMMUNITY_CORRECTION", "COMMUTATION_PAROLE"})
FULL_ID_PURPOSES = CASE_HANDLING | {"PRIOR_RECORD_CHECK"} | EXECUTION_PURPOSES
CONTACT_PURPOSES = CASE_HANDLING | EXECUTION_PURPOSES
IDENTITY = frozenset(
    {
        "name",
        "id_number",
        "birth_date",
        "address",
        "domicile_address",
        "residence_division",
        "phone",
    }
)
WITNESS_FIELDS = IDENTITY
VICTIM_FIELDS = IDENTITY | {"domicile_division"}
PARTICIPANTS = frozenset({"VICTIM", "WITNESS", "INFORMANT", "EXPERT"})
COVERT_FIELDS = frozenset({"operative_identity", "technical_method"})
TI_OVERSIGHT_WITHHELD = frozenset({"target_person_id", "measure_type"}) | COVERT_FIELDS
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
# Fields of the flow that name a party of the record's case (the standard's party: true).
PARTY_FIELDS = {
    "judgment": ("court", "executing_agency"),
    "indictment": ("court",),
    "arrest_review": ("procuratorate",),
    "prosecution_transfer": ("receiving_procuratorate",),
    "coercive_measure": ("decided_by",),
    "sentence_execution": ("prison",),
    "community_correction": ("supervising_office",),
}
# 案号 fields whose issuing court is a party, and the sample courts' codes.
CASE_NUMBER_PARTIES = {
    "judgment": "court_case_number",
    "sentence_execution": "court_case_number",
    "commutation_parole": "court_case_number",
}
COURTS = {"宁0104": "FY640104", "宁0105": "FY640105", "宁0302": "FY640302", "宁01": "FY640100"}
STATIONED = {"JY640001": "JC640100", "JY640002": "JC640200"}
STATIONED_PURPOSES = frozenset({"EXECUTION_SUPERVISION", "COMMUTATION_PAROLE"})
ROLE_CONDITION = 'record.role in ["DEFENDANT", "CONVICT"]'
#: 换押 (CUSTODY_MANAGEMENT): the custodial measures only, 刑事拘留 and 逮捕.
CUSTODY_ONLY = 'record.measure_type in ["DETENTION", "ARREST"]'
#: A permission for an effective judgment only (the 看守所's read as executing agency).
EFFECTIVE_ONLY = "has(record.effective_date)"
#: A permission for what the law sends an agency (抄送), never for what it asks: no read here.
DELIVERY_ONLY = 'request.channel == "delivery"'


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
    convict_only: bool = False  # granted per record: the person must be the convict
    effective_only: bool = False  # granted per record: the judgment must have taken effect
    custody_only: bool = False  # granted per record: a custodial measure (拘留, 逮捕)


@dataclass(frozen=True)
class SharingGrant:
    """A conditional-sharing grant (有条件共享, issue 16), as the reviewer approved it.

    Restated from the issue, not from the gateway: it satisfies the sharing conditions of its
    fields (never a 不予共享 field) for its requester agency, resource and purpose, on its
    case only (the requester a party, the case in a stage of the purpose), for its records
    only (``record_ids``: a fetch of one of them; None: every record of the case), and no
    wider. The negative list still applies after it.
    """

    id: str
    agency: str
    resource: str
    purpose: str
    case_index: int
    fields: frozenset[str]
    record_ids: frozenset[str] | None = None


@dataclass
class RequestVerdict:
    """``outcome``: allow, deny, not_found (concealed request) or filter_refused."""

    outcome: str
    withheld: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    grants: tuple[Grant, ...] = ()
    # Conditional-sharing grants that released a field (their ids, in the order given).
    sharing_ids: tuple[str, ...] = ()
    permitted: frozenset[str] = frozenset()
    masks: dict[str, str] = field(default_factory=dict)
    bound_case: str | None = None
    refused_filter: str | None = None
    withheld_here: frozenset[str] = frozenset()  # withheld for every record of the request


#: ``Oracle.release`` for a record the caller is refused without concealment (403).
FORBIDDEN: dict[str, Any] = {"<forbidden>": True}


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
        self.sharing: dict[str, dict[str, tuple[str, frozenset[str]]]] = {}
        for path in sorted((standard / "resources").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            self.fields[doc["name"]] = [f["name"] for f in doc["fields"]]
            self.sharing[doc["name"]] = {
                f["name"]: (f["sharing"], frozenset(f.get("conditions", ()))) for f in doc["fields"]
            }
        purposes = yaml.safe_load((standard / "purposes.yaml").read_text(encoding="utf-8"))
        self.needs_case = {p["code"]: p["needs_case"] for p in purposes["purposes"]}
        self.stages = {p["code"]: frozenset(p["stages"]) for p in purposes["purposes"]}
        self.permissions: list[dict[str, Any]] = []
        for path in sorted((policy_dir / "permissions").glob("*.yaml")):
            # reads only: a file of delivery rules (who sends what to whom) grants no read
            self.permissions += yaml.safe_load(path.read_text(encoding="utf-8")).get(
                "permissions", []
            )
        items = set()
        for path in sorted((policy_dir / "negative_list").glob("*.yaml")):
            for item in yaml.safe_load(path.read_text(encoding="utf-8"))["negative_list"]:
                items.add(item["id"])
        self.unknown_items = items ^ KNOWN_ITEMS

    # -- ground truth --------------------------------------------------------------------

    def case(self, index: int) -> Mapping[str, Any]:
        return self.dataset.case(index).case

    def parties(self, index: int, purpose: str | None = None) -> set[str]:
        """Who handles case ``index``: the police record's agencies, those its flow names,
        and (for a supervision purpose) the stationed procuratorates of its prisons."""
        bundle = self.dataset.case(index)
        found = set(bundle.case["handling_agencies"])
        for resource, names in PARTY_FIELDS.items():
            for record in bundle.records(resource):
                found |= {str(record[n]) for n in names if record.get(n)}
        for resource, name in CASE_NUMBER_PARTIES.items():
            for record in bundle.records(resource):
                number = str(record.get(name) or "")
                code = number[number.find(")") + 1 :].split("刑")[0]
                if code in COURTS:
                    found.add(COURTS[code])
        if purpose in STATIONED_PURPOSES:
            found |= {STATIONED[a] for a in found if a in STATIONED}
        return found

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

    def _granted_fields(
        self, resource: str, listed: Any, satisfies: Iterable[str]
    ) -> frozenset[str]:
        """无条件 fields, and 有条件 fields with a satisfied condition; never 不予共享."""
        met = frozenset(satisfies)
        allowed = frozenset(
            name
            for name, (sharing, conditions) in self.sharing[resource].items()
            if sharing == "无条件" or (sharing == "有条件" and met & conditions)
        )
        return allowed if listed == "*" else frozenset(listed) & allowed

    def _sharing(
        self, ask: Ask, sharing: tuple[SharingGrant, ...], parties: set[str]
    ) -> tuple[list[Grant], list[Grant]]:
        """The conditional-sharing grants that cover the request, as permissions."""
        grants: list[Grant] = []
        staged: list[Grant] = []
        if ask.case_index is None:
            return grants, staged
        case = self.case(ask.case_index)
        every_condition = {
            c for _, conditions in self.sharing[ask.resource].values() for c in conditions
        }
        for given in sharing:
            if (
                given.agency != ask.agency
                or given.resource != ask.resource
                or given.purpose != ask.purpose
                or self.case(given.case_index)["case_id"] != case["case_id"]
                or (given.record_ids is not None and ask.record_id not in given.record_ids)
                or ask.agency not in parties
            ):
                continue
            fields = self._granted_fields(ask.resource, given.fields, every_condition)
            grant = Grant("grant:" + given.id, fields, True, False, False)
            if case["stage"] not in self.stages[ask.purpose]:
                staged.append(grant)
            else:
                grants.append(grant)
        return grants, staged

    def _grants(
        self, ask: Ask, sharing: tuple[SharingGrant, ...] = ()
    ) -> tuple[list[Grant], list[Grant]]:
        """(grants that match, grants bound to the case but not valid in its stage)."""
        grants: list[Grant] = []
        staged: list[Grant] = []
        case = None if ask.case_index is None else self.case(ask.case_index)
        parties = set() if ask.case_index is None else self.parties(ask.case_index, ask.purpose)
        for perm in self.permissions:
            grantee = perm["grantee"]
            if grantee.get("kind", ask.kind) != ask.kind:
                continue
            if grantee.get("agency", ask.agency) != ask.agency:
                continue
            if perm["resource"] != ask.resource or ask.purpose not in perm["purposes"]:
                continue
            condition = perm.get("condition")
            if condition == DELIVERY_ONLY:
                continue  # every ask of this oracle is a read
            assert condition in (
                None,
                '"defendant_id" in request.filters',
                ROLE_CONDITION,
                EFFECTIVE_ONLY,
                CUSTODY_ONLY,
            )
            if (
                condition == '"defendant_id" in request.filters'
                and "defendant_id" not in ask.filters
            ):
                continue
            binding = perm.get("case_binding")
            if binding is None:
                binding = any(self.needs_case[p] for p in perm["purposes"])
            if binding == "supervised":
                continue  # 挂牌督办 needs an approval reference: these requests carry none
            bound = binding is not False
            if bound and (case is None or ask.agency not in parties):
                continue
            fields = self._granted_fields(ask.resource, perm["fields"], perm.get("satisfies", ()))
            grant = Grant(
                perm["id"],
                fields,
                bound,
                "reach" in perm,
                condition == '"defendant_id" in request.filters',
                condition == ROLE_CONDITION,
                condition == EFFECTIVE_ONLY,
                condition == CUSTODY_ONLY,
            )
            if bound and case is not None and case["stage"] not in self.stages[ask.purpose]:
                staged.append(grant)
            else:
                grants.append(grant)
        shared, shared_staged = self._sharing(ask, sharing, parties)
        return grants + shared, staged + shared_staged

    def _masks(self, ask: Ask) -> dict[str, str]:
        if ask.resource != "person":
            return {}
        masks = {}
        if ask.purpose not in FULL_ID_PURPOSES:
            masks["id_number"] = "keep6-4"
            masks["birth_date"] = "year"
        if ask.purpose not in CONTACT_PURPOSES:
            masks["address"] = "redact"
            masks["domicile_address"] = "redact"
            masks["phone"] = "redact"
        return masks

    def _health_lifted(self, ask: Ask) -> bool:
        return (ask.kind, ask.purpose) in {
            ("court", "TRIAL"),
            ("prison", "SENTENCE_EXECUTION"),
            ("prison", "COMMUTATION_PAROLE"),
            ("justice", "COMMUNITY_CORRECTION"),
            ("procuratorate", "EXECUTION_SUPERVISION"),
            ("procuratorate", "INVESTIGATION_SUPERVISION"),
        }

    def _withheld_here(self, ask: Ask) -> frozenset[str]:
        """Fields the negative list withholds for every record of the request."""
        if ask.resource == "person" and not self._health_lifted(ask):
            return frozenset({"health_status"})
        if ask.resource == "technical_investigation":
            out = set()
            if not (ask.kind == "court" and ask.purpose == "TRIAL"):
                out |= COVERT_FIELDS
            if ask.purpose == "OVERSIGHT":
                out |= TI_OVERSIGHT_WITHHELD
            return frozenset(out)
        return frozenset()

    def _concealed_case(self, case: Mapping[str, Any] | None) -> bool:
        return case is not None and (case["secrecy_mark"] != "NONE" or case["work_secret"])

    def request(self, ask: Ask, sharing: tuple[SharingGrant, ...] = ()) -> RequestVerdict:
        grants, staged = self._grants(ask, sharing)
        case = None if ask.case_index is None else self.case(ask.case_index)
        ti_limited = ask.resource == "technical_investigation" and ask.purpose not in TI_PURPOSES
        if not grants and staged and (self._concealed_case(case) or ti_limited):
            grants = staged  # concealed whatever its stage: answered as in its stage
        if not grants:
            return RequestVerdict("deny")
        granted = frozenset().union(*(g.fields for g in grants))
        requested = frozenset(self.fields[ask.resource]) if ask.fields is None else ask.fields
        here = self._withheld_here(ask)
        permitted = (granted - here) & requested
        masks = {k: v for k, v in self._masks(ask).items() if k in granted and k not in here}
        if not permitted:
            return RequestVerdict("deny")
        bound = any(g.bound for g in grants)
        verdict = RequestVerdict(
            "allow",
            withheld=sorted(requested - permitted),
            masked=sorted(set(masks) & permitted),
            grants=tuple(grants),
            sharing_ids=tuple(
                g.id.removeprefix("grant:")
                for g in grants
                if g.id.startswith("grant:") and g.fields & permitted
            ),
            permitted=permitted,
            masks=masks,
            bound_case=case["case_id"] if bound and case is not None else None,
            withheld_here=here,
        )
        clear = granted - set(masks) - here
        for name in sorted(ask.filters):
            if name not in clear:
                verdict.outcome, verdict.refused_filter = "filter_refused", name
                return verdict
        if self._concealed_case(case) or ti_limited:
            verdict.outcome = "not_found"
        return verdict

    # -- a record ------------------------------------------------------------------------

    def _judicial(self, ask: Ask, purposes: frozenset[str]) -> bool:
        return ask.kind in JUDICIAL_KINDS and ask.purpose in purposes

    def _sealed_lifted(self, ask: Ask) -> bool:
        by_state_rules = (ask.kind == "prison" and ask.purpose in {
            "SENTENCE_EXECUTION", "COMMUTATION_PAROLE"
        }) or (ask.kind == "justice" and ask.purpose == "COMMUNITY_CORRECTION")  # fmt: skip
        return self._judicial(ask, SEALED_EXCEPTION_PURPOSES) or by_state_rules

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

    def person_withheld(self, ask: Ask, person: Mapping[str, Any]) -> set[str]:
        """Fields of ``person`` the negative list withholds for this request."""
        out: set[str] = set()
        if person["protected_witness"] and not (ask.kind == "court" and ask.purpose == "TRIAL"):
            out |= WITNESS_FIELDS
        if person["sexual_offence_victim"]:
            out |= VICTIM_FIELDS
        case_handling = self._judicial(ask, CASE_HANDLING)
        if person["is_minor"] and person["role"] in ("VICTIM", "WITNESS") and not case_handling:
            out |= VICTIM_FIELDS
        if person["role"] == "INFORMANT" and not (
            ask.kind == "public_security" and ask.purpose == "INVESTIGATION"
        ):
            out |= VICTIM_FIELDS
        bound = None if ask.case_index is None else self.case(ask.case_index)
        if (
            bound is not None
            and bound["closed_trial"]
            and person["role"] in PARTICIPANTS
            and not case_handling
        ):
            out |= VICTIM_FIELDS
        return out

    def release(
        self, ask: Ask, verdict: RequestVerdict, record: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The record as the caller must receive it; None: it is not there for them;
        :data:`FORBIDDEN`: refused, but not concealed (no permission covers it)."""
        if verdict.outcome != "allow":
            return None
        reach_only: frozenset[str] | None = None
        if verdict.bound_case is not None and record.get("case_id") != verdict.bound_case:
            if not self._reached(ask, verdict, record):
                return None
            reach_only = frozenset().union(*(g.fields for g in verdict.grants if g.reach))
        own_case = self.case_of(str(record.get("case_id")))
        if own_case is None or self._concealed_case(own_case):
            return None
        persons = self._persons(ask, record)
        if any(p is None for p in persons):
            return None
        if not self._sealed_lifted(ask) and any(
            p is not None and p["juvenile_record_sealed"] for p in persons
        ):
            return None
        fields: set[str] = set()
        for grant in verdict.grants:
            if grant.convict_only and record.get("role") not in ("DEFENDANT", "CONVICT"):
                continue
            if grant.effective_only and record.get("effective_date") is None:
                continue
            if grant.custody_only and record.get("measure_type") not in ("DETENTION", "ARREST"):
                continue
            fields |= grant.fields
        if reach_only is not None:
            fields &= reach_only
        allowed = verdict.permitted & fields
        if not allowed:
            return FORBIDDEN
        withheld: set[str] = set(verdict.withheld_here)
        if ask.resource == "person":
            withheld |= self.person_withheld(ask, record)
        if ask.resource == "case":
            judicial = self._judicial(ask, SEALED_EXCEPTION_PURPOSES)
            if record["has_sealed_juvenile"] and not judicial:
                withheld |= {"case_name", "brief"}
            if record["closed_trial"] and not self._judicial(ask, CLOSED_TRIAL_CASE_PURPOSES):
                withheld |= {"case_name", "brief"}
        for (resource, name), (via, mirrored) in MIRRORS.items():
            if resource == ask.resource:
                person = self.person(str(record.get(via)))
                if person is not None and mirrored in self.person_withheld(ask, person):
                    withheld.add(name)
        for name in ask.filters:
            if name in withheld or name in verdict.masks or name not in fields:
                return None  # a filter is a read: this record is no match for this caller
        out: dict[str, Any] = {}
        for name in allowed - withheld:
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
            if out is None or out is FORBIDDEN:
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
