"""One import of one entity for one partition: connector pages → loader → audit → checks.

The assets are thin wrappers around `run_sync`; `PartitionSync` keeps one import's bookkeeping
(loader, counts, cursor, census, sync log) so each step below reads as one short method.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg

from hub_pipelines.canonical import Connector, Entity
from hub_pipelines.connectors.errors import Category, SyncError, classify
from hub_pipelines.imports import audit, checks
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.tenants.registry import TenantConfig, TenantRegistry
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.warehouse.loader import LoadCounts, PartitionLoader


class ImportConfig(dg.Config):
    """Run config of the import assets (also set by backfills: see `is_full_refresh`)."""

    full_refresh: bool = False
    max_delete_fraction: float = 0.5


@dataclass
class SourceCensus:
    """Count and sum of totals of what the source lists, gathered while streaming its ids."""

    count: int = 0
    total: Decimal = field(default_factory=lambda: Decimal("0.00"))

    def ids(self, listing: Iterable) -> Iterator[str]:
        """Stream the listed ids onwards (to the delete detection), counting as they pass."""
        for record in listing:
            self.count += 1
            self.total += record.total or Decimal("0.00")
            yield record.external_id

    def take(self, listing: Iterable) -> None:
        for _ in self.ids(listing):
            pass


def is_full_refresh(context: dg.AssetExecutionContext, config: ImportConfig) -> bool:
    return config.full_refresh or "dagster/backfill" in context.run.tags


def enabled_config(registry: TenantRegistry, tenant: str, system: str, entity: str) -> TenantConfig:
    try:
        tenant_config = registry.get(tenant, system)
    except TenantConfigError as exc:
        raise dg.Failure(f"partition {system}|{tenant}: {exc}") from None
    if not tenant_config.row.is_enabled:
        raise dg.Failure(
            f"partition {system}|{tenant}: the config is disabled; "
            f"enable it with `hub tenants enable {tenant} {system}`"
        )
    if entity not in tenant_config.row.sync_config.entities:
        raise dg.Failure(
            f"partition {system}|{tenant}: {entity} are not in this config's sync_config.entities"
        )
    return tenant_config


def run_sync(
    context: dg.AssetExecutionContext,
    entity: Entity,
    config: ImportConfig,
    warehouse: WarehouseResource,
    vault: VaultResource,
    tenant: str,
    system: str,
) -> dg.MaterializeResult:
    registry = vault.registry(warehouse)
    tenant_config = enabled_config(registry, tenant, system, entity)
    resource = getattr(context.resources, system, None)
    if resource is None:
        raise dg.Failure(f"{system}: no connector is available for this system yet")
    with warehouse.connect() as conn:
        sync = PartitionSync(context, entity, config, conn, registry, tenant_config)
        connector = resource.connector(
            tenant_config.connection,
            ConfigTokenStore(registry, tenant_config),
            versions=sync.known_versions,
            log=context.log,
        )
        try:
            sync.run(connector)
        except Exception as exc:
            raise sync.failed(exc, connector) from None
        finally:
            connector.close()
        return sync.succeeded(connector)


class PartitionSync:
    """The bookkeeping of one import: its loader, counts, cursor, census and sync log."""

    def __init__(self, context, entity, config, conn, registry, tenant_config: TenantConfig):
        self.context, self.entity, self.config, self.conn = context, entity, config, conn
        self.tenant_config = tenant_config
        self.tenant, self.system = tenant_config.row.tenant_id, tenant_config.row.system
        self.full = is_full_refresh(context, config)
        self.started = time.monotonic()
        self.loader = PartitionLoader(
            conn,
            tenant_id=self.tenant,
            system=self.system,
            entity=entity,
            run_id=context.run.run_id,
            partition_key=context.partition_key,
        )
        self.cursor_before = None if self.full else self.loader.cursor()
        self.cursor_after = self.cursor_before
        self.counts, self.census = LoadCounts(), SourceCensus()
        self.loader.sync_log_id = audit.start_sync_log(
            conn,
            config_id=tenant_config.row.id,
            tenant_id=self.tenant,
            system=self.system,
            entity=entity,
            sync_type="full" if self.full else "incremental",
            run_id=context.run.run_id,
            partition_key=context.partition_key,
            cursor_before=self.cursor_before,
        )

    def known_versions(self, _entity: Entity, ids: list[str]) -> dict:
        """What the warehouse holds, so the connector skips unchanged records; a full refresh
        re-reads everything (e.g. after a mapping fix)."""
        return {} if self.full else self.loader.versions(ids)

    def run(self, connector: Connector) -> None:
        self.cursor_after = _load_pages(
            self.context, connector, self.loader, self.entity, self.cursor_before, self.counts
        )
        # One listing pass serves the reconciliation check and, on a full refresh, deletes.
        listing = connector.listing(self.entity)
        if self.full:
            ids = self.census.ids(listing)
            self.counts.deleted = self.loader.soft_delete_missing(
                ids, self.config.max_delete_fraction
            )
        else:
            self.census.take(listing)
        _enforce_error_threshold(self.counts, self.tenant_config.row.sync_config.error_threshold)

    def failed(self, exc: Exception, connector: Connector) -> dg.Failure:
        error = classify(exc)
        self._finish("failed", connector, error)
        self.context.log.error(f"{self.entity} import failed: {error} — fix: {error.suggested_fix}")
        return dg.Failure(
            description=f"{error.category}: {error.message}",
            metadata={"category": str(error.category), "suggested_fix": error.suggested_fix},
        )

    def succeeded(self, connector: Connector) -> dg.MaterializeResult:
        status = "partial" if self.counts.failed else "success"
        self._finish(status, connector)
        audit.mark_config_synced(self.conn, self.tenant_config.row.id, self.entity, status)
        return dg.MaterializeResult(
            metadata=self._metadata(connector), check_results=self._check_results()
        )

    def _finish(self, status: str, connector: Connector, error=None) -> None:
        audit.finish_sync_log(
            self.conn,
            self.loader.sync_log_id,
            status=status,
            counts=self.counts,
            api_calls=connector.api_calls,
            cursor_after=self.cursor_after,
            error=error,
        )

    def _check_results(self) -> list[dg.AssetCheckResult]:
        args = (self.conn, self.entity, self.tenant, self.system)
        source_total = self.census.total if self.entity == "invoices" else None
        frequency = getattr(self.tenant_config.row.sync_config, f"{self.entity}_frequency")
        return [
            *checks.run_sql_checks(*args),
            checks.reconciliation_result(*args, self.census.count, source_total),
            checks.freshness_result(*args, frequency, self.context.run.run_id),
        ]

    def _metadata(self, connector: Connector) -> dict:
        counts = self.counts
        return {
            "records_fetched": counts.fetched,
            "records_inserted": counts.inserted,
            "records_updated": counts.updated,
            "records_unchanged": counts.unchanged,
            "records_failed": counts.failed,
            "records_deleted": counts.deleted,
            "api_calls": connector.api_calls,
            "retries": connector.retries,
            "sync_type": "full" if self.full else "incremental",
            "cursor_before": self.cursor_before or "none",
            "cursor_after": self.cursor_after or "none",
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "dagster/row_count": _row_count(self.conn, self.entity, self.tenant, self.system),
        }


def _load_pages(context, connector, loader, entity, cursor, counts: LoadCounts) -> str | None:
    cursor_after = cursor
    pages = connector.customers(cursor) if entity == "customers" else connector.invoices(cursor)
    for page in pages:
        counts.add(loader.load_page(page))
        for failure in page.failures:
            context.log.warning(
                f"{entity} record {failure.entity_id or '?'} not loaded ({failure.category}): "
                f"{failure.message}"
            )
        if page.cursor is not None:
            cursor_after = page.cursor
    return cursor_after


def _enforce_error_threshold(counts: LoadCounts, threshold: float) -> None:
    if counts.fetched and counts.failed / counts.fetched > threshold:
        raise SyncError(
            Category.MAPPING,
            f"{counts.failed} of {counts.fetched} records failed "
            f"({counts.failed / counts.fetched:.1%}), over the error threshold of {threshold:.0%}",
            suggested_fix="See hub.accounting_sync_errors (hub errors list) for each record's "
            "problem and raw payload; raise sync_config.error_threshold only if they are expected.",
        )


def _row_count(conn, entity: str, tenant: str, system: str) -> int:
    (count,) = conn.execute(
        f"SELECT count(*) FROM accounting.{entity} "
        "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (tenant, system),
    ).fetchone()
    return count
