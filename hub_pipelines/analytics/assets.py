"""Unpartitioned analyst assets downstream of the imports: cross-system materialized views.

Each asset refreshes its materialized view (defined in sql/) without blocking readers, and
reports its row count. They refresh after any import partition of any system lands, through an
automation sensor that runs by default (no one has to switch anything on).

Their condition is not `eager()`: eager waits until no upstream partition is missing or in
progress, which with thousands of tenant partitions (a new tenant, a failed one, one always
running) would mean never.
"""

import dagster as dg

from hub_pipelines.imports.assets import IMPORT_ASSETS
from hub_pipelines.resources import WarehouseResource

REFRESH_AFTER_IMPORTS = (
    dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()
).since_last_handled() & ~dg.AutomationCondition.in_progress()


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
        automation_condition=REFRESH_AFTER_IMPORTS,
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


analytics_automation_sensor = dg.AutomationConditionSensorDefinition(
    "analytics_automation_sensor",
    target=dg.AssetSelection.groups("analytics"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes the analyst views after imports land (runs by default).",
)
