"""`hub demo` (what `make demo` runs): a working hub on embedded defaults, ending in a summary.

Embedded PostgreSQL + migrations, the Zoho Books simulator on loopback, a registered demo tenant,
and its partition materialized through Dagster on the persistent `$HUB_HOME/dagster` instance, so
`hub dev` afterwards shows the runs, their metadata and their checks. A second demo run is an
incremental import that finds nothing new.

The demo tenant always points at `127.0.0.1:8091`, where `hub simulate zoho_books` serves the
same organisation (same seed, same credentials, same rate) by default, so runs launched from the
UI later work in whatever order the README's commands were run. When a hub simulator already
serves that port, the demo imports from it instead of starting its own.
"""

from __future__ import annotations

import os
import socket

import dagster as dg
import httpx

from hub_pipelines import settings
from hub_pipelines.canonical import ENTITIES
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.local import describe, import_now
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db, migrations
from hub_pipelines.zoho_books.demo_organisation import DEMO_SIMULATOR, SIMULATOR_INFO_PATH

DEMO_TENANT = "demo-traders"
DEMO_PORT = DEMO_SIMULATOR["port"]


def ensure_demo_key() -> None:
    """Give the local demo an encryption key, kept in $HUB_HOME/hub.env (owner-only)."""
    if os.environ.get(KEY_VARIABLE):
        return
    key = generate_key()
    path = settings.write_local_env(KEY_VARIABLE, key)
    os.environ[KEY_VARIABLE] = key
    print(f"generated a development encryption key in {path} (production: set {KEY_VARIABLE})")


class DemoPortBusy(RuntimeError):
    """The demo's simulator port is held by a program that is not a hub simulator."""


def running_simulator(port: int) -> dict | None:
    """What the hub Zoho Books simulator already serving `port` says about itself, or None when
    the port is free. A port held by anything else is an error naming it and the fix."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return None
    try:
        info = httpx.get(f"http://127.0.0.1:{port}{SIMULATOR_INFO_PATH}", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        info = None
    if not isinstance(info, dict) or info.get("system") != "zoho_books":
        raise DemoPortBusy(
            f"port {port} is in use by a program that is not `hub simulate zoho_books`; stop it, "
            f"or run the demo on another port with `hub demo --port N` (then serve that port "
            f"with `hub simulate zoho_books --port N` for runs from the UI)"
        )
    return info


def register_demo_tenant(registry: TenantRegistry, base_url: str, info: dict) -> None:
    registry.add(
        DEMO_TENANT,
        "zoho_books",
        {
            "connection_config": {
                "organization_id": info["organization_id"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "refresh_token": info["refresh_token"],
                "api_base_url": base_url,
                "accounts_url": base_url,
                "requests_per_minute": info["requests_per_minute"],
            },
        },
    )


def _import(port: int, info: dict) -> tuple:
    register_demo_tenant(TenantRegistry(Vault.from_env()), f"http://127.0.0.1:{port}", info)
    return import_now(DEMO_TENANT, "zoho_books", list(ENTITIES), tags={"hub/trigger": "demo"})


def run_demo(port: int = DEMO_PORT) -> None:
    from hub_pipelines.simulation.books import generate
    from hub_pipelines.zoho_books.rendering import simulate
    from hub_pipelines.zoho_books.simulator import simulator_info

    ensure_demo_key()
    url = db.database_url()
    migrations.upgrade(url)
    info = running_simulator(port)
    if info is not None:
        print(
            f"importing from the Zoho Books simulator already serving port {port} "
            f"({info['requests_per_minute']:,} requests/minute)"
        )
        result, analytics = _import(port, info)
    else:
        data = DEMO_SIMULATOR["data"]
        books = generate(  # what `hub simulate zoho_books` serves by default: the same books
            seed=data["seed"],
            parties=data["customers"],
            sales=data["invoices"],
            max_lines=data["lines_per_invoice"],
        )
        simulator = simulate(books, **DEMO_SIMULATOR["limits"]).simulator
        with LoopbackServer(simulator.app, port=port) as server:
            print(f"Zoho Books simulator on {server.url}")
            result, analytics = _import(port, simulator_info(simulator))
    print_summary(url, result)
    if analytics is not None:
        print_gst_summary(url)
    print_next_steps(port)
    if not (result.success and analytics and analytics.success):
        raise SystemExit(1)


def print_summary(url: str, result: dg.ExecuteInProcessResult) -> None:
    print()
    print("\n".join(describe(result)))
    with db.connect(url) as conn:
        print("\nwarehouse:")
        for table in ("accounting.customers", "accounting.invoices", "accounting.invoice_lines"):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            print(f"  {table:26} {count:>7} rows")
        # Never summed across currencies: one line per document currency, amounts in it.
        by_currency = conn.execute(
            "SELECT coalesce(nullif(upper(btrim(currency)), ''), '--'), count(*), sum(total), "
            "sum(cgst), sum(sgst), sum(igst) FROM accounting.invoices "
            "WHERE status <> 'void' AND deleted_at IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        not_void = sum(row[1] for row in by_currency)
        totals = "; ".join(f"{row[0]} {row[2]:,}" for row in by_currency) or "none"
        print(f"  invoices (not void): {not_void}, total {totals} (per currency, not converted)")
        for currency, invoices, _total, cgst, sgst, igst in by_currency:
            print(
                f"    {currency:3} {invoices:>7} invoices, CGST {currency} {cgst:,}, "
                f"SGST {currency} {sgst:,}, IGST {currency} {igst:,}"
            )
        (open_errors,) = conn.execute(
            "SELECT count(*) FROM hub.accounting_sync_errors WHERE NOT resolved"
        ).fetchone()
        print(f"  open sync errors: {open_errors}")


def print_gst_summary(url: str) -> None:
    with db.connect(url) as conn:
        rows = conn.execute(
            "SELECT fiscal_year, currency, sum(taxable_amount), sum(cgst), sum(sgst), sum(igst) "
            "FROM accounting.gst_sales_summary WHERE tenant_id = %s "
            "GROUP BY 1, 2 ORDER BY 1, sum(taxable_amount) DESC, 2",
            (DEMO_TENANT,),
        ).fetchall()
    print(
        "\nGST sales by fiscal year and currency (accounting.gst_sales_summary; "
        "amounts in the row's currency, not converted):"
    )
    print(f"  {'FY':8} {'currency':8} {'taxable':>16} {'CGST':>14} {'SGST':>14} {'IGST':>14}")
    for fy, currency, taxable, cgst, sgst, igst in rows:
        print(f"  {fy:8} {currency:8} {taxable:>16,} {cgst:>14,} {sgst:>14,} {igst:>14,}")


def print_next_steps(port: int) -> None:
    serve = "hub simulate zoho_books" + ("" if port == DEMO_PORT else f" --port {port}")
    print(
        "\nnext: .venv/bin/hub dev (Dagster UI on http://localhost:3000; run "
        f"`.venv/bin/{serve}` in another terminal to materialize from the UI)\n"
        "      .venv/bin/hub sync demo-traders zoho_books (an import now, through Dagster)\n"
        "      .venv/bin/hub db psql (SQL on the warehouse)"
    )
