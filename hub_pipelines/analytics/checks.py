"""The analyst views' checks: each restates, straight from the tables, what a view must hold.

The assets run them in the transaction of the refresh (repeatable read), so a check compares the
view with the very snapshot it was computed from: an import landing meanwhile cannot fail it, and
a failure means the view's definition and the tables disagree. Run against a view refreshed
earlier, they also show what changed since (the tests tamper with the tables that way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

GST_AMOUNTS = ("taxable_amount", "cgst", "sgst", "igst", "cess", "other_tax", "tax_total")
SHOWN = 5  # differences named in a failed check's description


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


Check = Callable[[psycopg.Connection], CheckOutcome]


def issued(alias: str = "") -> str:
    """Invoices that are supplies: issued and not deleted (as sql/0012_analyst_layer.sql has it)."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}status IN ('open', 'partially_paid', 'paid') AND {prefix}deleted_at IS NULL"


def currency(alias: str = "") -> str:
    """The views' currency code: the row's, or -- when the source stated none."""
    prefix = f"{alias}." if alias else ""
    return f"coalesce(nullif(upper(btrim({prefix}currency)), ''), '--')"


def _grouped(conn: psycopg.Connection, sql: str, keys: int) -> dict[tuple, tuple]:
    return {tuple(row[:keys]): tuple(row[keys:]) for row in conn.execute(sql).fetchall()}


def _label(key: tuple) -> str:
    return "/".join("NULL" if part is None else str(part) for part in key)


def compare_groups(
    conn: psycopg.Connection,
    *,
    view_sql: str,
    table_sql: str,
    keys: int,
    columns: Sequence[str],
    agrees: str,
) -> CheckOutcome:
    """Pass when both queries give the same values for the same groups (the first `keys` columns
    of each row name its group; a group missing on one side differs)."""
    view = _grouped(conn, view_sql, keys)
    table = _grouped(conn, table_sql, keys)
    missing = (None,) * len(columns)
    differences = []
    for key in sorted(view.keys() | table.keys(), key=_label):
        held, expected = view.get(key, missing), table.get(key, missing)
        for column, got, want in zip(columns, held, expected, strict=True):
            if got != want:
                differences.append(f"{_label(key)} {column}: view {got}, tables {want}")
    metadata = {"groups": len(table), "differences": len(differences)}
    if not differences:
        return CheckOutcome(True, f"{agrees} ({len(table)} groups)", metadata)
    shown = "; ".join(differences[:SHOWN])
    more = f" and {len(differences) - SHOWN} more" if len(differences) > SHOWN else ""
    return CheckOutcome(False, f"{len(differences)} differences: {shown}{more}", metadata)


def no_rows(conn: psycopg.Connection, sql: str, holds: str, offence: str) -> CheckOutcome:
    """Pass when `sql` (listing offending rows by a label in its first column) finds none."""
    offending = [row[0] for row in conn.execute(sql).fetchall()]
    metadata = {"offending_rows": len(offending)}
    if not offending:
        return CheckOutcome(True, holds, metadata)
    shown = ", ".join(str(label) for label in offending[:SHOWN])
    return CheckOutcome(False, f"{len(offending)} {offence}: {shown}", metadata)


# --- customer_360 ---------------------------------------------------------------------------------


def customers_all_matched(conn: psycopg.Connection) -> CheckOutcome:
    return compare_groups(
        conn,
        view_sql="""
            SELECT m.tenant_id, m.records, c.records
            FROM (SELECT tenant_id, count(*) AS records FROM analytics_store.customer_match
                  GROUP BY 1) m
            FULL JOIN (SELECT tenant_id, sum(record_count) AS records
                       FROM analytics_store.customer_360 GROUP BY 1) c USING (tenant_id)
        """,
        table_sql="""
            SELECT tenant_id, count(*), count(*) FROM accounting.customers
            WHERE deleted_at IS NULL GROUP BY 1
        """,
        keys=1,
        columns=("matched records", "records of customer_360"),
        agrees="every live customer record is in exactly one customer_360 row",
    )


def one_tax_identity_per_customer(conn: psycopg.Connection) -> CheckOutcome:
    return no_rows(
        conn,
        """
        SELECT tenant_id || '/' || customer_key FROM analytics_store.customer_match
        GROUP BY tenant_id, customer_key
        HAVING count(DISTINCT coalesce(pan, gstin)) > 1
        ORDER BY 1
        """,
        holds="no customer_360 row merges two PANs (or two GSTINs without a PAN)",
        offence="customers merge different tax identities",
    )


# --- gst_sales_summary ----------------------------------------------------------------------------


def gst_totals_match_invoices(conn: psycopg.Connection) -> CheckOutcome:
    sums = ", ".join(f"sum({amount})" for amount in GST_AMOUNTS)
    return compare_groups(
        conn,
        view_sql=f"SELECT tenant_id, system, currency, {sums} "
        "FROM analytics_store.gst_sales_summary GROUP BY 1, 2, 3",
        table_sql=f"SELECT tenant_id, system, {currency()}, {sums} FROM accounting.invoices "
        f"WHERE {issued()} AND issue_date IS NOT NULL GROUP BY 1, 2, 3",
        keys=3,
        columns=GST_AMOUNTS,
        agrees="taxable value and taxes per tenant, system and currency equal the issued, live "
        "invoices' in accounting.invoices",
    )


def gst_rates_match_lines(conn: psycopg.Connection) -> CheckOutcome:
    heads = ("taxable_amount", "cgst", "sgst", "igst", "cess")
    return compare_groups(
        conn,
        view_sql=f"SELECT tenant_id, system, currency, tax_rate, "
        f"{', '.join(f'sum({h})' for h in heads)} FROM analytics_store.gst_sales_summary "
        "WHERE tax_rate IS NOT NULL GROUP BY 1, 2, 3, 4",
        table_sql=f"""
            SELECT i.tenant_id, i.system, {currency("i")}, l.tax_rate,
                   {", ".join(f"sum(l.{h})" for h in heads)}
            FROM accounting.invoice_lines l
            JOIN accounting.invoices i
                ON i.tenant_id = l.tenant_id AND i.system = l.system
               AND i.external_id = l.invoice_external_id
            WHERE {issued("i")} AND i.issue_date IS NOT NULL
              AND l.tax_rate IS NOT NULL
            GROUP BY 1, 2, 3, 4
        """,
        keys=4,
        columns=heads,
        agrees="taxable value and GST per rate equal the lines of the issued, live invoices",
    )


# --- receivables_ageing ---------------------------------------------------------------------------


def ageing_buckets_add_up(conn: psycopg.Connection) -> CheckOutcome:
    return no_rows(
        conn,
        """
        SELECT tenant_id || '/' || system || '/' || coalesce(customer_external_id, 'NULL')
               || '/' || currency
        FROM analytics_store.receivables_ageing
        WHERE outstanding <> not_due + days_0_30 + days_31_60 + days_61_90 + days_over_90 + undated
        ORDER BY 1
        """,
        holds="on every row the buckets add up to outstanding",
        offence="rows whose buckets do not add up to outstanding",
    )


def ageing_matches_invoices(conn: psycopg.Connection) -> CheckOutcome:
    return compare_groups(
        conn,
        view_sql="SELECT tenant_id, system, currency, sum(outstanding), sum(invoices) "
        "FROM analytics_store.receivables_ageing GROUP BY 1, 2, 3",
        table_sql=f"SELECT tenant_id, system, {currency()}, sum(balance_due), count(*) "
        f"FROM accounting.invoices WHERE {issued()} AND balance_due > 0 GROUP BY 1, 2, 3",
        keys=3,
        columns=("outstanding", "invoices"),
        agrees="outstanding per tenant, system and currency equals the balance due of the "
        "issued, live invoices",
    )


# --- sync_health ----------------------------------------------------------------------------------

LIVE_CONFIG_ENTITIES = """
    SELECT c.tenant_id, c.system, e.entity_type
    FROM hub.accounting_configs c
    CROSS JOIN (VALUES ('customers'), ('invoices')) AS e (entity_type)
    WHERE c.deleted_at IS NULL
"""


def one_row_per_config_and_entity(conn: psycopg.Connection) -> CheckOutcome:
    return compare_groups(
        conn,
        view_sql="SELECT tenant_id, system, entity_type, count(*) "
        "FROM analytics_store.sync_health GROUP BY 1, 2, 3",
        table_sql=f"SELECT tenant_id, system, entity_type, 1 FROM ({LIVE_CONFIG_ENTITIES}) e",
        keys=3,
        columns=("rows",),
        agrees="one row per live configuration and entity",
    )


def last_success_matches_logs(conn: psycopg.Connection) -> CheckOutcome:
    return compare_groups(
        conn,
        view_sql="SELECT tenant_id, system, entity_type, last_success_at "
        "FROM analytics_store.sync_health",
        table_sql=f"""
            SELECT e.tenant_id, e.system, e.entity_type,
                   (SELECT max(l.completed_at) FROM hub.accounting_sync_logs l
                    WHERE l.tenant_id = e.tenant_id AND l.system = e.system
                      AND l.entity_type = e.entity_type AND l.status IN ('success', 'partial'))
            FROM ({LIVE_CONFIG_ENTITIES}) e
        """,
        keys=3,
        columns=("last_success_at",),
        agrees="last_success_at is the latest completed import in the sync logs",
    )
