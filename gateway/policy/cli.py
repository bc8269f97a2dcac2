"""``gateway policy …`` commands: validate, test, diff, explain.

Wire into the main CLI with ``register_policy_commands(subparsers)``; each command sets
``func(args) -> int``. Also runnable alone: ``python -m gateway.policy.cli policy validate DIR``.

Exit codes: 0 ok · 1 invalid policy set or failed tests · 2 usage (missing file, bad JSON).
``DIR`` is a policy directory with ``standard/``, ``permissions/``, ``negative_list/`` and
``tests/``. Every validation problem is printed as ``file:line:column: severity [rule]: …``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.cli import register_policy_commands
from gateway.policy.diff import diff_policy_sets
from gateway.policy.engine import PolicyEngine
from gateway.policy.errors import PolicyError
from gateway.policy.loader import load_policy_set
from gateway.policy.policy_set import PolicySet
from gateway.policy.render import request_from_json, subjects_from_json
from gateway.policy.suite import run_suite

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main", "register_policy_commands"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _load(directory: Path, strict: bool = False) -> PolicySet | None:
    try:
        return load_policy_set(directory, strict=strict)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = sum(1 for p in exc.problems if p.severity.value == "error")
        print(f"{directory}: invalid policy set ({errors} error(s))", file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"gateway policy validate: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    policy_set = _load(directory, args.strict)
    if policy_set is None:
        return EXIT_FAILED
    for warning in policy_set.warnings:
        print(warning, file=sys.stderr)
    if args.json:
        print(json.dumps(dict(policy_set.summary()), ensure_ascii=False, indent=2))
    else:
        print(
            f"{directory}: ok — {len(policy_set.permissions)} permissions, "
            f"{len(policy_set.negative_list)} negative-list items, "
            f"{len(policy_set.warnings)} warning(s); version {policy_set.version}"
        )
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"gateway policy test: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    policy_set = _load(directory)
    if policy_set is None:
        return EXIT_FAILED
    suites = Path(args.suite) if args.suite else directory / "tests"
    if not suites.exists():
        print(f"gateway policy test: {suites} does not exist", file=sys.stderr)
        return EXIT_USAGE
    result = run_suite(PolicyEngine(policy_set), suites)
    print(result.format(verbose=args.verbose))
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_diff(args: argparse.Namespace) -> int:
    dirs = [Path(args.old), Path(args.new)]
    for directory in dirs:
        if not directory.is_dir():
            print(f"gateway policy diff: {directory} is not a directory", file=sys.stderr)
            return EXIT_USAGE
    old, new = _load(dirs[0]), _load(dirs[1])
    if old is None or new is None:
        return EXIT_FAILED
    diff = diff_policy_sets(old, new)
    if args.json:
        print(json.dumps(diff.to_json(), ensure_ascii=False, indent=2))
    else:
        print(diff.format())
    return EXIT_OK


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    try:
        raw_request = _read_json(args.request, "request")
        records = _read_json(args.records, "records") if args.records else []
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("records must be a JSON array of objects")
        raw_subjects = _read_json(args.subjects, "subjects") if args.subjects else None
    except ValueError as exc:
        print(f"gateway policy explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not directory.is_dir():
        print(f"gateway policy explain: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    policy_set = _load(directory)
    if policy_set is None:
        return EXIT_FAILED
    try:
        request = request_from_json(raw_request, policy_set.standard)
    except ValueError as exc:
        print(f"gateway policy explain: {args.request}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        subjects = subjects_from_json(raw_subjects, policy_set.standard, request)
    except ValueError as exc:
        print(f"gateway policy explain: {args.subjects}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    document = PolicyEngine(policy_set).explain(request, records, subjects)
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m gateway.policy.cli policy …``)."""
    parser = argparse.ArgumentParser(prog="gateway")
    register_policy_commands(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
