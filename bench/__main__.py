"""`make bench` (python -m bench): the loader and the import stream, measured against baselines.

1. Loader: canonical invoices (with lines) written page by page with COPY + merge, against a
   baseline of row-by-row INSERT … ON CONFLICT (what a straightforward loader does), for a first
   load and for a re-load of unchanged data.
2. Memory: the peak Python allocation while importing N invoices end to end (simulator over
   loopback → connector → loader) for two sizes; a page-bounded stream keeps the peak flat.

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


def import_peak_bytes(url: str, invoices: int) -> tuple[int, int]:
    """Peak traced allocation (bytes) of a full import of `invoices` through the connector."""
    simulator = ZohoBooksSimulator(requests_per_minute=10**6, daily_limit=10**9)
    simulator.seed_generated(ORG, customers=100, invoices=invoices, seed=3)
    simulator.request_log = deque(maxlen=1)  # the simulator's own log is not the importer's memory
    tenant = f"mem{invoices}"
    with LoopbackServer(simulator.app) as server, psycopg.connect(url) as conn:
        config = ZohoBooksConfig(
            organization_id=ORG,
            client_id=simulator.client_id,
            client_secret=simulator.client_secret,
            refresh_token=simulator.refresh_token,
            api_base_url=server.url,
            accounts_url=server.url,
            requests_per_minute=100_000,
        )
        store = InMemoryTokenStore(
            TokenSet("", simulator.refresh_token, datetime(1970, 1, 1, tzinfo=UTC))
        )
        loader = invoice_loader(conn, tenant)
        connector = ZohoBooksConnector(config, store, versions=lambda _e, ids: loader.versions(ids))
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
    finally:
        db.engine.cache_clear()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
