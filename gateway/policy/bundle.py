"""A policy set as data: ``{relative path: YAML text}`` for permissions, negative list, tests.

Candidates arrive over the admin API as bundles and are stored as bundles. To load
one, it is written to a private temporary directory with the same layout as
``policies/`` and loaded by the same code as the shipped files, so a bundle and the
directory it came from get the same version id. Error locations name the bundle path.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError, PolicyProblem
from gateway.policy.loader import load_policy_set
from gateway.policy.suite import SuiteResult, run_suite
from gateway.standard import Standard

__all__ = ["BUNDLE_PATH", "LoadedBundle", "bundle_from_directory", "load_bundle"]

SECTIONS = ("permissions", "negative_list", "tests")
BUNDLE_PATH = re.compile(
    r"^(permissions|negative_list|tests)/[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.yaml$"
)
MAX_BUNDLE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class LoadedBundle:
    engine: PolicyEngine
    suite: SuiteResult | None


def bundle_from_directory(policies_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for section in SECTIONS:
        directory = policies_dir / section
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")):
            files[f"{section}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def check_bundle_shape(files: Mapping[str, str]) -> list[PolicyProblem]:
    problems = [
        PolicyProblem(
            "a bundle path is permissions/NAME.yaml, negative_list/NAME.yaml or tests/NAME.yaml",
            path[:120],
            code="layout",
        )
        for path in files
        if not BUNDLE_PATH.match(path)
    ]
    if sum(len(text.encode()) for text in files.values()) > MAX_BUNDLE_BYTES:
        problems.append(
            PolicyProblem(f"the bundle exceeds {MAX_BUNDLE_BYTES} bytes", "", code="size")
        )
    return problems


def load_bundle(files: Mapping[str, str], standard: Standard, *, run_tests: bool) -> LoadedBundle:
    """Validate and compile a bundle; ``PolicyError`` lists every problem (paths in the bundle)."""
    problems = check_bundle_shape(files)
    if problems:
        raise PolicyError(problems)
    with tempfile.TemporaryDirectory(prefix="policy-bundle-") as tmp:
        root = Path(tmp)
        for section in SECTIONS:
            (root / section).mkdir()
        for path, text in files.items():
            (root / path).write_text(text, encoding="utf-8")
        try:
            policy_set = load_policy_set(root, standard=standard)
        except PolicyError as exc:
            raise PolicyError([_relative(p, root) for p in exc.problems]) from None
        engine = PolicyEngine(policy_set, standard)
        suite = None
        if run_tests and any(path.startswith("tests/") for path in files):
            suite = _relative_suite(run_suite(engine, root / "tests"), root)
    return LoadedBundle(engine, suite)


def _scrub(text: str, root: Path) -> str:
    """``text`` with the private temporary directory removed (bundle paths remain)."""
    for prefix in {str(root), str(root.resolve())}:
        text = text.replace(prefix + "/", "").replace(prefix, "")
    return text


def _relative(problem: PolicyProblem, root: Path) -> PolicyProblem:
    # The file and the message (e.g. "first defined at FILE:LINE:COL") name bundle paths.
    return dataclasses.replace(
        problem,
        file=_scrub(problem.file, root) if problem.file else problem.file,
        message=_scrub(problem.message, root),
    )


def _relative_suite(result: SuiteResult, root: Path) -> SuiteResult:
    return SuiteResult(
        tuple(
            dataclasses.replace(
                case,
                file=_scrub(case.file, root),
                failures=tuple(_scrub(f, root) for f in case.failures),
            )
            for case in result.cases
        )
    )
