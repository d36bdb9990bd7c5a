"""Process settings, read once from PATRON_* environment variables."""

from functools import lru_cache

from pydantic import Field, field_validator
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

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("PATRON_SECRET_KEY must be at least 32 characters (it signs OAuth tokens)")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
