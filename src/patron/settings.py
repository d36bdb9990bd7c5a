"""Process settings, read once from PATRON_* environment variables."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRON_", frozen=True)

    database_url: str = "sqlite:///./var/patron.db"
    # Signs OAuth tokens. Empty means "not configured": token generation then refuses to run
    # rather than sign with a guessable key.
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How long a verified till password or API-client secret is trusted without re-hashing.
    credential_cache_seconds: float = Field(default=60.0, ge=0)
    # How long an org's settings are trusted in a worker before it re-reads them, so that an
    # org file applied by the CLI reaches every worker without a restart.
    org_cache_seconds: float = Field(default=5.0, ge=0)
    db_pool_size: int = Field(default=20, ge=1)
    db_timeout_seconds: float = Field(default=5.0, gt=0)
    # Request lines and other logs: JSON lines for collectors, or a coloured line for a person;
    # auto picks by whether stderr is a terminal.
    log_format: Literal["json", "text", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # Mobiles and e-mails are masked in every log line unless this is on (secrets always are).
    log_pii: bool = False
    # When set, GET /metrics needs "Authorization: Bearer <token>"; when not, it answers only
    # to clients on this host.
    metrics_token: SecretStr | None = None
    # Where the workers of `patron serve --workers N` keep their metrics (a temporary directory
    # when unset); only Prometheus's own files in it are ever removed.
    metrics_dir: str | None = None
    # On SIGTERM, how long requests in flight may take to finish before they are cancelled.
    shutdown_grace_seconds: int = Field(default=20, ge=0)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("PATRON_SECRET_KEY must be at least 32 characters (it signs OAuth tokens)")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_token", "metrics_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
