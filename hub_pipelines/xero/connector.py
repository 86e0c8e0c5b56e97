"""Xero Accounting API 2.0 as a source (shared/protocols/xero.md; protocol.py has the wire facts).

- Auth: the refresh grant at Xero's identity server with the app's credentials as HTTP Basic.
  Refresh tokens are single use: `OAuthTokenManager(rotating_refresh_tokens=True)` saves the new
  one before its access token is used, one refresh at a time per tenant config. Every API call
  names the organisation in `Xero-Tenant-Id`; `test_connection` asks the tenantless
  `GET /connections` whether the token reaches it.
- Lists: contacts (archived included) and sales invoices (`Type=="ACCREC"`), always with `page`
  and `pageSize` (without `page` Xero leaves the line items out), sorted `UpdatedDateUTC ASC`,
  changes by `If-Modified-Since` (whole UTC seconds, less the walk's overlap). Rows are whole
  records: no detail calls. The rows come sorted by their version, so the cursor is committed
  with every page, and pages are read in overlapping windows (`OverlappingWindows`) because an
  edit moves a record to the end of the list while it is walked.
- Deletes: a DELETED invoice is a tombstone; VOIDED ones stay, status void.
- Customers: contacts Xero flags (`IsCustomer`), set up for sales, or named by sales invoices.
  `IsCustomer` changes do not move `UpdatedDateUTC`, so an incremental customers walk also reads
  the contacts named by invoices changed since its cursor that the warehouse lacks (`IDs=`, 50 a
  call). A walk without a cursor lists everything (the sync's periodic complete listing).
- Limits: 60 calls a minute, 5 at once and a daily limit (5,000; 1,000 on the entry tier) per
  organisation. Calls are paced under them (55 a minute, 4 at once); before each call the
  remaining daily calls (`X-DayLimit-Remaining`) are checked against a reserve, and the run stops
  with what it loaded, naming when the day resets.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from hub_pipelines.canonical import ConnectionTest, Entity, Invoice, ListedRecord, Page
from hub_pipelines.connectors.base import OverlappingWindows, records_at, to_decimal
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import HttpClient, LogSink
from hub_pipelines.connectors.oauth import BearerAuth, OAuthTokenManager, TokenStore, request_tokens
from hub_pipelines.connectors.ratelimit import TokenBucket, bucket_for
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.source import ConnectorResource, HttpConnector
from hub_pipelines.connectors.walk import (
    ReadOutcome,
    Stream,
    Tombstone,
    VersionsLookup,
    Walk,
    changed_pages,
    mapped,
)
from hub_pipelines.tenants.models import XeroConfig
from hub_pipelines.xero import mapping
from hub_pipelines.xero.protocol import (
    CONTACTS_PATH,
    DAILY_LIMIT_FIX,
    DAY_REMAINING_HEADER,
    IDS_PER_REQUEST,
    INVOICES_PATH,
    JSON_HEADERS,
    MAX_PAGE_SIZE,
    MODIFIED_SINCE_HEADER,
    PAGE_SIZE,
    SAFE_CONCURRENT_REQUESTS,
    TAX_RATES_PATH,
    TENANT_HEADER,
    TOKEN_URL,
    connected_tenant,
    contacts_by_id_params,
    contacts_params,
    has_more_pages,
    if_modified_since,
    invoices_params,
    item_count,
    ms_json_date,
    response_check,
    served_page_size,
    token_check,
)

API_HOST = "https://api.xero.com"
API_PATH = "/api.xro/2.0"
# Every status but DELETED: what the warehouse holds live, for counting.
LIVE_STATUSES = "DRAFT,SUBMITTED,AUTHORISED,PAID,VOIDED"
# Xero says when its day resets only in a 429's Retry-After. A stop before that assumes
# midnight UTC (unverified) plus this margin; a re-run that is early meets Xero's own answer.
RESET_MARGIN = timedelta(minutes=1)
PAGE_SIZE_FIX = (
    "Import with Xero's documented page of 100: set the xero resource's page_size to 100 (run "
    "config `resources: {xero: {config: {page_size: 100}}}`, or where the code location builds "
    "XeroResource; docs/connectors/xero.md, section 5), and report the answer's pagination block."
)
MAPPING_FIX = (
    "Correct the field named in the message in Xero, or report the payload "
    "(`hub errors show ID`) if the value is valid there."
)


def _updated(row: dict[str, Any]) -> datetime | None:
    value = row.get("UpdatedDateUTC")
    return ms_json_date(value) if value else None


def _listed_total(row: dict[str, Any]) -> Decimal | None:
    return to_decimal(row.get("Total"))


CONTACTS = Stream("customers", "ContactID", _updated, commit="per_page")
INVOICES = Stream("invoices", "InvoiceID", _updated, _listed_total, commit="per_page")
# entity -> (stream, list path, body key, the list's parameters for a page)
LISTS: dict[str, tuple[Stream, str, str, Callable[[int, int], dict[str, Any]]]] = {
    "customers": (CONTACTS, CONTACTS_PATH, "Contacts", contacts_params),
    "invoices": (INVOICES, INVOICES_PATH, "Invoices", invoices_params),
}

_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def calls_in_flight(tenant_id: str) -> threading.BoundedSemaphore:
    """The process-wide limit of calls at once to one organisation (Xero refuses a sixth)."""
    with _slots_lock:
        return _slots.setdefault(tenant_id, threading.BoundedSemaphore(SAFE_CONCURRENT_REQUESTS))


class PacedClient(HttpClient):
    """An `HttpClient` whose every attempt waits for the given token bucket: the organisation's
    shared one, or a test's with a fake clock (the kit's client takes buckets from its registry,
    which runs on the real clock)."""

    def __init__(self, settings: HttpSettings | None, *, bucket: TokenBucket, **options: Any):
        super().__init__(settings, rate_limit=bucket.limit, **options)
        self.bucket = bucket

    def _throttle(self, rate_key: str | None) -> None:
        if rate_key is not None:
            self.bucket.acquire()


class XeroConnector(HttpConnector):
    system = "xero"

    def __init__(
        self,
        config: XeroConfig,
        token_store: TokenStore,
        *,
        versions: VersionsLookup,
        page_size: int = PAGE_SIZE,
        cursor_overlap: timedelta = timedelta(minutes=5),
        requests_per_minute: int | None = None,
        daily_limit: int | None = None,
        quota_reserve_percent: float = 10.0,
        settings: HttpSettings | None = None,
        log: LogSink | None = None,
        bucket: TokenBucket | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 2 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 2 and {MAX_PAGE_SIZE}: {page_size}")
        self.config, self.tenant = config, config.xero_tenant_id
        self.versions, self.page_size, self.overlap = versions, page_size, cursor_overlap
        self.daily_limit = daily_limit or config.daily_limit
        self.reserve = int(self.daily_limit * quota_reserve_percent / 100)
        self.rate_key = f"xero:{self.tenant}"
        pace = requests_per_minute or config.requests_per_minute
        host = str(config.api_base_url or API_HOST).rstrip("/")
        self.connections_url = f"{host}/connections"
        self.http = PacedClient(
            settings,
            bucket=bucket or bucket_for(self.rate_key, pace),
            base_url=host + API_PATH,
            headers=JSON_HEADERS,
            check=response_check,
            logger=log,
            quota_header=DAY_REMAINING_HEADER,
            calls_at_once=SAFE_CONCURRENT_REQUESTS,
        )
        self.http.redactor.register(*config.secrets())
        manager = OAuthTokenManager(
            token_store, self._refresh, redactor=self.http.redactor, rotating_refresh_tokens=True
        )
        self.auth = BearerAuth(manager)
        self._in_flight = calls_in_flight(self.tenant)
        self._now = now
        self._tax_rates: dict[str, mapping.TaxRateInfo] | None = None
        self._tax_rates_reread = False

    # --- transport ----------------------------------------------------------------------------

    def _refresh(self, refresh_token: str):
        secret = self.config.client_secret.get_secret_value()
        basic = base64.b64encode(f"{self.config.client_id}:{secret}".encode()).decode()
        return request_tokens(
            self.http,
            str(self.config.token_url or TOKEN_URL),
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers={"Authorization": f"Basic {basic}"},
            check=token_check,
        )

    def _get(self, path: str, params: dict[str, Any], since: datetime | None = None) -> Any:
        """One API call: the daily reserve checked first, at most four at once."""
        stop = self._budget()
        if stop is not None:
            raise stop
        headers = {TENANT_HEADER: self.tenant}
        if since is not None:
            headers[MODIFIED_SINCE_HEADER] = if_modified_since(since)
        with self._in_flight:
            return self.http.get_json(
                path, params=params, headers=headers, auth=self.auth, rate_key=self.rate_key
            )

    def _list_page(self, path: str, params: dict[str, Any], since: datetime | None) -> Any:
        """One list page, which must be served at the size asked: the walk's windows are
        placed by it (a pageSize above Xero's documented 100 is unverified)."""
        body = self._get(path, params, since)
        served, asked = served_page_size(body), params["pageSize"]
        if served is not None and served != asked:
            raise SyncError(
                Category.SOURCE_DATA,
                f"Xero served {path} in pages of {served} rows where pageSize={asked} was asked; "
                "the walk places its pages by the size it asks for, so it stopped before "
                "skipping rows",
                retryable=False,
                code="page_size",
                suggested_fix=PAGE_SIZE_FIX,
            )
        return body

    def _budget(self) -> SyncError | None:
        """The stop to raise before the next call once the day's remaining calls are down to
        the reserve (a reserve of 0 leaves the stop to Xero's own 429)."""
        remaining = self.quota_remaining
        if not self.reserve or remaining is None or remaining > self.reserve:
            return None
        now = self._now()
        reset = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        wait = math.ceil((reset + RESET_MARGIN - now).total_seconds())
        return SyncError(
            Category.RATE_LIMIT,
            f"stopped before Xero's daily limit ran out: {remaining:,} of {self.daily_limit:,} "
            f"calls left today and {self.reserve:,} kept in reserve; the records read so far are "
            f"loaded and the import resumes after {reset:%Y-%m-%d %H:%M} UTC (in {wait:,} s)",
            retryable=False,
            retry_after=wait,
            code="day_reserve",
            suggested_fix=DAILY_LIMIT_FIX,
        )

    def _windows(self, entity: Entity, since: datetime | None) -> OverlappingWindows:
        """The entity's list, oldest change first, in windows that overlap the rows read."""
        stream, path, key, params = LISTS[entity]
        rows = records_at(key)
        return OverlappingWindows(
            lambda page, size: self._list_page(path, params(page, size), since),
            rows,
            lambda body: has_more_pages(body, rows(body), self.page_size),
            key=stream.row_version,
            identity=stream.row_id,
            page_size=self.page_size,
            # Larger windows only when no smaller one reaches past the rows read (the row count
            # read is a multiple of every smaller size); Xero takes pageSize up to 1000.
            max_page_size=MAX_PAGE_SIZE,
        )

    # --- contract -----------------------------------------------------------------------------

    def test_connection(self) -> ConnectionTest:
        """`GET /connections` (tenantless) must list the configured organisation."""
        started = time.monotonic()
        connections = self.http.get_json(self.connections_url, auth=self.auth)
        latency = int((time.monotonic() - started) * 1000)
        found = connected_tenant(connections, self.tenant)
        if found is None:
            count = len(connections) if isinstance(connections, list) else 0
            message = (
                f"xero_tenant_id {self.tenant} is not among the {count} organisation(s) this "
                "authorisation reaches (GET /connections)"
            )
            return ConnectionTest(False, latency, message=message)
        return ConnectionTest(True, latency, version="2.0", organisation=found.get("tenantName"))

    def customers(self, cursor: str | None) -> Iterator[Page]:
        walk = Walk(cursor, self.overlap)
        listed = self.new_listing("customers")
        referenced: set[str] = set()
        return changed_pages(
            CONTACTS,
            self._contact_pages(walk.since, referenced),
            lambda row, _walk: self._read_contact(row, referenced),
            walk=walk,
            versions=self.versions,
            listed=listed,
            complete=walk.since is None,
        )

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        walk = Walk(cursor, self.overlap)
        listed = self.new_listing("invoices")
        return changed_pages(
            INVOICES,
            self._windows("invoices", walk.since),
            self._read_invoice,
            walk=walk,
            versions=self.versions,
            listed=listed,
            complete=walk.since is None,
        )

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        """What the warehouse should hold live: importable contacts, invoices not DELETED."""
        stream = LISTS[entity][0]
        for rows in self._windows(entity, None):
            for row in rows:
                external_id = stream.row_id(row)
                if external_id is None or not _counts(entity, row):
                    continue
                yield ListedRecord(external_id, stream.row_total(row))

    def count(self, entity: Entity, near: int = 0) -> int:
        """Invoices: one call, `pagination.itemCount` of the live statuses. Contacts: the
        listing (which contacts are customers is not a `where` Xero documents)."""
        if entity == "invoices":
            params = {**invoices_params(1, 1), "Statuses": LIVE_STATUSES}
            counted = item_count(self._get(INVOICES_PATH, params))
            if counted is not None:
                return counted
        return sum(1 for _ in self.listing(entity))

    # --- the walks ----------------------------------------------------------------------------

    def _contact_pages(self, since: datetime | None, referenced: set[str]) -> Iterable[list]:
        """Contacts changed since `since`; then, on an incremental walk, those named by invoices
        changed since then that the warehouse lacks (their `IsCustomer` flip did not move their
        `UpdatedDateUTC`). They come last: their versions are older or already walked, so the
        cursor committed with the changed pages stays safe."""
        if since is not None:
            for rows in self._windows("invoices", since):
                referenced |= mapping.referenced_contact_ids(rows)
        yield from self._windows("customers", since)
        if since is None or not referenced:
            return
        missing = sorted(referenced - set(self.versions("customers", sorted(referenced))))
        for start in range(0, len(missing), IDS_PER_REQUEST):
            chunk = missing[start : start + IDS_PER_REQUEST]
            body = self._get(CONTACTS_PATH, contacts_by_id_params(chunk, 1, IDS_PER_REQUEST))
            yield records_at("Contacts")(body)

    def _read_contact(self, row: dict[str, Any], referenced: set[str]) -> ReadOutcome:
        if not mapping.should_import_contact(row, referenced):
            return None  # a supplier or a bare contact: not a customer
        external_id = str(row["ContactID"])
        return mapped(external_id, row, mapping.map_contact, "contact", MAPPING_FIX)

    def _read_invoice(self, row: dict[str, Any], _walk: Walk) -> ReadOutcome:
        external_id = str(row["InvoiceID"])
        if mapping.is_deleted(row):
            return Tombstone(external_id)
        return mapped(external_id, row, self._map_invoice, "invoice", MAPPING_FIX)

    def _map_invoice(self, row: dict[str, Any]) -> Invoice:
        try:
            return mapping.map_invoice(row, self.tax_rates())
        except mapping.MappingError:
            # Looked for only when the mapping fails: a rate created since they were read (read
            # again once a run). Looking on every invoice cost 2 % of an import.
            if self._tax_rates_reread or not mapping.missing_tax_types(row, self.tax_rates()):
                raise
        self._tax_rates_reread = True
        self._tax_rates = None
        return mapping.map_invoice(row, self.tax_rates())

    def tax_rates(self) -> dict[str, mapping.TaxRateInfo]:
        """The organisation's tax rates by `TaxType` (`GET /TaxRates`), read when first needed."""
        if self._tax_rates is None:
            body = self._get(TAX_RATES_PATH, {})
            self._tax_rates = mapping.tax_rates_by_type(records_at("TaxRates")(body))
        return self._tax_rates


def _counts(entity: Entity, row: dict[str, Any]) -> bool:
    if entity == "invoices":
        return not mapping.is_deleted(row)
    return mapping.should_import_contact(row, ())


class XeroResource(ConnectorResource):
    """How the hub talks to Xero; per-tenant credentials come from the vault at run time.
    `requests_per_minute` None: the tenant config's (55, under Xero's 60)."""

    connector_class: ClassVar[type] = XeroConnector
    page_size: int = PAGE_SIZE
    daily_limit: int | None = None  # default: the tenant config's (5,000)
    # Share of the daily limit an import leaves for the organisation's other apps and next runs.
    quota_reserve_percent: float = 10.0

    def options(self) -> dict[str, Any]:
        return {
            "daily_limit": self.daily_limit,
            "quota_reserve_percent": self.quota_reserve_percent,
        }
