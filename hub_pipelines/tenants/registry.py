"""The tenant registry: `hub.accounting_configs` rows with their connection configs encrypted.

Only this module reads or writes that table's `connection_config` column, so every path through the
hub goes through the vault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hub_pipelines.settings import SYSTEMS, TENANT_SLUG_PATTERN
from hub_pipelines.tenants.models import (
    SyncConfig,
    TenantConfigError,
    _Config,
    parse_connection_config,
    parse_sync_config,
    plain_connection_config,
    reject_hub_managed_fields,
)
from hub_pipelines.vault import Vault, VaultError, config_aad
from hub_pipelines.warehouse.db import connect

_SLUG = re.compile(TENANT_SLUG_PATTERN)


def validate_tenant_slug(tenant_id: str) -> str:
    # fullmatch: `$` alone lets a trailing newline through, and the database then refuses the row
    if not isinstance(tenant_id, str) or not _SLUG.fullmatch(tenant_id):
        raise TenantConfigError(
            f"tenant {tenant_id!r} is not a valid slug: use 1-63 lowercase letters, digits, "
            "'_' or '-', starting with a letter or digit (e.g. acme-traders)"
        )
    return tenant_id


def validate_system(system: str) -> str:
    if system not in SYSTEMS:
        raise TenantConfigError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    return system


def split_registration(document: Any) -> tuple[Any, Any]:
    """Registrations are `{"connection_config": {…}, "sync_config": {…}}` or a bare connection."""
    if not isinstance(document, dict):
        raise TenantConfigError("the config must be a JSON object")
    if "connection_config" in document:
        extra = set(document) - {"connection_config", "sync_config"}
        if extra:
            raise TenantConfigError(
                f"unexpected top-level field(s) {sorted(extra)}; "
                "use only connection_config and sync_config"
            )
        return document["connection_config"], document.get("sync_config")
    return document, None


def files_only(sync: SyncConfig) -> SyncConfig:
    """A file-drop tenant imports when a file lands, never on a schedule (there is nothing to
    connect to): its frequencies are `manual`, and a schedule given for it is an error."""
    for entity in ("customers", "invoices"):
        field = f"{entity}_frequency"
        if field in sync.model_fields_set and getattr(sync, field) != "manual":
            raise TenantConfigError(
                f"sync_config.{field}: a file-drop tenant imports when a file lands, not on a "
                "schedule; leave it out (or set it to manual)"
            )
    return sync.model_copy(update={"customers_frequency": "manual", "invoices_frequency": "manual"})


@dataclass(frozen=True)
class ConfigRow:
    """A registry row without its secrets."""

    id: int
    tenant_id: str
    system: str
    is_enabled: bool
    sync_config: SyncConfig
    last_sync_at: datetime | None
    last_sync_status: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime
    # The last connection test (`hub tenants test`, or `hub tenants add` without --no-test):
    # when, and "ok" or "CATEGORY: message". None until a test ran with the stored credentials.
    last_connection_test: datetime | None = None
    last_connection_status: str | None = None


@dataclass(frozen=True)
class TenantConfig:
    row: ConfigRow
    connection: _Config

    @property
    def files_only(self) -> bool:
        """Fed only by dropped export files (a Tally `file_drop` tenant): no live connection."""
        return bool(getattr(self.connection, "file_drop", False))


_ROW_COLUMNS = (
    "id, tenant_id, system, is_enabled, sync_config, last_sync_at, last_sync_status, "
    "consecutive_failures, created_at, updated_at, last_connection_test, last_connection_status"
)


def _row(record: dict[str, Any]) -> ConfigRow:
    return ConfigRow(**{**record, "sync_config": SyncConfig.model_validate(record["sync_config"])})


class TenantRegistry:
    def __init__(self, vault: Vault, url: str | None = None) -> None:
        self.vault = vault
        self.url = url

    def _connect(self):
        return connect(self.url, row_factory=dict_row)

    def add(self, tenant_id: str, system: str, document: Any) -> ConfigRow:
        """Register (or replace) a tenant's config for one system; validates before writing."""
        validate_tenant_slug(tenant_id)
        validate_system(system)
        connection_data, sync_data = split_registration(document)
        reject_hub_managed_fields(connection_data)
        connection = parse_connection_config(system, connection_data)
        sync = parse_sync_config(sync_data)
        if getattr(connection, "file_drop", False):
            sync = files_only(sync)
        try:
            return self._store(tenant_id, system, connection, sync)
        except psycopg.errors.IntegrityError as exc:
            # The server's message repeats the failing row, ciphertext included: name the
            # constraint only.
            raise TenantConfigError(
                f"the registry refused {tenant_id!r}/{system!r} (constraint "
                f"{exc.diag.constraint_name or 'unknown'}); check the tenant slug and system, or "
                "retry if another registration of the same pair ran at the same time"
            ) from None

    def _store(self, tenant_id: str, system: str, connection: _Config, sync: SyncConfig):
        with self._connect() as conn:
            existing = conn.execute(
                "SELECT id FROM hub.accounting_configs "
                "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL FOR UPDATE",
                (tenant_id, system),
            ).fetchone()
            config_id = (
                existing["id"]
                if existing
                else conn.execute(
                    "SELECT nextval('hub.accounting_configs_id_seq') AS id"
                ).fetchone()["id"]
            )
            sealed = self.vault.encrypt(
                plain_connection_config(connection), config_aad(config_id, tenant_id, system)
            )
            conn.execute(
                """
                INSERT INTO hub.accounting_configs
                    (id, tenant_id, system, connection_config, sync_config)
                VALUES (%(id)s, %(tenant)s, %(system)s, %(sealed)s, %(sync)s)
                ON CONFLICT (id) DO UPDATE SET
                    connection_config = EXCLUDED.connection_config,
                    sync_config = EXCLUDED.sync_config,
                    -- a test of the replaced credentials says nothing about the new ones
                    last_connection_test = NULL,
                    last_connection_status = NULL,
                    updated_at = now()
                """,
                {
                    "id": config_id,
                    "tenant": tenant_id,
                    "system": system,
                    "sealed": sealed,
                    "sync": Jsonb(sync.model_dump(mode="json")),
                },
            )
            return self._fetch_row(conn, tenant_id, system)

    def _fetch_row(self, conn, tenant_id: str, system: str) -> ConfigRow:
        record = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM hub.accounting_configs "
            "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
            (tenant_id, system),
        ).fetchone()
        if record is None:
            raise TenantConfigError(
                f"no config for tenant {tenant_id!r} and system {system!r}; "
                "see `hub tenants list` or register one with "
                f"`hub tenants add {tenant_id} {system} --config FILE`"
            )
        return _row(record)

    def list(self, include_disabled: bool = True) -> list[ConfigRow]:
        condition = "" if include_disabled else "AND is_enabled"
        with self._connect() as conn:
            records = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM hub.accounting_configs "
                f"WHERE deleted_at IS NULL {condition} ORDER BY tenant_id, system"
            ).fetchall()
        return [_row(record) for record in records]

    def row(self, tenant_id: str, system: str) -> ConfigRow:
        """One config without its secrets (nothing is decrypted)."""
        with self._connect() as conn:
            return self._fetch_row(conn, tenant_id, system)

    def get(self, tenant_id: str, system: str) -> TenantConfig:
        """The config with its connection decrypted (for connectors; never print it whole)."""
        with self._connect() as conn:
            row = self._fetch_row(conn, tenant_id, system)
            sealed = conn.execute(
                "SELECT connection_config FROM hub.accounting_configs WHERE id = %s", (row.id,)
            ).fetchone()["connection_config"]
        data = self.vault.decrypt(sealed, config_aad(row.id, tenant_id, system))
        return TenantConfig(row, parse_connection_config(system, data))

    def update_connection(self, config: TenantConfig, changes: dict[str, Any]) -> TenantConfig:
        """Re-seal a config with some fields changed (e.g. a rotated OAuth refresh token)."""
        data = {**plain_connection_config(config.connection), **changes}
        connection = parse_connection_config(config.row.system, data)
        aad = config_aad(config.row.id, config.row.tenant_id, config.row.system)
        with self._connect() as conn:
            conn.execute(
                "UPDATE hub.accounting_configs SET connection_config = %s, updated_at = now() "
                "WHERE id = %s",
                (self.vault.encrypt(plain_connection_config(connection), aad), config.row.id),
            )
        return TenantConfig(config.row, connection)

    def record_connection_test(self, config_id: int, result) -> None:
        """Store a connection test's outcome: "ok", or the failure's (redacted) message."""
        status = "ok" if result.success else (result.message or "failed")[:500]
        with self._connect() as conn:
            conn.execute(
                "UPDATE hub.accounting_configs SET last_connection_test = now(), "
                "last_connection_status = %s, updated_at = now() WHERE id = %s",
                (status, config_id),
            )

    def set_enabled(self, tenant_id: str, system: str, enabled: bool) -> ConfigRow:
        return self._update(tenant_id, system, "is_enabled = %s", (enabled,))

    def remove(self, tenant_id: str, system: str) -> ConfigRow:
        """Soft delete: the row stays for the audit trail; the tenant stops being imported."""
        return self._update(tenant_id, system, "deleted_at = now(), is_enabled = false", ())

    def _update(self, tenant_id: str, system: str, assignment: str, params: tuple) -> ConfigRow:
        validate_tenant_slug(tenant_id)
        validate_system(system)
        with self._connect() as conn:
            row = self._fetch_row(conn, tenant_id, system)
            conn.execute(
                f"UPDATE hub.accounting_configs SET {assignment}, updated_at = now() WHERE id = %s",
                (*params, row.id),
            )
            record = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM hub.accounting_configs WHERE id = %s", (row.id,)
            ).fetchone()
        return _row(record)

    def rotate_keys(self) -> int:
        """Re-encrypt every row with the current key, in one transaction (a removed row that
        cannot be read is left as it is). Returns rows changed."""
        changed = 0
        with self._connect() as conn:
            records = conn.execute(
                "SELECT id, tenant_id, system, connection_config, deleted_at "
                "FROM hub.accounting_configs ORDER BY id FOR UPDATE"
            ).fetchall()
            for record in records:
                try:
                    if not self.vault.needs_rotation(record["connection_config"]):
                        continue
                    aad = config_aad(record["id"], record["tenant_id"], record["system"])
                    plain = self.vault.decrypt(record["connection_config"], aad)
                except VaultError as exc:
                    if record["deleted_at"] is not None:
                        continue  # removed: nothing reads it again, so it need not stop the rest
                    raise _unrotatable(record, exc) from None
                conn.execute(
                    "UPDATE hub.accounting_configs SET connection_config = %s, updated_at = now() "
                    "WHERE id = %s",
                    (self.vault.encrypt(plain, aad), record["id"]),
                )
                changed += 1
        return changed


def _unrotatable(record, exc: VaultError) -> VaultError:
    """Rotation is all or nothing: name the row that stops it, and the ways past it."""
    tenant, system = record["tenant_id"], record["system"]
    return VaultError(
        f"{tenant} {system} (config {record['id']}): {exc} Nothing was re-encrypted. Give the key "
        f"it was sealed with, or store its credentials again (`hub tenants add {tenant} {system} "
        f"--config FILE`) or remove it (`hub tenants remove {tenant} {system}`), then rotate again."
    )


def configured_pairs(url: str | None = None) -> dict[tuple[str, str], bool]:
    """Every live (tenant, system) config and whether it is enabled: the partitions that exist.
    A disabled config keeps its partition (paused); only removal takes it away."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT tenant_id, system, is_enabled FROM hub.accounting_configs "
            "WHERE deleted_at IS NULL"
        ).fetchall()
    return {(tenant, system): enabled for tenant, system, enabled in rows}
