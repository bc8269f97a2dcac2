"""Policy decision cost against the number of rules, side by side with pycasbin and cedarpy.

Run: ``python -m bench.policy_decisions [--sizes 100,1000,10000,100000] [--records 10]``.
Prints a markdown table and writes ``bench/results/policy_decisions.json``.

Workload (one iteration): a court (a generated agency) asks for ``person`` records for
``TRIAL`` on a case it handles; the engine decides once, then filters ``--records`` person
records of that case, one of which is a sealed juvenile record. ``N`` generated permissions
are spread over ``N / 10`` generated agencies (10 per agency: 10 (resource, purpose) pairs),
each with the request condition ``case_stage != "CLOSED"``. The negative list holds the sealed
juvenile record item (withhold unless the requester is a judicial organ).

Peers get the equivalent policy:

* **pycasbin** ``FastEnforcer`` (policies filtered by ``cache_key_order`` — its index) and the
  plain ``Enforcer`` (linear scan); one ``enforce`` for the request plus one per record (the
  record's sealed flag and the requester kind are request attributes; the matcher encodes the
  stage condition and the sealed-record rule).
* **cedarpy**: one ``permit`` per rule (``when { context.stage != "CLOSED" }``), one
  ``forbid`` for sealed records ``unless`` the requester kind is judicial; a pre-parsed
  ``PolicySet`` and one ``is_authorized_batch`` call for the request plus the records.

Every engine is built first; then ``--rounds`` rounds each measure every (size, engine) for
``budget / rounds`` seconds, and the value reported is the lowest round median (other load on
the machine then affects all sizes alike). Round medians are kept in the JSON.

Peers answer allow/deny only; ours also computes released/withheld/masked fields per record,
so the comparison favours the peers. Ours is measured twice: as the gateway runs it (the
request's decision remembered: ``decide`` is a memo lookup after the first request) and with a
fresh decision every time (``decide(remember=False)``), which is what the peers are compared
with. ``ours (shipped negative list)`` repeats our run with the
whole shipped negative list (10 items) instead of the single equivalent item.
A missing peer is reported as ``missing`` (install with ``pip install casbin cedarpy``).

**Grants** (有条件共享, docs/sharing.md): the same request carrying a live conditional-sharing
grant that covers it (``grant_ids`` names it in the decision) is measured in the same rounds,
remembered and fresh, decide + filter and decide only; ``grant / no grant`` is the ratio of
the fresh decide-only medians (the issue's bound: at most 1.2×).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gateway.policy import (
    AccessRequest,
    CaseContext,
    Grant,
    PolicyEngine,
    load_policy_documents,
    load_policy_set,
)
from gateway.standard import Agency, Standard, load_standard
from gateway.standard._yaml import YamlDocument

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
RESULTS = ROOT / "bench" / "results" / "policy_decisions.json"
CST = timezone(timedelta(hours=8))
KINDS = [("public_security", "GA"), ("procuratorate", "JC"), ("court", "FY"),
         ("prison", "JY"), ("justice", "SF")]  # fmt: skip
PAIRS = [
    ("person", "TRIAL"), ("case", "TRIAL"), ("indictment", "TRIAL"),
    ("judgment", "SENTENCE_EXECUTION"), ("person", "SENTENCE_EXECUTION"),
    ("case", "ARREST_REVIEW"), ("person", "ARREST_REVIEW"), ("coercive_measure", "INVESTIGATION"),
    ("sentence_execution", "EXECUTION_SUPERVISION"), ("judgment", "PRIOR_RECORD_CHECK"),
]  # fmt: skip
# The sharing condition each generated rule satisfies (its 有条件 fields need one: issue 13).
SATISFIES = {
    "TRIAL": "case-handling", "ARREST_REVIEW": "case-handling", "INVESTIGATION": "case-handling",
    "SENTENCE_EXECUTION": "execution", "EXECUTION_SUPERVISION": "legal-supervision",
    "PRIOR_RECORD_CHECK": "prior-record",
}  # fmt: skip
JUDICIAL = ("public_security", "procuratorate", "court")
SEALED_ITEM = {
    "id": "nl.sealed",
    "resource": "person",
    "condition": "record.juvenile_record_sealed == true",
    "action": "withhold_record",
    "conceal": True,
    "legal_basis": "刑事诉讼法 第286条",
    "exceptions": [
        {
            "id": "nl.sealed.judicial",
            "condition": 'request.requester_kind in ["public_security", "procuratorate", "court"]',
            "legal_basis": "刑事诉讼法 第286条",
        }
    ],
}
FIELDS = ["person_id", "case_id", "name", "sex", "id_number", "birth_date", "role"]


def synthetic_standard(base: Standard, agencies: int) -> Standard:
    """``base`` plus ``agencies`` generated agencies (codes prefix + 100000…), kinds cycling."""
    extra = [
        Agency(code=f"{KINDS[i % 5][1]}{100000 + i:06d}", kind=KINDS[i % 5][0],
               name=f"生成机构{i}", division="640104")
        for i in range(agencies)
    ]  # fmt: skip
    return Standard(
        info=base.info,
        version=f"{base.version}+bench{agencies}",
        agency_kinds=base.agency_kinds,
        agencies=(*base.agencies, *extra),
        purposes=base.purposes,
        code_tables=base.code_tables,
        resources=base.resources,
        conditions=base.conditions,
    )


def generated_rules(n: int) -> list[tuple[str, str, str, str]]:
    """``n`` (rule id, agency, resource, purpose), 10 per agency."""
    rules = []
    for i in range(n):
        agency_index, pair = divmod(i, len(PAIRS))
        code = f"{KINDS[agency_index % 5][1]}{100000 + agency_index:06d}"
        rules.append((f"gen.{i}", code, *PAIRS[pair]))
    return rules


def target_agency() -> str:
    return "FY100002"  # agency index 2 is a court; its rule 0 grants person/TRIAL


def make_grant() -> Grant:
    """A live grant of the target agency covering :func:`make_request` (two of its fields)."""
    return Grant(
        grant_id="bench-grant",
        requester_agency=target_agency(),
        resource="person",
        fields=frozenset({"name", "id_number"}),
        purpose="TRIAL",
        case_id="C1",
        record_ids=None,
        valid_from=datetime(2025, 5, 30, tzinfo=CST),
        valid_until=datetime(2025, 6, 30, tzinfo=CST),
    )


def make_request(*grants: Grant) -> AccessRequest:
    agency = target_agency()
    return AccessRequest(
        requester_agency=agency,
        requester_kind="court",
        resource="person",
        purpose="TRIAL",
        operator_id="bench",
        time=datetime(2025, 6, 1, 10, tzinfo=CST),
        case_number="C1",
        case=CaseContext("C1", None, None, frozenset({agency, "JC640104"}), "TRIAL", "NONE"),
        requested_fields=frozenset(FIELDS),
        grants=grants,
    )


def make_records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "person_id": f"P{i}", "case_id": "C1", "name": f"人员{i}", "sex": "1",
            "id_number": "11010519491231002X", "birth_date": "1949-12-31", "role": "SUSPECT",
            "is_minor": i == 0, "juvenile_record_sealed": i == 0, "protected_witness": False,
            "sexual_offence_victim": False, "phone": "13800000000", "address": "某地",
        }
        for i in range(count)
    ]  # fmt: skip


def _median_us(fn: Callable[[], object], budget_s: float, max_iter: int) -> tuple[float, int]:
    fn()
    gc.collect()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < max_iter and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples), len(samples)


# -- ours -----------------------------------------------------------------------------------


def build_ours(
    n: int, base: Standard, negative: list[dict[str, Any]]
) -> tuple[PolicyEngine, float]:
    standard = synthetic_standard(base, max(1, n // len(PAIRS)) + 3)
    perms = [
        {"id": rid, "grantee": {"agency": agency}, "resource": resource, "fields": FIELDS
         if resource == "person" else "*", "purposes": [purpose],
         "satisfies": [SATISFIES[purpose]],
         "condition": 'request.case_stage != "CLOSED"', "legal_basis": "生成"}
        for rid, agency, resource, purpose in generated_rules(n)
    ]  # fmt: skip
    docs = [
        ("permissions", YamlDocument("generated.yaml", {"permissions": perms})),
        ("negative_list", YamlDocument("negative.yaml", {"negative_list": negative})),
    ]
    start = time.perf_counter()
    engine = PolicyEngine(load_policy_documents(standard, docs))
    return engine, time.perf_counter() - start


def run_ours(
    engine: PolicyEngine,
    records: list[dict[str, Any]],
    *,
    remember: bool = True,
    request: AccessRequest | None = None,
) -> Callable[[], object]:
    request = request or make_request()

    def once() -> object:
        decision = engine.decide(request, remember=remember)
        return [engine.filter_record(decision, request, r) for r in records]

    return once


# -- peers ----------------------------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act, kind, stage, sealed
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act && r.stage != "CLOSED" && \
(r.sealed == "false" || r.kind == "court" || r.kind == "procuratorate" || \
r.kind == "public_security")
"""


def build_casbin(n: int, fast: bool) -> tuple[Any, float]:
    import casbin

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(CASBIN_MODEL, encoding="utf-8")
        enforcer = (
            casbin.FastEnforcer(str(model), cache_key_order=[0, 1, 2])
            if fast
            else casbin.Enforcer(str(model))
        )
    enforcer.add_policies(
        [[agency, res, purpose] for _, agency, res, purpose in generated_rules(n)]
    )
    return enforcer, time.perf_counter() - start


def run_casbin(enforcer: Any, records: list[dict[str, Any]]) -> Callable[[], object]:
    agency = target_agency()

    def once() -> object:
        ok = enforcer.enforce(agency, "person", "TRIAL", "court", "TRIAL", "false")
        flags = [
            enforcer.enforce(agency, "person", "TRIAL", "court", "TRIAL",
                             "true" if r["juvenile_record_sealed"] else "false")
            for r in records
        ]  # fmt: skip
        return ok, flags

    return once


def build_cedar(n: int) -> tuple[Any, float]:
    import cedarpy

    lines = [
        f'permit(principal == Agency::"{agency}", action == Action::"{purpose}", '
        f'resource == Resource::"{res}") when {{ context.stage != "CLOSED" }};'
        for _, agency, res, purpose in generated_rules(n)
    ]
    lines.append(
        'forbid(principal, action, resource == Resource::"person") '
        'when { context.sealed } unless { ["public_security", "procuratorate", "court"]'
        ".contains(context.kind) };"
    )
    start = time.perf_counter()
    policies = cedarpy.PolicySet.from_str("\n".join(lines))
    entities = cedarpy.Entities.from_json_str("[]") if hasattr(cedarpy, "Entities") else []
    return (policies, entities), time.perf_counter() - start


def run_cedar(handle: Any, records: list[dict[str, Any]]) -> Callable[[], object]:
    import cedarpy

    policies, entities = handle
    agency = target_agency()

    def req(sealed: bool) -> dict[str, Any]:
        return {
            "principal": f'Agency::"{agency}"', "action": 'Action::"TRIAL"',
            "resource": 'Resource::"person"',
            "context": {"stage": "TRIAL", "kind": "court", "sealed": sealed},
        }  # fmt: skip

    batch = [req(False)] + [req(bool(r["juvenile_record_sealed"])) for r in records]

    def once() -> object:
        return cedarpy.is_authorized_batch(batch, policies, entities)

    return once


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurement rounds (min taken)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = load_standard(POLICIES / "standard")
    shipped_negative = [
        item.model_dump(mode="json", exclude_none=True)
        for item in load_policy_set(POLICIES, standard=base).negative_list
    ]
    records = make_records(args.records)
    peers = {"casbin": _available("casbin"), "cedarpy": _available("cedarpy")}
    for name, ok in peers.items():
        if not ok:
            print(f"NOTE: {name} is not installed; its column is 'missing' (pip install {name})")
    warm, _ = build_ours(len(PAIRS), base, [SEALED_ITEM])  # warm caches before measuring
    _median_us(run_ours(warm, records), min(args.budget, 0.5), 2000)
    # Build everything first, then measure in rounds that cycle through all sizes: load from
    # other processes then hits every size alike; each value is the lowest round median.
    rows = []
    measures: list[tuple[dict[str, Any], str, Callable[[], object], int]] = []
    for n in sizes:
        row: dict[str, Any] = {"rules": n}
        engine, load_s = build_ours(n, base, [SEALED_ITEM])
        assert engine.decide(make_request()).allowed
        row["ours_load_s"] = round(load_s, 3)
        measures.append((row, "ours_us", run_ours(engine, records), 20000))
        fresh = run_ours(engine, records, remember=False)
        measures.append((row, "ours_fresh_us", fresh, 20000))
        decide_only = functools.partial(engine.decide, make_request(), remember=False)
        measures.append((row, "ours_decide_us", decide_only, 20000))
        granted = make_request(make_grant())
        assert engine.decide(granted, remember=False).grant_ids == ("bench-grant",)
        measures.append((row, "ours_grant_us", run_ours(engine, records, request=granted), 20000))
        fresh_grant = run_ours(engine, records, remember=False, request=granted)
        measures.append((row, "ours_grant_fresh_us", fresh_grant, 20000))
        grant_decide = functools.partial(engine.decide, granted, remember=False)
        measures.append((row, "ours_grant_decide_us", grant_decide, 20000))
        shipped_engine, _ = build_ours(n, base, shipped_negative)
        measures.append((row, "ours_shipped_negative_us", run_ours(shipped_engine, records), 20000))
        if peers["casbin"]:
            fast, fast_load = build_casbin(n, fast=True)
            measures.append((row, "casbin_fast_us", run_casbin(fast, records), 5000))
            plain, _ = build_casbin(n, fast=False)
            measures.append((row, "casbin_us", run_casbin(plain, records), 5000))
            row["casbin_load_s"] = round(fast_load, 3)
        if peers["cedarpy"]:
            cedar, cedar_load = build_cedar(n)
            measures.append((row, "cedar_us", run_cedar(cedar, records), 5000))
            row["cedar_load_s"] = round(cedar_load, 3)
        rows.append(row)
        print(f"… built {n} rules", file=sys.stderr)
    rounds: dict[tuple[int, str], list[float]] = {}
    for r in range(args.rounds):
        for row, key, fn, max_iter in measures:
            median, _ = _median_us(fn, args.budget / args.rounds, max_iter)
            rounds.setdefault((id(row), key), []).append(median)
        print(f"… round {r + 1}/{args.rounds}", file=sys.stderr)
    for row, key, _, _ in measures:
        values = rounds[(id(row), key)]
        row[key] = round(min(values), 2)
        row[key.replace("_us", "_round_medians_us")] = [round(v, 1) for v in values]
    for row in rows:
        row["grant_vs_no_grant"] = round(row["ours_grant_decide_us"] / row["ours_decide_us"], 3)
        row["grant_vs_no_grant_filtered"] = round(
            row["ours_grant_fresh_us"] / row["ours_fresh_us"], 3
        )
        peer_values = [row[k] for k in ("casbin_fast_us", "casbin_us", "cedar_us") if k in row]
        row["best_peer_us"] = min(peer_values) if peer_values else None
    # Peers decide afresh every time: compare them with our fresh decisions.
    first = rows[0]["ours_fresh_us"]
    for row in rows:
        row["ours_vs_smallest"] = round(row["ours_fresh_us"] / first, 2)
        row["ours_vs_best_peer"] = (
            round(row["ours_fresh_us"] / row["best_peer_us"], 3) if row["best_peer_us"] else None
        )

    def cell(row: dict[str, Any], key: str) -> str:
        if key not in row:
            return "missing"
        return f"{row[key]:,.1f}"

    print(f"\nDecide + filter {args.records} records, median µs "
          f"(Python {platform.python_version()}, {platform.machine()})\n")  # fmt: skip
    print(
        "| rules | ours, decision remembered | ours, fresh | ours decide only (fresh) "
        "| ours (shipped negative list) | casbin FastEnforcer | casbin Enforcer | cedarpy "
        "| ours fresh / best peer | ours fresh vs 100 rules | our load s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ratio = row["ours_vs_best_peer"]
        print(
            f"| {row['rules']:,} | {cell(row, 'ours_us')} | {cell(row, 'ours_fresh_us')} | "
            f"{cell(row, 'ours_decide_us')} | "
            f"{cell(row, 'ours_shipped_negative_us')} | {cell(row, 'casbin_fast_us')} | "
            f"{cell(row, 'casbin_us')} | {cell(row, 'cedar_us')} | "
            f"{'n/a' if ratio is None else f'{ratio:.3f}'} | {row['ours_vs_smallest']:.2f}× | "
            f"{row['ours_load_s']} |"
        )
    print("\nWith a conditional-sharing grant covering the request (same rounds), median µs\n")
    print(
        "| rules | decide only, fresh: no grant | with grant | grant / no grant "
        "| decide + filter, fresh: no grant | with grant | ratio | remembered, with grant |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['rules']:,} | {cell(row, 'ours_decide_us')} | "
            f"{cell(row, 'ours_grant_decide_us')} | {row['grant_vs_no_grant']:.3f}× | "
            f"{cell(row, 'ours_fresh_us')} | {cell(row, 'ours_grant_fresh_us')} | "
            f"{row['grant_vs_no_grant_filtered']:.3f}× | {cell(row, 'ours_grant_us')} |"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "policy_decisions",
                "workload": f"decide + filter {args.records} person records (1 sealed)",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "peers": {k: ("installed" if v else "missing") for k, v in peers.items()},
                "rows": rows,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
