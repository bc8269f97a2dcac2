"""The served app settles the heap once started; apps built by tests and tools do not.

Each case runs in a subprocess: freezing the heap or changing the collector's thresholds in
the test process would change how every later test's garbage is found.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import gc, json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from gateway.app import create_app
from gateway.auth.keys import KeyStore
from gateway.migrate import upgrade
from tests.conftest import make_settings

tmp = Path(sys.argv[1])
served = sys.argv[2] == "served"
settings = make_settings(tmp, f"sqlite:///{tmp / 'g.db'}", **json.loads(sys.argv[3]))
upgrade(settings)
KeyStore(settings.resolved_keys_path, token_ttl_seconds=settings.token_ttl_seconds).ensure()
before = gc.get_threshold()
with TestClient(create_app(settings, served=served)) as client:
    healthy = client.get("/healthz").status_code
    print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                      "before": before, "healthz": healthy}))
"""


def _run(tmp_path: Path, mode: str, **settings: object) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), mode, json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_served_app_freezes_the_start_up_heap(tmp_path: Path) -> None:
    young = 5_000  # not the default: the setting is what applies
    result = _run(tmp_path, "served", gc_young_threshold=young)
    assert result["healthz"] == 200
    assert isinstance(result["frozen"], int)
    assert result["frozen"] > 10_000  # the standard, policies, modules: out of the collector
    threshold, before = result["threshold"], result["before"]
    assert isinstance(threshold, list)
    assert isinstance(before, list)
    assert threshold == [young, *before[1:]]


def test_an_app_built_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    result = _run(tmp_path, "plain")
    assert result["frozen"] == 0
    assert result["threshold"] == result["before"]


def test_the_setting_turns_it_off(tmp_path: Path) -> None:
    result = _run(tmp_path, "served", gc_freeze=False)
    assert result["frozen"] == 0
    assert result["threshold"] == result["before"]
