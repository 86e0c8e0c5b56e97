"""OAuth tokens of one tenant config, kept sealed in its `hub.accounting_configs` row.

`lock()` is a PostgreSQL advisory lock on the row id, so a refresh happens once at a time across
every process (Dagster runs each job in its own). `load()` re-reads the row, so a token another
process refreshed (and, for QuickBooks and Xero, rotated) is seen inside the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from hub_pipelines.connectors.oauth import TokenSet
from hub_pipelines.tenants.models import HUB_MANAGED_FIELDS
from hub_pipelines.tenants.registry import TenantConfig, TenantRegistry
from hub_pipelines.warehouse.db import connect

_OAUTH_LOCK_NAMESPACE = 0x4F415554  # "OAUT": keeps these locks apart from migration locks
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class ConfigTokenStore:
    def __init__(self, registry: TenantRegistry, config: TenantConfig) -> None:
        self.registry = registry
        self.config = config

    def load(self) -> TokenSet | None:
        self.config = self.registry.get(self.config.row.tenant_id, self.config.row.system)
        connection = self.config.connection
        access = connection.access_token
        return TokenSet(
            access_token=access.get_secret_value() if access else "",
            refresh_token=connection.refresh_token.get_secret_value(),
            expires_at=connection.access_token_expires_at or _NEVER,
        )

    def save(self, tokens: TokenSet) -> None:
        changes = {
            "access_token": tokens.access_token,
            "access_token_expires_at": tokens.expires_at.isoformat(),
            "refresh_token": tokens.refresh_token,
        }
        # Other hub-managed fields a connector derived from the answer (QuickBooks: the refresh
        # token's hard expiry), saved with the tokens.
        changes |= {name: tokens.extra[name] for name in HUB_MANAGED_FIELDS if name in tokens.extra}
        self.config = self.registry.update_connection(self.config, changes)

    @contextmanager
    def lock(self) -> Iterator[None]:
        with connect(self.registry.url, autocommit=True) as conn:
            key = (_OAUTH_LOCK_NAMESPACE, self.config.row.id)
            conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
