"""Fault injection and crash consistency: see tests/reliability/crash_loop.py and the test
modules here; docs/operations.md, "Crash consistency (kill -9)"."""
