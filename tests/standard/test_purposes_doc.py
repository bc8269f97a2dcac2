"""docs/exchange.md lists every purpose with the stages it is valid in and its legal basis."""

from __future__ import annotations

from pathlib import Path

from gateway.standard import Standard

EXCHANGE_DOC = Path(__file__).resolve().parents[2] / "docs" / "exchange.md"


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in EXCHANGE_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[2] in ("yes", "no"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_purposes_table_is_the_standards(standard: Standard) -> None:
    rows = _rows()
    assert set(rows) == {p.code for p in standard.purposes}
    names = standard.code_table("case_stage").codes
    for purpose in standard.purposes:
        _, name, needs_case, stages, basis = rows[purpose.code]
        assert name == purpose.name
        assert needs_case == ("yes" if purpose.needs_case else "no")
        assert stages == "、".join(f"{s} {names[s]}" for s in purpose.stages), purpose.code
        assert basis == purpose.legal_basis, purpose.code
