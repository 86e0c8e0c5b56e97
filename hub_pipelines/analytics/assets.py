"""Unpartitioned analyst assets downstream of the imports: the analyst layer of
sql/0012_analyst_layer.sql.

Each asset refreshes its materialized views in schema `analytics_store` without blocking readers
(analysts read them through the views of the same names in `accounting`), then runs its checks in
the same repeatable-read transaction: a check compares the view with exactly the rows the refresh
read, so an import landing meanwhile cannot fail it. `analytics_refresh_sensor` (running by
default: no one has to switch it on) requests a refresh after any import partition of any system
lands, and refreshes `sync_health` after a failed import too.

Why a sensor and not an automation condition: `eager()` waits until no upstream partition is
missing or in progress, which with thousands of tenant partitions means never; and conditions
that reset when the view updates lose an import that lands while a refresh is running (both
happen within one evaluation). The sensor compares event-log storage ids instead: each refresh
it requests starts after every import it has seen, so none is missed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import psycopg

from hub_pipelines.analytics import checks
from hub_pipelines.canonical import Entity
from hub_pipelines.imports.assets import IMPORT_ASSETS
from hub_pipelines.partitions import run_partition
from hub_pipelines.resources import WarehouseResource

STORE = "analytics_store"
REFRESH_LOCK = 0x48554202  # advisory-lock namespace of the refreshes ("HUB" + 2; migrations: + 1)


@dataclass(frozen=True)
class AnalystView:
    """One analyst asset: the materialized views it refreshes (in order; the last is the view of
    its name), the import entities they read, and its checks."""

    name: str
    store: tuple[str, ...]
    entities: tuple[Entity, ...]
    checks: dict[str, tuple[checks.Check, str]]
    description: str
    upstream_views: tuple[str, ...] = ()  # analyst assets whose views it reads
    after_failures: bool = False  # also refreshed after an import fails


ANALYST_VIEWS = (
    AnalystView(
        "customer_360",
        ("customer_match", "customer_360"),
        ("customers",),
        {
            "all_records_matched": (
                checks.customers_all_matched,
                "every live customer record is in exactly one customer",
            ),
            "one_tax_identity": (
                checks.one_tax_identity_per_customer,
                "no customer merges two PANs (or two GSTINs without a PAN)",
            ),
        },
        "One row per real-world customer of a tenant across its systems, matched by GSTIN, "
        "PAN, email, then phone (accounting.customer_360; the records: "
        "accounting.customer_360_records).",
    ),
    AnalystView(
        "gst_sales_summary",
        ("gst_sales_summary",),
        ("customers", "invoices"),
        {
            "totals_match_invoices": (
                checks.gst_totals_match_invoices,
                "taxable value and taxes equal accounting.invoices (issued, live)",
            ),
            "rates_match_lines": (
                checks.gst_rates_match_lines,
                "amounts per GST rate equal the invoice lines",
            ),
        },
        "GSTR-1 style sales per tenant, system, month (fiscal year April-March), place of "
        "supply, B2B/B2C/export, GST rate and currency, issued invoices only "
        "(accounting.gst_sales_summary).",
    ),
    AnalystView(
        "receivables_ageing",
        ("receivables_ageing",),
        ("customers", "invoices"),
        {
            "buckets_add_up": (
                checks.ageing_buckets_add_up,
                "the age buckets add up to outstanding on every row",
            ),
            "outstanding_matches_invoices": (
                checks.ageing_matches_invoices,
                "outstanding equals the balance due of the issued, live invoices",
            ),
        },
        "Outstanding invoice balances per tenant, customer and currency in 0-30 / 31-60 / 61-90 "
        "/ 90+ days past due (accounting.receivables_ageing).",
        upstream_views=("customer_360",),
    ),
    AnalystView(
        "sync_health",
        ("sync_health",),
        ("customers", "invoices"),
        {
            "one_row_per_config": (
                checks.one_row_per_config_and_entity,
                "one row per live configuration and entity",
            ),
            "last_success_matches_logs": (
                checks.last_success_matches_logs,
                "last_success_at is the latest completed import in the sync logs",
            ),
        },
        "Last success, last error, consecutive failures and freshness per tenant, system and "
        "entity (accounting.sync_health).",
        after_failures=True,
    ),
)
VIEWS = {view.name: view for view in ANALYST_VIEWS}


def refresh_and_check(
    conn: psycopg.Connection, view: AnalystView
) -> tuple[int, dict[str, checks.CheckOutcome]]:
    """Refresh the view's materialized views and run its checks in one repeatable-read
    transaction; returns the view's row count and each check's outcome. `conn` must be in
    autocommit mode."""
    # One refresh of a view at a time, waited for before the transaction takes its snapshot:
    # a refresh queued behind another then reads what that one committed instead of failing to
    # serialize. (LOCK TABLE refuses materialized views; readers are never blocked.)
    locks = [(REFRESH_LOCK, f"{STORE}.{name}") for name in sorted(view.store)]
    for lock in locks:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", lock)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            for name in view.store:
                conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {STORE}.{name}")
            (rows,) = conn.execute(f"SELECT count(*) FROM {STORE}.{view.name}").fetchone()
            outcomes = {name: check(conn) for name, (check, _) in view.checks.items()}
    finally:
        for lock in reversed(locks):
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock)
    return rows, outcomes


def _view_asset(view: AnalystView) -> dg.AssetsDefinition:
    imports = [pair[entity] for entity in view.entities for pair in IMPORT_ASSETS.values()]

    @dg.asset(
        name=view.name,
        deps=[*imports, *(dg.AssetKey(upstream) for upstream in view.upstream_views)],
        group_name="analytics",
        kinds={"postgres"},
        description=view.description,
        check_specs=[
            dg.AssetCheckSpec(name, asset=view.name, description=description)
            for name, (_, description) in view.checks.items()
        ],
    )
    def refresh_view(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect(autocommit=True) as conn:
            rows, outcomes = refresh_and_check(conn, view)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows},
            check_results=[
                dg.AssetCheckResult(
                    check_name=name,
                    passed=outcome.passed,
                    description=outcome.description,
                    metadata=outcome.metadata,
                )
                for name, outcome in outcomes.items()
            ],
        )

    return refresh_view


customer_360, gst_sales_summary, receivables_ageing, sync_health = (
    _view_asset(view) for view in ANALYST_VIEWS
)
ANALYTICS_ASSETS = [customer_360, gst_sales_summary, receivables_ageing, sync_health]


FAILED_IMPORTS = "failed_imports"  # the sensor cursor's key for the failures it has seen
FAILURES_READ = 100  # newest run failures read per tick (imports among them count)


def _latest_import(instance: dg.DagsterInstance, view: AnalystView, after: int) -> int:
    """The newest storage id after `after` of an import the view reads (any system, any
    tenant)."""
    latest = after
    for entity in view.entities:
        for pair in IMPORT_ASSETS.values():
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=pair[entity].key, after_storage_id=after), limit=1
            ).records
            latest = max([latest, *(record.storage_id for record in records)])
    return latest


def _latest_failed_import(instance: dg.DagsterInstance, after: int) -> int:
    """The newest storage id after `after` of a failed import run (a run of one tenant
    partition of a system's imports, however launched; the refreshes themselves are not)."""
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=after
        ),
        limit=FAILURES_READ,
    ).records
    for record in records:  # newest first
        run = instance.get_run_by_id(record.run_id)
        if run is not None and run_partition(instance, run) is not None:
            return record.storage_id
    return after


@dg.sensor(
    name="analytics_refresh_sensor",
    target=ANALYTICS_ASSETS,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes each analyst view after imports of what it reads land, and "
    "sync_health after failed imports too (one run for everything since the last tick).",
)
def analytics_refresh_sensor(context: dg.SensorEvaluationContext):
    seen = {name: 0 for name in (*VIEWS, FAILED_IMPORTS)} | json.loads(context.cursor or "{}")
    latest = {
        name: _latest_import(context.instance, view, seen[name]) for name, view in VIEWS.items()
    }
    latest[FAILED_IMPORTS] = _latest_failed_import(context.instance, seen[FAILED_IMPORTS])
    failed = latest[FAILED_IMPORTS] > seen[FAILED_IMPORTS]
    stale = sorted(
        name
        for name, view in VIEWS.items()
        if latest[name] > seen[name] or (failed and view.after_failures)
    )
    if not stale:
        return dg.SkipReason("no import landed or failed since the last refresh")
    marks = [f"{name}@{latest[name]}" for name in stale]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=":".join(marks + ([f"failed@{latest[FAILED_IMPORTS]}"] if failed else [])),
                asset_selection=[dg.AssetKey(name) for name in stale],
            )
        ],
        cursor=json.dumps(latest),
    )
