"""Shared helpers of the benchmarks: machine facts, scratch databases, tables, result files."""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCRATCH = ROOT / "var" / "bench"
POSTGRES_URL = os.environ.get(
    "GATEWAY_BENCH_POSTGRES_URL",
    os.environ.get(
        "GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)

__all__ = [
    "POSTGRES_URL",
    "RESULTS",
    "ROOT",
    "SCRATCH",
    "machine_info",
    "markdown_table",
    "median",
    "migrate",
    "postgres_available",
    "postgres_schema",
    "sqlite_database",
    "write_results",
]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare figures: CPU, cores, memory, Python, commit, date."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
         if line.startswith("MemTotal:")),
        0,
    )  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "loadavg": _read("/proc/loadavg").split()[:3],
        "platform": platform.platform(),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; the first column is left-aligned, the others right-aligned."""
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with the machine facts) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    body = {"benchmark": name, "machine": machine_info(), **payload}
    out.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def migrate(url: str, data_dir: Path) -> None:
    """Create the gateway schema at ``url`` with the gateway's own migrations."""
    from gateway.migrate import upgrade
    from gateway.settings import Mode, Settings

    settings = Settings(mode=Mode.TEST, data_dir=data_dir, database_url=url)
    upgrade(settings, url=url)


@contextmanager
def sqlite_database(name: str = "gateway.db", *, directory: Path | None = None) -> Iterator[str]:
    """A migrated SQLite database in a fresh temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-", dir=directory) as tmp:
        url = f"sqlite:///{Path(tmp) / name}"
        migrate(url, Path(tmp))
        yield url


def postgres_available() -> str | None:
    """``None`` when the benchmark PostgreSQL server answers, else the reason it does not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        return str(exc).splitlines()[0]
    return None


@contextmanager
def postgres_schema(*, migrated: bool = True) -> Iterator[str]:
    """A fresh schema on the benchmark PostgreSQL server as a URL; dropped afterwards."""
    schema = f"gw_bench_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    try:
        if migrated:
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                migrate(url, Path(tmp))
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
