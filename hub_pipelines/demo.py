"""`hub demo` (what `make demo` runs): a working hub on embedded defaults, ending in a summary.

Embedded PostgreSQL + migrations, the Zoho Books simulator on loopback, a registered demo tenant,
and its partition materialized through Dagster on the persistent `$HUB_HOME/dagster` instance, so
`hub dev` afterwards shows the runs, their metadata and their checks. A second demo run is an
incremental import that finds nothing new.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

from hub_pipelines import settings
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.partitions import partition_key, tenants_partitions
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db, migrations

DEMO_TENANT = "demo-traders"
DEMO_PORT = 8091  # the port `hub simulate zoho_books` uses, so UI runs can reach it later
# Real Zoho allows 100 requests/minute; the demo raises the limit on both sides to finish in
# seconds. The connector's token bucket and the simulator's limiter still apply.
DEMO_RATE = 30_000
DEMO_SIZE = {"customers": 200, "invoices": 1000, "lines_per_invoice": 3, "seed": 42}


def ensure_demo_key() -> None:
    """Give the local demo an encryption key, kept in $HUB_HOME/hub.env (owner-only)."""
    if os.environ.get(KEY_VARIABLE):
        return
    key = generate_key()
    path = settings.write_local_env(KEY_VARIABLE, key)
    os.environ[KEY_VARIABLE] = key
    print(f"generated a development encryption key in {path} (production: set {KEY_VARIABLE})")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def register_demo_tenant(registry: TenantRegistry, base_url: str, simulator) -> None:
    org_id = next(iter(simulator.organisations))
    registry.add(
        DEMO_TENANT,
        "zoho_books",
        {
            "connection_config": {
                "organization_id": org_id,
                "client_id": simulator.client_id,
                "client_secret": simulator.client_secret,
                "refresh_token": simulator.refresh_token,
                "api_base_url": base_url,
                "accounts_url": base_url,
                "requests_per_minute": DEMO_RATE,
            },
        },
    )


# The summary printed below tells the story; the full event log is in the UI (hub dev).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def materialize_partition(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from hub_pipelines.definitions import defs
    from hub_pipelines.imports.assets import customers, invoices

    if not instance.has_dynamic_partition(tenants_partitions.name, DEMO_TENANT):
        instance.add_dynamic_partitions(tenants_partitions.name, [DEMO_TENANT])
    return dg.materialize(
        [customers, invoices],
        partition_key=partition_key(DEMO_TENANT, "zoho_books"),
        instance=instance,
        resources=defs.resources,
        run_config=QUIET,
        tags={"hub/trigger": "demo"},
        raise_on_error=False,
    )


def refresh_analytics(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from hub_pipelines.analytics.assets import customer_directory, gst_sales_summary
    from hub_pipelines.definitions import defs

    return dg.materialize(
        [gst_sales_summary, customer_directory],
        instance=instance,
        resources={"warehouse": defs.resources["warehouse"]},
        run_config=QUIET,
        tags={"hub/trigger": "demo"},
        raise_on_error=False,
    )


def run_demo() -> None:
    from hub_pipelines.zoho_books.simulator import build_simulator

    ensure_demo_key()
    url = db.database_url()
    migrations.upgrade(url)
    settings.ensure_dagster_home()
    simulator = build_simulator(**DEMO_SIZE, requests_per_minute=DEMO_RATE, daily_limit=10**7)
    port = DEMO_PORT if _free(DEMO_PORT) else 0
    with LoopbackServer(simulator.app, port=port) as server:
        print(f"Zoho Books simulator on {server.url}")
        register_demo_tenant(TenantRegistry(Vault.from_env()), server.url, simulator)
        with dg.DagsterInstance.get() as instance:
            result = materialize_partition(instance)
            analytics = refresh_analytics(instance) if result.success else None
    print_summary(url, result)
    if analytics is not None:
        print_gst_summary(url)
    print_next_steps()
    if not (result.success and analytics and analytics.success):
        raise SystemExit(1)


def print_summary(url: str, result: dg.ExecuteInProcessResult) -> None:
    print(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        print(
            f"  {event.asset_key.to_user_string():10} fetched {meta['records_fetched']}, "
            f"inserted {meta['records_inserted']}, updated {meta['records_updated']}, "
            f"unchanged {meta['records_unchanged']}, failed {meta['records_failed']}, "
            f"API calls {meta['api_calls']}, {meta['duration_seconds']} s"
        )
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    print(f"  checks: {len(evaluations) - len(failed)} passed, {len(failed)} failed")
    for evaluation in failed:
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        print(f"    {name}: {evaluation.description}")
    with db.connect(url) as conn:
        print("\nwarehouse:")
        for table in ("accounting.customers", "accounting.invoices", "accounting.invoice_lines"):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            print(f"  {table:26} {count:>7} rows")
        gst = conn.execute(
            "SELECT count(*), sum(total), sum(cgst), sum(sgst), sum(igst) "
            "FROM accounting.invoices WHERE status <> 'void' AND deleted_at IS NULL"
        ).fetchone()
        print(
            f"  invoices (not void): {gst[0]}, total ₹{gst[1]}, CGST ₹{gst[2]}, "
            f"SGST ₹{gst[3]}, IGST ₹{gst[4]}"
        )
        (open_errors,) = conn.execute(
            "SELECT count(*) FROM hub.accounting_sync_errors WHERE NOT resolved"
        ).fetchone()
        print(f"  open sync errors: {open_errors}")


def print_gst_summary(url: str) -> None:
    with db.connect(url) as conn:
        rows = conn.execute(
            "SELECT fiscal_year, sum(invoices), sum(taxable_amount), sum(cgst), sum(sgst), "
            "sum(igst) FROM accounting.gst_sales_summary WHERE tenant_id = %s "
            "GROUP BY 1 ORDER BY 1",
            (DEMO_TENANT,),
        ).fetchall()
    print("\nGST sales by fiscal year (accounting.gst_sales_summary):")
    print(
        f"  {'FY':8} {'invoices':>8} {'taxable ₹':>16} {'CGST ₹':>14} {'SGST ₹':>14} {'IGST ₹':>14}"
    )
    for fy, count, taxable, cgst, sgst, igst in rows:
        print(f"  {fy:8} {count:>8} {taxable:>16,} {cgst:>14,} {sgst:>14,} {igst:>14,}")


def print_next_steps() -> None:
    print(
        "\nnext: .venv/bin/hub dev (Dagster UI on http://localhost:3000; run "
        "`.venv/bin/hub simulate zoho_books` in another terminal to materialize from the UI)\n"
        "      .venv/bin/hub db psql (SQL on the warehouse)"
    )
