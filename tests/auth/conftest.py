"""Fixtures for the auth tests; see tests/auth/fixtures.py."""

from tests.auth.fixtures import backend_gateway, shared_gateway

__all__ = ["backend_gateway", "shared_gateway"]
