"""Inclusion proofs and filtered entry queries as the audit log grows (issue goal: 1M → 10M).

Run: ``python -m bench.audit_scaling [--quick] [--backends sqlite,postgresql]
[--sizes 1M,2M,4M,10M] [--gen-budget 300] [--pg-gen-budget S] [--op-budget 20] [--keep DIR]``.
Prints a markdown table and writes ``bench/results/audit_scaling.json``.

The log is grown with synthetic exchange entries written directly (``bench._audit_fill``: every
column, canonical leaves, leaf hashes, Merkle nodes from ``Frontier.append``, rule hits, tree
head, checkpoint), not through the writer. Growth stops at the first size of ``--sizes`` whose
projected generation time would exceed ``--gen-budget`` seconds; the largest size reached is
measured and reported as such.

Measured through ``gateway.audit.service.AuditService`` — what the regulator routes call,
minus HTTP — on an engine with the gateway's settings, warm caches (the OS page cache holds the
database), the same seeded parameter sequence at every size:

* inclusion proof of a random index in the tree of the latest checkpoint (``inclusion``);
* ``entries`` (limit 100, keyset pagination on the index) filtered by ``requester_agency``
  (Zipf-distributed agency, first page and a page after a random index), ``case_number``
  (a random case, ~20 entries), ``rule_id`` (first page and a page after a random index) and
  ``requester_agency`` + ``purpose`` (first page).

The database of the smallest size is copied aside when reached (SQLite: the file; PostgreSQL:
a second schema with the same rows and indexes), and at the end both sizes are measured pair
by pair (sample k of an operation on one size, then on the other, alternating which goes
first), so load on the machine affects both alike. Two candidate fixes
(not the gateway's code; ``PerLevelNodeReader`` and ``_rule_join`` below, checked to answer
exactly what the gateway answers) are measured beside the operations they would replace.
Goals (issue): proofs ≤ 1.3×, queries ≤ 1.5× from 1M to 10M.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from bench._audit_data import AGENCIES, PURPOSES, RESOURCES, rule_id
from bench._audit_fill import (
    ChunkFeed,
    PostgresLoader,
    SqliteLoader,
    case_number,
    copy_postgres_schema,
)
from bench._common import (
    markdown_table,
    median,
    migrate,
    postgres_available,
    postgres_schema,
    write_results,
)
from gateway.audit.merkle import NodeKey, _inclusion_ranges, _range_keys, inclusion_proof
from gateway.audit.models import AuditEntry, AuditNode, AuditRuleHit
from gateway.audit.repository import AuditRepository, EntryFilter, node_select
from gateway.audit.service import AuditService
from gateway.db import create_db_engine

PROOF = "inclusion proof"
QUERIES = (
    PROOF,
    "requester_agency, first page",
    "requester_agency, keyset page",
    "case_number",
    "rule_id, first page",
    "rule_id, keyset page",
    "requester_agency + purpose, first page",
)
PROOF_FIX = "inclusion proof, per-level IN reader (candidate fix)"
RULE_FIX = "rule_id, keyset page, JOIN (candidate fix)"
CANDIDATES = (PROOF_FIX, RULE_FIX)
OPERATIONS = (*QUERIES, *CANDIDATES)
GOALS = {PROOF: 1.3, PROOF_FIX: 1.3}
QUERY_GOAL = 1.5
_AGENCY_WEIGHTS = [1.0 / (i + 1) for i in range(len(AGENCIES))]
_RESOURCE_WEIGHTS = [0.45, 0.25, 0.12, 0.07, 0.04, 0.03, 0.02, 0.02]


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def fmt_size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


@dataclass(frozen=True)
class Operation:
    """One sample: the service call, and the same statement(s) alone (``sql``: no ORM objects,
    no JSON decoding), both returning the number of rows they got."""

    service: Callable[[], int]
    sql: Callable[[], int]


def _sql(engine: Engine, statement: Any) -> Callable[[], int]:
    def run() -> int:
        with engine.connect() as conn:
            return len(conn.execute(statement).all())

    return run


def _proof_keys(index: int, size: int) -> list[NodeKey]:
    """The node keys ``inclusion_proof`` reads, in its order."""
    ranges = _inclusion_ranges(index, size)
    return list(dict.fromkeys(key for start, end in ranges for key in _range_keys(start, end)))


def _page_query(filters: EntryFilter, after: int | None) -> Any:
    """The statement ``AuditRepository.entries`` runs (limit 100 + 1 for the next cursor)."""
    position = filters.position()
    query = filters.apply(select(AuditEntry))
    if after is not None:
        query = query.where(position > after)
    return query.order_by(position).limit(101)


def _node_query(keys: Sequence[NodeKey]) -> Any:
    """The statement ``NodeTable.get_nodes`` runs."""
    return node_select(keys)


@dataclass
class Workload:
    """The same seeded sequence of operations for every size (positions scale with the size)."""

    seed: int
    samples: int

    def operations(
        self, service: AuditService, size: int, cases: int
    ) -> dict[str, list[Operation]]:
        rng = random.Random(self.seed)
        engine = service.engine
        ops: dict[str, list[Operation]] = {name: [] for name in OPERATIONS}

        def agency() -> str:
            return rng.choices(AGENCIES, _AGENCY_WEIGHTS)[0]

        def rule() -> str:
            resource = rng.choices(RESOURCES, _RESOURCE_WEIGHTS)[0]
            return rule_id(agency(), resource, rng.choice(PURPOSES))

        def entries(filters: EntryFilter, after: int | None) -> Operation:
            return Operation(
                lambda: len(service.entries(filters, after=after, limit=100)[0]),
                _sql(engine, _page_query(filters, after)),
            )

        for _ in range(self.samples):
            index = int(rng.random() * size)
            keys = _proof_keys(index, size)
            ops[PROOF].append(Operation(
                functools.partial(_proof, service, index, size), _sql(engine, _node_query(keys))
            ))  # fmt: skip
            ops[PROOF_FIX].append(Operation(
                functools.partial(_proof_per_level, engine, index, size),
                _sql(engine, _per_level_node_query(keys)),
            ))  # fmt: skip
            ops[QUERIES[1]].append(entries(EntryFilter(requester_agency=agency()), None))
            ops[QUERIES[2]].append(
                entries(EntryFilter(requester_agency=agency()), int(rng.random() * size))
            )
            ops[QUERIES[3]].append(
                entries(EntryFilter(case_number=case_number(1 + int(rng.random() * cases))), None)
            )
            ops[QUERIES[4]].append(entries(EntryFilter(rule_id=rule()), None))
            keyset_rule, after = rule(), int(rng.random() * size)
            ops[QUERIES[5]].append(entries(EntryFilter(rule_id=keyset_rule), after))
            ops[RULE_FIX].append(Operation(
                functools.partial(_rule_join, engine, keyset_rule, after),
                _sql(engine, _rule_join_query(keyset_rule, after)),
            ))  # fmt: skip
            ops[QUERIES[6]].append(
                entries(EntryFilter(requester_agency=agency(), purpose=rng.choice(PURPOSES)), None)
            )
        return ops


def _proof(service: AuditService, index: int, size: int) -> int:
    return len(service.inclusion(index, size))


def _per_level_node_query(keys: Sequence[NodeKey]) -> Any:
    return node_select(keys, _per_level_match)


def _per_level_match(keys: Sequence[NodeKey]) -> Any:
    by_level: dict[int, list[int]] = {}
    for level, idx in keys:
        by_level.setdefault(level, []).append(idx)
    return or_(*(
        and_(AuditNode.level == level, AuditNode.idx.in_(indexes))
        for level, indexes in by_level.items()
    ))  # fmt: skip


def _rule_join_query(rule: str, after: int) -> Any:
    return (
        select(AuditEntry)
        .join(AuditRuleHit, AuditRuleHit.idx == AuditEntry.idx)
        .where(AuditRuleHit.rule_id == rule, AuditRuleHit.idx > after)
        .order_by(AuditRuleHit.idx)
        .limit(101)
    )


class PerLevelNodeReader:
    """A NodeReader asking ``level = ? AND idx IN (…)`` per level, OR-ed: each term can use the
    primary key, where SQLite answers the row-value ``(level, idx) IN (VALUES …)`` of
    ``gateway.audit.repository.NodeTable`` with a scan of the whole node table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_nodes(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        rows = self.session.execute(_per_level_node_query(keys))
        return {(int(row[0]), int(row[1])): bytes(row[2]) for row in rows}


def _proof_per_level(engine: Engine, index: int, size: int) -> int:
    """``AuditService.inclusion`` with :class:`PerLevelNodeReader`."""
    with Session(engine) as session:
        checkpoint = AuditRepository(session).latest_checkpoint()
        if checkpoint is None or size > checkpoint.tree_size:
            raise ValueError(f"tree size {size} is beyond the latest checkpoint")
        return len(inclusion_proof(index, size, PerLevelNodeReader(session)))


def _rule_join(engine: Engine, rule: str, after: int) -> int:
    """``AuditService.entries`` by rule id with a join on the hits' (rule_id, idx) key instead of
    ``idx IN (SELECT idx … WHERE rule_id = ?)``, which SQLite materialises whole."""
    with Session(engine) as session:
        rows = list(session.scalars(_rule_join_query(rule, after)))
    return len([orjson.loads(bytes(row.leaf)) for row in rows[:100]])


Samples = dict[str, dict[str, list[float]]]
"""Per operation: ``us`` (service latencies), ``sql_us`` (statement alone) and ``rows``."""


def measure(
    sides: Sequence[tuple[str, int, int]], workload: Workload, budget_s: float
) -> list[Samples]:
    """Latency samples (µs) per operation for each ``(url, size, cases)`` side, paired.

    Sample ``k`` of an operation runs on every side back to back (alternating which goes
    first), through the service and then as the bare statement, so load on the machine hits
    the sizes alike. An operation stops after ``budget_s`` seconds (at least 5 samples): the
    first samples of the seeded sequence, so the sides still compare like with like.
    """
    engines = [create_db_engine(url) for url, _, _ in sides]
    try:
        plans = [
            workload.operations(AuditService(engine), size, cases)
            for engine, (_, size, cases) in zip(engines, sides, strict=True)
        ]
        out: list[Samples] = [{} for _ in sides]
        for name in OPERATIONS:
            for plan in plans:  # warm-up: connection, statement cache, code paths
                plan[name][-1].service()
                plan[name][-1].sql()
            for side in out:
                side[name] = {"us": [], "sql_us": [], "rows": []}
            deadline = time.perf_counter() + budget_s
            for k in range(workload.samples):
                order = range(len(sides)) if k % 2 == 0 else reversed(range(len(sides)))
                for i in order:
                    op, samples = plans[i][name][k], out[i][name]
                    started = time.perf_counter()
                    samples["rows"].append(float(op.service()))
                    middle = time.perf_counter()
                    op.sql()
                    samples["us"].append((middle - started) * 1e6)
                    samples["sql_us"].append((time.perf_counter() - middle) * 1e6)
                if k >= 4 and time.perf_counter() > deadline:
                    break
        return out
    finally:
        for engine in engines:
            engine.dispose()


def query_plans(engine: Engine, size: int) -> dict[str, str]:
    """The database's plan for the proof's node read and each filtered query (for the notes)."""
    postgres = engine.dialect.name == "postgresql"
    agency, rule = AGENCIES[0], rule_id(AGENCIES[0], "person", "TRIAL")
    statements: dict[str, Any] = {
        PROOF: _node_query(_proof_keys(size // 3, size)),
        PROOF_FIX: _per_level_node_query(_proof_keys(size // 3, size)),
        RULE_FIX: _rule_join_query(rule, size // 2),
    }
    for name, filters, after in (
        (QUERIES[1], EntryFilter(requester_agency=AGENCIES[-1]), None),
        (QUERIES[2], EntryFilter(requester_agency=agency), size // 2),
        (QUERIES[3], EntryFilter(case_number=case_number(7)), None),
        (QUERIES[4], EntryFilter(rule_id=rule), None),
        (QUERIES[5], EntryFilter(rule_id=rule), size // 2),
        (QUERIES[6], EntryFilter(requester_agency=agency, purpose="TRIAL"), None),
    ):
        statements[name] = _page_query(filters, after)
    plans = {}
    with engine.connect() as conn:
        for name, stmt in statements.items():
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + sql).all()
            plans[name] = "\n".join(str(row[0] if postgres else row[-1]) for row in rows)
    return plans


@contextmanager
def scratch(backend: str, keep: Path | None) -> Iterator[tuple[str, Path]]:
    """An empty migrated database and a directory for copies of it."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=keep) as tmp:
        directory = Path(tmp)
        if backend == "sqlite":
            url = f"sqlite:///{directory / 'audit.db'}"
            migrate(url, directory)
            yield url, directory
        else:
            with postgres_schema() as url:
                yield url, directory


def check_candidates(url: str, size: int) -> None:
    """The candidate fixes must answer exactly what the gateway's code answers."""
    engine = create_db_engine(url)
    try:
        service = AuditService(engine)
        for index in (0, size // 3, size - 1):
            with Session(engine) as session:
                fixed = inclusion_proof(index, size, PerLevelNodeReader(session))
            if fixed != service.inclusion(index, size):
                raise AssertionError(f"per-level reader disagrees on the proof of {index}")
        rule = rule_id(AGENCIES[0], "person", "TRIAL")
        views, _ = service.entries(EntryFilter(rule_id=rule), after=size // 2, limit=100)
        query = (
            select(AuditEntry.idx)
            .join(AuditRuleHit, AuditRuleHit.idx == AuditEntry.idx)
            .where(AuditRuleHit.rule_id == rule, AuditRuleHit.idx > size // 2)
            .order_by(AuditRuleHit.idx)
            .limit(100)
        )
        with Session(engine) as session:
            joined = list(session.scalars(query))
        if joined != [view.index for view in views]:
            raise AssertionError("the JOIN form of the rule_id filter disagrees")
    finally:
        engine.dispose()


@dataclass
class Stage:
    size: int
    generation_s: float
    cases: int
    db_bytes: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size, "generation_s": round(self.generation_s, 1),
            "entries_per_s": round(self.size / self.generation_s, 1), "cases": self.cases,
            "db_bytes": self.db_bytes,
        }  # fmt: skip


def run_backend(backend: str, sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload(seed=11, samples=args.samples)
    result: dict[str, Any] = {"sizes_requested": sizes, "stages": [], "measured": []}
    with scratch(backend, args.keep) as (url, directory), contextlib.ExitStack() as snapshots:
        postgres = backend == "postgresql"
        feed = ChunkFeed(seed=2025, postgres=postgres, stop_at=sizes[-1], chunk_size=50_000)
        loader: SqliteLoader | PostgresLoader = (
            PostgresLoader(url) if postgres else SqliteLoader(url.removeprefix("sqlite:///"))
        )
        generation_s = 0.0
        first: tuple[str, Stage] | None = None
        last: Stage | None = None
        try:
            for i, size in enumerate(sizes):
                started = last_report = time.perf_counter()
                for chunk in feed.until(size):
                    loader.load(chunk)
                    if time.perf_counter() - last_report > 15:
                        last_report = time.perf_counter()
                        elapsed = generation_s + last_report - started
                        print(f"… {backend}: {chunk.end:,} entries, {elapsed:.0f} s, "
                              f"{chunk.end / elapsed:,.0f}/s", file=sys.stderr)  # fmt: skip
                generation_s += time.perf_counter() - started
                stop = i + 1 == len(sizes)
                if not stop:
                    nxt = sizes[i + 1]
                    projected = generation_s + (nxt - size) / (feed.size / generation_s)
                    if projected > args.gen_budget:
                        stop = True
                        result["stopped_because"] = (
                            f"growing to {fmt_size(nxt)} was projected to take {projected:.0f} s "
                            f"of generation, over the budget of {args.gen_budget:g} s"
                        )
                        print(f"NOTE: {backend}: {result['stopped_because']}; "
                              f"stopping at {fmt_size(size)}", file=sys.stderr)  # fmt: skip
                if i > 0 and not stop:
                    continue  # an intermediate size is only a decision point
                started = time.perf_counter()
                loader.finish(feed.frontier)  # tree head, checkpoint, statistics
                generation_s += time.perf_counter() - started
                stage = Stage(size, generation_s, feed.cases_opened)
                if not postgres:
                    stage.db_bytes = Path(url.removeprefix("sqlite:///")).stat().st_size
                result["stages"].append(stage.as_json())
                check_candidates(url, size)
                if i == 0 and not stop:
                    # A copy of the smallest size, measured at the end interleaved with the
                    # largest: load on the machine then affects both sizes alike.
                    if postgres:
                        copy_url = snapshots.enter_context(postgres_schema(migrated=False))
                        copy_postgres_schema(url, copy_url)
                    else:
                        copy = directory / "first.db"
                        shutil.copyfile(url.removeprefix("sqlite:///"), copy)
                        copy_url = f"sqlite:///{copy}"
                    first = (copy_url, stage)
                    print(f"… {backend}: {fmt_size(size)} copied aside", file=sys.stderr)
                elif first is None:  # never grew past the first size
                    (samples,) = measure([(url, size, stage.cases)], workload, args.op_budget)
                    result["measured"].append(_measured(stage, samples, "one size only"))
                last = stage
                with _engine(url) as engine:
                    result.setdefault("plans", {})[fmt_size(size)] = query_plans(engine, size)
                if stop:
                    break
        finally:
            feed.close()
            if isinstance(loader, PostgresLoader):
                loader.close()
        if first is not None and last is not None and last.size > first[1].size:
            # Both sizes measured pair by pair: load on the machine hits both alike.
            sides = [(first[0], first[1].size, first[1].cases), (url, last.size, last.cases)]
            check_candidates(first[0], first[1].size)
            measure(sides, Workload(seed=5, samples=20), 0.5)  # warm caches; not recorded
            small, large = measure(sides, workload, args.op_budget)
            result["measured"] = [
                _measured(first[1], small, "paired"),
                _measured(last, large, "paired"),
            ]
            result["paired_ratio_median"] = {
                name: round(median([b / a for a, b in zip(small[name]["us"], large[name]["us"],
                                                          strict=True)]), 3)
                for name in OPERATIONS
            }  # fmt: skip
            with _engine(first[0]) as engine:
                result["plans"][fmt_size(first[1].size)] = query_plans(engine, first[1].size)
    return result


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = create_db_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _measured(stage: Stage, samples: dict[str, dict[str, list[float]]], how: str) -> dict[str, Any]:
    return {
        "size": stage.size,
        "how": how,
        "median_us": {n: round(median(s["us"]), 1) for n, s in samples.items()},
        "median_sql_us": {n: round(median(s["sql_us"]), 1) for n, s in samples.items()},
        "samples": {n: len(s["us"]) for n, s in samples.items()},
        "mean_rows": {n: round(sum(s["rows"]) / len(s["rows"]), 1) for n, s in samples.items()},
    }


def _growth_rows(backend: str, result: dict[str, Any]) -> list[list[str]]:
    measured = result["measured"]
    first, last = measured[0], measured[-1]
    span = f"{fmt_size(first['size'])} → {fmt_size(last['size'])}"
    rows = []
    for name in OPERATIONS:
        goal = GOALS.get(name, QUERY_GOAL)
        a, b = first["median_us"][name], last["median_us"][name]
        sa, sb = first["median_sql_us"][name], last["median_sql_us"][name]
        ratio = b / a if a else float("nan")
        verdict = "—" if first is last else ("met" if ratio <= goal else "NOT met")
        if first is not last and name in CANDIDATES:
            verdict += " (not the gateway's code)"
        rows.append([
            backend, name, f"{a:,.0f}", f"{b:,.0f}", "—" if first is last else f"{ratio:.2f}×",
            f"≤ {goal}×", verdict, f"{sa:,.0f}", f"{sb:,.0f}",
            "—" if first is last else f"{sb / sa:.2f}×", f"{span} ({last['how']})",
            f"{first['samples'][name]}",
        ])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k → 400k, few samples")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--sizes", default="1M,2M,4M,10M", help="growth steps; the first and the last reached "
        "are compared"
    )  # fmt: skip
    parser.add_argument("--gen-budget", type=float, default=300.0,
                        help="seconds of generation per backend")  # fmt: skip
    parser.add_argument("--pg-gen-budget", type=float, default=None,
                        help="PostgreSQL's budget (default: --gen-budget)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=200, help="operations per query type")
    parser.add_argument("--op-budget", type=float, default=20.0,
                        help="seconds per operation type (both sizes; ≥ 5 samples)")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="build the databases under this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.samples, args.op_budget = "100k,400k", 60, 3.0
        args.gen_budget = min(args.gen_budget, 120.0)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgresql" in backends and (problem := postgres_available()) is not None:
        print(f"NOTE: PostgreSQL unavailable ({problem}); skipping it", file=sys.stderr)
        backends.remove("postgresql")
    results: dict[str, Any] = {}
    table_rows: list[list[str]] = []
    for backend in backends:
        budget = args.gen_budget
        if backend == "postgresql" and args.pg_gen_budget is not None:
            budget = args.pg_gen_budget
        backend_args = argparse.Namespace(**{**vars(args), "gen_budget": budget})
        result = run_backend(backend, sizes, backend_args)
        results[backend] = result
        table_rows.extend(_growth_rows(backend, result))
    print("\nMedian latency (µs) through AuditService (limit 100, warm cache), and of the same "
          "statement alone (SQL: no ORM objects, no JSON decoding)\n")  # fmt: skip
    table = markdown_table(
        ["backend", "operation", "service µs, smallest", "service µs, largest", "growth",
         "goal", "met?", "SQL µs, smallest", "SQL µs, largest", "SQL growth", "sizes",
         "samples"],
        table_rows,
    )  # fmt: skip
    print(table)
    stage_rows = [
        [backend, fmt_size(st["size"]), f"{st['generation_s']:.0f}", f"{st['entries_per_s']:,.0f}",
         "—" if st["db_bytes"] is None else f"{st['db_bytes'] / 2**30:.1f}"]
        for backend, result in results.items() for st in result["stages"]
    ]  # fmt: skip
    print("\nGeneration (synthetic entries written directly, not through the writer)\n")
    stages_table = markdown_table(
        ["backend", "size", "generation s (cumulative)", "entries/s", "SQLite file GiB"],
        stage_rows,
    )
    print(stages_table)
    for backend, result in results.items():
        if "stopped_because" in result:
            print(f"\n{backend}: stopped at {fmt_size(result['stages'][-1]['size'])}: "
                  f"{result['stopped_because']}")  # fmt: skip
    out = write_results(
        "audit_scaling",
        {"settings": {k: str(v) for k, v in vars(args).items()}, "results": results,
         "table": table, "stages_table": stages_table},
    )  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
