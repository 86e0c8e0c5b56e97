"""HTTP settings shared by every connector, read from the environment.

Durations are given in milliseconds in the environment (as in the deployment guide) and exposed in
seconds, which is what httpx and `time.sleep` take.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

# env variable -> (field name, default, smallest and largest allowed value). The upper bounds
# catch a unit mistake (seconds given as microseconds, a timeout of days) before it stalls a run.
_HOUR_MS = 3_600_000
_ENV_FIELDS: dict[str, tuple[str, int, int, int]] = {
    "ACCOUNTING_POOL_MAX_SIZE": ("pool_max_size", 10, 1, 1_000),
    "ACCOUNTING_POOL_MIN_SIZE": ("pool_min_size", 2, 0, 1_000),
    "ACCOUNTING_POOL_MAX_IDLE": ("pool_max_idle_ms", 30_000, 0, _HOUR_MS),
    "ACCOUNTING_HTTP_TIMEOUT": ("timeout_ms", 30_000, 1, 600_000),
    "RETRY_MAX_ATTEMPTS": ("retry_max_attempts", 5, 1, 100),
    "RETRY_INITIAL_DELAY": ("retry_initial_delay_ms", 1_000, 0, _HOUR_MS),
    "RETRY_MAX_DELAY": ("retry_max_delay_ms", 30_000, 0, _HOUR_MS),
}


class SettingsError(ValueError):
    """An HTTP setting in the environment is malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Connection pool, timeout and retry settings; `HttpSettings.from_env()` in production."""

    pool_max_size: int = 10
    pool_min_size: int = 2
    pool_max_idle_ms: int = 30_000
    timeout_ms: int = 30_000
    retry_max_attempts: int = 5
    retry_initial_delay_ms: int = 1_000
    retry_max_delay_ms: int = 30_000

    def __post_init__(self) -> None:
        for env_name, (field_name, *_bounds) in _ENV_FIELDS.items():
            value = getattr(self, field_name)
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if not (is_int and _in_range(env_name, value)):
                raise SettingsError(_expected(env_name, value))
        if self.pool_min_size > self.pool_max_size:
            raise SettingsError(
                f"ACCOUNTING_POOL_MIN_SIZE ({self.pool_min_size}) must not exceed "
                f"ACCOUNTING_POOL_MAX_SIZE ({self.pool_max_size}); lower the first or raise "
                "the second"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        """Read every variable that is set and non-blank; the others keep their defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for env_name, (field_name, *_bounds) in _ENV_FIELDS.items():
            raw = environ.get(env_name, "").strip()
            if raw:
                values[field_name] = _parse_int(env_name, raw)
        return cls(**values)

    def limits(self, calls_at_once: int = 1) -> httpx.Limits:
        """The pool of a client making up to `calls_at_once` calls at a time: it keeps that many
        connections alive between calls, at least ACCOUNTING_POOL_MIN_SIZE, at most the pool's
        size. Fewer kept alive than calls at once, every answer past them closed its connection
        and the next call opened a new one (66 connections for 80 calls at 4 at once)."""
        kept = min(max(self.pool_min_size, calls_at_once), self.pool_max_size)
        return httpx.Limits(
            max_connections=self.pool_max_size,
            max_keepalive_connections=kept,
            keepalive_expiry=self.pool_max_idle_ms / 1000,
        )

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_ms / 1000)

    @property
    def retry_initial_delay(self) -> float:
        return self.retry_initial_delay_ms / 1000

    @property
    def retry_max_delay(self) -> float:
        return self.retry_max_delay_ms / 1000


def _in_range(env_name: str, value: int) -> bool:
    _field, _default, minimum, maximum = _ENV_FIELDS[env_name]
    return minimum <= value <= maximum


def _parse_int(env_name: str, raw: str) -> int:
    # ASCII digits only: int() alone would also take '٥', '５' or '1_000'.
    if not (raw.isascii() and raw.lstrip("+-").isdigit()):
        raise SettingsError(_expected(env_name, raw))
    value = int(raw)
    if not _in_range(env_name, value):
        raise SettingsError(_expected(env_name, raw))
    return value


def _expected(env_name: str, got: object) -> str:
    field_name, default, minimum, maximum = _ENV_FIELDS[env_name]
    unit = " of milliseconds" if field_name.endswith("_ms") else ""
    return (
        f"{env_name} must be a whole number{unit} from {minimum:,} to {maximum:,}, got {got!r}; "
        f"fix it or unset it for the default ({default:,})"
    )
