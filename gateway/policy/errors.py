"""Problems found while loading and checking a policy set.

Contract: every problem names the file and, where the YAML reader can tell, the 1-based line and
column of the offending node, plus the id of the rule it concerns when there is one. Problems
have a ``severity``: ``error`` problems always make :func:`gateway.policy.loader.load_policy_set`
raise :class:`PolicyError`; ``warning`` problems (static safety checks) are kept on the loaded
``PolicySet`` and raise only in strict mode. ``code`` is a stable machine-readable tag
(``schema``, ``yaml``, ``unknown-resource``, ``cel-compile``, ``duplicate-id``,
``negative-listed-grant`` …) for tests and tooling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gateway.standard.errors import StandardError

__all__ = ["PolicyError", "PolicyProblem", "Severity"]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in the policy files; ``line``/``column`` are 1-based or ``None``."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    rule_id: str | None = None
    code: str = "invalid"
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        location = self.file or "<policies>"
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        rule = f" [{self.rule_id}]" if self.rule_id else ""
        return f"{location}: {self.severity.value}{rule}: {self.message} ({self.code})"

    def as_warning(self) -> PolicyProblem:
        """The same problem with severity ``warning``."""
        return PolicyProblem(
            self.message,
            self.file,
            self.line,
            self.column,
            self.rule_id,
            self.code,
            Severity.WARNING,
        )

    def as_error(self) -> PolicyProblem:
        """The same problem with severity ``error`` (strict mode)."""
        return PolicyProblem(
            self.message,
            self.file,
            self.line,
            self.column,
            self.rule_id,
            self.code,
            Severity.ERROR,
        )

    def to_json(self) -> dict[str, object]:
        """JSON-ready form (for the CLI's ``--json`` and the admin API)."""
        return {
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule_id": self.rule_id,
            "code": self.code,
            "severity": self.severity.value,
        }


class PolicyError(Exception):
    """The policy set could not be loaded; ``problems`` lists every problem (at least one)."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("PolicyError needs at least one problem")
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def from_standard(cls, exc: StandardError) -> PolicyError:
        """Wrap a standard loading failure (the standard is part of the policy set)."""
        return cls(
            PolicyProblem(p.message, p.file, p.line, p.column, code="standard")
            for p in exc.problems
        )
