"""Run every benchmark in sequence: ``python -m bench [--quick] [--only NAME[,NAME]]``.

Each benchmark compares against its baseline in the same run, prints a markdown table and
writes ``bench/results/<name>.json``; each also runs alone (``python -m bench.<name>``).
``--quick`` gives a short run of each (minutes in all) whose figures are indicative only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench._common import machine_info

# name → (extra arguments for --quick); policy_decisions has no --quick of its own.
BENCHMARKS: dict[str, list[str]] = {
    "audit_appends": ["--quick"],
    "audit_scaling": ["--quick"],
    "transports": ["--quick"],
    "policy_decisions": ["--sizes", "100,1000,10000", "--budget", "0.6", "--rounds", "2"],
    "token_verify": ["--quick"],
    "jwt_interop": [],
    "e2e": ["--quick"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run of each benchmark")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    args = parser.parse_args(argv)
    selected = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in selected if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = selected or list(BENCHMARKS)
    info = machine_info()
    print(f"# Benchmarks — {info['date']}, commit {info['commit']}, {info['nproc']} × "
          f"{info['cpu']}, {info['memory_gib']} GiB, Python {info['python']}"
          f"{' (quick)' if args.quick else ''}\n")  # fmt: skip
    failed: list[str] = []
    timings: list[tuple[str, float]] = []
    for name in names:
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        try:
            code = module.main(BENCHMARKS[name] if args.quick else [])
        except Exception:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        timings.append((name, time.perf_counter() - started))
        if code:
            failed.append(name)
    print("\n## Summary\n")
    for name, seconds in timings:
        print(f"- {name}: {'FAILED' if name in failed else 'ok'} in {seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
