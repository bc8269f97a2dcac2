"""The shape of an agency file (``adapters/agencies/<agency>.yaml``), validated at load.

An agency file says how to reach the agency system (transport, auth, limits) and
how its native records map to the standard (see :mod:`adapters.mapping`). A new
agency, a moved endpoint or a renamed native field is an edit here, not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "AgencyConfig",
    "AgencyConfigError",
    "ApiKeyAuth",
    "BasicAuth",
    "CircuitConfig",
    "ConnectionConfig",
    "DeliveriesConfig",
    "DeliveryAttachmentsConfig",
    "EnvelopeConfig",
    "FetchConfig",
    "FieldMapConfig",
    "MutualTlsAuth",
    "NoAuth",
    "OAuth2ClientCredentialsAuth",
    "ResourceMapConfig",
    "SearchConfig",
    "load_agency_configs",
]


class AgencyConfigError(Exception):
    """An agency file is unusable; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoAuth(_Strict):
    kind: Literal["none"] = "none"


class ApiKeyAuth(_Strict):
    kind: Literal["api_key"]
    header: str = "X-Api-Key"
    secret: str = Field(description="name of the credential in GATEWAY_UPSTREAM_SECRETS")


class BasicAuth(_Strict):
    """HTTP Basic (RFC 7617): ``username`` in the file, the password by name."""

    kind: Literal["basic"]
    username: str
    secret: str = Field(description="name of the password in GATEWAY_UPSTREAM_SECRETS")


class OAuth2ClientCredentialsAuth(_Strict):
    kind: Literal["oauth2_client_credentials"]
    token_url: str = Field(description="absolute, or relative to base_url")
    client_id: str
    secret: str = Field(description="name of the client secret in GATEWAY_UPSTREAM_SECRETS")
    scope: str | None = None


class MutualTlsAuth(_Strict):
    kind: Literal["mtls"]
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


AuthConfig = Annotated[
    NoAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentialsAuth | MutualTlsAuth,
    Field(discriminator="kind"),
]


class CircuitConfig(_Strict):
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    reset_seconds: Annotated[float, Field(gt=0)] = 10.0


class ConnectionConfig(_Strict):
    base_url: str
    health_path: str = "/health"
    # Where the health answer (JSON) names the system's identity; checked against the
    # deployment's GATEWAY_UPSTREAM_IDENTITIES, when one is given for the agency.
    health_identity_path: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=5)] = 2
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=10)] = 0.05
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    max_connections: Annotated[int, Field(ge=1, le=1000)] = 64
    circuit: CircuitConfig = CircuitConfig()


class EnvelopeConfig(_Strict):
    """A JSON wrapper such as ``{"code": 0, "msg": "ok", "data": …}``."""

    status_path: str
    ok_values: list[Any]
    not_found_values: list[Any] = []
    message_path: str | None = None


class FieldMapConfig(_Strict):
    source: str = Field(
        alias="from",
        description='native path; dots for nesting, "[]" after a step to map over a list '
        "(``defendants[].personId``)",
    )
    codes: dict[str, str] | None = None
    date_format: str | None = Field(
        default=None, description='strptime format, or "iso" / "iso-datetime"'
    )
    true_values: list[str] | None = None
    false_values: list[str] | None = None
    split: str | None = None
    type: Literal["string", "integer", "boolean", "list"] | None = None
    strip: bool = True


class FetchConfig(_Strict):
    path: str = Field(description="path template with {id}")
    record_path: str = ""

    @model_validator(mode="after")
    def _has_id(self) -> FetchConfig:
        if "{id}" not in self.path:
            raise ValueError("fetch path must contain {id}")
        return self


class SearchConfig(_Strict):
    path: str
    records_path: str = ""
    params: dict[str, str] = Field(description="standard filter name → native query parameter")
    limit_param: str
    after_param: str
    max_limit: Annotated[int, Field(ge=1)] = 100
    extra_params: dict[str, str] = {}


class ResourceMapConfig(_Strict):
    id_field: str
    fetch: FetchConfig
    search: SearchConfig | None = None
    fields: dict[str, str | FieldMapConfig]

    @model_validator(mode="after")
    def _id_is_mapped(self) -> ResourceMapConfig:
        if self.id_field not in self.fields:
            raise ValueError(f"id_field {self.id_field!r} has no field mapping")
        if self.search is not None:
            unmapped = sorted(set(self.search.params) - set(self.fields))
            if unmapped:
                raise ValueError(f"search filters {unmapped} name no mapped field")
        return self


#: What every inbound-delivery document names (the standard side of ``deliveries.fields``).
DELIVERY_FIELDS = frozenset({"delivery_id", "kind", "from_agency", "to_agency", "case_number"})
#: The standard side of ``deliveries.attachments.fields``.
ATTACHMENT_FIELDS = frozenset({"name", "media_type", "content_base64"})

FieldMaps = dict[str, str | FieldMapConfig]


class DeliveryAttachmentsConfig(_Strict):
    path: str = Field(description="native path of the list of attachments")
    fields: FieldMaps

    @model_validator(mode="after")
    def _all_fields(self) -> DeliveryAttachmentsConfig:
        missing = sorted(ATTACHMENT_FIELDS - set(self.fields))
        if missing or set(self.fields) - ATTACHMENT_FIELDS:
            raise ValueError(f"attachment fields must be exactly {sorted(ATTACHMENT_FIELDS)}")
        return self


class DeliveriesConfig(_Strict):
    """The write side: how a delivery (协同办案) is pushed to this agency's inbound endpoint.

    The document is built from the delivery's own fields (``fields``: delivery id, kind,
    sender, recipient, case number), the record at ``record_path`` written with the write
    mapping of its resource (``records`` here, else the read mapping of ``resources`` read
    backwards) and the attachments. ``idempotency_header`` carries the delivery id, so a
    repeated push is recognised by the agency system; ``receipt_path`` is where its answer
    names its own receipt number.
    """

    path: str
    method: Literal["POST", "PUT"] = "POST"
    idempotency_header: str = "Idempotency-Key"
    root: str | None = Field(default=None, description="XML: the document element")
    fields: FieldMaps
    record_path: str
    attachments: DeliveryAttachmentsConfig | None = None
    records: dict[str, FieldMaps] = {}
    receipt_path: str

    @model_validator(mode="after")
    def _all_fields(self) -> DeliveriesConfig:
        missing = sorted(DELIVERY_FIELDS - set(self.fields))
        if missing:
            raise ValueError(f"deliveries.fields must map {missing}")
        unknown = sorted(set(self.fields) - DELIVERY_FIELDS)
        if unknown:
            raise ValueError(f"deliveries.fields: unknown delivery fields {unknown}")
        return self


class AgencyConfig(_Strict):
    agency: str
    title: str
    format: Literal["json", "xml"]
    connection: ConnectionConfig
    auth: AuthConfig = NoAuth()
    envelope: EnvelopeConfig | None = None
    resources: dict[str, ResourceMapConfig]
    deliveries: DeliveriesConfig | None = None
    source_file: Path | None = None

    @model_validator(mode="after")
    def _xml_root(self) -> AgencyConfig:
        if self.format == "xml" and self.deliveries is not None and not self.deliveries.root:
            raise ValueError("deliveries.root: an XML agency names the document element")
        return self

    def with_overrides(self, base_url: str | None) -> AgencyConfig:
        if base_url is None:
            return self
        return self.model_copy(
            update={"connection": self.connection.model_copy(update={"base_url": base_url})}
        )


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


_FAST_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


def _read_yaml(path: Path) -> Any:
    """``yaml.safe_load`` of the file, parsed by libyaml where PyYAML has it (every app start
    reads these files); a file libyaml refuses is parsed again by PyYAML's own parser, whose
    error message is the one shown."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgencyConfigError(f"{path}: not valid YAML: {exc}") from exc


def load_agency_configs(directory: Path) -> dict[str, AgencyConfig]:
    """Every ``*.yaml`` in ``directory``, keyed by agency kind."""
    if not directory.is_dir():
        raise AgencyConfigError(f"agency directory {directory} does not exist")
    configs: dict[str, AgencyConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw: Mapping[str, Any] = _read_yaml(path)
        if not isinstance(raw, Mapping):
            raise AgencyConfigError(f"{path}: expected a mapping at the top level")
        try:
            config = AgencyConfig.model_validate({**raw, "source_file": path})
        except ValidationError as exc:
            raise AgencyConfigError(f"{path}: invalid agency file:\n{_describe(exc)}") from exc
        if config.agency in configs:
            raise AgencyConfigError(f"{path}: agency {config.agency!r} is defined twice")
        configs[config.agency] = config
    return configs
