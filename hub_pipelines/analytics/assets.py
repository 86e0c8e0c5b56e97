"""Unpartitioned analyst assets downstream of the imports: cross-system materialized views.

Each asset refreshes its materialized view (defined in sql/) without blocking readers, and
reports its row count. `analytics_refresh_sensor` (running by default: no one has to switch it on)
requests a refresh after any import partition of any system lands.

Why a sensor and not an automation condition: `eager()` waits until no upstream partition is
missing or in progress, which with thousands of tenant partitions means never; and conditions
that reset when the view updates lose an import that lands while a refresh is running (both
happen within one evaluation). The sensor compares event-log storage ids instead: each refresh
it requests starts after every import it has seen, so none is missed.
"""

import json

import dagster as dg

from hub_pipelines.imports.assets import IMPORT_ASSETS
from hub_pipelines.resources import WarehouseResource


def _refresh(warehouse: WarehouseResource, view: str) -> dg.MaterializeResult:
    with warehouse.connect(autocommit=True) as conn:
        conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY accounting.{view}")
        (rows,) = conn.execute(f"SELECT count(*) FROM accounting.{view}").fetchone()
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})


def _view_asset(name: str, entity: str, description: str):
    @dg.asset(
        name=name,
        deps=[pair[entity] for pair in IMPORT_ASSETS.values()],
        group_name="analytics",
        kinds={"postgres"},
        description=description,
    )
    def refresh_view(warehouse: WarehouseResource) -> dg.MaterializeResult:
        return _refresh(warehouse, name)

    return refresh_view


gst_sales_summary = _view_asset(
    "gst_sales_summary",
    "invoices",
    "GST sales per tenant, system, fiscal year (April–March), month, place of supply and supply "
    "type, without void or deleted invoices (accounting.gst_sales_summary).",
)
customer_directory = _view_asset(
    "customer_directory",
    "customers",
    "One row per customer of a tenant across its systems, matched on GSTIN or name "
    "(accounting.customer_directory).",
)


VIEWS = {"gst_sales_summary": "invoices", "customer_directory": "customers"}


def _latest_import(instance: dg.DagsterInstance, entity: str, after: int) -> int:
    """The newest storage id of an import of `entity` (any system, any tenant) after `after`."""
    latest = after
    for pair in IMPORT_ASSETS.values():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=pair[entity].key, after_storage_id=after), limit=1
        ).records
        latest = max([latest, *(record.storage_id for record in records)])
    return latest


@dg.sensor(
    name="analytics_refresh_sensor",
    target=[gst_sales_summary, customer_directory],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes each analyst view after imports of its entity land (one run for "
    "everything that landed since the last tick).",
)
def analytics_refresh_sensor(context: dg.SensorEvaluationContext):
    seen = {view: 0 for view in VIEWS} | json.loads(context.cursor or "{}")
    latest = {view: _latest_import(context.instance, VIEWS[view], seen[view]) for view in VIEWS}
    stale = sorted(view for view in VIEWS if latest[view] > seen[view])
    if not stale:
        return dg.SkipReason("no import landed since the last refresh")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=":".join(f"{view}@{latest[view]}" for view in stale),
                asset_selection=[dg.AssetKey(view) for view in stale],
            )
        ],
        cursor=json.dumps(latest),
    )
