"""BUSY Accounting as a source (shared/protocols/busy.md; protocol.py has the wire facts).

- Calls: `GET /` with header parameters, one at a time per BUSY desktop (a process-wide lock per
  address; the `busy` Dagster pool keeps runs apart), about half a second each. `UserName` and
  `Pwd` ride on every call; the client's redactor masks the password wherever it might appear.
- Years: one database per financial year. The years that exist are read first (`sys.databases`):
  the configured `financial_years` must all exist; `first_financial_year` (or neither) takes those
  from that year on (or all). Customers come from the newest year's masters.
- Customers: accounts in the Sundry Debtors subtree (the group code, 116 by default, and every
  group below it): every key (the complete listing), then those changed since the cursor, in
  keyset pages sorted by `COALESCE(ModificationTime, CreationTime)` and code, so the cursor is
  committed with each page.
- Invoices: per year, every sale's key and total (one call: the complete listing, so the import
  marks what BUSY no longer has as deleted and compares counts and totals every run), then the
  sales changed since the cursor (less the overlap) in keyset pages, each read with its voucher
  XML (SC=8) named by year. Keys are `<company>:<year>:<VchCode>`: codes restart every year, so a
  year's keys are never compared with another's. A year that lists no sale while it had some at
  the last import is an error, never a mass delete (the counts ride in the cursor).
- Rows keep what BUSY sent, plus the hub's `Key` (and `FY` for sales).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hub_pipelines.busy import mapping, protocol
from hub_pipelines.canonical import ConnectionTest, Entity, ListedRecord, Page
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import HttpClient, LogSink
from hub_pipelines.connectors.ratelimit import one_at_a_time
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.source import ConnectorResource, HttpConnector
from hub_pipelines.connectors.walk import (
    ReadOutcome,
    Stream,
    VersionsLookup,
    Walk,
    changed_pages,
    mapped,
)
from hub_pipelines.tenants.models import BusyConfig

MAPPING_FIX = (
    "Correct the account or voucher named in the message in BUSY, or report the payload "
    "(`hub errors show ID`) if it is valid there."
)
YEARS_FIX = (
    "Check connection_config.company_code and connection_config.financial_years (or "
    "first_financial_year) against the company's financial years in BUSY "
    "(docs/connectors/busy.md, section 3); store the corrected config with "
    "`hub tenants add TENANT busy --config FILE`."
)
OTHER_YEAR_FIX = (
    "BUSY answered a voucher of another financial year: its web service reads the year open in "
    "the desktop. Open the year named in the message in BUSY during the import, or import it "
    "when it is open (docs/connectors/busy.md, section 3); the import is retried automatically."
)
EMPTY_YEAR_FIX = (
    "Check that the company is open in BUSY and its database is whole; if the sales were really "
    "deleted, run `hub sync TENANT busy --full-refresh` (docs/connectors/busy.md, section 7)."
)


class BusyConnector(HttpConnector):
    system = "busy"

    def __init__(
        self,
        config: BusyConfig,
        token_store: Any = None,  # BUSY signs every call in with a password: nothing to store
        *,
        versions: VersionsLookup,
        page_size: int = protocol.PAGE_SIZE,
        cursor_overlap: timedelta = timedelta(minutes=5),
        requests_per_minute: int | None = None,
        settings: HttpSettings | None = None,
        log: LogSink | None = None,
    ) -> None:
        if page_size < 2:
            raise ValueError(f"page_size must be at least 2: {page_size}")
        self.config, self.versions = config, versions
        self.page_size, self.overlap = page_size, cursor_overlap
        self.company, self.zone = config.company_code, ZoneInfo(config.timezone)
        address = str(config.url or f"http://{config.host}:{config.port}").rstrip("/")
        settings = settings or HttpSettings.from_env()
        self.http = HttpClient(
            replace(settings, timeout_ms=int(config.timeout_seconds * 1000)),
            base_url=address,
            headers={"UserName": config.username, "Pwd": config.password.get_secret_value()},
            check=protocol.response_check,
            rate_limit=requests_per_minute,
            logger=log,
        )
        self.http.redactor.register(*config.secrets())
        self.rate_key = f"busy:{address}" if requests_per_minute else None
        self._one_at_a_time = one_at_a_time(address)
        self._years: list[int] | None = None
        self._hsn: dict[str, str] | None = None
        changed = lambda row: mapping.changed_at(row, self.zone)  # noqa: E731
        self.customer_stream = Stream("customers", "Key", changed, commit="per_page")
        # Several years' pages, each sorted on its own: the cursor waits for the walk's end.
        self.sale_stream = Stream("invoices", "Key", changed, mapping.listed_total)

    # --- transport ----------------------------------------------------------------------------

    def _call(self, headers: dict[str, str]) -> bytes:
        with self._one_at_a_time:
            return self.http.request("GET", "/", headers=headers, rate_key=self.rate_key).content

    def _sql(self, template: str, **values: Any) -> protocol.Rowset:
        body = self._call(
            protocol.request_headers(protocol.SQL, Qry=protocol.query(template, **values))
        )
        try:
            return protocol.parse_rowset(body)
        except protocol.BusyXmlError as exc:
            raise SyncError(Category.SERVER, f"BUSY answered {exc}", code="unreadable") from None

    def _db(self, year: int) -> str:
        return protocol.database(self.company, year)

    def years(self) -> list[int]:
        """The financial years to import, as configured and as BUSY has them."""
        if self._years is None:
            rows = self._sql(protocol.DATABASES, company=self.company).rows
            found = {protocol.database_year(row.get("name", ""), self.company) for row in rows}
            found.discard(None)
            wanted, first = self.config.financial_years, self.config.first_financial_year or 0
            self._years = sorted(wanted or {year for year in found if year >= first})
            missing = sorted(set(wanted or ()) - found) or ([] if self._years else [first])
            if missing:
                raise SyncError(
                    Category.CONFIG,
                    f"BUSY has no database for FY {', '.join(map(protocol.year_label, missing))} "
                    f"of company {self.company} (it has: "
                    f"{', '.join(map(protocol.year_label, sorted(found))) or 'none'})",
                    suggested_fix=YEARS_FIX,
                )
        return self._years

    def _pages(self, template: str, db: str, since: datetime | None, code_field: str, **extra):
        """Keyset pages of a sorted query, each after the last row's (time, code)."""
        local = since.astimezone(self.zone).replace(tzinfo=None) if since else None
        position = (protocol.sql_time(local) if local else protocol.NO_TIME, protocol.FIRST_KEY)
        while True:
            after, code = position
            limit = self.page_size
            rows = self._sql(template, db=db, limit=limit, after=after, code=code, **extra).rows
            yield rows
            if len(rows) < limit:
                return
            keyed = [row for row in rows if row.get(code_field) and row.get("Changed")]
            if keyed:
                last = keyed[-1]
                position = (
                    protocol.sql_time(protocol.busy_time(last["Changed"])),
                    int(last[code_field]),
                )
            if position == (after, code):
                raise SyncError(
                    Category.SERVER,
                    f"BUSY's pages did not move past ({after}, {code}); stopped rather than loop",
                    code="keyset_stuck",
                )

    # --- contract -----------------------------------------------------------------------------

    def test_connection(self) -> ConnectionTest:
        started = time.monotonic()
        years = self.years()
        latency = int((time.monotonic() - started) * 1000)
        labels = ", ".join(protocol.year_label(year) for year in years)
        return ConnectionTest(
            True, latency, version="BUSY web service", organisation=f"{self.company}, FY {labels}"
        )

    def customers(self, cursor: str | None) -> Iterator[Page]:
        walk = Walk(cursor, self.overlap)
        listed = self.new_listing("customers")
        db, groups = self._debtors()
        listed.totals.update(dict.fromkeys(self._customer_keys(db, groups)))
        yield from changed_pages(
            self.customer_stream,
            self._customer_pages(db, groups, walk.since),
            lambda row, _walk: mapped(row["Key"], row, self._map_customer, "account", MAPPING_FIX),
            walk=walk,
            versions=self.versions,
            listed=listed,
            complete=True,  # every customer's key is listed above
        )

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        changed, last_counts = _decode(cursor)
        walk = Walk(changed, self.overlap)
        listed = self.new_listing("invoices")
        counts: dict[int, int] = {}
        for year in self.years():
            keys = self._sale_keys(year)
            if not keys and last_counts.get(year):
                raise SyncError(
                    Category.SOURCE_DATA,
                    f"BUSY lists no sale in FY {protocol.year_label(year)} ({self._db(year)}), "
                    f"which had {last_counts[year]} at the last import; nothing was deleted",
                    retryable=True,
                    code="empty_year",
                    suggested_fix=EMPTY_YEAR_FIX,
                )
            listed.totals.update(keys)
            counts[year] = len(keys)
        pages = (rows for year in self.years() for rows in self._sale_pages(year, walk.since))
        for page in changed_pages(
            self.sale_stream,
            pages,
            self._read_sale,
            walk=walk,
            versions=self.versions,
            listed=listed,
            complete=True,  # every year's keys are listed above
        ):
            if page.cursor is not None:
                page.cursor = json.dumps({"changed": page.cursor, "sales": counts})
            yield page

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        if entity == "customers":
            yield from map(ListedRecord, self._customer_keys(*self._debtors()))
            return
        for year in self.years():
            for key, total in self._sale_keys(year).items():
                yield ListedRecord(key, total)

    def count(self, entity: Entity, near: int = 0) -> int:
        return sum(1 for _ in self.listing(entity))

    # --- customers ----------------------------------------------------------------------------

    def _debtors(self) -> tuple[str, str]:
        """The database holding the masters (the newest year's: masters are carried into each
        new year) and the Sundry Debtors groups, as SQL text."""
        db, anchor = self._db(self.years()[-1]), self.config.sundry_debtors_code
        groups = mapping.debtor_groups(self._sql(protocol.GROUPS, db=db).rows, anchor)
        if not groups:
            raise SyncError(
                Category.CONFIG,
                f"{db} has no account group {anchor} nor one named Sundry Debtors",
                suggested_fix="Set connection_config.sundry_debtors_code to the code of the "
                "group that holds the customers (docs/connectors/busy.md, section 4).",
            )
        return db, ", ".join(str(code) for code in sorted(groups))

    def _customer_keys(self, db: str, groups: str) -> list[str]:
        rows = self._sql(protocol.CUSTOMER_KEYS, db=db, groups=groups).rows
        return [
            row["Key"]
            for row in _keyed(rows, "Code", lambda c: f"{self.company}:{c}")
            if "Key" in row
        ]

    def _customer_pages(self, db: str, groups: str, since: datetime | None) -> Iterator[list]:
        for rows in self._pages(protocol.CUSTOMERS, db, since, "Code", groups=groups):
            yield _keyed(rows, "Code", lambda code: f"{self.company}:{code}")

    def _map_customer(self, row: dict[str, str]):
        return mapping.map_customer(row, self.company, self.zone, self.config.currency)

    # --- invoices -----------------------------------------------------------------------------

    def _sale_keys(self, year: int) -> dict[str, Decimal | None]:
        rows = _keyed(
            self._sql(protocol.SALE_KEYS, db=self._db(year)).rows, "VchCode", self._key(year)
        )
        return {row["Key"]: mapping.listed_total(row) for row in rows if "Key" in row}

    def _key(self, year: int):
        return lambda code: f"{self.company}:{year}:{code}"

    def _sale_pages(self, year: int, since: datetime | None) -> Iterator[list[dict[str, str]]]:
        for rows in self._pages(protocol.SALES, self._db(year), since, "VchCode"):
            yield [{**row, "FY": str(year)} for row in _keyed(rows, "VchCode", self._key(year))]

    def _read_sale(self, row: dict[str, str], walk: Walk) -> ReadOutcome:
        year, code, key = int(row["FY"]), row["VchCode"], row["Key"]
        try:
            voucher = self._voucher(year, code)
        except SyncError as error:
            if error.code == "not_found":
                return None  # deleted since it was listed
            return walk.detail_failed(error, key, f"voucher {code} (SC=8)", row)
        walk.detail_read()
        return mapped(key, {"Tran1": row, "voucher": voucher}, self._map_sale, "sale", MAPPING_FIX)

    def _voucher(self, year: int, code: str) -> dict[str, Any]:
        """A sale's voucher XML, asked of the year's database; one of another year is refused
        (BUSY reads the year open in the desktop, whatever the hub names (unverified))."""
        headers = protocol.request_headers(protocol.VOUCHER_XML, VchCode=code)
        headers[protocol.YEAR_HEADER] = self._db(year)
        try:
            tag, voucher = protocol.parse_document(self._call(headers))
        except protocol.BusyXmlError as exc:
            raise SyncError(Category.SERVER, f"BUSY answered {exc}", code="unreadable") from None
        if tag != "Sale":
            raise SyncError(Category.SOURCE_DATA, f"SC=8 answered <{tag}>, not a <Sale>")
        try:
            dated = protocol.year_of(protocol.voucher_date(voucher.get("Date")))
        except ValueError:
            return voucher  # the mapping reads the date from Tran1
        if dated != year:
            raise SyncError(
                Category.CONFIG,
                f"BUSY answered voucher {code} of FY {protocol.year_label(dated)} when "
                f"{self._db(year)} (FY {protocol.year_label(year)}) was asked for",
                retryable=True,
                code="other_year_open",
                suggested_fix=OTHER_YEAR_FIX,
            )
        return voucher

    def _map_sale(self, sale: dict[str, Any]):
        header, voucher = sale["Tran1"], sale["voucher"]
        return mapping.map_invoice(
            header,
            voucher,
            company=self.company,
            year=int(header["FY"]),
            zone=self.zone,
            currency=mapping.currency_of(voucher, self.config.currency, self.config.currency_names),
            hsn=self._hsn_codes(),
        )

    def _hsn_codes(self) -> dict[str, str]:
        """Item name → HSN code from the item masters (one call, when a sale is first read)."""
        if self._hsn is None:
            rows = self._sql(protocol.ITEMS, db=self._db(self.years()[-1])).rows
            self._hsn = {
                r["Name"].strip(): r.get("HSNCode", "").strip() for r in rows if r.get("Name")
            }
        return self._hsn


def _keyed(rows: list[dict[str, str]], code: str, key: Callable[[str], str]) -> list[dict]:
    """The rows with the hub's `Key` (company, year, code) added; a row without a code has
    none (the walk makes it a record error)."""
    for row in rows:
        if row.get(code):
            row["Key"] = key(row[code])
    return rows


def _decode(cursor: str | None) -> tuple[str | None, dict[int, int]]:
    """The invoices cursor: `{"changed": <time>, "sales": {year: count}}`; a bare time too."""
    if not cursor or not cursor.lstrip().startswith("{"):
        return cursor, {}
    data = json.loads(cursor)
    counts = {int(year): int(count) for year, count in (data.get("sales") or {}).items()}
    return data.get("changed"), counts


class BusyResource(ConnectorResource):
    """How the hub talks to BUSY; the credentials come from the vault at run time."""

    connector_class: ClassVar[type] = BusyConnector
    page_size: int = protocol.PAGE_SIZE
