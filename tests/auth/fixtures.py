"""Shared gateways: an app start costs about a second, so read-mostly tests share one.

Tests that change state on a shared gateway register their own client first (a
fresh name) and change only that one. Top-level test modules import these
fixtures by name.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import Gateway, postgres_schema, started_gateway


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="package")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A started SQLite gateway shared by the auth tests: change only clients you register."""
    with started_gateway(tmp_path_factory.mktemp("shared-gateway")) as gateway:
        yield gateway


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def backend_started_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[Gateway]:
    """A started gateway on the backend named by ``request.param`` (see ``BACKENDS``)."""
    tmp = tmp_path_factory.mktemp(f"backend-{request.param}")
    if request.param == "sqlite":
        with started_gateway(tmp, **overrides) as gateway:
            yield gateway
        return
    server: str = request.getfixturevalue("postgres_server")
    with postgres_schema(server) as url, started_gateway(tmp, url, **overrides) as gateway:
        yield gateway


@pytest.fixture(scope="package", params=BACKENDS)
def backend_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Like ``shared_gateway``, once per database backend."""
    with backend_started_gateway(request, tmp_path_factory) as gateway:
        yield gateway
