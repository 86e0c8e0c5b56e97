"""The walk's detail reads run several at once (a source's calls in flight), yet its outcomes
are taken in list order and a budget stop counts the reads in flight."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from hub_pipelines.canonical import Customer, Listing
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.walk import Stream, Walk, changed_pages, field_time

STREAM = Stream("customers", "id", field_time("updated"))
STAMP = datetime(2026, 4, 1, tzinfo=UTC)


def rows(count: int) -> list[dict]:
    return [
        {"id": str(n), "updated": (STAMP + timedelta(seconds=n)).isoformat()} for n in range(count)
    ]


class SlowSource:
    """Reads that take a while and note how many run at once."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds, self.lock = seconds, threading.Lock()
        self.running = self.peak = self.reads = 0

    def read(self, row: dict, walk: Walk) -> Customer:
        with self.lock:
            self.running += 1
            self.reads += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.seconds * (1 + int(row["id"]) % 3))  # answers finish out of order
        with self.lock:
            self.running -= 1
        walk.detail_read()
        return Customer(row["id"], f"customer {row['id']}", raw=row)


def walked(source: SlowSource, pages: list[list[dict]], concurrency: int, budget=None):
    return changed_pages(
        STREAM,
        pages,
        source.read,
        walk=Walk(None, timedelta(minutes=5)),
        versions=lambda _entity, _ids: {},
        listed=Listing(),
        complete=True,
        budget=budget,
        concurrency=concurrency,
    )


def test_reads_run_up_to_the_concurrency_and_records_keep_list_order():
    source = SlowSource()
    listed = rows(24)
    pages = list(walked(source, [listed[:12], listed[12:]], concurrency=4))
    ids = [record.external_id for page in pages for record in page.records]
    assert ids == [row["id"] for row in listed]
    assert source.peak == 4


def test_one_read_at_a_time_without_concurrency():
    source = SlowSource(seconds=0.002)
    list(walked(source, [rows(8)], concurrency=1))
    assert source.peak == 1 and source.reads == 8


def test_a_budget_stop_finishes_the_reads_in_flight_and_keeps_them():
    """The budget counts reads in flight as spent: with 10 calls left, exactly 10 are made,
    every one of them lands in the page handed over before the stop."""
    source = SlowSource()
    stop = SyncError(Category.RATE_LIMIT, "quota reserve reached")

    def budget(in_flight: int) -> SyncError | None:
        """A quota of 10 calls as the source's answers count it, less the reads in flight."""
        with source.lock:
            answered = source.reads - source.running
        return stop if answered + in_flight >= 10 else None

    pages = []
    with pytest.raises(SyncError, match="quota reserve reached"):
        for page in walked(source, [rows(30)], concurrency=4, budget=budget):
            pages.append(page)
    assert source.reads == 10
    assert [r.external_id for p in pages for r in p.records] == [str(n) for n in range(10)]
