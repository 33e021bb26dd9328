"""Settings, parsed once from the environment (prefix ``LEDGER_``) by the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    data_dir: Path = Field(default=Path(".ledger"), description="SQLite files and the KEK file")
    database_url: str | None = Field(
        default=None, description="postgresql://user:pass@host:port/db; SQLite in data_dir if unset"
    )
    database_schema: str | None = Field(default=None, description="PostgreSQL schema to use")
    database_pool_size: int = Field(
        default=3,
        ge=1,
        le=100,
        description="PostgreSQL connections kept open per pool, per process",
    )
    kek: SecretStr | None = Field(
        default=None, description="key-encryption key (base64 of 32 bytes); else data_dir/kek.key"
    )
    encryption: bool = Field(
        default=True,
        description="seal events and personal data at rest; 'false' only for benchmark comparisons",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    api_key_env: str = "live"
    run_workers: bool = Field(default=True, description="run projections inside the API process")
    poll_interval: float = 0.05
    read_your_writes_timeout: float = 2.0
    trusted_proxies: list[str] = Field(default_factory=list)
    api_key_rotation_grace_seconds: int = Field(
        default=86400, ge=0, description="how long a rotated API key keeps working"
    )
    api_key_rate_limit: str | None = Field(
        default=None, description="rate limit of API keys that set none, e.g. '100/second'"
    )
    validate_rate_limit: str | None = Field(
        default="100/second", description="per client IP limit on validate-key; unset: none"
    )
    api_key_use_interval_seconds: float = Field(
        default=60.0, ge=0, description="record an API key's use at most this often per process"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="larger bodies get 413")
    audit_retention_days: int = Field(
        default=90, ge=1, description="validation records older than this leave the audit view"
    )
    log_name: str = Field(
        default="license-ledger.local",
        pattern=r"^[^\s+]+$",
        description="audit log key name; each org's checkpoint origin is <log_name>/orgs/<org id>",
    )
    checkpoint_every_events: int = Field(
        default=1000, ge=1, description="sign an org checkpoint once its log grew by this many"
    )
    checkpoint_every_seconds: float = Field(
        default=60.0, gt=0, description="sign checkpoints of any unsigned growth this often"
    )
    # Webhooks and NATS (docs/webhooks.md)
    webhook_allow_loopback: bool = Field(
        default=False, description="allow webhook URLs on loopback (local development and tests)"
    )
    webhook_timeout: float = Field(default=15.0, gt=0, description="seconds per delivery attempt")
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default=[5, 60, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400],
        description="seconds before each retry, comma-separated (about three days in all)",
    )
    webhook_disable_after: float = Field(
        default=5 * 86400, gt=0, description="disable an endpoint failing continuously this long"
    )
    webhook_secret_overlap: float = Field(
        default=86400, ge=0, description="seconds the previous secret keeps signing after rotation"
    )
    webhook_concurrency: int = Field(default=8, ge=1, le=256, description="endpoints in parallel")
    nats_url: str | None = Field(
        default=None, description="nats://host:port; publisher off if unset"
    )

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p for p in v.replace(" ", "").split(",") if p]
        if not v or any(float(x) < 0 for x in v):
            raise ValueError("give one or more non-negative numbers of seconds, comma-separated")
        return v

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("LEDGER_DATABASE_URL must be a postgresql:// URL")
        return v

    @property
    def is_postgres(self) -> bool:
        return self.database_url is not None
