"""The analyst views downstream of the imports, refreshed through Dagster."""

from decimal import Decimal

import dagster as dg

from hub_pipelines.analytics.assets import customer_directory, gst_sales_summary
from hub_pipelines.resources import WarehouseResource
from hub_pipelines_tests.zoho_books.conftest import TENANT


def _refresh(zoho) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [gst_sales_summary, customer_directory],
        instance=zoho.instance,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    )


def test_gst_summary_adds_up_to_the_invoices_by_fiscal_year(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=20, invoices=120)
    assert zoho.materialize().success
    result = _refresh(zoho)
    assert result.success
    summary = zoho.query(
        "SELECT sum(invoices), sum(total), sum(cgst), sum(sgst), sum(igst) "
        "FROM accounting.gst_sales_summary WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    source = zoho.query(
        "SELECT count(*), sum(total), sum(cgst), sum(sgst), sum(igst) FROM accounting.invoices "
        "WHERE tenant_id = %s AND status <> 'void' AND deleted_at IS NULL",
        (TENANT,),
    )[0]
    assert summary == source
    pairs = zoho.query(
        "SELECT DISTINCT fiscal_year, month FROM accounting.gst_sales_summary ORDER BY month"
    )
    for fiscal_year, month in pairs:  # April–March
        start = month.year if month.month >= 4 else month.year - 1
        assert fiscal_year == f"{start}-{(start + 1) % 100:02d}"
    intra = zoho.query(
        "SELECT sum(cgst), sum(sgst), sum(igst) FROM accounting.gst_sales_summary "
        "WHERE supply_type = 'intra_state'"
    )[0]
    assert intra[0] == intra[1] and intra[2] == 0
    rows = result.asset_materializations_for_node("gst_sales_summary")[0].metadata
    assert rows["dagster/row_count"].value == len(
        zoho.query("SELECT 1 FROM accounting.gst_sales_summary")
    )


def test_customer_directory_matches_the_same_gstin_across_systems(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=5)
    assert zoho.materialize().success
    name, gstin = zoho.query(
        "SELECT name, gstin FROM accounting.customers WHERE gstin IS NOT NULL LIMIT 1"
    )[0]
    zoho.query(  # the same customer, as another system of the tenant holds it
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, gstin, raw, "
        "outstanding_balance) VALUES (%s, 'tally', 'L-1', %s, %s, '{}', 100.50) RETURNING 1",
        (TENANT, name.upper(), gstin),
    )
    assert _refresh(zoho).success
    systems, records, outstanding = zoho.query(
        "SELECT systems, source_records, outstanding_balance FROM accounting.customer_directory "
        "WHERE tenant_id = %s AND customer_key = %s",
        (TENANT, gstin),
    )[0]
    assert systems == ["tally", "zoho_books"] and records == 2
    assert outstanding >= Decimal("100.50")
    assert zoho.scalar("SELECT count(*) FROM accounting.customer_directory") == 10
