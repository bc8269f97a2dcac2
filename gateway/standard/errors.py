"""Errors raised while loading the unified sharing standard.

Contract: every problem found in the policy files is reported as a :class:`StandardProblem`
naming the file and, where the YAML parser can tell, the 1-based line and column of the
offending node. :class:`StandardError` carries one or more problems; its first problem is
exposed through ``file``/``line``/``column``/``message`` for convenience.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["StandardError", "StandardProblem"]


@dataclass(frozen=True, slots=True)
class StandardProblem:
    """One problem in the standard's files.

    ``line`` and ``column`` are 1-based; they are ``None`` when the problem has no
    position (e.g. a missing file).
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        location = self.file or "<standard>"
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        return f"{location}: {self.message}"


class StandardError(Exception):
    """The standard could not be loaded; ``problems`` lists every problem found (at least one)."""

    def __init__(self, problems: Iterable[StandardProblem]) -> None:
        self.problems: tuple[StandardProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("StandardError needs at least one problem")
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(
        cls,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> StandardError:
        """Build an error with exactly one problem."""
        return cls([StandardProblem(message, file, line, column)])

    @property
    def message(self) -> str:
        """Message of the first problem."""
        return self.problems[0].message

    @property
    def file(self) -> str | None:
        """File of the first problem."""
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        """1-based line of the first problem, if known."""
        return self.problems[0].line

    @property
    def column(self) -> int | None:
        """1-based column of the first problem, if known."""
        return self.problems[0].column
