"""API calls per run for a Zoho Books organisation of 100,000 invoices, next to the protocol's
minimum.

`python -m bench.api_calls [--invoices N] [--customers M] [--json]` (also run by `make bench`,
section `calls`). A simulated organisation with 2,000 customers and N invoices is imported
through the Dagster assets (simulator over loopback HTTP, real PostgreSQL on a scratch database;
the invoices the generator stamps with one same second are spread over the day before, see
`spread_the_newest`), four times:

1. first import: nothing in the warehouse;
2. no change: the next scheduled run, nothing changed in Zoho;
3. 1 % changed: 1 % of the customers and of the invoices edited since the last run;
4. complete listing: a run on the day the periodic complete listing is due (every 7 days by
   default), nothing changed.

Calls are counted from the simulator's request log (Zoho Books API calls only; token requests go to
the accounts server and do not count against the quota). The minimum is what the Zoho API needs
for that run at all: list pages of 200 rows (⌈rows / 200⌉, at least one to learn what changed), one
detail call per new or changed record (list rows carry no lines, GST or addresses), and one tax
master page per run that maps an invoice. Reconciliation, whatever its form, is beyond it.
Only calls are counted here, so the simulator shares the process (and its time is no figure).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import dagster as dg
import psycopg

from bench.database import create_scratch_database, drop_database
from bench.report import per_run
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.assets import import_asset, op_name
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines.zoho_books.simulator import ZohoBooksSimulator

CUSTOMERS, INVOICES, PAGE = 2_000, 100_000, 200
CHANGED = 0.01
ORG, TENANT = "60099990002", "bench"
FAST = 100_000  # requests a minute on both sides: the count is the point here, not the pace
ENTITIES = ("customers", "invoices")


def minimum(run: str, entity: str, rows: int) -> int:
    """The fewest Zoho API calls that run could make for `rows` records of `entity` (see the
    module docstring)."""
    changed = {
        "first import": rows,
        "no change": 0,
        "1 % changed": round(rows * CHANGED),
        "complete listing": 0,
    }[run]
    listed = rows if run in ("first import", "complete listing") else changed
    tax_master = 1 if entity == "invoices" and changed else 0
    return max(1, math.ceil(listed / PAGE)) + changed + tax_master


def spread_the_newest(simulator: ZohoBooksSimulator) -> None:
    """The generator stamps every invoice it would date after its anchor (midnight) with the
    anchor itself: 863 of these 20,000 share one second, which every run's 5-minute overlap
    would list again (4 windows). No organisation edits that many invoices in one second: their
    modification times are spread over the day before, a minute and a half apart."""
    stamps = {
        i: simulator.get_invoice(ORG, i)["last_modified_time"] for i in simulator.invoice_ids(ORG)
    }
    newest = max(stamps.values())
    clock = simulator.clock
    anchor = datetime.strptime(newest, "%Y-%m-%dT%H:%M:%S%z")
    for n, invoice_id in enumerate(i for i, stamp in stamps.items() if stamp == newest):
        simulator.clock = lambda n=n: anchor - timedelta(seconds=97 * (n + 1))
        simulator.edit_invoice(ORG, invoice_id)  # no change but the time
    simulator.clock = clock


def calls_by_entity(simulator: ZohoBooksSimulator) -> Counter:
    counted: Counter = Counter()
    for entry in simulator.request_log:
        if entry.path.startswith(("/books/v3/contacts", "/books/v3/invoices")):
            counted["customers" if "/contacts" in entry.path else "invoices"] += 1
        elif entry.path.startswith("/books/v3/settings/taxes"):
            counted["invoices"] += 1  # read to map invoices
    return counted


def measure(customers: int = CUSTOMERS, invoices: int = INVOICES) -> list[dict]:
    """{run, entity, calls, minimum} for the four runs."""
    os.environ.setdefault(KEY_VARIABLE, generate_key())
    server, url = create_scratch_database("hub_bench_calls")
    os.environ["HUB_DATABASE_URL"] = url  # the registry and resources use the scratch database
    db.database_url.cache_clear()
    simulator = ZohoBooksSimulator(requests_per_minute=FAST, daily_limit=10**9)
    simulator.seed_generated(ORG, customers=customers, invoices=invoices, seed=20)
    spread_the_newest(simulator)
    sizes = {"customers": customers, "invoices": invoices}
    rows = []
    try:
        with LoopbackServer(simulator.app) as server_url, dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("zoho_books_tenants", [TENANT])
            TenantRegistry(Vault.from_env()).add(
                TENANT,
                "zoho_books",
                {
                    "organization_id": ORG,
                    "client_id": simulator.client_id,
                    "client_secret": simulator.client_secret,
                    "refresh_token": simulator.refresh_token,
                    "api_base_url": server_url.url,
                    "accounts_url": server_url.url,
                    "requests_per_minute": FAST,
                },
            )
            assets = [import_asset("zoho_books", entity) for entity in ENTITIES]
            resources = {
                "warehouse": WarehouseResource(database_url=url),
                "vault": VaultResource(encryption_key=os.environ[KEY_VARIABLE]),
                "zoho_books": ZohoBooksResource(),
            }
            run_config = {
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                "ops": {op_name("zoho_books", e): {"config": {}} for e in ENTITIES},
            }

            def run(name: str) -> None:
                simulator.request_log.clear()
                started = time.perf_counter()
                result = dg.materialize(
                    assets,
                    partition_key=TENANT,
                    instance=instance,
                    resources=resources,
                    run_config=run_config,
                    raise_on_error=False,
                )
                if not result.success:
                    raise SystemExit(f"{name}: the import failed")
                calls = calls_by_entity(simulator)
                for entity in ENTITIES:
                    least = minimum(name, entity, sizes[entity])
                    rows.append(
                        {"run": name, "entity": entity, "calls": calls[entity], "minimum": least}
                    )
                print(f"  ({name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)

            run("first import")
            run("no change")
            step = round(1 / CHANGED)
            for contact_id in simulator.contact_ids(ORG)[::step]:
                simulator.edit_contact(ORG, contact_id, notes="edited")
            for invoice_id in simulator.invoice_ids(ORG)[::step]:
                simulator.edit_invoice(ORG, invoice_id, reference_number="edited")
            run("1 % changed")
            with psycopg.connect(url) as conn:  # the last complete listing is 8 days old
                conn.execute(
                    "UPDATE hub.accounting_sync_logs SET completed_at = completed_at - "
                    "interval '8 days'"
                )
            run("complete listing")
    finally:
        drop_database(server, url)
    return rows


def report(rows: list[dict], customers: int, invoices: int) -> None:
    print(
        f"API calls per run, Zoho Books organisation with {customers:,} customers and "
        f"{invoices:,} invoices (simulator request log)"
    )
    print(f"  {'run':18} {'entity':10} {'calls':>8} {'minimum':>8} {'extra':>6}")
    for row in rows:
        calls, least = row["calls"], row["minimum"]
        print(f"  {row['run']:18} {row['entity']:10} {calls:8,} {least:8,} {calls - least:+6,}")
    for run, total in per_run(rows).items():
        ratio = total["calls"] / total["minimum"]
        print(f"  {run:18} {'both':10} {total['calls']:8,} {total['minimum']:8,} ×{ratio:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_calls")
    parser.add_argument("--invoices", type=int, default=INVOICES)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    args = parser.parse_args(argv)
    rows = measure(args.customers, args.invoices)
    if args.json:
        print(json.dumps({"customers": args.customers, "invoices": args.invoices, "rows": rows}))
    else:
        report(rows, args.customers, args.invoices)


if __name__ == "__main__":
    main()
