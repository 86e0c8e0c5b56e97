"""Tally (TallyPrime / Tally.ERP 9) as a source over its XML port (shared/protocols/tally.md;
protocol.py has the wire facts, mapping.py the records).

A walk of customers or invoices:
1. The company's counters, one request. The same company GUID and the entity's counter
   (AltMstId for customers, AltVchId for invoices) as the cursor: nothing changed, nothing more.
2. The masters: groups and voucher types (Sundry Debtors and Sales resolved by reserved name,
   through renames and sub-groups, on our side: `$$GroupSundryDebtors` and `$$IsSales` would
   rest on Tally functions we cannot check, and the invoices need every ledger anyway), the
   currencies, and every ledger light (GUID, AlterID, parent, duty head, rounding).
3. The entity's GUID list: ledgers under Sundry Debtors (from 2), or the sales vouchers with their
   dates (not optional; cancelled ones kept, so that the diff keeps them). It makes the walk's
   listing complete, so the sync soft-deletes what the warehouse holds and the list lacks, per
   entity (a master and a voucher can share a GUID), behind its guard: an empty or suspiciously
   short list while the warehouse holds rows fails the run and deletes nothing.
4. What changed since the cursor (`$AlterID > last`), whole, in requests of at most `page_size`
   objects: vouchers in date ranges sized from the list's per-day counts (a day over the cap split
   by AlterID), ledgers by AlterID ranges. Every pull is batched, incremental ones too.
The cursor is the counter read in 1, before the pull (an edit during the pull gets a higher
AlterID and is read next time), with the company GUID; a record that fails holds it just below
its own AlterID. A counter lower than the cursor's, or another company GUID (a restored backup,
a migration to a new company), reads everything again.

Tally answers one request at a time: calls to one Tally URL are serialized in this process, with
the tenant's `timeout_seconds` as the read timeout (a big batch takes minutes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from itertools import islice
from typing import Any, ClassVar, TypeVar

from lxml import etree

from hub_pipelines.canonical import (
    ENTITIES,
    ConnectionTest,
    Entity,
    Invoice,
    ListedRecord,
    Page,
    RecordFailure,
)
from hub_pipelines.connectors import xml
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import HttpClient, LogSink
from hub_pipelines.connectors.ratelimit import one_at_a_time
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.source import ConnectorResource, HttpConnector
from hub_pipelines.connectors.walk import (
    Stream,
    VersionsLookup,
    Walk,
    changed_pages,
    mapped,
)
from hub_pipelines.tally import mapping, protocol
from hub_pipelines.tally.protocol import Collection, Counters, Cursor, Formula, number, text
from hub_pipelines.tenants.models import TallyConfig

T = TypeVar("T")
# Records a page hands the loader: a request of up to `page_size` objects is read in pages.
PAGE_ROWS = 1_000
# Vouchers before the company's books begin are not expected; a floor when BooksFrom is unknown.
EARLIEST = date(1990, 4, 1)
MAPPING_FIX = (
    "Correct the ledger or voucher named in the message in Tally, or report the payload "
    "(`hub errors show ID`) if it is valid there (docs/connectors/tally.md, section 9)."
)
FILE_DROP_FIX = (
    "Import this tenant's Tally exports as files (docs/connectors/tally.md, File drop), or give "
    "it a live connection: connection_config.file_drop false with connection_config.url and "
    "connection_config.company_name, stored with `hub tenants add TENANT tally --config FILE`."
)


@dataclass(frozen=True, slots=True)
class Key:
    """One entry of a GUID list."""

    guid: str
    alter_id: int
    day: date | None = None


STREAMS = {
    entity: Stream(entity, "GUID", lambda row: row.get("ALTERID"), lambda row: row.get("total"))
    for entity in ENTITIES
}


class CounterWalk(Walk):
    """The kit's walk with Tally's cursor: the company counter read before the pull, held just
    below the AlterID of a record that failed (at the walk's start for one without)."""

    def __init__(self, target: Cursor, since: int) -> None:
        super().__init__(None, timedelta(0))
        self.target, self.since = target, since
        self.held: int | None = None

    def saw(self, stamps) -> None:
        pass  # the cursor is the counter, not the highest AlterID seen

    def hold(self, stamp) -> None:
        floor = self.since if stamp is None else max(self.since, stamp - 1)
        self.held = floor if self.held is None else min(self.held, floor)

    def cursor(self) -> str:
        alter_id = self.target.alter_id if self.held is None else self.held
        return Cursor(self.target.company, alter_id).text()


class TallyConnector(HttpConnector):
    system = "tally"

    def __init__(
        self,
        config: TallyConfig,
        token_store: Any = None,
        *,
        versions: VersionsLookup,
        page_size: int = protocol.BATCH_VOUCHERS,
        page_rows: int = PAGE_ROWS,
        cursor_overlap: timedelta | None = None,
        requests_per_minute: int | None = None,
        log: LogSink | None = None,
        settings: HttpSettings | None = None,
    ) -> None:
        """`page_size`: objects a request asks for; `page_rows`: records a page hands the loader.
        `cursor_overlap` and `requests_per_minute` are the kit's and mean nothing here: AlterIDs
        need no overlap, Tally has no rate limit."""
        if config.file_drop:
            raise SyncError(
                Category.CONFIG,
                "this Tally tenant is set up for file drop only (connection_config.file_drop): "
                "it has no live connection to import from",
                suggested_fix=FILE_DROP_FIX,
                code="file_drop",
            )
        if not 1 <= page_size <= 10_000:  # Tally stalls past ~10,000 (loader issues #44, #49)
            raise ValueError(f"page_size must be between 1 and 10,000 vouchers: {page_size}")
        self.company, self.url = config.company_name, str(config.url)
        self.versions, self.page_size, self.page_rows = versions, page_size, page_rows
        self.log = log or logging.getLogger(__name__)
        timeout = int(config.timeout_seconds * 1000)
        self.http = HttpClient(
            replace(settings or HttpSettings.from_env(), timeout_ms=timeout),
            base_url=self.url,
            check=protocol.response_check,
            logger=log,
        )
        self._books_from: date | None = None

    # --- transport ----------------------------------------------------------------------------

    def _objects(
        self,
        collection: Collection,
        *filters: Formula | None,
        period: tuple[date, date] | None = None,
    ) -> Iterator[etree._Element]:
        """The collection's objects, each complete while the caller holds it (the reader clears
        it after). An export is a read: sent again after a dropped answer or a 5xx."""
        yield from self._read(collection, self._answer(collection, filters, period))

    def _answer(
        self, collection: Collection, filters: tuple, period: tuple[date, date] | None
    ) -> bytes:
        """Tally's answer to an export of `collection`, whole."""
        body = protocol.encode(protocol.request(collection, self.company, filters, period))
        with one_at_a_time(self.url):
            response = self.http.request(
                "POST", "", content=body, headers=protocol.HEADERS, idempotent=True
            )
        return protocol.answer_bytes(response.content, response.headers.get("content-type", ""))

    @staticmethod
    def _read(collection: Collection, answer: bytes) -> Iterator[etree._Element]:
        try:
            yield from xml.objects(answer, {collection.tag})
        except xml.XmlError as exc:
            raise SyncError(
                Category.SERVER, f"Tally's answer to {collection.name} is unreadable: {exc}"
            ) from None

    def _counters(self) -> Counters:
        found = [Counters.of(e) for e in self._objects(protocol.COMPANY, protocol.IS_CURRENT)]
        if not found:
            raise protocol.company_not_found(self.company)
        self._books_from = found[0].books_from
        return found[0]

    def _masters(self, *collections: Collection) -> tuple[mapping.Masters, list[tuple]]:
        """The masters read from `collections`, and every ledger's (GUID, AlterID, parent)."""
        masters, ledgers = mapping.Masters(), []
        for collection in collections:
            for element in self._objects(collection):
                masters.add(element)
                if element.tag == "LEDGER" and text(element, "GUID"):
                    entry = (text(element, "GUID"), number(text(element, "ALTERID")))
                    ledgers.append((*entry, text(element, "PARENT")))
        return masters, ledgers

    def _keys(self, entity: Entity, masters: mapping.Masters, ledgers: list[tuple]) -> list[Key]:
        """The entity's GUID list (invoices: one light request)."""
        if entity == "customers":
            return [Key(g, a) for g, a, parent in ledgers if masters.is_debtor_group(parent)]
        listed = self._objects(
            protocol.SALES_LIST,
            protocol.NOT_OPTIONAL,
            self._sales_types(masters),
            period=self._period(),
        )
        return [
            Key(text(e, "GUID"), number(text(e, "ALTERID")), protocol.day(text(e, "DATE")))
            for e in listed
            if text(e, "GUID") and masters.is_sales_type(text(e, "VOUCHERTYPENAME"))
        ]

    def _period(self) -> tuple[date, date]:
        """Every voucher: a voucher collection covers only the current period unless told."""
        return self._books_from or EARLIEST, protocol.FAR_FUTURE

    @staticmethod
    def _sales_types(masters: mapping.Masters) -> Formula | None:
        return protocol.of_types([n for n in masters.voucher_types if masters.is_sales_type(n)])

    # --- the walks ----------------------------------------------------------------------------

    def customers(self, cursor: str | None) -> Iterator[Page]:
        return self._walk("customers", cursor)

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        return self._walk("invoices", cursor)

    def _walk(self, entity: Entity, cursor: str | None) -> Iterator[Page]:
        listed = self.new_listing(entity)
        counters = self._counters()
        now, start = counters.cursor(entity), Cursor.parse(cursor)
        if start == now:
            yield Page([], cursor=now.text())  # nothing changed since the last pull
            return
        resumed = start is not None and start.resumed_by(now)
        if start is not None and not resumed:
            self.log.warning(
                f"tally {entity}: the company's GUID or counter is not the one last read "
                f"({start} now {now}): a restored backup or a new company; reading everything"
            )
        since = start.alter_id if start is not None and resumed else 0
        masters, ledgers = self._masters(*self._context(entity))
        keys = self._keys(entity, masters, ledgers)
        changed = [(key.day, key.alter_id) for key in keys if key.alter_id > since]
        yield from changed_pages(
            STREAMS[entity],
            self._pages(entity, masters, protocol.batches(changed, since, self.page_size)),
            lambda row, _walk: row["outcome"],
            walk=CounterWalk(now, since),
            versions=self.versions,
            listed=listed,
            complete=since == 0,
        )
        # The GUID list names every record the company has, so the listing is complete whatever
        # the walk read: the sync deletes what it lacks (behind its empty-answer guard); an
        # incremental walk read only the changed vouchers' totals.
        for key in keys:
            listed.totals.setdefault(key.guid, None)
        listed.totals_known = listed.complete
        listed.complete = True

    @staticmethod
    def _context(entity: Entity) -> tuple[Collection, ...]:
        types = (protocol.VOUCHER_TYPES,) if entity == "invoices" else ()
        return (protocol.GROUPS, *types, protocol.CURRENCIES, protocol.LEDGER_LIST)

    def _pages(
        self, entity: Entity, masters: mapping.Masters, batches: list[protocol.Batch]
    ) -> Iterator[list[dict]]:
        collection = protocol.CUSTOMERS if entity == "customers" else protocol.SALES
        kind = () if entity == "customers" else (protocol.NOT_OPTIONAL, self._sales_types(masters))
        every_day = None if entity == "customers" else self._period()
        asks = [
            ((*batch.filters(), *kind), batch.period or every_day)  # undated: the whole books
            for batch in batches
        ]
        # Tally builds the next batch's answer while this one is read (still one request at a
        # time): a walk takes about the longer of the two, not their sum. One answer is held
        # ahead, asked for in a daemon thread: a walk that stops (a cancelled run) leaves it.
        coming = None
        for index, (ask, period) in enumerate(asks):
            answer = coming() if coming else self._answer(collection, ask, period)
            if index + 1 < len(asks):
                coming = _in_background(self._answer, collection, *asks[index + 1])
            rows = (self._row(entity, e, masters) for e in self._read(collection, answer))
            kept = (row for row in rows if row is not None)
            # A batch is handed over in pages as it is read: memory holds a page of records,
            # not a batch, and the loader starts on its first page.
            while page := list(islice(kept, self.page_rows)):
                yield page

    def _row(self, entity: Entity, element: etree._Element, masters: mapping.Masters):
        """A walk row, mapped while the reader holds the element; None when not the entity's."""
        if entity == "customers":
            if not masters.is_debtor_group(text(element, "PARENT")):
                return None
            label, mapper = "ledger", mapping.customer
        else:
            if not mapping.is_invoice(element, masters):
                return None
            label, mapper = "voucher", mapping.invoice
        guid, alter_id = text(element, "GUID"), number(text(element, "ALTERID"))
        if not guid:
            return {"ALTERID": alter_id, "raw": mapping.as_dict(element)}
        outcome = mapped(guid, element, lambda e: mapper(e, masters), label, MAPPING_FIX)
        if isinstance(outcome, RecordFailure):
            outcome.raw = mapping.as_dict(element)  # JSON, not the element
        total = outcome.total if isinstance(outcome, Invoice) else None
        return {"GUID": guid, "ALTERID": alter_id, "total": total, "outcome": outcome}

    # --- the rest of the contract ---------------------------------------------------------------

    def test_connection(self) -> ConnectionTest:
        """The company's counters: Tally reachable, the company loaded under its exact name."""
        started = time.monotonic()
        counters = self._counters()
        latency = int((time.monotonic() - started) * 1000)
        return ConnectionTest(True, latency, organisation=counters.name)

    def _listed_keys(self, entity: Entity) -> list[Key]:
        if entity == "customers":
            return self._keys(entity, *self._masters(protocol.GROUPS, protocol.LEDGER_LIST))
        if self._books_from is None:
            self._counters()
        return self._keys(entity, *self._masters(protocol.VOUCHER_TYPES))

    def count(self, entity: Entity, near: int = 0) -> int:
        """The GUID list's length: two light requests."""
        return len(self._listed_keys(entity))

    def all_ids(self, entity: Entity) -> Iterator[str]:
        return (key.guid for key in self._listed_keys(entity))

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        """Customers from the GUID list; invoices from a full pull (their totals)."""
        if entity == "customers":
            yield from (ListedRecord(guid) for guid in self.all_ids(entity))
            return
        for _page in self._walk(entity, None):
            pass
        yield from (ListedRecord(i, total) for i, total in self.listed(entity).totals.items())


def _in_background(call: Callable[..., T], *args: Any) -> Callable[[], T]:
    """`call(*args)` begun in a daemon thread (an exiting process does not wait for it, as it
    would for an executor's); the function returned waits for its result, or raises its error."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, call(*args)))
        except BaseException as exc:  # raised where the result is waited for
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="tally-answer", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        done, value = outcome[0]
        if not done:
            raise value
        return value

    return result


class TallyResource(ConnectorResource):
    """Tally's XML port (docs/connectors/tally.md). `page_size`: objects per request, at most
    ~5,000 vouchers (tally-database-loader's default; Tally stalls on much larger answers)."""

    connector_class: ClassVar[type] = TallyConnector
    page_size: int = protocol.BATCH_VOUCHERS

    def connector(self, config: Any, token_store: Any, versions: Any, log: Any = None) -> Any:
        return TallyConnector(
            config,
            token_store,
            versions=versions,
            page_size=self.page_size,
            log=log,
        )
