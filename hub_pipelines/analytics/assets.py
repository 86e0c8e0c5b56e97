"""Unpartitioned analyst assets downstream of the imports: cross-system materialized views.

Each asset refreshes its materialized view (defined in sql/0004_analyst_views.sql) without
blocking readers, and reports its row count. They refresh when any import partition lands.
"""

import dagster as dg

from hub_pipelines.imports.assets import customers, invoices
from hub_pipelines.resources import WarehouseResource


def _refresh(warehouse: WarehouseResource, view: str) -> dg.MaterializeResult:
    with warehouse.connect(autocommit=True) as conn:
        conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY accounting.{view}")
        (rows,) = conn.execute(f"SELECT count(*) FROM accounting.{view}").fetchone()
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})


def _view_asset(name: str, upstream: dg.AssetsDefinition, description: str):
    @dg.asset(
        name=name,
        deps=[upstream],
        group_name="analytics",
        kinds={"postgres"},
        automation_condition=dg.AutomationCondition.eager(),
        description=description,
    )
    def refresh_view(warehouse: WarehouseResource) -> dg.MaterializeResult:
        return _refresh(warehouse, name)

    return refresh_view


gst_sales_summary = _view_asset(
    "gst_sales_summary",
    invoices,
    "GST sales per tenant, system, fiscal year (April–March), month, place of supply and supply "
    "type, without void or deleted invoices (accounting.gst_sales_summary).",
)
customer_directory = _view_asset(
    "customer_directory",
    customers,
    "One row per customer of a tenant across its systems, matched on GSTIN or name "
    "(accounting.customer_directory).",
)
