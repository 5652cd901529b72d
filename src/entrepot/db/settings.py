"""Configuration from the environment (ENTREPOT_*)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "entrepot-development-secret-do-not-use-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENTREPOT_", extra="ignore")

    database_url: str = "sqlite:///entrepot.db"
    env: str = "development"  # development | test | production
    secret_key: str = DEV_SECRET
    # The PostgreSQL role that tenant transactions switch to (SET LOCAL ROLE):
    # it owns nothing, so row-level security applies to it.
    db_app_role: str = "entrepot_app"
    db_pool_size: int = 10
    webhook_allow_private: bool = False
    nats_url: str | None = None
    log_json: bool = False
    log_level: str = "INFO"
    rate_limit_per_minute: int = 6000
    embedded_worker: bool = True
    # Bearer token for platform-operator endpoints (/metrics): not a tenant credential,
    # because those figures span every tenant. Unset: the endpoints refuse everyone.
    operator_token: str | None = None

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("ENTREPOT_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
