"""The analyst views downstream of the imports, refreshed through Dagster, on a Zoho Books
tenant (hub_pipelines_tests/analytics covers every system)."""

from decimal import Decimal

import dagster as dg

from hub_pipelines.analytics.assets import ANALYTICS_ASSETS
from hub_pipelines.resources import WarehouseResource
from hub_pipelines_tests.zoho_books.conftest import TENANT


def _refresh(zoho) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ANALYTICS_ASSETS,
        instance=zoho.instance,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    )


def test_gst_summary_adds_up_to_the_invoices_by_fiscal_year(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=20, invoices=120)
    assert zoho.materialize().success
    result = _refresh(zoho)
    assert result.success
    summary = zoho.query(
        "SELECT currency, sum(taxable_amount), sum(cgst), sum(sgst), sum(igst) "
        "FROM accounting.gst_sales_summary WHERE tenant_id = %s GROUP BY 1 ORDER BY 1",
        (TENANT,),
    )
    source = zoho.query(
        "SELECT currency, sum(taxable_amount), sum(cgst), sum(sgst), sum(igst) "
        "FROM accounting.invoices "
        "WHERE tenant_id = %s AND status IN ('open', 'partially_paid', 'paid') AND deleted_at IS NULL GROUP BY 1 ORDER BY 1",
        (TENANT,),
    )
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
    """customer_directory is customer_360 under its former columns (migration 0012)."""
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=5)
    assert zoho.materialize().success
    name, gstin = zoho.query(
        "SELECT name, gstin FROM accounting.customers WHERE gstin IS NOT NULL LIMIT 1"
    )[0]
    zoho_balance = zoho.scalar(
        "SELECT coalesce(outstanding_balance, 0) FROM accounting.customers "
        "WHERE tenant_id = %s AND system = 'zoho_books' AND gstin = %s",
        (TENANT, gstin),
    )
    zoho.query(  # the same customer, as another system of the tenant holds it
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, gstin, raw, "
        "currency, outstanding_balance) "
        "VALUES (%s, 'tally', 'L-1', %s, %s, '{}', 'INR', 100.50) RETURNING 1",
        (TENANT, name.upper(), gstin),
    )
    assert _refresh(zoho).success
    systems, records, outstanding = zoho.query(
        "SELECT systems, source_records, outstanding_balance_by_currency "
        "FROM accounting.customer_directory WHERE tenant_id = %s AND customer_key = %s",
        (TENANT, f"pan:{gstin[2:12]}"),
    )[0]
    assert systems == ["tally", "zoho_books"] and records == 2
    assert Decimal(str(outstanding["INR"])) == zoho_balance + Decimal("100.50")
    assert list(outstanding) == ["INR"]
    assert zoho.scalar("SELECT count(*) FROM accounting.customer_directory") == 10


CURRENCIES = {"INR", "USD", "EUR", "GBP", "SGD", "AED"}
AMOUNTS = ("taxable_amount", "cgst", "sgst", "igst", "cess", "tax_total")


def _supply_type(cgst: Decimal, sgst: Decimal, igst: Decimal) -> str:
    if igst:
        return "inter_state"
    return "intra_state" if cgst or sgst else "no_gst"


def test_summaries_keep_each_currency_apart(zoho):
    # Seed 42 with 60 customers: INR plus overseas customers billed in USD, EUR, GBP, SGD and
    # AED (no GST, no place of supply), and void invoices in foreign currencies too.
    zoho.simulator.seed_generated(zoho.org_id, customers=60, invoices=200, seed=42)
    assert zoho.materialize().success
    deleted = zoho.scalar(  # a foreign-currency invoice that then vanishes from Zoho
        "SELECT external_id FROM accounting.invoices WHERE tenant_id = %s AND currency = 'USD' "
        "AND status IN ('open', 'partially_paid', 'paid') ORDER BY external_id LIMIT 1",
        (TENANT,),
    )
    zoho.simulator.delete_invoice(zoho.org_id, deleted)
    assert zoho.materialize(full_refresh=True).success
    assert zoho.scalar(
        "SELECT deleted_at IS NOT NULL FROM accounting.invoices WHERE external_id = %s", (deleted,)
    )
    assert zoho.scalar(
        "SELECT count(*) FROM accounting.invoices WHERE tenant_id = %s AND status = 'void' "
        "AND currency <> 'INR'",
        (TENANT,),
    )
    assert _refresh(zoho).success

    # Per currency, the summary adds up to the invoices table (not void, not deleted).
    sums = ", ".join(f"sum({a})" for a in AMOUNTS)
    summary = zoho.query(
        f"SELECT currency, {sums} FROM accounting.gst_sales_summary "
        "WHERE tenant_id = %s GROUP BY 1",
        (TENANT,),
    )
    source = zoho.query(
        f"SELECT currency, {sums} FROM accounting.invoices WHERE tenant_id = %s "
        "AND status IN ('open', 'partially_paid', 'paid') AND deleted_at IS NULL GROUP BY 1",
        (TENANT,),
    )
    assert {row[0] for row in summary} == CURRENCIES
    assert {row[0]: row[1:] for row in summary} == {row[0]: row[1:] for row in source}

    # No row mixes currencies: the rows of each month, place of supply, supply type and
    # currency add up to exactly those invoices, grouped here in Python from the invoices.
    expected: dict[tuple, list] = {}
    invoices = zoho.query(
        f"SELECT date_trunc('month', i.issue_date)::date, "
        f"coalesce(i.place_of_supply, c.place_of_supply, c.state_code, '--'), i.currency, "
        f"i.cgst, i.sgst, i.igst, {', '.join(f'i.{a}' for a in AMOUNTS)} "
        "FROM accounting.invoices i LEFT JOIN accounting.customers c "
        "ON (c.tenant_id, c.system, c.external_id) = (i.tenant_id, i.system, i.customer_external_id) "
        "WHERE i.tenant_id = %s AND i.status IN ('open', 'partially_paid', 'paid') "
        "AND i.deleted_at IS NULL",
        (TENANT,),
    )
    for month, place, currency, cgst, sgst, igst, *amounts in invoices:
        key = (month, place, _supply_type(cgst, sgst, igst), currency)
        totals = expected.setdefault(key, [Decimal("0.00")] * len(AMOUNTS))
        expected[key] = [t + a for t, a in zip(totals, amounts, strict=True)]
    rows = zoho.query(
        f"SELECT month, place_of_supply, supply_type, currency, "
        f"{', '.join(f'sum({a})' for a in AMOUNTS)} FROM accounting.gst_sales_summary "
        "WHERE tenant_id = %s AND system = 'zoho_books' GROUP BY 1, 2, 3, 4",
        (TENANT,),
    )
    assert {tuple(row[:4]): list(row[4:]) for row in rows} == expected

    # The customer directory's outstanding balances, per currency, add up to the customers'.
    directory = zoho.query(
        "SELECT b.key, sum(b.value::numeric) FROM accounting.customer_directory d, "
        "jsonb_each_text(d.outstanding_balance_by_currency) b WHERE d.tenant_id = %s GROUP BY 1",
        (TENANT,),
    )
    customers = zoho.query(
        "SELECT currency, sum(coalesce(outstanding_balance, 0)) FROM accounting.customers "
        "WHERE tenant_id = %s AND deleted_at IS NULL GROUP BY 1",
        (TENANT,),
    )
    assert dict(directory) == dict(customers)
    assert len(dict(customers)) > 1
