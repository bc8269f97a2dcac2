"""End-to-end benchmark of the whole request path (issue 6); see :mod:`bench.e2e.run`."""

from bench.e2e.run import main

__all__ = ["main"]
