"""The per-system connection configs and the sync config a tenant registers.

Connection configs are validated here and stored encrypted; secret fields are `SecretStr` so
they never show in a repr, a log line or `hub tenants show`. `*_url` overrides let a tenant point
at a simulator, a proxy or a tunnel; without them each system's documented endpoints are used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)

from hub_pipelines.settings import SYSTEMS

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def secrets(self) -> list[str]:
        """Every secret value in this config, for log redaction."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


class _OAuthConfig(_Config):
    """OAuth 2 refresh-token credentials; the cached access token is stored (sealed) with them."""

    client_id: NonEmpty
    client_secret: SecretStr
    refresh_token: SecretStr
    access_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None


class TallyConfig(_Config):
    """TallyPrime / Tally.ERP 9 XML server (Gateway of Tally > F1 > Settings > Connectivity)."""

    url: AnyHttpUrl = AnyHttpUrl("http://localhost:9000")
    company_name: NonEmpty = Field(description="Company name exactly as loaded in Tally")
    timeout_seconds: float = Field(60, gt=0, le=600)


class BusyConfig(_Config):
    """BUSY Accounting web-service (Administration > Configuration > Web Service)."""

    host: NonEmpty = "localhost"
    port: int = Field(981, ge=1, le=65535)
    username: NonEmpty
    password: SecretStr
    company_code: NonEmpty = Field(description="BUSY company code (folder name, e.g. Comp0001)")
    timeout_seconds: float = Field(60, gt=0, le=600)


class ZohoBooksConfig(_OAuthConfig):
    """Zoho Books v3 with a self-client / server-based OAuth refresh token."""

    region: Literal["in", "com", "eu", "com.au", "jp", "ca", "sa"] = "in"
    organization_id: Annotated[str, StringConstraints(pattern=r"^\d{1,20}$")]
    api_base_url: AnyHttpUrl | None = None
    accounts_url: AnyHttpUrl | None = None
    requests_per_minute: int = Field(90, ge=2, le=100_000)


class QuickBooksConfig(_OAuthConfig):
    """QuickBooks Online (India company), Intuit OAuth 2 with rotating refresh tokens."""

    realm_id: Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]
    environment: Literal["production", "sandbox"] = "production"
    api_base_url: AnyHttpUrl | None = None
    token_url: AnyHttpUrl | None = None
    minor_version: int = Field(75, ge=1)


class XeroConfig(_OAuthConfig):
    """Xero Accounting API, OAuth 2 with single-use refresh tokens; one Xero organisation."""

    xero_tenant_id: Annotated[
        str, StringConstraints(pattern=r"^[0-9a-fA-F-]{36}$", strip_whitespace=True)
    ]
    api_base_url: AnyHttpUrl | None = None
    token_url: AnyHttpUrl | None = None


CONNECTION_MODELS: dict[str, type[_Config]] = {
    "tally": TallyConfig,
    "busy": BusyConfig,
    "zoho_books": ZohoBooksConfig,
    "quickbooks": QuickBooksConfig,
    "xero": XeroConfig,
}
assert tuple(CONNECTION_MODELS) == SYSTEMS

Frequency = Literal["hourly", "every_6_hours", "daily", "manual"]


class SyncConfig(BaseModel):
    """What to import and how often. Schedules pick configs whose frequency matches them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["import"] = "import"
    entities: list[Literal["customers", "invoices"]] = Field(
        default_factory=lambda: ["customers", "invoices"], min_length=1
    )
    customers_frequency: Frequency = "daily"
    invoices_frequency: Frequency = "every_6_hours"
    error_threshold: float = Field(
        0.05, ge=0, le=1, description="Fail the run when more than this share of records fail"
    )


class TenantConfigError(ValueError):
    """A registration input is invalid; the message names the field and the fix."""


def describe_validation_error(error: ValidationError, prefix: str) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(document)"
        parts.append(f"{prefix}.{field}: {item['msg']}")
    return "; ".join(parts)


def parse_connection_config(system: str, data: Any) -> _Config:
    if system not in CONNECTION_MODELS:
        raise TenantConfigError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    if not isinstance(data, dict):
        raise TenantConfigError("connection_config must be a JSON object")
    try:
        return CONNECTION_MODELS[system].model_validate(data)
    except ValidationError as exc:
        raise TenantConfigError(describe_validation_error(exc, "connection_config")) from None


def parse_sync_config(data: Any) -> SyncConfig:
    try:
        return SyncConfig.model_validate(data or {})
    except ValidationError as exc:
        raise TenantConfigError(describe_validation_error(exc, "sync_config")) from None


def plain_connection_config(config: _Config) -> dict[str, Any]:
    """The config as JSON-ready data with secrets revealed: only for encryption."""
    data = config.model_dump(mode="json")
    for name, value in config.__dict__.items():
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
    return data
