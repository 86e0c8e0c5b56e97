"""Error classification shared by every connector, the loader and the sensors.

A `SyncError` carries what an operator needs to act: a category, a severity, whether retrying
can help, and a suggested fix written for a person. Categories match the errors table's column.
"""

from __future__ import annotations

from enum import StrEnum

from hub_pipelines.connectors.redact import default_redactor


class Category(StrEnum):
    AUTH = "AUTH"
    RATE_LIMIT = "RATE_LIMIT"
    NETWORK = "NETWORK"
    SERVER = "SERVER"
    CONFIG = "CONFIG"
    SOURCE_DATA = "SOURCE_DATA"
    MAPPING = "MAPPING"


# Suggested fixes name only what exists: `hub` commands of hub_pipelines/cli.py, files in docs/,
# config fields of tenants/models.py (hub_pipelines_tests/test_suggested_fixes.py checks them).
REAUTHORISE_STEPS = (
    "For Zoho Books, QuickBooks and Xero, reconnect the tenant in a browser through the service "
    "of `hub serve` (docs/connecting.md, section 3), which stores and tests the new tokens. "
    "Otherwise get new credentials from the accounting system (for Zoho Books a new refresh token: "
    "docs/connectors/zoho_books.md, section 1), store them with "
    "`hub tenants add TENANT SYSTEM --config FILE` (the whole connection config; it tests the "
    "connection), check them any time with `hub tenants test TENANT SYSTEM`, and re-run a failed "
    "import with `hub errors retry ID`."
)

# category -> (severity, retryable, default suggested fix)
_DEFAULTS: dict[Category, tuple[str, bool, str]] = {
    Category.AUTH: (
        "critical",
        False,
        "Re-authorise the connection: the stored credentials were rejected. " + REAUTHORISE_STEPS,
    ),
    Category.RATE_LIMIT: (
        "warning",
        True,
        "The source throttled the import; it is retried automatically. If it repeats, lower "
        "requests_per_minute in the tenant's connection config "
        "(`hub tenants add TENANT SYSTEM --config FILE`) or make its sync_config's "
        "customers_frequency / invoices_frequency less frequent.",
    ),
    Category.NETWORK: (
        "error",
        True,
        "The source could not be reached; check that it is online and reachable from the hub.",
    ),
    Category.SERVER: (
        "error",
        True,
        "The source answered with a server error; it is retried automatically.",
    ),
    Category.CONFIG: (
        "critical",
        False,
        "Fix the tenant's connection config: see it with `hub tenants show TENANT SYSTEM` "
        "(fields: docs/connectors/zoho_books.md for Zoho Books), store the corrected one with "
        "`hub tenants add TENANT SYSTEM --config FILE`, then re-run a failed import with "
        "`hub errors retry ID`.",
    ),
    Category.SOURCE_DATA: (
        "warning",
        False,
        "The record in the source is incomplete or inconsistent; correct it in the source "
        "system (`hub errors show ID` shows the message and the raw payload).",
    ),
    Category.MAPPING: (
        "error",
        False,
        "The record could not be mapped to the canonical schema; see its raw payload with "
        "`hub errors show ID`, and report it if the record is valid in the source.",
    ),
}


def is_retryable(category: Category | str) -> bool:
    """Whether failures of this category are retried unless a system says otherwise."""
    return _DEFAULTS[Category(category)][1]


class SyncError(Exception):
    """An import failure classified for the error table and the run log.

    The message is redacted here, whoever built it: it goes to the sync log, the errors table and
    Dagster's event log, and may quote a source's body (a token endpoint's answer included)."""

    def __init__(
        self,
        category: Category | str,
        message: str,
        *,
        suggested_fix: str | None = None,
        severity: str | None = None,
        retryable: bool | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.category = Category(category)
        default_severity, default_retryable, default_fix = _DEFAULTS[self.category]
        self.message = message = default_redactor().redact(message)
        self.severity = severity or default_severity
        self.retryable = default_retryable if retryable is None else retryable
        self.suggested_fix = suggested_fix or default_fix
        self.code = code
        self.retry_after = retry_after
        super().__init__(f"{self.category}: {message}")


def classify(exc: BaseException) -> SyncError:
    """Turn any exception into a `SyncError`; unknown failures count as SERVER-side bugs of ours."""
    if isinstance(exc, SyncError):
        return exc
    import httpx  # local: keeps this module importable without the HTTP stack

    if isinstance(exc, httpx.TransportError):
        return SyncError(Category.NETWORK, f"{type(exc).__name__}: {exc}")
    import psycopg

    from hub_pipelines.connectors.settings import SettingsError

    if isinstance(exc, SettingsError):  # the run worker's environment, not the tenant's config
        return SyncError(
            Category.CONFIG,
            str(exc),
            suggested_fix="Correct the variable in the environment of the Dagster code location "
            "and run workers (docs/operations.md, configuration reference), then re-run.",
        )
    if isinstance(exc, psycopg.OperationalError):
        return SyncError(
            Category.NETWORK,
            f"the warehouse could not be reached: {exc}",
            suggested_fix="Check that the warehouse PostgreSQL is up and that HUB_DATABASE_URL "
            "(or DATABASE_*) points at it; the retry sensor re-runs the import.",
        )
    return SyncError(
        Category.MAPPING,
        f"{type(exc).__name__}: {exc}",
        severity="error",
        suggested_fix="An unexpected error in the hub; see the run log and report it.",
    )
