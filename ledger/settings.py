"""Settings, parsed once from the environment (prefix ``LEDGER_``) by the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    data_dir: Path = Field(default=Path(".ledger"), description="SQLite files and the KEK file")
    database_url: str | None = Field(
        default=None, description="postgresql://user:pass@host:port/db; SQLite in data_dir if unset"
    )
    database_schema: str | None = Field(default=None, description="PostgreSQL schema to use")
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
    audit_retention_days: int = Field(
        default=90, ge=1, description="validation records older than this leave the audit view"
    )

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
