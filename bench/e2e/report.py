"""The end-to-end report: markdown tables, the issue's targets, and the docs section."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from bench._common import markdown_table

__all__ = ["all_clean", "render", "targets", "write_docs"]

BEGIN, END = "<!-- e2e:begin -->", "<!-- e2e:end -->"


def _f(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _latency(run: dict[str, Any] | None) -> str:
    if not run:
        return "—"
    return f"{run['p50_ms']:.2f} / {run['p99_ms']:.2f} / {run['p999_ms']:.2f}"


def _paths_table(paths: dict[str, Any]) -> str:
    rows = []
    for result in paths.values():
        top = result["max"]
        loops = result["open_loop"]
        errors = top["errors"] + sum(run["errors"] for run in loops.values())
        db = result["db_cpu_us_per_request"]
        rows.append([
            result["name"], _f(top["rate"]), _f(result["cpu_us_per_request"]),
            "—" if db is None else f"+{_f(db)}", _f(result["peak_rss_mib"], 1),
            _f(top["p50_ms"], 2) + " / " + _f(top["p99_ms"], 2),
            _latency(loops.get("50%")), _latency(loops.get("80%")), str(errors),
            "—" if result["audit"] is None else ("yes" if result["audit"]["ok"] else "**NO**"),
        ])  # fmt: skip
    return markdown_table(
        ["path", "max req/s", "CPU µs/req", "DB server CPU µs/req", "peak RSS MiB",
         "p50 / p99 ms at max", "p50 / p99 / p99.9 ms at 50 %", "… at 80 %", "errors",
         "audit verifies"],
        rows,
    )  # fmt: skip


def targets(payload: dict[str, Any]) -> list[dict[str, Any]]:
    paths = payload["paths"]
    if "c" not in paths or "a" not in paths:
        return []
    bare, upstream = paths["c"], paths["a"]

    def added_p99(result: dict[str, Any]) -> float:
        return float(result["open_loop"]["50%"]["p99_ms"] - upstream["open_loop"]["50%"]["p99_ms"])

    found: list[dict[str, Any]] = []
    for key, result in paths.items():
        if not key.startswith("d-") or not key.endswith("-1w"):
            continue
        label = result["name"]
        cpu, rate = result["cpu_us_per_request"], result["max"]["rate"]
        floor_cpu, floor_rate, against = reference(paths, key)
        first = (
            f" (vs the first (c): {cpu / bare['cpu_us_per_request']:.2f}×)"
            if against != "(c)" else ""
        )  # fmt: skip
        first_rate = f" (vs the first (c): {rate / bare['max']['rate']:.2f}×)" if first else ""
        found += [
            {"target": f"CPU per request vs {against}: {label}{first}", "goal": "≤ 2×",
             "limit": 2.0, "value": cpu / floor_cpu, "low": True},
            {"target": f"max throughput vs {against}: {label}{first_rate}", "goal": "≥ 0.5×",
             "limit": 0.5, "value": rate / floor_rate, "low": False},
            {"target": f"p99 added latency at 50 % vs (c): {label}", "goal": "≤ 3×",
             "limit": 3.0, "value": added_p99(result) / max(1e-3, added_p99(bare)), "low": True},
        ]  # fmt: skip
        two = paths.get(key.replace("-1w", "-2w"))
        if two is not None:
            found.append({
                "target": f"two workers vs one: {label.replace('1 worker', '2 workers')}",
                "goal": "≥ 1.7×", "limit": 1.7,
                "value": two["max"]["rate"] / result["max"]["rate"], "low": False,
            })  # fmt: skip
    for item in found:
        item["met"] = (
            item["value"] <= item["limit"] if item["low"] else item["value"] >= item["limit"]
        )
    return found


def reference(paths: dict[str, Any], key: str) -> tuple[float, float, str]:
    """The floor a gateway path is compared with: (c)'s CPU per request and maximum rate.

    The mean of (c) measured just before and just after the path when the run has both
    (``c@<key>:before`` / ``:after``), so that a drift of the machine's speed between the
    start of the run and the path does not count as the gateway's; else the first (c).
    """
    around = [r for r in (paths.get(f"c@{key}:before"), paths.get(f"c@{key}:after")) if r]
    if len(around) == 2:
        cpu = sum(r["cpu_us_per_request"] for r in around) / 2
        rate = sum(r["max"]["rate"] for r in around) / 2
        return cpu, rate, "(c) just before and after it"
    return paths["c"]["cpu_us_per_request"], paths["c"]["max"]["rate"], "(c)"


def _soak_table(soak: dict[str, Any]) -> str:
    audit = soak["audit"]
    rows = [[
        f"{soak['seconds']:.0f} s", _f(soak["achieved_rate"]),
        f"{soak['achieved_rate'] / soak['target_rate'] * 0.7:.0%}", f"{soak['requests']:,}",
        str(soak["errors"]), f"{audit['proofs_verified']:,} / {audit['receipts']:,}",
        "yes" if audit["verify_exit"] == 0 else "**NO**",
        f"{soak['rss_mib_early']:.1f} → {soak['rss_mib_late']:.1f} ({soak['rss_growth']:+.1%})",
        _f(soak["p99_ms"], 2), "**passed**" if soak["passed"] else "**FAILED**",
    ]]  # fmt: skip
    return markdown_table(
        ["duration", "req/s", "of max", "requests", "errors", "receipts whose proof verifies",
         "gateway audit verify", "RSS MiB (2nd tenth → last tenth)", "p99 ms", "result"],
        rows,
    )  # fmt: skip


def render(payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    example = payload["example"]
    lines = [
        f"Run {machine['date']}, commit {machine['commit']}, {machine['nproc']} × "
        f"{machine['cpu']}, {machine['memory_gib']} GiB, Python {machine['python']}. "
        f"Request: `GET {example['path']}` (demo example `{payload['example']['name']}`).",
        "",
        _paths_table(payload["paths"]),
        "",
        markdown_table(
            ["target (issue 6)", "measured", "goal", "met?"],
            [
                [t["target"], f"{t['value']:.2f}×", t["goal"], "yes" if t["met"] else "**no**"]
                for t in targets(payload)
            ],
        ),
    ]
    lines += _delivery_lines(payload["paths"])
    if payload.get("soak"):
        lines += ["", _soak_table(payload["soak"])]
    for result in payload["paths"].values():
        if result.get("flame"):
            rows = [[name, f"{share:.1%}"] for name, share in result["flame"].items()]
            lines += ["", f"Where the CPU goes: {result['name']} (py-spy, GIL-holding samples)",
                      "", markdown_table(["component", "share of samples"], rows)]  # fmt: skip
    return "\n".join(lines)


def _delivery_lines(paths: dict[str, Any]) -> list[str]:
    """CPU per delivery vs the authenticated POST pass-through of the same run (issue 15)."""
    floor = paths.get("c-post")
    lines = []
    for key, result in paths.items():
        if floor is None or not key.endswith("-delivery"):
            continue
        ratio = result["cpu_us_per_request"] / max(1e-9, floor["cpu_us_per_request"])
        lines.append(
            f"Delivery (`POST /v1/deliveries`, record inline, {result['name']}): "
            f"{_f(result['cpu_us_per_request'])} µs CPU per delivery vs "
            f"{_f(floor['cpu_us_per_request'])} µs per authenticated POST pass-through: "
            f"{ratio:.1f}×."
        )
    return ["", *lines] if lines else []


def all_clean(payload: dict[str, Any]) -> bool:
    """No errors on any path, every audit log verifies, and the soak (if run) passed."""
    for result in payload["paths"].values():
        if result["max"]["errors"] or any(r["errors"] for r in result["open_loop"].values()):
            return False
        if result["audit"] is not None and not result["audit"]["ok"]:
            return False
    soak = payload.get("soak")
    return soak is None or bool(soak["passed"])


def write_docs(path: Path, text: str) -> None:
    """Replace the generated block of the end-to-end section, keeping the prose around it."""
    doc = path.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(doc) is None:
        raise RuntimeError(f"{path} has no {BEGIN} … {END} block to rewrite")
    path.write_text(pattern.sub(lambda _: block, doc), encoding="utf-8")
