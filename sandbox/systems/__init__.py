"""The five sample agency systems (Starlette apps), one per agency kind.

``create_app(kind, dataset, credentials, faults_enabled=…, index_limit=…)`` builds the app of
``kind`` (public_security, procuratorate, court, prison, justice); ``system_spec(kind, dataset)``
gives its description (routes, native converters) — handy to render native records offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from starlette.applications import Starlette

from sandbox.generator import Dataset
from sandbox.systems import court, justice, prison, procuratorate, public_security
from sandbox.systems.auth import Credentials
from sandbox.systems.common import DEFAULT_INDEX_LIMIT, SystemSpec

__all__ = ["AGENCY_KINDS", "DEFAULT_PORTS", "Credentials", "create_app", "system_spec"]


class _Factory(Protocol):
    def __call__(
        self,
        dataset: Dataset,
        credentials: Credentials,
        *,
        faults_enabled: bool = ...,
        index_limit: int = ...,
    ) -> Starlette: ...


_FACTORIES: Final[dict[str, _Factory]] = {
    "public_security": public_security.create_app,
    "procuratorate": procuratorate.create_app,
    "court": court.create_app,
    "prison": prison.create_app,
    "justice": justice.create_app,
}
_SPECS: Final[dict[str, Callable[[Dataset], SystemSpec]]] = {
    "public_security": lambda _: public_security.SPEC,
    "procuratorate": lambda _: procuratorate.SPEC,
    "court": lambda _: court.SPEC,
    "prison": prison.spec,
    "justice": justice.spec,
}
AGENCY_KINDS: Final = tuple(_FACTORIES)
#: Port of each system under ``serve-all --base-port 18101`` (base + position).
DEFAULT_PORTS: Final = {kind: 18101 + n for n, kind in enumerate(AGENCY_KINDS)}


def create_app(
    kind: str,
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
) -> Starlette:
    """Build the sample system of agency ``kind`` over ``dataset``."""
    factory = _FACTORIES[kind]
    return factory(dataset, credentials, faults_enabled=faults_enabled, index_limit=index_limit)


def system_spec(kind: str, dataset: Dataset) -> SystemSpec:
    """Description of the sample system of agency ``kind``."""
    return _SPECS[kind](dataset)
