"""A schema analysts can read: every analyst-facing object commented, explicit view column types,
docs/analysts.md generated from the comments, and its example queries run on imported data."""

from __future__ import annotations

import re

import psycopg
import pytest

from hub_pipelines.analytics import schema_doc
from hub_pipelines_tests.analytics.conftest import ANALYST_VIEWS, refresh, rolled_back


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_every_analyst_facing_schema_relation_and_column_has_a_comment(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        comment, relations = schema_doc.read_schema(conn)
    assert comment and "currency" in comment
    names = {relation.name.removeprefix("accounting.") for relation in relations}
    assert names == {"customers", "invoices", "invoice_lines"} | ANALYST_VIEWS
    uncommented = [r.name for r in relations if not r.comment]
    uncommented += [f"{r.name}.{c.name}" for r in relations for c in r.columns if not c.comment]
    assert uncommented == []


def test_view_columns_have_explicit_types_and_months_are_dates(warehouse_url):
    columns = _query(
        warehouse_url,
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typname "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE n.nspname IN ('accounting', 'analytics_store') AND c.relkind IN ('v', 'm') "
        "AND a.attnum > 0",
    )
    assert {view for view, *_ in columns} >= ANALYST_VIEWS
    bare = [f"{v}.{c} {shown}" for v, c, shown, t in columns if shown == "numeric" or t == "bpchar"]
    assert bare == []
    types = {(view, column): shown for view, column, shown, _ in columns}
    assert types[("gst_sales_summary", "month")] == "date"
    assert types[("gst_sales_summary", "taxable_amount")] == "numeric(18,2)"
    assert types[("gst_sales_summary", "tax_rate")] == "numeric(9,4)"
    assert types[("receivables_ageing", "as_of")] == "date"
    assert types[("sync_health", "freshness")] == "interval"
    money = [(v, c) for (v, c), shown in types.items() if shown.startswith("numeric")]
    assert all(types[key] in ("numeric(18,2)", "numeric(9,4)") for key in money)


def test_the_docs_reference_is_the_database_comments(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        generated = schema_doc.render(conn)
    documented = schema_doc.current_section(schema_doc.DOCS.read_text())
    assert documented, "docs/analysts.md lost its reference markers"
    assert documented == generated, (
        "docs/analysts.md differs from the database comments: run "
        "`python -m hub_pipelines.analytics.schema_doc` after `hub db upgrade`"
    )


def test_the_docs_check_command_tells_a_stale_reference(warehouse_url, tmp_path, capsys):
    copy = tmp_path / "analysts.md"
    copy.write_text(schema_doc.DOCS.read_text())
    args = ["--database-url", warehouse_url, "--docs", str(copy)]
    assert schema_doc.main([*args, "--check"]) == 0
    copy.write_text(copy.read_text().replace("| `tenant_id` |", "| `tenant` |", 1))
    assert schema_doc.main([*args, "--check"]) == 1
    assert "python -m hub_pipelines.analytics.schema_doc" in capsys.readouterr().err
    assert schema_doc.main(args) == 0  # regenerates it
    assert schema_doc.main([*args, "--check"]) == 0


SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)


def example_queries() -> list[str]:
    """The SQL blocks of the section "Example queries" of docs/analysts.md."""
    document = schema_doc.DOCS.read_text()
    section = document[document.index("## Example queries") :]
    return SQL_BLOCK.findall(section[: section.index("\n## ", 1)])


def test_the_docs_hold_the_four_examples():
    examples = example_queries()
    assert len(examples) == 4
    for view in ("gst_sales_summary", "receivables_ageing", "customer_360", "sync_health"):
        assert any(f"accounting.{view}" in sql for sql in examples), view


@pytest.mark.parametrize("index", range(4))
def test_each_example_query_runs_and_answers_on_imported_data(imported, index):
    """The examples name the demo tenant and a month: they run here for an imported tenant and
    the month it sold most in, after one of its imports went stale (two days without success)."""
    sql = example_queries()[index]
    with rolled_back(imported.url) as conn:
        conn.execute(
            "UPDATE hub.accounting_sync_logs SET started_at = started_at - interval '2 days', "
            "completed_at = completed_at - interval '2 days' "
            "WHERE tenant_id = 'beta' AND system = 'quickbooks'"
        )
        refresh(conn, "sync_health")
        (month,) = conn.execute(
            "SELECT month FROM accounting.gst_sales_summary WHERE tenant_id = 'beta' "
            "GROUP BY month ORDER BY count(*) DESC, month LIMIT 1"
        ).fetchone()
        runnable = sql.replace("'demo-traders'", "'beta'").replace(
            "DATE '2026-06-01'", f"DATE '{month.isoformat()}'"
        )
        rows = conn.execute(runnable).fetchall()
    assert rows, sql
    if "sync_health" in sql:
        assert {(row[1], row[2]) for row in rows} == {
            ("quickbooks", "customers"),
            ("quickbooks", "invoices"),
        }
