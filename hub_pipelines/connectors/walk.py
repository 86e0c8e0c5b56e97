"""The one walk: listed rows → the records that changed → canonical pages with a safe cursor.

Every system's import is the same loop. A system declares a `Stream` (its id field, how a row's
version is read, whether the list comes sorted by that version) and supplies the pages of rows
and a `read` function (a detail call and the mapping, or the mapping alone when the list rows are
whole records); this module owns the rules that keep a crash or a bad record from losing data:

- a row whose version the warehouse already holds is skipped (the versions lookup);
- a row without an id, or one whose read failed, becomes a record error and holds the cursor back
  to its own version, or to where this walk started when it has none, so it is read again;
- the cursor never passes the walk's start: a record edited during a long walk, on a page
  already read, is read next time;
- the cursor is committed with each page only when the rows arrive sorted by it (ascending), and
  otherwise with the last page: a cursor taken mid-walk from unsorted rows could skip rows of
  later pages after a crash;
- detail reads that keep failing are record errors, until several in a row say the source itself
  is down;
- a budget (a daily quota) stops the walk cleanly: the records read so far are handed over as a
  page before the stop is raised;
- detail reads may run several at once (`concurrency`: the source's limit of calls in flight),
  on a thread pool; their outcomes are still taken in list order, so everything above holds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from hub_pipelines.canonical import Customer, Entity, Invoice, Listing, Page, RecordFailure
from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.connectors.errors import Category, SyncError

Record = Customer | Invoice


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A row the source lists as deleted (Xero's DELETED status): the warehouse marks it so."""

    external_id: str


# What reading one changed row gives: its record, its failure, a tombstone, or None when the
# source no longer has it (deleted between the list call and the read: the delete is seen by the
# next complete listing).
ReadOutcome = Record | RecordFailure | Tombstone | None
VersionsLookup = Callable[[Entity, list[str]], dict[str, datetime | None]]
# The stop to raise before the next call, if any, given the reads in flight (started, their
# answers not yet seen: a quota counted from answers does not include them yet).
Budget = Callable[[int], SyncError | None]

# Detail answers that fail in a row before the walk gives up: one broken record is a record
# error, but a source that fails every detail call is down, and the run should say so.
MAX_DETAIL_FAILURES_IN_A_ROW = 5


@dataclass(frozen=True)
class Stream:
    """One entity's list as a system declares it."""

    entity: Entity
    id_field: str
    version: Callable[[Any], datetime | None]  # the row's change stamp: the cursor's field
    total: Callable[[Any], Decimal | None] | None = None  # the listed total, for reconciliation
    # "per_page" only when the list comes sorted by `version`, oldest first.
    commit: Literal["per_page", "at_end"] = "at_end"

    def row_id(self, row: Any) -> str | None:
        value = row.get(self.id_field) if isinstance(row, dict) else None
        return None if value in (None, "") else str(value)

    def row_version(self, row: Any) -> datetime | None:
        """The row's version, None when absent or unreadable (then the row is always read)."""
        if not isinstance(row, dict):
            return None
        try:
            return self.version(row)
        except (ValueError, TypeError, AttributeError):
            return None

    def row_total(self, row: Any) -> Decimal | None:
        """The listed total, None when the stream has none or it is not a number (the record's
        own read then reports the bad value)."""
        if self.total is None:
            return None
        try:
            return self.total(row)
        except (ValueError, TypeError, AttributeError):
            return None


def field_time(field: str) -> Callable[[Any], datetime | None]:
    """A `Stream.version` reading an ISO-8601 timestamp field."""
    return lambda row: parse_timestamp(row.get(field))


class Walk:
    """Where a changed-records walk stands: the newest version seen, the oldest that must be read
    again, and how many detail reads failed in a row."""

    def __init__(self, cursor: str | None, overlap: timedelta, started: datetime | None = None):
        self.started = started or datetime.now(UTC)
        self.start = self.newest = parse_timestamp(cursor) if cursor else None
        # Where the source is asked to start: the overlap re-reads rows stamped in the same
        # second as the cursor, or written by a clock slightly behind.
        self.since = self.start - overlap if self.start else None
        self.oldest_failed: datetime | None = None
        self.held_at_start = False
        self.failures_in_a_row = 0
        self._lock = threading.Lock()  # detail reads may report from several threads

    def saw(self, stamps: Iterable[datetime | None]) -> None:
        self.newest = _latest(self.newest, *stamps)

    def hold(self, stamp: datetime | None) -> None:
        """Keep the cursor at or before a failed row (at the walk's start when it has no time)."""
        if stamp is None:
            self.held_at_start = True
        else:
            self.oldest_failed = _earliest(self.oldest_failed, stamp)

    def detail_read(self) -> None:
        with self._lock:
            self.failures_in_a_row = 0

    def detail_failed(
        self, error: SyncError, external_id: str, call: str, listed: Any
    ) -> RecordFailure:
        """A detail call that failed after its retries: a record error, unless the source is
        failing as a whole (auth, throttling, network, or many details in a row)."""
        with self._lock:
            self.failures_in_a_row += 1
            in_a_row = self.failures_in_a_row
        record_level = error.category in (Category.SERVER, Category.SOURCE_DATA)
        if not record_level or in_a_row >= MAX_DETAIL_FAILURES_IN_A_ROW:
            raise error
        return RecordFailure(
            external_id,
            str(error.category),
            f"{call}: {error.message}",
            listed,  # the list row: all the hub could read of the record
            suggested_fix="The detail of this record could not be read; the next run reads it "
            "again. If it repeats, open the record in the source system and report it.",
        )

    def cursor(self) -> str | None:
        if self.held_at_start or self.newest is None:
            return self.start.isoformat() if self.start else None
        final = _earliest(self.newest, self.oldest_failed, self.started)
        return final.isoformat() if final else None


def changed_pages(
    stream: Stream,
    pages: Iterable[list[Any]],
    read: Callable[[dict[str, Any], Walk], ReadOutcome],
    *,
    walk: Walk,
    versions: VersionsLookup,
    listed: Listing,
    complete: bool,
    budget: Budget | None = None,
    stop_after: Callable[[], bool] | None = None,
    concurrency: int = 1,
) -> Iterator[Page]:
    """The walk over `pages` (lists of raw rows). `read(row, walk)` turns a changed row into its
    record. `complete` says whether the pages list every record the source has (no change
    filter), so `listed` can serve reconciliation and delete detection; `stop_after()` ends a
    walk early after a page (a newest-first list that has passed the cursor), which makes the
    listing incomplete. `concurrency`: reads in flight at once. The last page carries the final
    cursor."""
    stopped_early = False
    pool = ThreadPoolExecutor(concurrency, "detail-read") if concurrency > 1 else None
    with pool or nullcontext():
        reader = _Reader(pool, concurrency, budget)
        for rows in pages:
            yield from _changed_page(stream, rows, read, walk, versions, listed, reader)
            if stop_after is not None and stop_after():
                stopped_early = True
                break
    listed.complete = complete and not stopped_early
    yield Page([], [], cursor=walk.cursor())


class _Stopped(Exception):
    """The budget said stop before the next read; the reads in flight were handed over."""

    def __init__(self, error: SyncError) -> None:
        self.error = error


@dataclass
class _Reader:
    """Reads changed rows in list order, up to `width` at once when given a pool."""

    pool: ThreadPoolExecutor | None
    width: int
    budget: Budget | None

    def outcomes(self, changed: list, read_one: Callable[[str], ReadOutcome]) -> Iterator[tuple]:
        """(item, outcome) per `(external_id, stamp)` item, in order. The budget is asked
        before each read; when it says stop with reads in flight, they are finished and it is
        asked again; a stop then raises `_Stopped`."""
        in_flight: deque[tuple[Any, Future]] = deque()
        try:
            for item in changed:
                stop = self._stop(len(in_flight))
                if stop is not None and in_flight:  # maybe: the answers in flight tell
                    yield from _finished(in_flight)
                    stop = self._stop(0)
                if stop is not None:
                    raise _Stopped(stop)
                if self.pool is None:
                    yield item, read_one(item[0])
                    continue
                in_flight.append((item, self.pool.submit(read_one, item[0])))
                if len(in_flight) >= self.width:
                    yield from _finished(in_flight, keep=self.width - 1)
            yield from _finished(in_flight)
        finally:
            for _, future in in_flight:  # a failure stops the walk: reads not started never are
                future.cancel()

    def _stop(self, in_flight: int) -> SyncError | None:
        return self.budget(in_flight) if self.budget else None


def _finished(in_flight: deque, keep: int = 0) -> Iterator[tuple]:
    while len(in_flight) > keep:
        item, future = in_flight.popleft()
        yield item, future.result()


def _changed_page(
    stream: Stream,
    rows: list[Any],
    read: Callable[[dict[str, Any], Walk], ReadOutcome],
    walk: Walk,
    versions: VersionsLookup,
    listed: Listing,
    reader: _Reader,
) -> Iterator[Page]:
    valid, failures = valid_rows(rows, stream.id_field)
    for failure in failures:
        walk.hold(stream.row_version(failure.raw))
    by_id = {stream.row_id(row): row for row in valid}
    listed.totals.update({external_id: stream.row_total(row) for external_id, row in by_id.items()})
    stamps = {external_id: stream.row_version(row) for external_id, row in by_id.items()}
    known = versions(stream.entity, list(stamps))
    changed = [  # what the warehouse does not hold in this version
        (external_id, stamp)
        for external_id, stamp in stamps.items()
        if stamp is None or known.get(external_id) != stamp
    ]
    records: list[Record] = []
    deleted: list[str] = []
    try:
        for (external_id, stamp), outcome in reader.outcomes(
            changed, lambda external_id: read(by_id[external_id], walk)
        ):
            if isinstance(outcome, RecordFailure):
                failures.append(outcome)
                walk.hold(stamp)
            elif isinstance(outcome, Tombstone):
                deleted.append(outcome.external_id)
                listed.totals.pop(external_id, None)
            elif outcome is not None:
                records.append(outcome)
            else:
                listed.totals.pop(external_id, None)  # deleted since it was listed
    except _Stopped as stopped:
        yield Page(records, failures, deleted=deleted)  # keep what was read
        raise stopped.error from None
    walk.saw(stamps.values())
    cursor = walk.cursor() if stream.commit == "per_page" else None
    yield Page(records, failures, cursor=cursor, deleted=deleted)


def valid_rows(rows: list[Any], id_field: str) -> tuple[list[dict], list[RecordFailure]]:
    """The rows that carry an id; each other row is a record error with the row as its raw."""
    valid, failures = [], []
    for row in rows:
        if isinstance(row, dict) and row.get(id_field) not in (None, ""):
            valid.append(row)
        else:
            failures.append(RecordFailure(None, "SOURCE_DATA", f"list row without {id_field}", row))
    return valid, failures


def mapped(
    external_id: str,
    record: Any,
    mapper: Callable[[Any], Record],
    label: str,
    suggested_fix: str,
) -> Record | RecordFailure:
    """`mapper(record)`, or a MAPPING record error naming the record and the problem."""
    try:
        return mapper(record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return RecordFailure(
            external_id, "MAPPING", f"{label} {external_id}: {exc}", record, suggested_fix
        )


def _earliest(*times: datetime | None) -> datetime | None:
    return min([t for t in times if t is not None], default=None)


def _latest(*times: datetime | None) -> datetime | None:
    return max([t for t in times if t is not None], default=None)
