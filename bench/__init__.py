"""Benchmarks (not run in CI)."""
