"""One import of one entity for one partition: connector pages → loader → audit → checks.

The assets are thin wrappers around `run_sync`; `PartitionSync` keeps one import's bookkeeping
(loader, counts, cursor, census, sync log) so each step below reads as one short method.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg

from hub_pipelines.canonical import ZERO, Connector, Entity, Listing
from hub_pipelines.connectors.errors import Category, SyncError, classify
from hub_pipelines.imports import audit, checks
from hub_pipelines.imports.collection import bulk_allocation
from hub_pipelines.imports.progress import ImportProgress
from hub_pipelines.imports.read_ahead import ReadAhead
from hub_pipelines.imports.run_health import CANCELLED, session_name
from hub_pipelines.landing.file_import import LandedFileConnector
from hub_pipelines.landing.folder import tenant_folder
from hub_pipelines.settings import landing_dir
from hub_pipelines.tenants.models import TenantConfigError
from hub_pipelines.tenants.registry import TenantConfig, TenantRegistry
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.vault import VaultError
from hub_pipelines.warehouse import migrations
from hub_pipelines.warehouse.loader import LoadCounts, PartitionLoader


class ImportConfig(dg.Config):
    """Run config of the import assets (also set by backfills: see `is_full_refresh`).

    `complete_listing_days`: an incremental run lists the whole entity (instead of what changed)
    when the last complete listing is older than this, so `matches_source` compares the sum of
    invoice totals too; other runs count the source cheaply. 0: every run lists everything."""

    full_refresh: bool = False
    max_delete_fraction: float = 0.5
    complete_listing_days: float = 7.0
    # A file to import instead of calling the source (a landed Tally export; the landing sensor
    # and `hub import-file` set it). Empty: the live source.
    landed_file: str = ""


COMPLETE = "a complete listing of the source"


@dataclass
class SourceCensus:
    """What the source has, for `matches_source`: a count and the sum of invoice totals from a
    complete listing; a count alone from a cheap count (`total` None: not compared); or no
    count at all (`count` None), with `counted_by` saying why."""

    count: int | None = 0
    total: Decimal | None = ZERO
    counted_by: str = COMPLETE
    countable: bool = True  # False: the source is a slice of the books (a file), never counted

    def take(self, listing: Iterable) -> None:
        """Count and sum a stream of `ListedRecord`s (a check-only run's listing)."""
        self.count, self.total = 0, ZERO
        for record in listing:
            self.count += 1
            self.total += record.total or ZERO

    @classmethod
    def of(cls, listing: Listing, counted_by: str = COMPLETE) -> SourceCensus:
        if not listing.totals_known:
            return cls(listing.count, None, f"{counted_by}'s ids (totals read for changes only)")
        return cls(listing.count, listing.total, counted_by)


def files_census() -> SourceCensus:
    """What a dropped file (or a tenant fed only by them) tells of the source: nothing to count."""
    slice_of_books = "a dropped file is a slice of the books, with nothing to count"
    return SourceCensus(None, None, slice_of_books, countable=False)


# Waits before closing a sync log on a fresh connection after the warehouse went away.
FRESH_CONNECTION_DELAYS = (1, 4, 10)


def is_full_refresh(context: dg.AssetExecutionContext, config: ImportConfig) -> bool:
    """A file is a slice of the company, never a full refresh of it (nothing may be deleted)."""
    if config.landed_file:
        return False
    return config.full_refresh or "dagster/backfill" in context.run.tags


def _failure(error: SyncError) -> dg.Failure:
    """A classified step failure: the failure sensor reads its category and fix back into the
    error table (and the wait from the sync log's `retry_after`)."""
    return dg.Failure(
        description=str(error),
        metadata={
            "category": str(error.category),
            "suggested_fix": error.suggested_fix,
            **_resume(error),
        },
    )


def _resume(error: SyncError | None) -> dict:
    """When a run stopped by the source's quota can go on: `resume_at` (UTC, ISO) and
    `retry_after` (seconds), for the sync log and the step failure."""
    if error is None or error.category != Category.RATE_LIMIT or error.retry_after is None:
        return {}
    resume = datetime.now(UTC) + timedelta(seconds=error.retry_after)
    return {"retry_after": error.retry_after, "resume_at": resume.isoformat(timespec="seconds")}


def _config_failure(tenant: str, system: str, message: str, fix: str) -> dg.Failure:
    """A failure before the import starts, classified so the error table keeps its cause."""
    return _failure(
        SyncError(Category.CONFIG, f"{system} tenant {tenant}: {message}", suggested_fix=fix)
    )


def enabled_config(registry: TenantRegistry, tenant: str, system: str, entity: str) -> TenantConfig:
    try:
        tenant_config = registry.get(tenant, system)
    except TenantConfigError as exc:
        raise _config_failure(
            tenant,
            system,
            str(exc),
            f"Register it: `hub tenants add {tenant} {system} --config FILE`",
        ) from None
    except VaultError as exc:
        raise _config_failure(
            tenant,
            system,
            f"its credentials cannot be opened: {exc}",
            "Set CREDENTIAL_ENCRYPTION_KEY to the key the config was stored with (during a "
            "rotation, the old one in CREDENTIAL_ENCRYPTION_OLD_KEYS); see docs/operations.md.",
        ) from None
    if not tenant_config.row.is_enabled:
        raise _config_failure(
            tenant,
            system,
            "the config is disabled (paused)",
            f"Enable it with `hub tenants enable {tenant} {system}`.",
        )
    if entity not in tenant_config.row.sync_config.entities:
        raise _config_failure(
            tenant,
            system,
            f"{entity} are not in this config's sync_config.entities",
            f"Add {entity} to sync_config.entities with `hub tenants add {tenant} {system}`.",
        )
    return tenant_config


def _open(context: dg.AssetExecutionContext, entity: Entity, tenant: str, system: str):
    """The registry and this partition's enabled config; any problem is a classified Failure."""
    try:
        registry = context.resources.vault.registry(context.resources.warehouse)
    except VaultError as exc:
        raise _config_failure(
            tenant,
            system,
            f"the credential vault cannot be opened: {exc}",
            "Set CREDENTIAL_ENCRYPTION_KEY (`hub keys generate` makes one); "
            "see docs/operations.md.",
        ) from None
    return registry, enabled_config(registry, tenant, system, entity)


def _connector(
    context, registry, tenant_config: TenantConfig, versions, landed_file=""
) -> Connector:
    if landed_file:
        return LandedFileConnector(
            tenant_config.row.system,
            Path(landed_file),
            tenant_config.connection,
            known_parties=lambda: _customer_names(context, tenant_config),
        )
    resource = getattr(context.resources, tenant_config.row.system)
    return resource.connector(
        tenant_config.connection,
        ConfigTokenStore(registry, tenant_config),
        versions=versions,
        log=context.log,
    )


def _customer_names(context, tenant_config: TenantConfig) -> dict[str, str]:
    """name -> external id of the partition's live customers."""
    with context.resources.warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT name, external_id FROM accounting.customers "
            "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
            (tenant_config.row.tenant_id, tenant_config.row.system),
        ).fetchall()
    return dict(rows)


def run_sync(
    context: dg.AssetExecutionContext,
    entity: Entity,
    config: ImportConfig,
    tenant: str,
    system: str,
) -> dg.MaterializeResult:
    registry, tenant_config = _open(context, entity, tenant, system)
    if tenant_config.files_only and not config.landed_file:
        return _as_it_stands(context, entity, tenant_config)
    try:
        with _session(context) as conn:
            _require_current_schema(conn, tenant, system)
            _lock_partition(conn, context.log, tenant, system, entity)
            sync = PartitionSync(context, entity, config, conn, registry, tenant_config)
            with bulk_allocation():
                return sync.run_to_end()
    except dg.Failure:
        raise
    except Exception as exc:  # before the sync log exists, e.g. the warehouse is away
        raise _failure(classify(exc)) from None


def _as_it_stands(
    context: dg.AssetExecutionContext, entity: Entity, tenant_config: TenantConfig
) -> dg.MaterializeResult:
    """A file-drop tenant's run without a file (Materialize in the UI, a backfill of every
    partition): there is nothing to fetch, and the partition holds what the landing sensor
    imported from every file dropped so far. It is materialized as it stands, with its checks
    (so a backfill completes), and the log says where files go. No sync log: nothing synced."""
    tenant, system = tenant_config.row.tenant_id, tenant_config.row.system
    folder = tenant_folder(landing_dir(), system, tenant)
    context.log.info(
        f"{system} tenant {tenant} is fed by dropped export files only: a run without a file "
        f"has nothing to import, so its {entity} stay as the files left them. Drop an export "
        f"into {folder}/ (the landing sensor imports it), or run "
        f"`hub import-file {tenant} {system} FILE`."
    )
    with _session(context) as conn:
        _require_current_schema(conn, tenant, system)
        results = _checks_as_they_stand(context, conn, entity, tenant_config, files_census())
    return dg.MaterializeResult(
        metadata={"imported": "nothing: no file given", "landing_folder": str(folder)},
        check_results=results,
    )


def _checks_as_they_stand(
    context: dg.AssetExecutionContext,
    conn: psycopg.Connection,
    entity: Entity,
    tenant_config: TenantConfig,
    census: SourceCensus,
) -> list[dg.AssetCheckResult]:
    """The selected checks on the warehouse as it stands, against what `census` saw."""
    return checks.evaluate(
        conn,
        entity,
        tenant_config,
        census.count,
        census.total,
        context.run.run_id,
        {key.name for key in context.selected_asset_check_keys},
        counted_by=census.counted_by,
        countable=census.countable,
    )


def _session(context: dg.AssetExecutionContext):
    """The step's warehouse connection, named after its run: while it is open the run has a
    worker (see imports/run_health.py)."""
    return context.resources.warehouse.connect(application_name=session_name(context.run.run_id))


def _require_current_schema(conn, tenant: str, system: str) -> None:
    """Code newer than the warehouse (upgraded without `hub db upgrade`) would fail later on a
    missing column, as an unexpected error; say what it is and the fix before anything runs."""
    behind = migrations.pending(conn)
    conn.commit()
    if behind:
        names = ", ".join(migration.path.name for migration in behind)
        raise _config_failure(
            tenant,
            system,
            f"the warehouse schema is behind this code: {len(behind)} migration(s) not applied "
            f"({names})",
            'Run `hub db upgrade` (docs/operations.md, "Upgrades"), then run the import again.',
        )


def _lock_partition(conn, log, tenant: str, system: str, entity: str) -> None:
    """One import per (tenant, system, entity) at a time, however its run was launched: the run
    queue's partition limit does not cover runs started outside it (`hub sync`, `dagster asset
    materialize`), and two imports must never advance one cursor. The session lock lasts as long
    as this connection, which a crashed run loses with its process."""
    key = f"{tenant}|{system}|{entity}"
    lock = "SELECT {}(hashtext('hub.import'), hashtext(%s))"
    (locked,) = conn.execute(lock.format("pg_try_advisory_lock"), (key,)).fetchone()
    if not locked:
        log.info(f"waiting for the other import of {system} {tenant} {entity} to finish")
        conn.execute(lock.format("pg_advisory_lock"), (key,))
    conn.commit()


def run_checks_only(
    context: dg.AssetExecutionContext, entity: Entity, tenant: str, system: str
) -> Iterator[dg.AssetCheckResult]:
    """The selected checks without an import: the warehouse as it is, compared with the source
    (one listing pass) when `matches_source` is selected."""
    registry, tenant_config = _open(context, entity, tenant, system)
    census = files_census() if tenant_config.files_only else SourceCensus()
    selected = {key.name for key in context.selected_asset_check_keys}
    with _session(context) as conn:
        if census.countable and checks.RECONCILIATION.name in selected:
            try:
                connector = _connector(context, registry, tenant_config, lambda _e, _ids: {})
                try:
                    census.take(connector.listing(entity))
                finally:
                    connector.close()
            except Exception as exc:
                raise _failure(classify(exc)) from None
        yield from _checks_as_they_stand(context, conn, entity, tenant_config, census)


class PartitionSync:
    """The bookkeeping of one import: its loader, counts, cursor, census and sync log."""

    def __init__(self, context, entity, config, conn, registry, tenant_config: TenantConfig):
        self.context, self.entity, self.config, self.conn = context, entity, config, conn
        self.registry, self.tenant_config = registry, tenant_config
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
        self.listing = "none"  # how this run saw the source: complete | changes
        self.lookups: psycopg.Connection | None = None  # see known_versions
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

    def run_to_end(self) -> dg.MaterializeResult:
        """Build the connector, import, and close the books either way: a failure, however
        early (a bad RETRY_* setting while building the connector), leaves a classified,
        finished sync log."""
        connector = None
        try:
            connector = _connector(
                self.context,
                self.registry,
                self.tenant_config,
                self.known_versions,
                self.config.landed_file,
            )
            self.run(connector)
        except Exception as exc:
            raise self.failed(exc, connector) from None
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            self.interrupted(connector)
            raise
        finally:
            if connector is not None:
                connector.close()
            if self.lookups is not None:
                self.lookups.close()
        return self.succeeded(connector)

    def known_versions(self, _entity: Entity, ids: list[str]) -> dict:
        """What the warehouse holds, so the connector skips unchanged records; a full refresh
        re-reads everything (e.g. after a mapping fix). Asked from the walk's own thread while
        a page loads (read_ahead.py), so on a connection of its own, never the loader's."""
        if self.full:
            return {}
        if self.lookups is None:
            self.lookups = self.context.resources.warehouse.connect(autocommit=True)
        return self.loader.versions(ids, self.lookups)

    def run(self, connector: Connector) -> None:
        """Walk the source once: everything on a first import, a full refresh and when the
        last complete listing is `complete_listing_days` old, else what changed since the cursor.
        A complete walk's listing serves `matches_source` (count and sum of totals) and delete
        detection (whatever made it complete: a full refresh, the periodic complete walk, a
        system that lists its ids every run); after any other walk the source is counted.
        No entity is listed twice in a run, and no run lists the whole books just to check."""
        self.progress = ImportProgress.for_run(
            self.context, self.entity, self.counts, connector, started=self.started
        )
        everything = self.full or self.cursor_before is None or self._complete_listing_due()
        walked = _load_pages(
            self.context,
            connector,
            self.loader,
            self.entity,
            None if everything else self.cursor_before,
            self.progress,
        )
        self.cursor_after = walked or self.cursor_before
        listing = connector.listed(self.entity)
        self.listing = "complete" if listing.complete else "changes"
        if listing.complete:  # the source listed everything (a full refresh, a periodic
            # complete walk, Tally's GUID list): what it lacks is gone, unless suspiciously much
            self.counts.deleted += self.loader.soft_delete_missing(
                listing.totals.keys(), self.config.max_delete_fraction
            )
        elif self.full:  # a connector bug: never delete from a partial listing
            raise SyncError(Category.MAPPING, "a full refresh listed only part of the source")
        self.live_rows = _row_count(self.conn, self.entity, self.tenant, self.system)
        if listing.complete:
            self.census = SourceCensus.of(listing)
        elif checks.RECONCILIATION.name in self._selected_checks():
            self.census = self._count(connector, self.live_rows)
        _enforce_error_threshold(
            self.counts, self.tenant_config.row.sync_config.error_threshold, self.live_rows
        )

    def _complete_listing_due(self) -> bool:
        days = self.config.complete_listing_days
        last = self._last_complete_listing()
        return days <= 0 or last is None or datetime.now(UTC) - last >= timedelta(days=days)

    def _last_complete_listing(self) -> datetime | None:
        (last,) = self.conn.execute(
            "SELECT max(completed_at) FROM hub.accounting_sync_logs WHERE tenant_id = %s "
            "AND system = %s AND entity_type = %s AND status IN ('success', 'partial') "
            "AND metadata->>'listing' = 'complete'",
            (self.tenant, self.system, self.entity),
        ).fetchone()
        self.conn.commit()
        return last

    def _count(self, connector: Connector, live: int) -> SourceCensus:
        """The source's count without listing it; the sum of totals waits for the next
        complete listing. A count that fails does not fail the import: the check says why."""
        last = self._last_complete_listing()
        due = (
            f"next after {(last + timedelta(days=self.config.complete_listing_days)):%Y-%m-%d}"
            if last
            else "next run"
        )
        how = "a count of the source's list"
        if self.entity == "invoices":
            how += (
                " (sum of totals not compared this run: the complete listing compares it every "
                f"{self.config.complete_listing_days:g} days, {due})"
            )
        try:
            count = connector.count(self.entity, near=live)
        except SyncError as exc:
            self.context.log.warning(f"{self.entity}: the source could not be counted: {exc}")
            return SourceCensus(None, None, f"the source could not be counted this run: {exc}")
        if count is None:
            return files_census()
        return SourceCensus(count, None, how)

    def failed(self, exc: Exception, connector: Connector | None) -> dg.Failure:
        error = classify(exc)
        self.context.log.error(f"{self.entity} import failed: {error} — fix: {error.suggested_fix}")
        try:
            self._finish("failed", connector, error)
        except psycopg.OperationalError:
            self._finish_on_fresh_connection(connector, error)
        return _failure(error)

    def interrupted(self, connector: Connector | None) -> None:
        """Terminated (from the UI or `dagster run terminate`) or Ctrl-C in `hub sync`: close the
        sync log now rather than leave it running until the run health sensor closes it, which
        needs a daemon. On a connection of its own: the step's may be mid-statement; closing it
        rolls back the page in flight, which the next run loads again."""
        self.context.log.warning(f"{self.entity} import interrupted: {CANCELLED}")
        error = SyncError(
            Category.SERVER,
            CANCELLED,
            suggested_fix="Run the import again: it goes on from the last committed page.",
            severity="warning",
            retryable=False,  # stopped on purpose: not for the retry sensor to undo
        )
        self.conn.close()
        try:
            with self.context.resources.warehouse.connect() as conn:
                conn.execute("SET lock_timeout = '5s'")
                self.conn = conn
                self._finish("failed", connector, error)
        except psycopg.Error as exc:
            self.context.log.warning(f"the sync log stays open for the run health sensor: {exc}")

    def _finish_on_fresh_connection(self, connector: Connector | None, error) -> None:
        """The warehouse went away with the import: close the sync log on a new connection once
        it is back. Should it stay away, the failure sensor closes the log with this step's
        classified failure later."""
        for delay in FRESH_CONNECTION_DELAYS:
            time.sleep(delay)
            try:
                with self.context.resources.warehouse.connect() as conn:
                    self.conn = conn
                    self._finish("failed", connector, error)
                    return
            except psycopg.OperationalError:
                continue
        self.context.log.warning("the warehouse is still away: the failure sensor closes the log")

    def succeeded(self, connector: Connector) -> dg.MaterializeResult:
        status = "partial" if self.counts.failed else "success"
        self._finish(status, connector)
        audit.mark_config_synced(self.conn, self.tenant_config.row.id, self.entity, status)
        return dg.MaterializeResult(
            metadata=self._metadata(connector), check_results=self._check_results()
        )

    def _finish(self, status: str, connector: Connector | None, error=None) -> None:
        audit.finish_sync_log(
            self.conn,
            self.loader.sync_log_id,
            status=status,
            counts=self.counts,
            api_calls=connector.api_calls if connector else 0,
            cursor_after=self.cursor_after,
            error=error,
            # `listing: complete` dates the last complete listing (`complete_listing_days`).
            metadata={"listing": self.listing, **_resume(error)},
        )

    def _selected_checks(self) -> set[str]:
        return {key.name for key in self.context.selected_asset_check_keys}

    def _check_results(self) -> list[dg.AssetCheckResult]:
        return _checks_as_they_stand(
            self.context, self.conn, self.entity, self.tenant_config, self.census
        )

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
            **self.progress.metadata(),  # pages, and quota_remaining when the source says
            "sync_type": "full" if self.full else "incremental",
            "listing": self.listing,  # complete: the walk listed every record; else changes
            **(
                {"landed_file": Path(self.config.landed_file).name}
                if self.config.landed_file
                else {}
            ),
            "cursor_before": self.cursor_before or "none",
            "cursor_after": self.cursor_after or "none",
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "dagster/row_count": self.live_rows,  # counted once the walk and deletes were done
        }


def _load_pages(context, connector, loader, entity, cursor, progress: ImportProgress) -> str | None:
    """Load and commit page by page into `progress.counts`, reporting progress after each."""
    cursor_after = cursor
    pages = connector.customers(cursor) if entity == "customers" else connector.invoices(cursor)
    with progress, ReadAhead(pages) as pages_ahead:
        for page in pages_ahead:
            progress.counts.add(loader.load_page(page))
            for failure in page.failures:
                context.log.warning(
                    f"{entity} record {failure.entity_id or '?'} not loaded ({failure.category}): "
                    f"{failure.message}"
                )
            if page.cursor is not None:
                cursor_after = page.cursor
            progress.page_committed(page)
    return cursor_after


def _enforce_error_threshold(counts: LoadCounts, threshold: float, live_rows: int) -> None:
    """Fail the run when too large a share of the partition failed. The share is of the
    partition (its live rows plus the failures), not of this run's reads: an incremental run
    re-reads the few records that keep failing, and one bad record must not fail every run."""
    records = max(counts.fetched, live_rows + counts.failed)
    if records and counts.failed / records > threshold:
        raise SyncError(
            Category.MAPPING,
            f"{counts.failed} of {records} records failed "
            f"({counts.failed / records:.1%}), over the error threshold of {threshold:.0%}",
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
