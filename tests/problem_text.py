"""What a problem ``detail`` must not look like: a Python repr, or a prefix said twice.

Used by every problem assertion (``tests/auth/helpers.assert_problem``) and by the schema fuzz
checks, so each error the suites provoke is read for it.
"""

from __future__ import annotations

import re

__all__ = ["wording_problems"]

# <Scope.EXCHANGE: 'exchange'>, <object object at 0x7f…>, <class 'KeyError'>
_PYTHON_REPR = re.compile(r"<[A-Za-z_][\w.]*(?:: [^<>]*| object at 0x[0-9a-f]+| '[^']*')>")
# "case binding: case binding: …"
_REPEATED_PREFIX = re.compile(r"(?<![\w-])([A-Za-z][\w -]{2,}?): \1:")


def wording_problems(detail: str) -> list[str]:
    """Why ``detail`` is not fit to show a caller (empty when it is)."""
    found = []
    if (match := _PYTHON_REPR.search(detail)) is not None:
        found.append(f"a Python repr {match.group(0)!r}")
    if (match := _REPEATED_PREFIX.search(detail)) is not None:
        found.append(f"a repeated prefix {match.group(1)!r}")
    return found
