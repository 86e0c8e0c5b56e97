"""The analyst views hold what the books and the tables say, for every system imported."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from hub_pipelines import gst
from hub_pipelines.analytics import checks
from hub_pipelines.simulation.books import Books
from hub_pipelines_tests.analytics.conftest import TENANT_SYSTEMS, refresh, rolled_back

ZERO = Decimal("0.00")
GST_SUMS = ", ".join(f"sum({amount})" for amount in checks.GST_AMOUNTS)


# --- gst_sales_summary ----------------------------------------------------------------------------


def expected_gst_rows(books: Books, system: str) -> dict[tuple, list]:
    """The summary of one system's rendering of the books, computed from the books alone:
    issued sales (no voids, drafts or deleted sales), split by line rate."""
    rows: dict[tuple, list] = {}
    for sale in books.live_sales():
        if sale.payment_status not in ("open", "partially_paid", "paid"):
            continue
        party = books.party(sale.party_key)
        category = "b2b" if party.gstin else ("export" if party.overseas else "b2c")
        heads = sale.tax_heads()
        supply = (
            "inter_state"
            if heads["igst"]
            else ("intra_state" if heads["cgst"] or heads["sgst"] else "no_gst")
        )
        month = sale.issue_date.replace(day=1)
        for line in sale.lines:
            key = (
                system,
                gst.fiscal_year(month),
                month,
                sale.place_of_supply or "--",
                category,
                supply,
                line.gst_rate,
                sale.currency,
            )
            cgst, sgst, igst = line.taxes(sale.intra_state)
            row = rows.setdefault(key, [set(), ZERO, ZERO, ZERO, ZERO])
            row[0].add(sale.number)
            for index, amount in enumerate((line.taxable, cgst, sgst, igst), start=1):
                row[index] += amount
    return {key: [len(row[0]), *row[1:]] for key, row in rows.items()}


@pytest.mark.parametrize("tenant", sorted(TENANT_SYSTEMS))
def test_gst_summary_is_the_books_issued_sales_by_rate_in_every_system(imported, tenant):
    held = imported.query(
        "SELECT system, fiscal_year, month, place_of_supply, supply_category, supply_type, "
        "tax_rate, currency, invoices, taxable_amount, cgst, sgst, igst "
        "FROM accounting.gst_sales_summary WHERE tenant_id = %s",
        (tenant,),
    )
    got = {tuple(row[:8]): list(row[8:]) for row in held}
    expected: dict[tuple, list] = {}
    for system in TENANT_SYSTEMS[tenant]:
        expected |= expected_gst_rows(imported.books[tenant], system)
    assert got == expected
    categories = {key[4] for key in got}  # acme sells to registered businesses only
    assert categories == ({"b2b", "b2c", "export"} if tenant == "beta" else {"b2b"})
    assert (
        imported.scalar(
            "SELECT count(*) FROM accounting.gst_sales_summary "
            "WHERE cess <> 0 OR other_tax <> 0 OR tax_total <> cgst + sgst + igst"
        )
        == 0
    )


def test_gst_summary_totals_equal_the_tables_for_the_same_filter(imported):
    summary = imported.query(
        f"SELECT tenant_id, system, currency, {GST_SUMS} FROM accounting.gst_sales_summary "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    invoices = imported.query(
        f"SELECT tenant_id, system, currency, {GST_SUMS} FROM accounting.invoices "
        "WHERE status IN ('open', 'partially_paid', 'paid') AND deleted_at IS NULL "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    assert summary == invoices
    assert {(tenant, system) for tenant, system, *_ in summary} == {
        (tenant, system) for tenant, systems in TENANT_SYSTEMS.items() for system in systems
    }
    by_rate = imported.query(
        "SELECT tenant_id, system, tax_rate, sum(taxable_amount), sum(igst) "
        "FROM accounting.gst_sales_summary GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    lines = imported.query(
        "SELECT l.tenant_id, l.system, l.tax_rate, sum(l.taxable_amount), sum(l.igst) "
        "FROM accounting.invoice_lines l JOIN accounting.invoices i "
        "ON (i.tenant_id, i.system, i.external_id) = (l.tenant_id, l.system, l.invoice_external_id) "
        "WHERE i.status IN ('open', 'partially_paid', 'paid') AND i.deleted_at IS NULL "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    assert by_rate == lines  # every amount of these books is on a line: no NULL-rate part


def test_the_books_hold_the_invoices_the_summaries_must_leave_out(imported):
    statuses = dict(
        imported.query(
            "SELECT system || ':' || status, count(*) FROM accounting.invoices "
            "WHERE tenant_id = 'acme' GROUP BY 1"
        )
    )
    assert statuses["xero:void"] and statuses["xero:draft"] and statuses["tally:void"]
    deleted = imported.query(
        "SELECT system FROM accounting.invoices WHERE tenant_id = 'acme' AND deleted_at IS NOT NULL"
    )
    assert sorted(system for (system,) in deleted) == sorted(TENANT_SYSTEMS["acme"])


NOT_SUPPLIES = ("draft", "pending_approval", "approved", "rejected", "void")


def test_voids_drafts_approvals_and_deletions_leave_every_view(imported):
    """Six issued invoices turned into each status that is not a supply, and one deleted: the
    summary and the ageing lose exactly their amounts."""
    with rolled_back(imported.url) as conn:
        chosen = conn.execute(
            "SELECT external_id, taxable_amount, cgst + sgst + igst, balance_due "
            "FROM accounting.invoices WHERE tenant_id = 'beta' AND system = 'zoho_books' "
            "AND status IN ('open', 'partially_paid') ORDER BY external_id LIMIT 6"
        ).fetchall()
        assert len(chosen) == 6

        def totals() -> tuple:
            summary = conn.execute(
                "SELECT sum(taxable_amount), sum(cgst + sgst + igst) "
                "FROM analytics_store.gst_sales_summary WHERE tenant_id = 'beta'"
            ).fetchone()
            (owed,) = conn.execute(
                "SELECT sum(outstanding) FROM analytics_store.receivables_ageing "
                "WHERE tenant_id = 'beta'"
            ).fetchone()
            return (*summary, owed)

        before = totals()
        for (external_id, *_), status in zip(chosen, (*NOT_SUPPLIES, None), strict=True):
            change = "deleted_at = now()" if status is None else f"status = '{status}'"
            conn.execute(
                f"UPDATE accounting.invoices SET {change} WHERE tenant_id = 'beta' "
                "AND system = 'zoho_books' AND external_id = %s",
                (external_id,),
            )
        refresh(conn, "gst_sales_summary", "receivables_ageing")
        after = totals()
        removed = [sum(row[index] for row in chosen) for index in (1, 2, 3)]
        assert [b - a for b, a in zip(before, after, strict=True)] == removed
        assert all(amount > 0 for amount in removed)


def test_a_taxed_charge_without_a_line_has_a_rate_of_its_own(imported):
    """What an invoice holds beyond its lines (a shipping charge) is kept, with tax_rate NULL,
    and an invoice without lines still counts."""
    with rolled_back(imported.url) as conn:
        conn.execute(
            "UPDATE accounting.invoices SET taxable_amount = taxable_amount + 100, "
            "igst = igst + 18, tax_total = tax_total + 18, total = total + 118 "
            "WHERE (tenant_id, system, external_id) = (SELECT tenant_id, system, external_id "
            "FROM accounting.invoices WHERE tenant_id = 'acme' AND system = 'tally' "
            "AND status = 'open' AND deleted_at IS NULL ORDER BY external_id LIMIT 1)"
        )
        conn.execute(
            "INSERT INTO accounting.invoices (tenant_id, system, external_id, status, issue_date, "
            "currency, taxable_amount, cgst, sgst, tax_total, total, raw) VALUES "
            "('acme', 'tally', 'no-lines', 'open', DATE '2026-05-03', 'INR', 50, 4.5, 4.5, 9, "
            "59, '{}')"
        )
        refresh(conn, "gst_sales_summary")
        unrated = conn.execute(
            "SELECT sum(invoices), sum(taxable_amount), sum(igst), sum(cgst) "
            "FROM analytics_store.gst_sales_summary WHERE tenant_id = 'acme' AND system = 'tally' "
            "AND tax_rate IS NULL"
        ).fetchone()
        assert unrated == (2, Decimal("150.00"), Decimal("18.00"), Decimal("4.50"))
        assert checks.gst_totals_match_invoices(conn).passed
        assert checks.gst_rates_match_lines(conn).passed


def test_fiscal_years_run_april_to_march_and_months_are_dates(imported):
    pairs = imported.query("SELECT DISTINCT fiscal_year, month FROM accounting.gst_sales_summary")
    assert len(pairs) > 12
    for fiscal_year, month in pairs:
        assert isinstance(month, date) and month.day == 1
        assert fiscal_year == gst.fiscal_year(month)


# --- receivables_ageing ---------------------------------------------------------------------------

BUCKETS = ("not_due", "days_0_30", "days_31_60", "days_61_90", "days_over_90", "undated")


def bucket(as_of: date, due: date | None) -> str:
    if due is None:
        return "undated"
    days = (as_of - due).days
    if days < 0:
        return "not_due"
    for name, limit in (("days_0_30", 30), ("days_31_60", 60), ("days_61_90", 90)):
        if days <= limit:
            return name
    return "days_over_90"


def test_ageing_buckets_follow_the_due_date_or_else_the_issue_date(imported):
    as_of = imported.scalar("SELECT DISTINCT as_of FROM accounting.receivables_ageing")
    assert as_of == imported.scalar("SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date")
    invoices = imported.query(
        "SELECT tenant_id, system, customer_external_id, currency, due_date, issue_date, "
        "balance_due FROM accounting.invoices WHERE status IN ('open', 'partially_paid', 'paid') "
        "AND deleted_at IS NULL AND balance_due > 0"
    )
    expected: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(BUCKETS, ZERO))
    for tenant, system, customer, currency, due, issued, balance in invoices:
        expected[(tenant, system, customer, currency)][bucket(as_of, due or issued)] += balance
    rows = imported.query(
        f"SELECT tenant_id, system, customer_external_id, currency, outstanding, "
        f"{', '.join(BUCKETS)} FROM accounting.receivables_ageing"
    )
    got = {tuple(row[:4]): dict(zip(BUCKETS, row[5:], strict=True)) for row in rows}
    assert got == dict(expected)
    for row in rows:
        assert row[4] == sum(row[5:])
    assert {key[1] for key in got} == {s for systems in TENANT_SYSTEMS.values() for s in systems}
    assert (
        imported.scalar(
            "SELECT count(*) FROM accounting.invoices WHERE system = 'busy' "
            "AND due_date IS NOT NULL"
        )
        == 0
    )  # so BUSY is aged by issue date


def test_ageing_bucket_edges_count_days_past_due_on_as_of(imported):
    with rolled_back(imported.url) as conn:
        (as_of,) = conn.execute("SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date").fetchone()
        cases = {  # days past due -> bucket
            -1: "not_due", 0: "days_0_30", 30: "days_0_30", 31: "days_31_60", 60: "days_31_60",
            61: "days_61_90", 90: "days_61_90", 91: "days_over_90",
        }  # fmt: skip
        for days, name in cases.items():
            conn.execute(
                "INSERT INTO accounting.invoices (tenant_id, system, external_id, "
                "customer_external_id, status, issue_date, due_date, currency, total, "
                "balance_due, raw) VALUES ('edge', 'xero', %s, %s, 'open', %s, %s, 'INR', 100, "
                "%s, '{}')",
                (f"i{days}", name, as_of - timedelta(days=days + 30),
                 as_of - timedelta(days=days), Decimal(days + 1000)),
            )  # fmt: skip
        conn.execute(  # no due date: aged from its issue date, 45 days ago
            "INSERT INTO accounting.invoices (tenant_id, system, external_id, "
            "customer_external_id, status, issue_date, currency, total, balance_due, raw) "
            "VALUES ('edge', 'busy', 'undue', 'c', 'partially_paid', %s, 'USD', 10, 7.5, '{}')",
            (as_of - timedelta(days=45),),
        )
        refresh(conn, "receivables_ageing")
        rows = conn.execute(
            f"SELECT customer_external_id, currency, invoices, outstanding, {', '.join(BUCKETS)} "
            "FROM analytics_store.receivables_ageing WHERE tenant_id = 'edge'"
        ).fetchall()
        columns = ("currency", "invoices", "outstanding", *BUCKETS)
        got = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}
        for name in set(cases.values()):
            owed = sum(Decimal(days + 1000) for days, bucketed in cases.items() if bucketed == name)
            assert got[name][name] == got[name]["outstanding"] == owed
        assert got["c"]["days_31_60"] == Decimal("7.50") and got["c"]["currency"] == "USD"
        assert got["days_0_30"]["invoices"] == 2


# --- customer_360 -------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", sorted(TENANT_SYSTEMS))
def test_every_party_is_one_customer_across_the_systems_holding_it(imported, tenant):
    books = imported.books[tenant]
    expected = {
        (f"pan:{party.pan}" if party.pan else f"email:{party.email}"): (
            "gstin" if party.gstin else "email",
            sorted(TENANT_SYSTEMS[tenant]),
        )
        for party in books.parties.values()
    }
    rows = imported.query(
        "SELECT customer_key, match_rule, systems, record_count, source_records "
        "FROM accounting.customer_360 WHERE tenant_id = %s",
        (tenant,),
    )
    assert {key: (rule, systems) for key, rule, systems, *_ in rows} == expected
    names = {party.name for party in books.parties.values()}
    for _, rule, systems, count, records in rows:
        assert count == len(systems) == len(records)
        assert [r["system"] for r in records] == systems
        assert {r["name"] for r in records} <= names
        assert {r["matched_by"] for r in records} == {rule}
    live = imported.scalar(
        "SELECT count(*) FROM accounting.customers WHERE tenant_id = %s AND deleted_at IS NULL",
        (tenant,),
    )
    assert sum(row[3] for row in rows) == live


GSTIN_A, GSTIN_B_KA, GSTIN_B_MH = "29AAACA1111A1Z5", "29AAACB2222B1Z1", "27AAACB2222B1Z3"
GSTIN_C, GSTIN_D, GSTIN_E, GSTIN_F = (
    "29AAACC3333C1Z0", "29AAACD4444D1Z7", "29AAACE5555E1Z2", "29AAACF6666F1Z9",
)  # fmt: skip

# (system, external_id, gstin, pan, email, phone) of one tenant's customer records
RECORDS = [
    ("zoho_books", "z1", GSTIN_A, None, None, None),
    ("tally", "t1", " 29aaaca1111a1z5 ", None, None, None),  # the same GSTIN, as typed
    ("zoho_books", "z2", GSTIN_B_KA, None, None, None),
    ("xero", "x2", GSTIN_B_MH, None, None, None),  # same PAN, registered in another state
    ("busy", "b2", None, "aaacb2222b", None, None),  # the PAN alone
    ("xero", "x3", None, None, "Accounts@Foo.example ", None),
    ("busy", "b3", None, None, "accounts@foo.example", "+91 99999 00000"),
    ("tally", "t4", None, None, None, "+91 98450 12345"),
    ("busy", "b4", None, None, None, "098450-12345"),
    ("quickbooks", "q4", None, None, None, "9845012345"),
    ("xero", "x5", None, None, "ops@bar.example", None),  # A ~ B by email ...
    ("zoho_books", "z5", GSTIN_C, None, "ops@bar.example", None),  # ... B ~ C by GSTIN
    ("tally", "t5", GSTIN_C, None, "other@bar.example", None),
    ("zoho_books", "z6", GSTIN_D, None, "group@x.example", None),  # one email, two PANs:
    ("xero", "x6", GSTIN_E, None, "group@x.example", None),  # never merged
    ("busy", "b6", None, None, "group@x.example", None),  # ambiguous: stays apart
    ("tally", "t7", None, None, "a@one.example", "+1 212 555 0100"),  # a shared phone does
    ("tally", "t8", None, None, "b@two.example", "+1 212 555 0100"),  # not merge two emails
    ("busy", "b9", None, None, None, "+91 80 2222 3333"),  # the phone of ...
    ("zoho_books", "z9", GSTIN_F, None, None, "080 2222 3333"),  # ... a registered customer
    ("quickbooks", "q11", None, None, None, None),
]
EXPECTED = {  # customer_key: (match_rule, {(system, external_id): matched_by})
    "pan:AAACA1111A": ("gstin", {("zoho_books", "z1"): "gstin", ("tally", "t1"): "gstin"}),
    "pan:AAACB2222B": (
        "pan",
        {("zoho_books", "z2"): "pan", ("xero", "x2"): "pan", ("busy", "b2"): "pan"},
    ),
    "email:accounts@foo.example": ("email", {("xero", "x3"): "email", ("busy", "b3"): "email"}),
    "phone:9845012345": (
        "phone",
        {("tally", "t4"): "phone", ("busy", "b4"): "phone", ("quickbooks", "q4"): "phone"},
    ),
    "pan:AAACC3333C": (
        "email",
        {("xero", "x5"): "email", ("zoho_books", "z5"): "gstin", ("tally", "t5"): "gstin"},
    ),
    "pan:AAACD4444D": ("unmatched", {("zoho_books", "z6"): "unmatched"}),
    "pan:AAACE5555E": ("unmatched", {("xero", "x6"): "unmatched"}),
    "email:group@x.example": ("unmatched", {("busy", "b6"): "unmatched"}),
    "email:a@one.example": ("unmatched", {("tally", "t7"): "unmatched"}),
    "email:b@two.example": ("unmatched", {("tally", "t8"): "unmatched"}),
    "pan:AAACF6666F": ("phone", {("busy", "b9"): "phone", ("zoho_books", "z9"): "gstin"}),
    "record:quickbooks:q11": ("unmatched", {("quickbooks", "q11"): "unmatched"}),
}


def test_customers_match_by_gstin_then_pan_then_email_then_phone(imported):
    with rolled_back(imported.url) as conn:
        for system, external_id, gstin, pan, email, phone in RECORDS:
            conn.execute(
                "INSERT INTO accounting.customers (tenant_id, system, external_id, name, gstin, "
                "pan, email, phone, raw) VALUES ('matching', %s, %s, %s, %s, %s, %s, %s, '{}')",
                (system, external_id, f"Customer {external_id}", gstin, pan, email, phone),
            )
        conn.execute(  # a deleted record matches nothing
            "INSERT INTO accounting.customers (tenant_id, system, external_id, name, gstin, "
            "deleted_at, raw) VALUES ('matching', 'busy', 'gone', 'Gone', %s, now(), '{}')",
            (GSTIN_A,),
        )
        refresh(conn, "customer_match", "customer_360")
        rows = conn.execute(
            "SELECT customer_key, match_rule, source_records, record_count "
            "FROM analytics_store.customer_360 WHERE tenant_id = 'matching'"
        ).fetchall()
        got = {
            key: (rule, {(r["system"], r["external_id"]): r["matched_by"] for r in records})
            for key, rule, records, _ in rows
        }
        assert got == EXPECTED
        assert sum(count for *_, count in rows) == len(RECORDS)
        assert checks.customers_all_matched(conn).passed
        assert checks.one_tax_identity_per_customer(conn).passed
        main = conn.execute(
            "SELECT name, gstin, gstins, pan, phone FROM analytics_store.customer_360 "
            "WHERE tenant_id = 'matching' AND customer_key = 'pan:AAACB2222B'"
        ).fetchone()
        assert main == ("Customer x2", GSTIN_B_MH, [GSTIN_B_MH, GSTIN_B_KA], "AAACB2222B", None)


def test_the_customer_directory_keeps_its_columns_over_customer_360(imported):
    directory = imported.query(
        "SELECT tenant_id, customer_key, name, gstin, systems, source_records, "
        "outstanding_balance_by_currency FROM accounting.customer_directory ORDER BY 1, 2"
    )
    full = imported.query(
        "SELECT tenant_id, customer_key, name, gstin, systems, record_count, "
        "outstanding_balance_by_currency FROM accounting.customer_360 ORDER BY 1, 2"
    )
    assert directory == full and len(directory) == 24


# --- the checks -----------------------------------------------------------------------------------


def test_every_check_passes_after_the_imports(imported):
    evaluations = imported.refresh.get_asset_check_evaluations()
    assert {(e.asset_key.to_user_string(), e.check_name) for e in evaluations} == {
        ("customer_360", "all_records_matched"),
        ("customer_360", "one_tax_identity"),
        ("gst_sales_summary", "totals_match_invoices"),
        ("gst_sales_summary", "rates_match_lines"),
        ("receivables_ageing", "buckets_add_up"),
        ("receivables_ageing", "outstanding_matches_invoices"),
        ("sync_health", "one_row_per_config"),
        ("sync_health", "last_success_matches_logs"),
    }
    assert all(e.passed for e in evaluations), [e.description for e in evaluations]
    rows = {
        e.asset_key.to_user_string(): e.materialization.metadata["dagster/row_count"].value
        for e in imported.refresh.get_asset_materialization_events()
    }
    assert rows["sync_health"] == 10 and rows["customer_360"] == 24


def tampered_copy(conn: psycopg.Connection, view: str, change: str) -> None:
    """Swap a materialized view for a copy with `change` applied (rolled back by the caller)."""
    conn.execute(f"ALTER MATERIALIZED VIEW analytics_store.{view} RENAME TO {view}_real")
    conn.execute(
        f"CREATE TABLE analytics_store.{view} AS SELECT * FROM analytics_store.{view}_real"
    )
    conn.execute(change)


TAMPERING = [  # (what is changed, the check that must fail)
    (
        "UPDATE accounting.invoices SET cgst = cgst + 1 WHERE (tenant_id, system, external_id) = "
        "(SELECT tenant_id, system, external_id FROM accounting.invoices "
        "WHERE status = 'open' AND deleted_at IS NULL ORDER BY 1, 2, 3 LIMIT 1)",
        checks.gst_totals_match_invoices,
    ),
    (
        "UPDATE accounting.invoice_lines SET taxable_amount = taxable_amount + 1 "
        "WHERE tenant_id = 'beta' AND line_number = 1 AND tax_rate = 18",
        checks.gst_rates_match_lines,
    ),
    (
        "UPDATE accounting.invoices SET balance_due = balance_due + 1 WHERE balance_due > 0",
        checks.ageing_matches_invoices,
    ),
    (
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, raw) "
        "VALUES ('acme', 'tally', 'new', 'New', '{}')",
        checks.customers_all_matched,
    ),
    (
        "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
        "VALUES ('gamma', 'xero', '{}')",
        checks.one_row_per_config_and_entity,
    ),
    (
        "UPDATE hub.accounting_sync_logs SET completed_at = completed_at + interval '1 minute' "
        "WHERE status = 'success'",
        checks.last_success_matches_logs,
    ),
]


@pytest.mark.parametrize(("change", "check"), TAMPERING, ids=[c.__name__ for _, c in TAMPERING])
def test_a_check_fails_when_the_tables_change_under_its_view(imported, change, check):
    with rolled_back(imported.url) as conn:
        assert check(conn).passed
        conn.execute(change)
        outcome = check(conn)
        assert not outcome.passed
        assert "differences" in outcome.description and outcome.metadata["differences"] > 0


def test_the_row_level_checks_fail_on_a_tampered_view(imported):
    with rolled_back(imported.url) as conn:
        tampered_copy(
            conn,
            "receivables_ageing",
            "UPDATE analytics_store.receivables_ageing SET days_0_30 = days_0_30 + 0.01 "
            "WHERE system = 'busy' AND customer_external_id = (SELECT min(customer_external_id) "
            "FROM analytics_store.receivables_ageing WHERE system = 'busy')",
        )
        outcome = checks.ageing_buckets_add_up(conn)
        assert not outcome.passed and outcome.description.startswith("1 rows whose buckets")
        assert "acme/busy/" in outcome.description
    with rolled_back(imported.url) as conn:
        tampered_copy(
            conn,
            "customer_match",
            "UPDATE analytics_store.customer_match SET customer_key = (SELECT min(customer_key) "
            "FROM analytics_store.customer_match WHERE tenant_id = 'acme') "
            "WHERE tenant_id = 'acme' AND system = 'tally' AND customer_key = (SELECT "
            "max(customer_key) FROM analytics_store.customer_match WHERE tenant_id = 'acme' "
            "AND customer_key LIKE 'pan:%')",
        )
        outcome = checks.one_tax_identity_per_customer(conn)
        assert not outcome.passed and "merge different tax identities" in outcome.description
