"""Building the adapters from the agency files, with deployment overrides.

Each ``adapters/agencies/<agency>.yaml`` yields one :class:`~adapters.mapped.MappedAdapter`.
Deployments override the base URL per agency (``GATEWAY_UPSTREAM_URLS``) and supply
credentials by name (``GATEWAY_UPSTREAM_SECRETS``); secrets never live in the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx2

from adapters.base import Adapter
from adapters.config import AgencyConfig, AgencyConfigError, load_agency_configs
from adapters.mapped import MappedAdapter

__all__ = ["build_adapters"]


def build_adapters(
    directory: Path,
    *,
    secrets: Mapping[str, str],
    base_urls: Mapping[str, str] | None = None,
    transports: Mapping[str, httpx2.AsyncBaseTransport] | None = None,
    configs: Mapping[str, AgencyConfig] | None = None,
    identities: Mapping[str, str] | None = None,
) -> dict[str, Adapter]:
    """One adapter per agency file in ``directory`` (or per given config).

    ``identities`` are what each agency system's health answer must name (at the file's
    ``health_identity_path``): a system that answers with another is reported not healthy.
    """
    loaded = configs if configs is not None else load_agency_configs(directory)
    unknown = sorted(set(identities or {}) - set(loaded))
    if unknown:
        raise AgencyConfigError(f"identities given for unknown agencies: {', '.join(unknown)}")
    adapters: dict[str, Adapter] = {}
    for agency, config in loaded.items():
        config = config.with_overrides((base_urls or {}).get(agency))
        adapters[agency] = MappedAdapter(
            config,
            secrets,
            transport=(transports or {}).get(agency),
            identity=(identities or {}).get(agency),
        )
    return adapters
