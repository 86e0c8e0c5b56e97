"""One import of one entity for one partition: connector pages → loader → audit → checks.

The assets are thin wrappers around `run_sync`, so the whole procedure reads top to bottom here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg

from hub_pipelines.canonical import Entity
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
    full = is_full_refresh(context, config)
    started = time.monotonic()
    with warehouse.connect() as conn:
        loader = PartitionLoader(
            conn,
            tenant_id=tenant,
            system=system,
            entity=entity,
            run_id=context.run.run_id,
            partition_key=context.partition_key,
        )
        cursor_before = None if full else loader.cursor()
        loader.sync_log_id = audit.start_sync_log(
            conn,
            config_id=tenant_config.row.id,
            tenant_id=tenant,
            system=system,
            entity=entity,
            sync_type="full" if full else "incremental",
            run_id=context.run.run_id,
            partition_key=context.partition_key,
            cursor_before=cursor_before,
        )
        versions = (
            (lambda _entity, _ids: {}) if full else (lambda _entity, ids: loader.versions(ids))
        )
        connector = resource.connector(
            tenant_config.connection,
            ConfigTokenStore(registry, tenant_config),
            versions=versions,
            log=context.log,
        )
        counts, cursor_after, census = LoadCounts(), cursor_before, SourceCensus()
        try:
            cursor_after = _load_pages(context, connector, loader, entity, cursor_before, counts)
            # One listing pass serves the reconciliation check and, on a full refresh, deletes.
            if full:
                listed = census.ids(connector.listing(entity))
                counts.deleted = loader.soft_delete_missing(listed, config.max_delete_fraction)
            else:
                census.take(connector.listing(entity))
            _enforce_error_threshold(counts, tenant_config.row.sync_config.error_threshold)
        except Exception as exc:
            error = classify(exc)
            audit.finish_sync_log(
                conn,
                loader.sync_log_id,
                status="failed",
                counts=counts,
                api_calls=connector.api_calls,
                cursor_after=cursor_after,
                error=error,
            )
            context.log.error(f"{entity} import failed: {error} — fix: {error.suggested_fix}")
            raise dg.Failure(
                description=f"{error.category}: {error.message}",
                metadata={"category": str(error.category), "suggested_fix": error.suggested_fix},
            ) from None
        finally:
            connector.close()
        status = "partial" if counts.failed else "success"
        audit.finish_sync_log(
            conn,
            loader.sync_log_id,
            status=status,
            counts=counts,
            api_calls=connector.api_calls,
            cursor_after=cursor_after,
        )
        audit.mark_config_synced(conn, tenant_config.row.id, entity, status)
        results = checks.run_sql_checks(conn, entity, tenant, system)
        source_total = census.total if entity == "invoices" else None
        results.append(
            checks.reconciliation_result(conn, entity, tenant, system, census.count, source_total)
        )
        frequency = getattr(tenant_config.row.sync_config, f"{entity}_frequency")
        results.append(
            checks.freshness_result(conn, entity, tenant, system, frequency, context.run.run_id)
        )
        row_count = _row_count(conn, entity, tenant, system)
    return dg.MaterializeResult(
        metadata={
            "records_fetched": counts.fetched,
            "records_inserted": counts.inserted,
            "records_updated": counts.updated,
            "records_unchanged": counts.unchanged,
            "records_failed": counts.failed,
            "records_deleted": counts.deleted,
            "api_calls": connector.api_calls,
            "retries": connector.retries,
            "sync_type": "full" if full else "incremental",
            "cursor_before": cursor_before or "none",
            "cursor_after": cursor_after or "none",
            "duration_seconds": round(time.monotonic() - started, 3),
            "dagster/row_count": row_count,
        },
        check_results=results,
    )


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
