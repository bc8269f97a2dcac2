"""The A/B report: each gateway run against the pass-through of its own round, then medians."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.e2e.ab import PASS_THROUGH, _variants, main, render


def _row(round_: int, variant: str, rate: float, cpu: float, **extra: object) -> dict[str, object]:
    return {"round": round_, "variant": variant, "rate": rate, "cpu_us": cpu, "errors": 0,
            "audit_ok": None if variant == PASS_THROUGH else True, **extra}  # fmt: skip


def test_ratios_are_against_the_same_rounds_pass_through() -> None:
    rows = [
        _row(1, PASS_THROUGH, 2000, 500),
        _row(1, "old", 800, 1250),
        _row(1, "new", 1000, 900),
        _row(2, PASS_THROUGH, 1000, 1000),  # a slow round: everything twice as costly
        _row(2, "old", 400, 2500),
        _row(2, "new", 500, 1800),
        _row(3, PASS_THROUGH, 2000, 500),
        _row(3, "old", 900, 1000, audit_ok=False),
        _row(3, "new", 1200, 1000),
    ]
    text = render(rows)
    lines = text.splitlines()
    assert "| 2 | new | 500 | 1,800 | 1.80× | 0.50× | 0 | yes |" in lines
    assert "| 3 | old | 900 | 1,000 | 2.00× | 0.45× | 0 | **no** |" in lines
    assert "| 1 | (c) | 2,000 | 500 | 1.00× | 1.00× | 0 | — |" in lines
    # Medians of the per-round ratios: old 2.5, 2.5, 2.0 → 2.5; new 1.8, 1.8, 2.0 → 1.8.
    assert "| old | 2.50× | 0.40× | 3 |" in lines
    assert "| new | 1.80× | 0.50× | 3 |" in lines


def test_variants_name_checkouts_and_put_the_pass_through_first(tmp_path: Path) -> None:
    assert _variants([]) == [(PASS_THROUGH, None), ("gateway", None)]
    a, b = tmp_path / "a", tmp_path / "b"
    assert _variants([a, b]) == [(PASS_THROUGH, None), ("a", a), ("b", b)]
    # Two checkouts with one directory name are told apart by their full paths.
    c, d = tmp_path / "x" / "main", tmp_path / "y" / "main"
    assert [name for name, _ in _variants([c, d])][1:] == [str(c), str(d)]


def test_a_directory_without_the_gateway_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--checkout", str(tmp_path)])
    assert exit_.value.code == 2
