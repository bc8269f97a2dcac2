"""Durable audit appends per second: the Merkle-tree ``AuditWriter`` against a plain batched INSERT.

Run: ``python -m bench.audit_appends [--quick] [--backends sqlite,postgresql] [--profile]``.
Prints a markdown table and writes ``bench/results/audit_appends.json``.

Workload: ``--producers`` (64) asyncio tasks on one event loop each append entries in a loop
and wait for each to be durable (``await writer.append(draft)``), as exchange requests do.
Entries are realistic exchange entries (``bench._audit_data``). Variants, each on a fresh
migrated database (SQLite file in WAL mode with ``synchronous=FULL``; PostgreSQL schema with
``synchronous_commit=on``: every commit is fsynced):

* **audit writer + checkpointer** — ``gateway.audit.writer.AuditWriter`` (group commit on its
  thread: tree head locked and read, canonical leaf, leaf hash, ``Frontier.append``, entries +
  nodes + rule hits + tree head written in one transaction), with a ``Checkpointer`` signing
  a checkpoint every second on its own connection.
* **audit writer** — the same without the checkpointer.
* **plain INSERT (baseline)** — the same class with only its commit replaced: the same
  producers, queue, thread, gathering (``max_batch``, ``max_wait_s``) and futures; each batch
  inserts the same rows (same columns: canonical leaf and its hash included, same indexes) into
  ``audit_entries`` and ``audit_rule_hits`` in one transaction, through the writer's own
  ``insert_rows`` (one bulk statement per table: ``COPY`` on PostgreSQL, the DB-API
  ``executemany`` on SQLite), so the two insert entries the same way. No tree head, no nodes,
  no lock.
* **plain INSERT, orjson leaf** — as the baseline, but the leaf is ``orjson.dumps`` of the
  entry document (unsorted keys): what a log without a canonical encoding would store.

Each run warms up for 1 s, then counts the appends confirmed during ``--seconds``. Variants
are interleaved over ``--rounds`` rounds and the median is reported. ``--profile`` then runs
the audit writer once more under cProfile (writer thread) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from bench._audit_data import EntrySource
from bench._common import (
    RESULTS,
    markdown_table,
    median,
    postgres_available,
    postgres_schema,
    sqlite_database,
    write_results,
)
from gateway.audit.checkpoint import CheckpointSigner
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.entry import EntryDraft, encode_leaf, entry_document
from gateway.audit.leaf import LeafEncodingError, _reference_leaf_bytes
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.models import AuditEntry, AuditRuleHit, AuditTreeHead
from gateway.audit.rows import ENTRY_COLUMNS, HIT_COLUMNS, entry_row, insert_rows
from gateway.audit.writer import AuditWriter
from gateway.db import create_db_engine

BASELINE = "plain INSERT (baseline)"
FAST_BASELINE = "plain INSERT, orjson leaf"
VARIANTS = ("audit writer + checkpointer", "audit writer", BASELINE, FAST_BASELINE)
GOAL = 0.8


class PlainInsertWriter(AuditWriter):
    """The baseline: the audit writer's queue and group commit, with a plain INSERT as commit."""

    def __init__(self, database_url: str, *, canonical: bool = True, **kwargs: Any) -> None:
        super().__init__(database_url, **kwargs)
        self._next_index = 0
        self._canonical = canonical

    def _commit(self, drafts: Sequence[EntryDraft]) -> list[int | LeafEncodingError]:
        committed: list[int | LeafEncodingError] = []
        entries: list[tuple[Any, ...]] = []
        hits: list[tuple[Any, ...]] = []
        with self.engine.begin() as conn:
            for draft in drafts:
                index = self._next_index
                self._next_index += 1
                if self._canonical:
                    _, leaf = encode_leaf(index, draft)
                else:  # what a log without a canonical form would store
                    leaf = orjson.dumps(entry_document(index, draft))
                entries.append(entry_row(index, draft, leaf, leaf_hash(leaf)))
                hits.extend((r, index) for r in sorted(set(draft.rule_ids)))
                committed.append(index)
            insert_rows(conn, AuditEntry, ENTRY_COLUMNS, entries)
            insert_rows(conn, AuditRuleHit, HIT_COLUMNS, hits)
        return committed


class ProfiledAuditWriter(AuditWriter):
    """The audit writer with cProfile enabled on its thread."""

    profile: cProfile.Profile

    def _run(self) -> None:
        self.profile = cProfile.Profile()
        self.profile.runcall(super()._run)


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with sqlite_database("audit.db") as url:
            yield url
    else:
        with postgres_schema() as url:
            yield url


def _check_durability(url: str) -> str:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                sync_name = "FULL" if sync == 2 else str(sync)
                return f"journal_mode={mode}, synchronous={sync_name}"
            value = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            return f"synchronous_commit={value}, fsync={fsync}"
    finally:
        engine.dispose()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu(writer: AuditWriter) -> float:
    """CPU seconds (user + system) of the writer thread so far, from /proc (Linux)."""
    thread = writer._thread
    if thread is None or thread.native_id is None:
        return float("nan")
    try:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text(encoding="ascii")
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


async def _drive(
    writer: AuditWriter,
    drafts: Sequence[EntryDraft],
    producers: int,
    warmup_s: float,
    seconds: float,
    side_task: Callable[[], Coroutine[Any, Any, None]] | None,
) -> dict[str, Any]:
    done = 0
    latencies: list[float] = []
    measuring = False
    stop = False

    async def producer(k: int) -> None:
        nonlocal done
        i = k
        while not stop:
            draft = drafts[i % len(drafts)]
            i += producers
            started = time.perf_counter()
            await writer.append(draft)
            if measuring:
                done += 1
                latencies.append(time.perf_counter() - started)

    side = asyncio.create_task(side_task()) if side_task is not None else None
    tasks = [asyncio.create_task(producer(k)) for k in range(producers)]
    await asyncio.sleep(warmup_s)
    batches0 = writer.committed_batches
    thread_cpu0 = _thread_cpu(writer)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    thread_cpu = _thread_cpu(writer) - thread_cpu0
    batches = writer.committed_batches - batches0
    count = done
    stop = True
    await asyncio.gather(*tasks)
    if side is not None:
        side.cancel()
        await asyncio.gather(side, return_exceptions=True)
    latencies.sort()
    return {
        "entries": count,
        "seconds": round(wall, 3),
        "entries_per_s": round(count / wall, 1),
        "cpu_us_per_entry": round(cpu / count * 1e6, 1) if count else None,
        "writer_thread_cpu_us_per_entry": round(thread_cpu / count * 1e6, 1) if count else None,
        "writer_thread_busy": round(thread_cpu / wall, 3),
        "mean_batch": round(count / batches, 1) if batches else None,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


def run_variant(
    backend: str,
    variant: str,
    drafts: Sequence[EntryDraft],
    args: argparse.Namespace,
    *,
    profile: bool = False,
) -> dict[str, Any]:
    with database(backend) as url:
        kwargs: dict[str, Any] = {"max_batch": args.max_batch, "max_wait_s": args.max_wait_s}
        writer: AuditWriter
        if variant.startswith("plain"):
            writer = PlainInsertWriter(url, canonical=variant == BASELINE, **kwargs)
        elif profile:
            writer = ProfiledAuditWriter(url, **kwargs)
        else:
            writer = AuditWriter(url, **kwargs)
        checkpoint_engine = create_db_engine(url)
        checkpointer = Checkpointer(
            checkpoint_engine, CheckpointSigner.generate("bench"), "bench/audit", 1.0
        )
        side = checkpointer.run if variant.endswith("checkpointer") else None
        writer.start()
        try:
            result = asyncio.run(
                _drive(writer, drafts, args.producers, args.warmup, args.seconds, side)
            )
        finally:
            writer.stop()
        with checkpoint_engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
            head = conn.execute(select(AuditTreeHead.size)).scalar_one()
            checkpoints = conn.exec_driver_sql("SELECT count(*) FROM audit_checkpoints").scalar()
        checkpoint_engine.dispose()
        if not variant.startswith("plain") and rows != head:
            raise AssertionError(f"tree head {head} != {rows} entries")
        result["rows_written"] = rows
        result["checkpoints"] = checkpoints
        if profile:
            assert isinstance(writer, ProfiledAuditWriter)
            result["profile"] = writer.profile
        return result


def step_costs(drafts: Sequence[EntryDraft]) -> list[tuple[str, float]]:
    """Single-thread cost (µs per entry) of each step the writer thread takes per entry."""
    frontier = Frontier()
    sample = drafts[:2000]
    leaves = [encode_leaf(i, d)[1] for i, d in enumerate(sample)]
    digests = [leaf_hash(leaf) for leaf in leaves]
    steps: list[tuple[str, Callable[[int, EntryDraft], object]]] = [
        ("entry_document (dict)", entry_document),
        ("encode_leaf (entry_document + leaf_bytes: checks + orjson fast path)", encode_leaf),
        ("entry_document + reference RFC 8785 path (_normalize + rfc8785.dumps)",
         lambda i, d: _reference_leaf_bytes(entry_document(i, d))),
        ("entry_document + orjson.dumps(OPT_SORT_KEYS) alone",
         lambda i, d: orjson.dumps(entry_document(i, d), option=orjson.OPT_SORT_KEYS)),
        ("leaf_hash (SHA-256)", lambda i, d: leaf_hash(leaves[i])),
        ("Frontier.append (+ parent hashes)", lambda i, d: frontier.append(digests[i])),
        ("entry_row (row tuple)", lambda i, d: entry_row(i, d, leaves[i], digests[i])),
    ]  # fmt: skip
    costs = []
    for name, fn in steps:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for i, draft in enumerate(sample):
                fn(i, draft)
            best = min(best, (time.perf_counter() - started) / len(sample) * 1e6)
        costs.append((name, round(best, 1)))
    return costs


def _profile_report(prof: cProfile.Profile, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def _round_ratio(results: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]]) -> float:
    return median(
        [a["entries_per_s"] / b["entries_per_s"] for a, b in zip(results, base, strict=True)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s per variant")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-wait-s", type=float, default=0.002)
    parser.add_argument("--profile", action="store_true", help="cProfile the writer thread")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 3.0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgresql" in backends and (problem := postgres_available()) is not None:
        print(f"NOTE: PostgreSQL unavailable ({problem}); skipping it", file=sys.stderr)
        backends.remove("postgresql")
    source = EntrySource(seed=7)
    drafts = [source.next().draft() for _ in range(4096)]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    durability: dict[str, str] = {}
    for backend in backends:
        with database(backend) as url:
            durability[backend] = _check_durability(url)
        for r in range(args.rounds):
            for variant in VARIANTS:
                result = run_variant(backend, variant, drafts, args)
                runs.setdefault((backend, variant), []).append(result)
                print(
                    f"… {backend} round {r + 1}/{args.rounds} {variant}: "
                    f"{result['entries_per_s']:,.0f}/s, batch {result['mean_batch']}",
                    file=sys.stderr,
                )
    rows = []
    summary: dict[str, Any] = {}
    for backend in backends:
        for variant in VARIANTS:
            results = runs[(backend, variant)]
            rate = median([x["entries_per_s"] for x in results])
            # Ratios are taken round by round (same load on the machine), then the median.
            ratio = _round_ratio(results, runs[(backend, BASELINE)])
            fast_ratio = _round_ratio(results, runs[(backend, FAST_BASELINE)])
            summary.setdefault(backend, {})[variant] = {
                "entries_per_s": round(rate, 1),
                "ratio_to_plain": round(ratio, 3),
                "ratio_to_plain_orjson_leaf": round(fast_ratio, 3),
                "runs": results,
            }
            rows.append([
                backend, variant, f"{rate:,.0f}",
                f"{median([x['cpu_us_per_entry'] for x in results]):,.0f}",
                f"{median([x['writer_thread_cpu_us_per_entry'] for x in results]):,.0f}",
                f"{median([x['writer_thread_busy'] for x in results]):.0%}",
                f"{median([x['mean_batch'] for x in results]):.1f}",
                f"{median([x['p50_ms'] for x in results]):.1f}",
                f"{median([x['p99_ms'] for x in results]):.1f}",
                f"{ratio:.2f}×",
                "—" if variant.startswith("plain") else ("met" if ratio >= GOAL else "NOT met"),
                f"{fast_ratio:.2f}×",
            ])  # fmt: skip
    print(
        f"\nDurable appends, {args.producers} concurrent producers, max_batch {args.max_batch}, "
        f"median of {args.rounds} interleaved round(s) × {args.seconds:g} s; "
        "ratios are medians of per-round ratios "
        f"({'; '.join(f'{b}: {d}' for b, d in durability.items())})\n"
    )
    table = markdown_table(
        ["backend", "variant", "entries/s", "CPU µs/entry", "writer thread CPU µs/entry",
         "writer thread busy", "mean batch", "p50 ms", "p99 ms",
         "vs plain", f"goal ≥ {GOAL}×", "vs plain (orjson leaf)"],
        rows,
    )  # fmt: skip
    print(table)
    payload: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k != "profile"},
        "durability": durability,
        "goal_ratio": GOAL,
        "results": summary,
        "table": table,
    }
    costs = step_costs(drafts)
    same = sum(
        encode_leaf(i, d)[1] == _reference_leaf_bytes(entry_document(i, d))
        for i, d in enumerate(drafts[:2000])
    )
    print("\nPer-entry CPU of the writer thread's steps (single thread, best of 3 × 2000)\n")
    print(markdown_table(["step", "µs/entry"], costs))
    print(f"\nencode_leaf bytes == reference RFC 8785 bytes for {same}/2000 sample entries")
    payload["step_costs_us"] = dict(costs)
    payload["encode_leaf_equals_reference"] = f"{same}/2000"
    if args.profile and backends:
        for backend in backends:
            result = run_variant(backend, VARIANTS[1], drafts, args, profile=True)
            prof = result.pop("profile")
            prof.dump_stats(str(RESULTS / f"audit_appends_{backend}.prof"))
            report = _profile_report(prof, 25)
            payload.setdefault("profile", {})[backend] = report
            print(f"\ncProfile of the writer thread ({backend}, {result['entries_per_s']:,.0f}/s)")
            print(report)
    out = write_results("audit_appends", payload)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
