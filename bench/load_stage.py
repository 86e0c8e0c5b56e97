"""The load stage's contenders, each writing the pages of one cache file (`bench.datasets`) into
the benchmark database. Each runs in a process of its own (`bench.measure load …`).

- read: only reading the pages (unpickling them), which every other contender does as well.
- floor: a plain COPY of the very rows the hub writes (invoices and their lines, raw JSON
  included, as orjson text) into the same canonical tables, one transaction for the lot: what
  writing these rows costs at least, with nothing checked, merged or made idempotent (nor the
  hub's own `content_hash` column computed).
- hub: `PartitionLoader.load_page` page by page, as an import does (its first load; run again on
  the same tenant, its unchanged re-load).
- dlt: a dlt pipeline (postgres destination) merging the same records on their key into a dataset
  of its own, the lines a nested child table (`invoices__lines`), the raw JSON as jsonb.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from bench.datasets import SYSTEM, read_pages
from hub_pipelines.canonical import Invoice, InvoiceLine, column_names
from hub_pipelines.warehouse.encoding import json_text
from hub_pipelines.warehouse.loader import STATISTICS_FLOOR

RUN_ID = "bench"
INVOICE_COLUMNS = column_names(Invoice)
LINE_COLUMNS = column_names(InvoiceLine)


def _adapted(value: Any) -> Any:
    """The raw JSON as text, written by the same encoder as the hub's (orjson), so the floor is
    no slower than the hub at what both must do."""
    return json_text(value) if isinstance(value, dict | list) else value


def read_only(pages: Path) -> dict[str, int]:
    """Only reading the pages, which every contender does too: its time is subtracted for the
    figures net of reading."""
    read = {"invoices": 0, "lines": 0}
    for page in read_pages(pages):
        read["invoices"] += len(page.records)
        read["lines"] += sum(len(invoice.lines) for invoice in page.records)
    return read


def copy_floor(pages: Path, url: str, tenant: str) -> dict[str, int]:
    """COPY invoices and lines, page after page, in one transaction."""
    invoice_copy = (
        f"COPY accounting.invoices (tenant_id, system, {', '.join(INVOICE_COLUMNS)}, "
        "sync_run_id) FROM STDIN"
    )
    line_copy = (
        "COPY accounting.invoice_lines (tenant_id, system, invoice_external_id, "
        f"{', '.join(LINE_COLUMNS)}, sync_run_id) FROM STDIN"
    )
    written = {"invoices": 0, "lines": 0}
    with psycopg.connect(url) as conn, conn.transaction(), conn.cursor() as cursor:
        for page in read_pages(pages):
            with cursor.copy(invoice_copy) as copy:
                for invoice in page.records:
                    values = [_adapted(getattr(invoice, c)) for c in INVOICE_COLUMNS]
                    copy.write_row([tenant, SYSTEM, *values, RUN_ID])
            if written["invoices"] <= STATISTICS_FLOOR < written["invoices"] + len(page.records):
                # Each line's foreign key is checked by a query planned with the statistics of
                # accounting.invoices. Believed (nearly) empty, the table is searched through
                # the (tenant, system, customer) index, every invoice of the tenant for every
                # line: quadratic, 12 s instead of 2.6 s at 10k, 130 s instead of 11 s at 100k
                # (analysed after a first page of 200, the plan was still that one in two runs
                # of three). Analysed once it holds more than STATISTICS_FLOOR invoices, as the
                # hub's loader does, the check uses the primary key, as it must for a floor.
                cursor.execute("ANALYZE accounting.invoices")
            with cursor.copy(line_copy) as copy:
                for invoice in page.records:
                    for line in invoice.lines:
                        values = [_adapted(getattr(line, c)) for c in LINE_COLUMNS]
                        copy.write_row([tenant, SYSTEM, invoice.external_id, *values, RUN_ID])
            written["invoices"] += len(page.records)
            written["lines"] += sum(len(invoice.lines) for invoice in page.records)
    return written


def hub_loader(pages: Path, url: str, tenant: str) -> dict[str, int]:
    """`PartitionLoader.load_page` for every page; the loader's counts summed."""
    from hub_pipelines.warehouse.loader import LoadCounts, PartitionLoader

    total = LoadCounts()
    with psycopg.connect(url) as conn:
        loader = PartitionLoader(
            conn,
            tenant_id=tenant,
            system=SYSTEM,
            entity="invoices",
            run_id=RUN_ID,
            partition_key=tenant,
        )
        for page in read_pages(pages):
            total.add(loader.load_page(page))
    return vars(total)


def _dlt_rows(pages: Path) -> Iterator[list[dict[str, Any]]]:
    for page in read_pages(pages):
        yield [
            {
                **{c: getattr(invoice, c) for c in INVOICE_COLUMNS},
                "lines": [{c: getattr(line, c) for c in LINE_COLUMNS} for line in invoice.lines],
            }
            for invoice in page.records
        ]


def dlt_pipeline(pages: Path, url: str, dataset: str) -> dict[str, Any]:
    """The records through dlt: merge on `external_id`, lines nested one level down (deeper
    structure, the lines' raw JSON included, stays JSON), the invoice's raw JSON as json."""
    import dlt

    from bench.dlt_rest import pipeline_into  # dlt's modules load only for this contender

    resource = dlt.resource(
        _dlt_rows(pages),
        name="invoices",
        write_disposition="merge",
        primary_key="external_id",
        columns={"raw": {"data_type": "json"}},
        max_table_nesting=1,
    )
    with tempfile.TemporaryDirectory(prefix="bench_dlt_") as working:
        pipeline = pipeline_into(url, dataset, working)
        pipeline.run(resource)
    return dlt_counts(url, dataset, "invoices", "invoices__lines")


def dlt_counts(url: str, dataset: str, *tables: str) -> dict[str, int]:
    """Rows in each of a dataset's tables (0 for a table dlt did not create)."""
    found = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            exists = conn.execute("SELECT to_regclass(%s)", (f'"{dataset}"."{table}"',)).fetchone()
            found[table] = (
                conn.execute(f'SELECT count(*) FROM "{dataset}"."{table}"').fetchone()[0]
                if exists[0]
                else 0
            )
    return found
