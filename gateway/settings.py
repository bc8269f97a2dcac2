"""Gateway configuration, read from ``GATEWAY_*`` environment variables.

Settings are grouped by concern (database, tokens, limits, …) but live in one
``Settings`` object so that one environment maps to one validated value.
Outside demo mode :func:`Settings.check_production_ready` refuses placeholder
values with a message that says what to set.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.audit.checkpoint import KeyFormatError, check_key_name
from gateway.auth.keys import DEFAULT_SIGNING_ALG, SigningAlg

__all__ = [
    "DEFAULT_AUDIT_ORIGIN",
    "LEGACY_AUDIT_ORIGIN",
    "LEGACY_CHECKPOINT_KEY_NAME",
    "REPO_ROOT",
    "Mode",
    "Settings",
    "SettingsError",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_AUDIT_ORIGIN = "zhengfa-gateway.local/audit"
LEGACY_AUDIT_ORIGIN = "zhengfa-gateway/audit"
# The checkpoint key's name before it followed the origin (kept in old key files).
LEGACY_CHECKPOINT_KEY_NAME = "zhengfa-audit"

_PLACEHOLDERS = {"", "changeme", "change-me", "placeholder", "secret", "xxx", "todo"}


class SettingsError(Exception):
    """The configuration cannot run the gateway; the message says what to set."""


class Mode(StrEnum):
    PRODUCTION = "production"
    DEMO = "demo"
    TEST = "test"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=None, extra="ignore", frozen=True
    )

    mode: Mode = Mode.PRODUCTION
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file gateway.db in data_dir",
    )
    # PostgreSQL: the gateway runs as an application role that may not rewrite history;
    # `gateway db upgrade` runs the migrations as the tables' owner (this URL, default the
    # one above) and grants the application role what it needs (--app-role, or this).
    migration_database_url: str | None = None
    database_app_role: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    policy_dir: Path = REPO_ROOT / "policies"
    migrations_dir: Path = REPO_ROOT / "migrations"
    agencies_dir: Path = REPO_ROOT / "adapters" / "agencies"

    # Tokens
    keys_path: Path | None = Field(
        default=None, description="private JWK set file; default: data_dir/keys/signing-keys.json"
    )
    # Algorithm of the keys `gateway keys rotate` makes (RS256, ES256 or Ed25519); tokens are
    # signed by the active key with its own algorithm (docs/operations.md, "Token signing").
    token_signing_alg: SigningAlg = DEFAULT_SIGNING_ALG
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "zhengfa-gateway"
    token_ttl_seconds: Annotated[int, Field(ge=30, le=86_400)] = 300
    # The longest lifetime a token may have (exp - iat) to be accepted, whoever issued it.
    token_max_lifetime_seconds: Annotated[int, Field(ge=30, le=86_400)] = 3600
    token_cache_size: Annotated[int, Field(ge=0)] = 10_000
    require_https: bool = False
    # One external identity provider may be trusted, by its JWKS URL.
    external_issuer: str | None = None
    external_jwks_url: str | None = None
    external_audience: str | None = None
    # How long a disabled client's already-issued tokens may still pass.
    client_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0

    # Audit log
    checkpoint_key_path: Path | None = Field(
        default=None, description="Ed25519 note key; default: data_dir/keys/checkpoint.key"
    )
    # The log's name on its checkpoints and the checkpoint key's name (C2SP tlog-checkpoint:
    # a schema-less URL; the key name SHOULD equal it). Give each deployment its own, e.g.
    # "gateway.zfw.example.gov.cn/audit", before the first start.
    audit_origin: str = DEFAULT_AUDIT_ORIGIN
    # Origins this log had before (their checkpoints keep verifying): by default the one
    # every checkpoint had before origins became configurable URL-like names.
    audit_previous_origins: list[str] = Field(default_factory=lambda: [LEGACY_AUDIT_ORIGIN])
    checkpoint_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    audit_batch_max: Annotated[int, Field(ge=1, le=10_000)] = 256
    audit_batch_wait_ms: Annotated[float, Field(ge=0, le=100)] = 2.0
    # Key of the keyed hashes that stand for search filter values in audit entries. Unset, a
    # key is made once in data_dir/keys/audit-criteria.key.
    audit_criteria_secret: SecretStr | None = None

    # Limits
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # nginx's default large_client_header_buffers is 4 × 8 KiB: the same order of size.
    max_header_bytes: Annotated[int, Field(ge=4096)] = 32_768
    max_header_count: Annotated[int, Field(ge=16)] = 100
    rate_limit_per_second: Annotated[float, Field(gt=0)] = 200.0
    rate_limit_burst: Annotated[int, Field(ge=1)] = 400
    redis_url: str | None = Field(
        default=None, description="shared rate-limit state for several workers or hosts"
    )
    # Requests without an identified caller, per source address (then 429).
    anonymous_rate_limit_per_second: Annotated[float, Field(gt=0)] = 5.0
    anonymous_rate_limit_burst: Annotated[int, Field(ge=1)] = 20
    # The token endpoint, per source address and per claimed client id (then 429).
    token_source_rate_limit_per_second: Annotated[float, Field(gt=0)] = 5.0
    token_source_rate_limit_burst: Annotated[int, Field(ge=1)] = 20
    token_rate_limit_per_second: Annotated[float, Field(gt=0)] = 1.0
    token_rate_limit_burst: Annotated[int, Field(ge=1)] = 10
    # scrypt runs in a pool of its own: this many at once, this many more waiting.
    scrypt_workers: Annotated[int, Field(ge=1, le=64)] = 2
    scrypt_queue: Annotated[int, Field(ge=0, le=10_000)] = 32
    # Anonymous and failed-token requests: one audit entry per key and interval, at most
    # this many keys per kind and interval (docs/operations.md, "Disk growth").
    aggregate_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    aggregate_max_keys: Annotated[int, Field(ge=1, le=100_000)] = 20

    # Search paging (docs/exchange.md, "Search cursors"). Unset, the cursor key is made once in
    # data_dir/keys/cursor.key; set it when the workers' hosts share no data directory.
    cursor_secret: SecretStr | None = None
    # Upstream calls one search page may make to fill itself past concealed records.
    search_upstream_calls: Annotated[int, Field(ge=1, le=64)] = 8
    # How long the subject records (persons, cases) that decide on records referring to them
    # are cached: a record sealed upstream is concealed everywhere within this time.
    subject_cache_seconds: Annotated[float, Field(ge=0, le=600)] = 30.0

    # Conditional sharing (有条件共享): the owning agency answers an application within this many
    # working days (policies/calendar/holidays.yaml; Shaanxi sets 5); a grant lasts at most
    # sharing_max_days; a revocation or approval reaches every worker within the follow
    # interval.
    sharing_answer_working_days: Annotated[int, Field(ge=1, le=60)] = 5
    sharing_max_days: Annotated[int, Field(ge=1, le=366)] = 90
    sharing_follow_interval_seconds: Annotated[float, Field(gt=0, le=2)] = 1.0

    # Deliveries (协同办案): the outbox pusher sends each stored delivery to the recipient's
    # system. It polls every interval and is woken at once when a delivery is created; a
    # failed push is retried after backoff * 2^(attempt-1) (at most the cap) until max
    # attempts, then the delivery is failed. A claimed row is leased for lease seconds: a
    # worker killed mid-push leaves it to another after that. Disabled: nothing is pushed
    # (tests that drive the pusher themselves).
    delivery_push_enabled: bool = True
    delivery_push_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    delivery_push_backoff_seconds: Annotated[float, Field(gt=0, le=600)] = 2.0
    delivery_push_backoff_cap_seconds: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    delivery_push_max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    delivery_push_lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0

    # Candidate policy tests, impact replays and explains run in a process of their own with
    # these limits (422 beyond).
    policy_eval_cpu_seconds: Annotated[int, Field(ge=1, le=600)] = 5
    policy_eval_memory_mb: Annotated[int, Field(ge=128, le=65_536)] = 512

    # The web console (/console/, docs/console.md): a session ends this long after sign-in.
    console_session_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 60
    # Session cookies are Secure (sent over https only). A developer on http://127.0.0.1 may
    # set this to get cookies without Secure; honoured for loopback hosts only, never in
    # production mode.
    console_insecure_loopback_cookies: bool = False
    # Sign-in throttling (docs/console.md, "Sign-in throttling"): per user name *and* source
    # address (token_rate_limit_*), per source address (token_source_rate_limit_*), and per user
    # name over every address (these): past this last one, guessing from many addresses, only
    # the right password *with* a TOTP code passes; nobody can lock a user out from one address.
    console_signin_user_rate_limit_per_second: Annotated[float, Field(gt=0)] = 0.05
    console_signin_user_rate_limit_burst: Annotated[int, Field(ge=1)] = 30
    # A person with policy:admin signs in only with TOTP enrolled (gateway users add --totp).
    console_admin_totp_required: bool = True

    # Operations
    # /metrics needs a token with scope metrics:read; or, with a port here, it is served
    # without a token on metrics_host:metrics_port only (and not on the API port).
    metrics_port: Annotated[int | None, Field(ge=1, le=65535)] = None
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_json: bool = True
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # `gateway serve` only (gateway/heap.py): freeze the start-up heap out of the cyclic
    # collector, and collect the youngest generation after this many net allocations.
    gc_freeze: bool = True
    gc_young_threshold: Annotated[int, Field(ge=700, le=1_000_000)] = 20_000
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000

    # Agency systems: base URLs overriding adapters/agencies/*.yaml, and credentials by name,
    # e.g. GATEWAY_UPSTREAM_URLS='{"court": "https://…"}' GATEWAY_UPSTREAM_SECRETS='{"court": "…"}'
    upstream_urls: dict[str, str] = Field(default_factory=dict)
    upstream_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # What each agency system's health answer must name (agency file: health_identity_path);
    # a system answering with another identity makes /readyz answer 503. The demo sets these.
    upstream_identities: dict[str, str] = Field(default_factory=dict)

    @field_validator("issuer")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("audit_origin")
    @classmethod
    def _origin_is_a_key_name(cls, value: str) -> str:
        try:
            check_key_name(value)
        except KeyFormatError:
            raise ValueError(
                "the audit origin names the checkpoint key too: no spaces and no '+' "
                "(a schema-less URL such as gateway.example.gov.cn/audit)"
            ) from None
        if "://" in value:
            raise ValueError("the audit origin has no scheme: gateway.example.gov.cn/audit")
        return value

    @property
    def accepted_audit_origins(self) -> list[str]:
        """The origin, then the previous ones: what a checkpoint of this log may carry."""
        return list(dict.fromkeys([self.audit_origin, *self.audit_previous_origins]))

    @property
    def checkpoint_key_names(self) -> list[str]:
        """Every name this log's checkpoint key may have signed under."""
        return [*self.accepted_audit_origins, LEGACY_CHECKPOINT_KEY_NAME]

    @model_validator(mode="after")
    def _lifetimes(self) -> Settings:
        if self.token_max_lifetime_seconds < self.token_ttl_seconds:
            raise ValueError(
                "GATEWAY_TOKEN_MAX_LIFETIME_SECONDS must be at least GATEWAY_TOKEN_TTL_SECONDS "
                "(the gateway would refuse its own tokens)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def resolved_migration_database_url(self) -> str:
        return self.migration_database_url or self.resolved_database_url

    @property
    def resolved_keys_path(self) -> Path:
        return self.keys_path or self.data_dir / "keys" / "signing-keys.json"

    @property
    def resolved_checkpoint_key_path(self) -> Path:
        return self.checkpoint_key_path or self.data_dir / "keys" / "checkpoint.key"

    @property
    def is_demo(self) -> bool:
        return self.mode is not Mode.PRODUCTION

    def check_production_ready(self) -> None:
        """Raise :class:`SettingsError` listing every missing or placeholder value."""
        if self.is_demo:
            return
        problems: list[str] = []
        if self.database_url is None:
            problems.append("GATEWAY_DATABASE_URL is not set (e.g. postgresql+psycopg://…)")
        if self.issuer == Settings.model_fields["issuer"].default:
            problems.append("GATEWAY_ISSUER is the loopback default; set the public https URL")
        elif not self.issuer.startswith("https://"):
            problems.append("GATEWAY_ISSUER must be an https:// URL in production")
        if not self.resolved_keys_path.is_file():
            problems.append(
                f"no signing keys at {self.resolved_keys_path}: run `gateway keys rotate` "
                "or set GATEWAY_KEYS_PATH"
            )
        if not self.resolved_checkpoint_key_path.is_file():
            problems.append(
                f"no audit checkpoint key at {self.resolved_checkpoint_key_path}: run "
                "`gateway audit init-key` or set GATEWAY_CHECKPOINT_KEY_PATH"
            )
        for agency, secret in self.upstream_secrets.items():
            if secret.get_secret_value().strip().lower() in _PLACEHOLDERS:
                problems.append(f"GATEWAY_UPSTREAM_SECRETS[{agency}] is a placeholder")
        if self.console_insecure_loopback_cookies:
            problems.append(
                "GATEWAY_CONSOLE_INSECURE_LOOPBACK_COOKIES is for development on loopback only"
            )
        if bool(self.external_issuer) != bool(self.external_jwks_url):
            problems.append("set GATEWAY_EXTERNAL_ISSUER and GATEWAY_EXTERNAL_JWKS_URL together")
        if problems:
            raise SettingsError(
                "refusing to start outside demo mode:\n  - " + "\n  - ".join(problems)
            )
