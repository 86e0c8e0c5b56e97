"""The demo's closing summary: what the warehouse holds per tenant x system, the runs and their
checks, errors, the time taken, and what to type next."""

from __future__ import annotations

import time

from hub_pipelines import settings
from hub_pipelines.demo.plan import BASE_PORT, PAIRS
from hub_pipelines.demo.run import DemoReport
from hub_pipelines.imports.progress import format_duration
from hub_pipelines.warehouse import db

# One row per pair: what each table holds, and the errors still open.
ROWS_PER_PAIR = """
WITH pairs(tenant_id, system) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
SELECT p.tenant_id, p.system,
       (SELECT count(*) FROM accounting.customers c
         WHERE (c.tenant_id, c.system) = (p.tenant_id, p.system) AND c.deleted_at IS NULL),
       (SELECT count(*) FROM accounting.invoices i
         WHERE (i.tenant_id, i.system) = (p.tenant_id, p.system) AND i.deleted_at IS NULL),
       (SELECT count(*) FROM accounting.invoice_lines l
         WHERE (l.tenant_id, l.system) = (p.tenant_id, p.system)),
       (SELECT count(*) FROM hub.accounting_sync_errors e
         WHERE (e.tenant_id, e.system) = (p.tenant_id, p.system) AND NOT e.resolved)
FROM pairs p
"""
# Rupee sales of the latest Indian fiscal year per tenant; export invoices in other currencies
# are rows of their own in the view (never summed across currencies).
GST_THIS_YEAR = """
SELECT tenant_id, fiscal_year, sum(taxable_amount), sum(cgst), sum(sgst), sum(igst)
FROM accounting.gst_sales_summary
WHERE fiscal_year = (SELECT max(fiscal_year) FROM accounting.gst_sales_summary)
  AND currency = 'INR'
GROUP BY 1, 2 ORDER BY 1
"""


def print_summary(url: str, report: DemoReport, base_port: int = BASE_PORT) -> None:
    print(f"\nsummary ({report.size} books, {format_duration(time.monotonic() - report.started)})")
    _print_rows(url)
    _print_runs(report)
    for note in report.sensor_notes:
        print(f"  sensor input: {note}")
    _print_gst(url)
    _print_next_steps(base_port)


def _print_rows(url: str) -> None:
    tenants, systems = [p.tenant for p in PAIRS], [p.system for p in PAIRS]
    with db.connect(url) as conn:
        rows = conn.execute(ROWS_PER_PAIR, (tenants, systems)).fetchall()
    print(f"  {'tenant':14} {'system':11} {'customers':>9} {'invoices':>9} {'lines':>9} errors")
    for tenant, system, customers, invoices, lines, errors in rows:
        print(f"  {tenant:14} {system:11} {customers:>9,} {invoices:>9,} {lines:>9,} {errors:>6}")


def _print_runs(report: DemoReport) -> None:
    checks = [check for outcome in report.runs for check in outcome.checks]
    failed_checks = [check for check in checks if not check.passed]
    failed_runs = [outcome for outcome in report.runs if not outcome.result.success]
    print(
        f"  runs: {len(report.runs) - len(failed_runs)} succeeded, {len(failed_runs)} failed; "
        f"asset checks: {len(checks) - len(failed_checks)} passed, {len(failed_checks)} failed; "
        f"analyst views: {'refreshed' if report.views_ok else 'NOT refreshed'}"
    )
    for outcome in failed_runs:
        print(f"    FAILED run {outcome.result.run_id} ({outcome.label}): hub errors list")
    for check in failed_checks:
        print(f"    FAILED check {check.asset_key.to_user_string()}:{check.check_name}")


def _print_gst(url: str) -> None:
    with db.connect(url) as conn:
        rows = conn.execute(GST_THIS_YEAR).fetchall()
    if not rows:
        return
    print(f"  GST on rupee sales, FY {rows[0][1]} (accounting.gst_sales_summary; export invoices")
    print("  in other currencies are rows of their own there):")
    print(f"    {'tenant':14} {'taxable INR':>16} {'CGST':>13} {'SGST':>13} {'IGST':>13}")
    for tenant, _year, taxable, cgst, sgst, igst in rows:
        print(f"    {tenant:14} {taxable:>16,} {cgst:>13,} {sgst:>13,} {igst:>13,}")


def _print_next_steps(base_port: int) -> None:
    stop = "hub demo --stop" + ("" if base_port == BASE_PORT else f" --base-port {base_port}")
    home = settings.hub_home()
    print(
        "\nnext:\n"
        "  .venv/bin/hub dev        # the Dagster UI on http://localhost:3000: these runs, their\n"
        "                           # checks and metadata, every partition; Materialize works\n"
        "                           # (the demo's simulators keep serving in the background)\n"
        "  .venv/bin/hub db psql -- -c 'SELECT tenant_id, system, count(*) "
        "FROM accounting.invoices GROUP BY 1, 2'\n"
        '  psql "$(.venv/bin/hub db url)"   # with your own psql\n'
        f"  .venv/bin/{stop}  # stop the simulators; the warehouse stays (state in {home})"
    )
