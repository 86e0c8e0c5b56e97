"""API calls per run for a 20,000-invoice Zoho Books organisation, next to the protocol's minimum.

`python -m bench.api_calls` (also run by `make bench`). A simulated organisation with 2,000
customers and 20,000 invoices is imported through the Dagster assets (simulator over loopback
HTTP, real PostgreSQL on a scratch database; the invoices the generator stamps with one same
second are spread over the day before, see `spread_the_newest`), four times:

1. first import: nothing in the warehouse;
2. no change: the next scheduled run, nothing changed in Zoho;
3. 1 % changed: 20 customers and 200 invoices edited since the last run;
4. complete listing: a run on the day the periodic complete listing is due (every 7 days by
   default), nothing changed.

Calls are counted from the simulator's request log (Zoho Books API calls only; token requests go to
the accounts server and do not count against the quota). The minimum is what the Zoho API needs
for that run at all: list pages of 200 rows (⌈rows / 200⌉, at least one to learn what changed), one
detail call per new or changed record (list rows carry no lines, GST or addresses), and one tax
master page per run that maps an invoice. Reconciliation, whatever its form, is beyond it.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

import dagster as dg
import psycopg
from sqlalchemy.engine import make_url

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.assets import import_asset, op_name
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import db, migrations
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines.zoho_books.simulator import ZohoBooksSimulator

CUSTOMERS, INVOICES, PAGE = 2_000, 20_000, 200
CHANGED = 0.01
ORG, TENANT = "60099990002", "bench"
FAST = 100_000  # requests a minute on both sides: the count is the point here, not the pace
ENTITIES = ("customers", "invoices")


def minimum(run: str, entity: str) -> int:
    """The fewest Zoho API calls that run could make (see the module docstring)."""
    rows = {"customers": CUSTOMERS, "invoices": INVOICES}[entity]
    changed = {
        "first import": rows,
        "no change": 0,
        "1 % changed": round(rows * CHANGED),
        "complete listing": 0,
    }[run]
    listed = rows if run in ("first import", "complete listing") else changed
    tax_master = 1 if entity == "invoices" and changed else 0
    return max(1, math.ceil(listed / PAGE)) + changed + tax_master


def scratch_database() -> tuple[str, str]:
    server = db.database_url()
    name = f"hub_bench_calls_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return server, url


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


def measure() -> list[tuple[str, str, int, int]]:
    """(run, entity, calls, minimum) for the four runs."""
    os.environ.setdefault(KEY_VARIABLE, generate_key())
    server, url = scratch_database()
    os.environ["HUB_DATABASE_URL"] = url  # the registry and resources use the scratch database
    db.database_url.cache_clear()
    simulator = ZohoBooksSimulator(requests_per_minute=FAST, daily_limit=10**9)
    simulator.seed_generated(ORG, customers=CUSTOMERS, invoices=INVOICES, seed=20)
    spread_the_newest(simulator)
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
                    rows.append((name, entity, calls[entity], minimum(name, entity)))
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
        db.engine.cache_clear()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    return rows


def report(rows: list[tuple[str, str, int, int]]) -> None:
    print(
        f"API calls per run, Zoho Books organisation with {CUSTOMERS:,} customers and "
        f"{INVOICES:,} invoices (simulator request log)"
    )
    print(f"  {'run':18} {'entity':10} {'calls':>8} {'minimum':>8} {'extra':>6}")
    for run, entity, calls, least in rows:
        print(f"  {run:18} {entity:10} {calls:8,} {least:8,} {calls - least:+6,}")


def main() -> None:
    report(measure())


if __name__ == "__main__":
    main()
