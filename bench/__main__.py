"""`make bench` (python -m bench): the loader and the import stream, measured against baselines.

1. Loader: canonical invoices (with lines) written page by page with COPY + merge, against a
   baseline of row-by-row INSERT … ON CONFLICT (what a straightforward loader does), for a first
   load and for a re-load of unchanged data.
2. Memory: the peak Python allocation while importing N invoices end to end (simulator over
   loopback → connector → loader) for two sizes; a page-bounded stream keeps the peak flat.
3. Pacing: the gaps between the connector's API requests on the wire at Zoho's real limit of 100
   requests a minute (≥ 0.6 s on average, none throttled), and how long the simulator takes to
   generate 5,000 invoices. Timings are figures here, never assertions in the tests.
4. API calls per run for a 20,000-invoice organisation next to the protocol's minimum
   (`bench/api_calls.py`, also `python -m bench.api_calls` alone).

`python -m bench.tally_file` (separately: it writes files of 20 to 200 MB) imports large Tally
Day Book exports through the file drop's path and prints peak resident memory and time per size.

Runs on a scratch database of the configured (or embedded) PostgreSQL, dropped afterwards.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
import uuid
from collections import deque
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from hub_pipelines.canonical import Invoice, InvoiceLine, Page, column_names
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.oauth import InMemoryTokenStore, TokenSet
from hub_pipelines.tenants.models import ZohoBooksConfig
from hub_pipelines.warehouse import db, migrations
from hub_pipelines.warehouse.loader import PartitionLoader, _values
from hub_pipelines.zoho_books.connector import ZohoBooksConnector, map_invoice
from hub_pipelines.zoho_books.simulator import ZohoBooksSimulator

INVOICES = 5000
PAGE = 200
ORG = "60099990000"
PACED_ORG = "60099990001"  # its own rate bucket: the limit of a bucket is fixed when first used
ZOHO_LIMIT = 100  # requests per minute per organisation


def scratch_database() -> tuple[str, str]:
    server = db.database_url()
    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return server, url


def generated_invoices(count: int) -> list[Invoice]:
    simulator = ZohoBooksSimulator()
    simulator.seed_generated(ORG, customers=200, invoices=count, seed=11)
    # Empty tax master: heads come from the summary names ("CGST9 (9%)"), as the connector falls
    # back to when the master lacks a tax.
    return [map_invoice(simulator.get_invoice(ORG, i), {}) for i in simulator.invoice_ids(ORG)]


def invoice_loader(conn: psycopg.Connection, tenant: str) -> PartitionLoader:
    return PartitionLoader(
        conn,
        tenant_id=tenant,
        system="zoho_books",
        entity="invoices",
        run_id="bench",
        partition_key=tenant,
    )


def load_with_merge(url: str, invoices: list[Invoice], tenant: str) -> float:
    with psycopg.connect(url) as conn:
        loader = invoice_loader(conn, tenant)
        started = time.perf_counter()
        for start in range(0, len(invoices), PAGE):
            loader.load_page(Page(invoices[start : start + PAGE]))
        return time.perf_counter() - started


def load_row_by_row(url: str, invoices: list[Invoice], tenant: str) -> float:
    """Baseline: one INSERT … ON CONFLICT DO UPDATE per invoice and per line, a commit a page."""
    header = ["tenant_id", "system", *column_names(Invoice)]
    line_cols = ["tenant_id", "system", "invoice_external_id", *column_names(InvoiceLine)]

    def upsert(table, columns, key):
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
        marks = ", ".join(["%s"] * len(columns))
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )

    invoice_sql = upsert("accounting.invoices", header, ("tenant_id", "system", "external_id"))
    line_sql = upsert(
        "accounting.invoice_lines",
        line_cols,
        ("tenant_id", "system", "invoice_external_id", "line_number"),
    )

    def adapt(values):
        return [Jsonb(v) if isinstance(v, dict) else v for v in values]

    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for start in range(0, len(invoices), PAGE):
            with conn.transaction(), conn.cursor() as cur:
                for invoice in invoices[start : start + PAGE]:
                    cur.execute(
                        invoice_sql, adapt([tenant, "zoho_books", *_values(invoice, header[2:])])
                    )
                    for line in invoice.lines:
                        row = [
                            tenant,
                            "zoho_books",
                            invoice.external_id,
                            *_values(line, line_cols[3:]),
                        ]
                        cur.execute(line_sql, adapt(row))
    return time.perf_counter() - started


def simulator_config(simulator: ZohoBooksSimulator, org: str, url: str, rpm: int):
    return ZohoBooksConfig(
        organization_id=org,
        client_id=simulator.client_id,
        client_secret=simulator.client_secret,
        refresh_token=simulator.refresh_token,
        api_base_url=url,
        accounts_url=url,
        requests_per_minute=rpm,
    )


def fresh_tokens(simulator: ZohoBooksSimulator) -> InMemoryTokenStore:
    return InMemoryTokenStore(
        TokenSet("", simulator.refresh_token, datetime(1970, 1, 1, tzinfo=UTC))
    )


def pacing_at_zohos_limit(customers: int = 12) -> tuple[float, float, int]:
    """(mean gap, smallest gap, requests throttled) between the connector's API requests as the
    simulator received them, with both sides at Zoho's limit."""
    simulator = ZohoBooksSimulator(requests_per_minute=ZOHO_LIMIT, daily_limit=10**6)
    simulator.seed_generated(PACED_ORG, customers=customers, invoices=0, seed=5)
    with LoopbackServer(simulator.app) as server:
        config = simulator_config(simulator, PACED_ORG, server.url, ZOHO_LIMIT)
        connector = ZohoBooksConnector(
            config, fresh_tokens(simulator), versions=lambda _e, _ids: {}
        )
        for _page in connector.customers(None):
            pass
        connector.close()
    stamps = [e.timestamp for e in simulator.request_log if "/books/v3/" in e.path]
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    return (stamps[-1] - stamps[0]) / len(gaps), min(gaps), simulator.requests_throttled


def generation_seconds(invoices: int = INVOICES) -> float:
    started = time.perf_counter()
    ZohoBooksSimulator().seed_generated(ORG, customers=500, invoices=invoices, seed=42)
    return time.perf_counter() - started


def import_peak_bytes(url: str, invoices: int) -> tuple[int, int]:
    """Peak traced allocation (bytes) of a full import of `invoices` through the connector."""
    simulator = ZohoBooksSimulator(requests_per_minute=10**6, daily_limit=10**9)
    simulator.seed_generated(ORG, customers=100, invoices=invoices, seed=3)
    simulator.request_log = deque(maxlen=1)  # the simulator's own log is not the importer's memory
    tenant = f"mem{invoices}"
    with LoopbackServer(simulator.app) as server, psycopg.connect(url) as conn:
        config = simulator_config(simulator, ORG, server.url, 100_000)
        loader = invoice_loader(conn, tenant)
        connector = ZohoBooksConnector(
            config, fresh_tokens(simulator), versions=lambda _e, ids: loader.versions(ids)
        )
        gc.collect()
        tracemalloc.start()
        loaded = 0
        for page in connector.invoices(None):
            loaded += loader.load_page(page).inserted
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        connector.close()
    return loaded, peak


def main() -> None:
    server, url = scratch_database()
    try:
        invoices = generated_invoices(INVOICES)
        lines = sum(len(i.lines) for i in invoices)
        print(f"loader: {INVOICES} invoices, {lines} lines, pages of {PAGE}")
        merge_first = load_with_merge(url, invoices, "merge")
        merge_again = load_with_merge(url, invoices, "merge")
        naive_first = load_row_by_row(url, invoices, "naive")
        naive_again = load_row_by_row(url, invoices, "naive")
        rows = INVOICES + lines
        for label, merge, naive in (
            ("first load", merge_first, naive_first),
            ("unchanged re-load", merge_again, naive_again),
        ):
            print(
                f"  {label:18} COPY+merge {rows / merge:9.0f} rows/s   "
                f"row-by-row baseline {rows / naive:9.0f} rows/s   speed-up ×{naive / merge:.1f}"
            )
        print("memory: peak Python allocation, end-to-end import (simulator → connector → loader)")
        for size in (1000, 4000):
            loaded, peak = import_peak_bytes(url, size)
            print(f"  {loaded:5} invoices: peak {peak / 2**20:6.1f} MiB")
        mean, smallest, throttled = pacing_at_zohos_limit()
        print(f"pacing at Zoho's {ZOHO_LIMIT} requests/minute (the wire, simulator's clock)")
        print(
            f"  mean gap {mean:.3f} s (limit {60 / ZOHO_LIMIT:.3f} s), smallest {smallest:.3f} s, "
            f"{throttled} throttled"
        )
        print(f"simulator: {INVOICES} invoices generated in {generation_seconds():.2f} s")
    finally:
        db.engine.cache_clear()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
    from bench import api_calls  # 4. API calls per run (its own scratch database)

    api_calls.main()
