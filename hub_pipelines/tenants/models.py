"""The per-system connection configs and the sync config a tenant registers.

Connection configs are validated here and stored encrypted; secret fields are `SecretStr` so
they never show in a repr, a log line or `hub tenants show`. `*_url` overrides let a tenant point
at a simulator, a proxy or a tunnel; without them each system's documented endpoints are used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub_pipelines.settings import SYSTEMS

# Bounds well above any real value (ids and names are under 100 characters, the longest tokens
# are Xero's and Intuit's JWT access tokens of 1-2 KB), so a wrong file or a pasted blob is
# refused before it is encrypted and stored.
MAX_NAME = 256
MAX_SECRET = 8192
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

NonEmpty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)
]


def _bounded(max_length: int, ascii_token: bool) -> Callable[[Any], Any]:
    """A check of a string (or secret) field: not blank, at most MAX_LENGTH characters and, for
    tokens and ids, visible ASCII only. Its messages never repeat the value: it may be secret."""

    def check(value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value  # the field's own type reports it
        value = value.strip() if ascii_token else value
        if not value.strip():
            raise PydanticCustomError("empty", "must not be empty")
        if len(value) > max_length:
            raise PydanticCustomError(
                "too_long", f"is {len(value):,} characters long; at most {max_length:,} are allowed"
            )
        if ascii_token and not _VISIBLE_ASCII.fullmatch(value):
            raise PydanticCustomError(
                "characters",
                "must be printable ASCII without spaces or line breaks; copy the value again "
                "(a pasted value may carry a line break or a typographic quote)",
            )
        return value

    return check


def _digits(max_digits: int, example: str) -> Callable[[Any], Any]:
    """ASCII digits only: a regex `\\d` would also take '١٢٣', which no API knows."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(rf"[0-9]{{1,{max_digits}}}", value):
            raise PydanticCustomError(
                "digits", f"must be 1 to {max_digits} ASCII digits (0-9), e.g. {example}"
            )
        return value

    return check


def _host_only(url: AnyHttpUrl) -> AnyHttpUrl:
    """API base URLs are a scheme, a host and maybe a port: the connector adds the API's path
    (Zoho: /books/v3, /oauth/v2/token), so a path given here would be doubled."""
    extra = [
        what
        for what, present in (
            ("a path", url.path not in (None, "", "/")),
            ("a query", url.query),
            ("a fragment", url.fragment),
            ("a user name or password", url.username or url.password),
        )
        if present
    ]
    if extra:
        raise PydanticCustomError(
            "host_only",
            "give the host only, as scheme://host[:port] (e.g. https://www.zohoapis.in or "
            "http://127.0.0.1:8091), without "
            f"{' or '.join(extra)}: the hub adds the API's path itself",
        )
    return url


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError(
            "naive_datetime",
            "has no time zone; give one, e.g. 2026-11-26T10:00:00+05:30 or 2026-11-26T04:30:00Z",
        )
    return value


ClientId = Annotated[str, BeforeValidator(_bounded(MAX_NAME, ascii_token=True))]
Token = Annotated[SecretStr, BeforeValidator(_bounded(MAX_SECRET, ascii_token=True))]
Password = Annotated[SecretStr, BeforeValidator(_bounded(MAX_NAME, ascii_token=False))]
HostUrl = Annotated[AnyHttpUrl, AfterValidator(_host_only)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


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
    """OAuth 2 refresh-token credentials; the cached access token is stored (sealed) with them.

    The access token and its expiry are the hub's own cache, written after each refresh, never
    registration input (`reject_hub_managed_fields`)."""

    client_id: ClientId
    client_secret: Token
    refresh_token: Token
    access_token: Token | None = None
    access_token_expires_at: AwareDatetime | None = None


class TallyConfig(_Config):
    """TallyPrime / Tally.ERP 9 XML server (Gateway of Tally > F1 > Settings > Connectivity), or
    with `file_drop` only the export files an office drops into the landing folder."""

    url: AnyHttpUrl = AnyHttpUrl("http://localhost:9000")
    file_drop: bool = False  # no live connection: only files landed in tally/<tenant>/
    # Required for a live connection; for a file-drop tenant it guards against a file of another
    # company dropped into the wrong folder (None: any company's file is accepted).
    company_name: NonEmpty | None = Field(
        None, description="Company name exactly as in Tally", validate_default=True
    )
    timeout_seconds: float = Field(60, gt=0, le=600)

    @field_validator("company_name")
    @classmethod
    def _company_for_a_live_connection(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not info.data.get("file_drop"):
            raise PydanticCustomError(
                "company_required",
                "required for a live connection: give the company's name exactly as loaded in "
                "Tally, or set file_drop to true to import dropped files only",
            )
        return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "time_zone", "is not a time zone name; give an IANA name such as Asia/Kolkata"
        ) from None
    return value


# A financial year by the calendar year it starts in (April to March): 2024 is 2024-25.
FinancialYear = Annotated[int, Field(ge=1990, le=2100)]


class BusyConfig(_Config):
    """BUSY Accounting's web service ("BUSY as Web Service", port 981): docs/connectors/busy.md.

    The financial years imported: `financial_years` (each must exist in BUSY), or every year
    from `first_financial_year` on that BUSY has, or, with neither, every year it has."""

    host: NonEmpty = "localhost"
    port: int = Field(981, ge=1, le=65535)
    url: HostUrl | None = None  # instead of host and port: a tunnel, a TLS terminator, a simulator
    username: NonEmpty
    password: Password
    company_code: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]{1,32}$")
    ] = Field(description="BUSY company code (its folder and database name, e.g. Comp0001)")
    financial_years: list[FinancialYear] | None = Field(None, min_length=1, max_length=50)
    first_financial_year: FinancialYear | None = None
    # BUSY writes its times in the server's local time, without a zone.
    timezone: Annotated[str, AfterValidator(_time_zone)] = "Asia/Kolkata"
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "INR"  # the base one
    # BUSY currency names (`TranCurName`) beyond Rs./INR and ISO codes, e.g. {"Dollar": "USD"}.
    currency_names: dict[NonEmpty, Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]] = {}
    sundry_debtors_code: int = Field(116, ge=1)  # the group whose subtree holds the customers
    timeout_seconds: float = Field(60, gt=0, le=600)

    @model_validator(mode="after")
    def _one_way_to_name_years(self) -> BusyConfig:
        if self.financial_years is not None and self.first_financial_year is not None:
            raise PydanticCustomError(
                "years",
                "give financial_years (a list such as [2024, 2025]) or first_financial_year, "
                "not both",
            )
        return self


class ZohoBooksConfig(_OAuthConfig):
    """Zoho Books v3 with a self-client / server-based OAuth refresh token."""

    region: Literal["in", "com", "eu", "com.au", "jp", "ca", "sa", "uk"] = "in"
    organization_id: Annotated[str, BeforeValidator(_digits(20, "60012345678"))]
    api_base_url: HostUrl | None = None
    accounts_url: HostUrl | None = None
    requests_per_minute: int = Field(90, ge=2, le=100_000)
    # The secret of the Books webhook (Settings > Automation > Webhooks), for POST /webhooks.
    webhook_secret: Token | None = None


class QuickBooksConfig(_OAuthConfig):
    """QuickBooks Online (India company), Intuit OAuth 2 with rotating refresh tokens."""

    realm_id: Annotated[str, BeforeValidator(_digits(32, "9130357766900456"))]
    environment: Literal["production", "sandbox"] = "production"
    api_base_url: HostUrl | None = None
    token_url: AnyHttpUrl | None = None
    minor_version: int = Field(75, ge=1)
    # Hub-managed: when the refresh token hits Intuit's 5-year cap, as its last refresh said.
    refresh_token_expires_at: AwareDatetime | None = None
    # The app's webhook verifier token (Intuit developer portal > Webhooks), for POST /webhooks.
    webhook_verifier_token: Token | None = None


class XeroConfig(_OAuthConfig):
    """Xero Accounting API, OAuth 2 with single-use refresh tokens; one Xero organisation."""

    xero_tenant_id: Annotated[
        str,
        StringConstraints(
            pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            strip_whitespace=True,
        ),
    ]
    api_base_url: HostUrl | None = None
    token_url: AnyHttpUrl | None = None
    # Xero allows 60 calls a minute per organisation; the hub paces itself under it.
    requests_per_minute: int = Field(55, ge=2, le=100_000)
    # Calls a day per organisation: 5,000, or 1,000 on Xero's entry tier (reportedly).
    daily_limit: int = Field(5_000, ge=1, le=10**9)
    # The app's webhooks key (Xero developer portal > Webhooks), for POST /webhooks.
    webhook_key: Token | None = None


# In the order of `settings.SYSTEMS`, the one list of system keys.
CONNECTION_MODELS: dict[str, type[_Config]] = dict(
    zip(
        SYSTEMS,
        (TallyConfig, BusyConfig, ZohoBooksConfig, QuickBooksConfig, XeroConfig),
        strict=True,
    )
)

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


HUB_MANAGED_FIELDS = ("access_token", "access_token_expires_at", "refresh_token_expires_at")


def reject_hub_managed_fields(data: Any) -> None:
    """Registration takes credentials, not the hub's token cache. A given access token would be
    used instead of the refresh token, so the connection test could pass with a refresh token
    that does not work, and the tenant would fail at the first refresh, an hour later."""
    given = [name for name in HUB_MANAGED_FIELDS if isinstance(data, dict) and name in data]
    if given:
        raise TenantConfigError(
            "; ".join(
                f"connection_config.{name}: not accepted at registration: the hub obtains access "
                "tokens from the refresh_token and caches them itself"
                for name in given
            )
            + f"; remove {' and '.join(given)} from the config"
        )


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
