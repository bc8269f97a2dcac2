"""Fakes for driving ``bench.e2e.run._gateway_path`` without servers or databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest


class _Checked:
    def as_json(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def fake_gateway_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[..., Any]], None]:
    """Patch ``bench.e2e.run`` so that ``start`` stands in for ``start_gateway`` and nothing
    is prepared, authenticated, slept for or verified."""
    from bench.e2e import run

    def patch(start: Callable[..., Any]) -> None:
        monkeypatch.setattr(run, "start_gateway", start)
        monkeypatch.setattr(
            run, "prepare_gateway", lambda *a, **k: SimpleNamespace(data_dir=tmp_path)
        )
        monkeypatch.setattr(run, "_headers", lambda *a: {"Authorization": "Bearer t"})
        monkeypatch.setattr(run, "check_audit", lambda *a: _Checked())
        monkeypatch.setattr(run.time, "sleep", lambda s: None)

    return patch
