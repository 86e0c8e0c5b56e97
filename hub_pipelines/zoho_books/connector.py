"""Zoho Books v3: everything the hub knows about its protocol (see shared/protocols/zoho_books.md).

- Auth: Zoho OAuth 2 refresh grant on the data centre's accounts host; the refresh token is not
  rotated, access tokens (3,600 s) are cached encrypted with the config because Zoho caps token
  creation at 10 per 10 minutes. Calls carry `Authorization: Zoho-oauthtoken …` and
  `organization_id`; every body has `code` (0 = success).
- Lists: `page` / `per_page` (≤ 200) until `page_context.has_more_page` is false. List rows carry
  no GST fields and no lines, so changed records are fetched one by one: only those whose
  `last_modified_time` differs from what the warehouse holds.
- Incremental: invoices filter on `last_modified_time` (inclusive, second granularity, not
  sortable), so the cursor moves only when a run has read every page, minus an overlap. Contacts
  have no change filter: they are listed newest-modified first and the walk stops at the cursor.
- Rate limit: 100 requests/minute/organisation; the shared token bucket keeps under it.
- Daily quota: every API answer carries `X-Rate-Limit-Limit/-Remaining/-Reset` (daily counters);
  `quota_remaining` is the last `X-Rate-Limit-Remaining` seen, for progress reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx

from hub_pipelines import gst
from hub_pipelines.canonical import (
    ZERO,
    ConnectionTest,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    ListedRecord,
    Page,
    RecordFailure,
)
from hub_pipelines.connectors.base import (
    ListEndpoint,
    PageNumberPaginator,
    parse_date,
    parse_timestamp,
    records_at,
    to_decimal,
)
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import Failure, HttpClient, LogSink
from hub_pipelines.connectors.oauth import (
    BearerAuth,
    OAuthTokenManager,
    TokenStore,
    request_tokens,
    token_response_check,
)
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.tenants.models import ZohoBooksConfig

ACCOUNTS_HOSTS = {
    "in": "https://accounts.zoho.in",
    "com": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "com.au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
}
API_HOSTS = {
    "in": "https://www.zohoapis.in",
    "com": "https://www.zohoapis.com",
    "eu": "https://www.zohoapis.eu",
    "com.au": "https://www.zohoapis.com.au",
    "jp": "https://www.zohoapis.jp",
    "ca": "https://www.zohoapis.ca",
    "sa": "https://www.zohoapis.sa",
}
MAX_PAGE_SIZE = 200
QUOTA_HEADER = "X-Rate-Limit-Remaining"  # requests left today (header names are case-blind)
GST_TREATMENTS = {
    "business_gst": "registered_regular",
    "business_registered_regular": "registered_regular",
    "business_registered_composition": "registered_composition",
    "business_none": "unregistered_business",
    "business_unregistered": "unregistered_business",
    "consumer": "consumer",
    "overseas": "overseas",
    "business_sez": "sez",
    "sez": "sez",
    "sez_developer": "sez",
    "deemed_export": "deemed_export",
}
INVOICE_STATUSES = {
    "draft": "draft",
    "sent": "open",
    "viewed": "open",
    "unpaid": "open",
    "overdue": "open",
    "pending": "open",
    "partially_paid": "partially_paid",
    "paid": "paid",
    "void": "void",
}
TAX_HEADS = ("cgst", "sgst", "igst", "cess")


class MappingError(ValueError):
    """A source value that cannot be mapped; the message names the field."""


def zoho_timestamp(moment: datetime) -> str:
    """Zoho's filter format: `2025-03-01T00:00:00+0530` (no colon in the offset)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


NOT_FOUND_CODES = ("1002",)  # "Invoice does not exist." (404 or 400, unverified which)
TOKEN_BLOCK_SECONDS = 600  # Zoho blocks token creation for the rest of a 10-minute window


def response_check(response: httpx.Response) -> Failure | None:
    """Zoho's error shapes: `code` ≠ 0 even on a 2xx; "does not exist" as 400 or 404; a 429
    with `X-Rate-Limit-Remaining: 0` is the daily quota, which no retry inside a run can fix
    (the retry sensor re-runs after `X-Rate-Limit-Reset`); a truncated JSON body is retried."""
    if response.status_code == 429 and response.headers.get("X-Rate-Limit-Remaining") == "0":
        reset = response.headers.get("X-Rate-Limit-Reset", "")
        return Failure(
            Category.RATE_LIMIT,
            f"Zoho's daily API quota is used up; it resets in {reset or '?'} s",
            retryable=False,
            retry_after=float(reset) if reset.isdigit() else None,
            suggested_fix="The retry sensor re-runs the import once the daily quota resets; "
            "ask Zoho to raise the organisation's daily limit if this repeats.",
        )
    if response.status_code in (401, 403, 429) or response.status_code >= 500:
        return None  # the status rules: AUTH (with one re-authentication), or retried
    try:
        body = response.json()
    except ValueError:
        if response.status_code < 300:
            return Failure(Category.SERVER, "Zoho answered a body that is not JSON (truncated?)")
        return None
    code = str(body.get("code", 0)) if isinstance(body, dict) else "0"
    if code in NOT_FOUND_CODES:
        return Failure(Category.SOURCE_DATA, f"Zoho code {code}: {body.get('message')}", code=code)
    if code != "0":
        return Failure(
            Category.CONFIG if response.status_code >= 400 else Category.SOURCE_DATA,
            f"Zoho code {code}: {body.get('message')}",
            code=code,
        )
    return None


def token_check(response: httpx.Response) -> Failure | None:
    """Zoho answers token refusals with HTTP 200. "Access Denied" (too many token requests) is
    a temporary block, not a revoked grant: a re-run after the window helps, re-consent does not."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if error == "Access Denied":
        return Failure(
            Category.RATE_LIMIT,
            "Zoho refused to create an access token: more than 10 token requests in 10 minutes",
            retryable=False,
            retry_after=TOKEN_BLOCK_SECONDS,
            suggested_fix="The retry sensor re-runs after the 10-minute block. Check that no "
            "other tool refreshes this refresh token in a loop.",
        )
    return token_response_check(response)


@dataclass(frozen=True)
class ZohoStream:
    """A Zoho Books module the hub imports, declared: where it lists, where its detail lives,
    which id names a record, and how its incremental filter works."""

    entity: Entity
    path: str  # list at {path}, one record at {path}/{id}
    list_key: str  # the list body's records
    record_key: str  # the detail body's record
    id_field: str
    base_params: dict[str, Any]
    # Zoho filters invoices by `last_modified_time`; contacts have no documented change filter,
    # so they are listed whole (list calls are cheap: 200 rows each) and compared by version.
    change_filter: bool
    has_totals: bool  # list rows carry `total` (for reconciliation)

    def params_since(self, since: datetime | None) -> dict[str, Any]:
        if not self.change_filter or since is None:
            return dict(self.base_params)
        return {**self.base_params, "last_modified_time": zoho_timestamp(since)}


CONTACTS = ZohoStream(
    entity="customers",
    path="/contacts",
    list_key="contacts",
    record_key="contact",
    id_field="contact_id",
    base_params={
        "contact_type": "customer",
        "filter_by": "Status.All",
        "sort_column": "last_modified_time",
        "sort_order": "D",
    },
    change_filter=False,
    has_totals=False,
)
INVOICES = ZohoStream(
    entity="invoices",
    path="/invoices",
    list_key="invoices",
    record_key="invoice",
    id_field="invoice_id",
    base_params={"filter_by": "Status.All", "sort_column": "created_time"},
    change_filter=True,
    has_totals=True,
)
STREAMS: dict[str, ZohoStream] = {"customers": CONTACTS, "invoices": INVOICES}
TAXES = ZohoStream(  # the tax master, read for classifying taxes into GST heads
    entity="invoices",
    path="/settings/taxes",
    list_key="taxes",
    record_key="tax",
    id_field="tax_id",
    base_params={},
    change_filter=False,
    has_totals=False,
)


VersionsLookup = Callable[[Entity, list[str]], dict[str, datetime | None]]


class ZohoBooksConnector:
    system = "zoho_books"

    def __init__(
        self,
        config: ZohoBooksConfig,
        token_store: TokenStore,
        *,
        versions: VersionsLookup,
        page_size: int = MAX_PAGE_SIZE,
        cursor_overlap: timedelta = timedelta(minutes=5),
        requests_per_minute: int | None = None,
        settings: HttpSettings | None = None,
        log: LogSink | None = None,
    ) -> None:
        self.config = config
        self.org = config.organization_id
        self.versions = versions
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.overlap = cursor_overlap
        api = str(config.api_base_url or API_HOSTS[config.region]).rstrip("/")
        self.http = HttpClient(
            settings,
            base_url=f"{api}/books/v3",
            rate_limit=requests_per_minute or config.requests_per_minute,
            check=response_check,
            logger=log,
            quota_header=QUOTA_HEADER,
        )
        if self.http.rate_limit < 2:
            raise SyncError(
                Category.CONFIG,
                f"requests_per_minute must be at least 2, got {self.http.rate_limit}",
                suggested_fix="Set requests_per_minute to 2 or more (Zoho allows 100 per "
                "minute) in the tenant's connection config "
                "(`hub tenants add TENANT zoho_books --config FILE`) or on the zoho_books "
                "resource.",
            )
        self.http.redactor.register(*config.secrets())
        self.auth = BearerAuth(
            OAuthTokenManager(
                token_store,
                self._refresh,
                redactor=self.http.redactor,
                # Zoho keeps the refresh token: a refresh whose answer was lost may be repeated.
                rotating_refresh_tokens=False,
            ),
            scheme="Zoho-oauthtoken",
        )
        self._tax_heads: dict[str, str] | None = None

    @property
    def api_calls(self) -> int:
        return self.http.api_calls

    @property
    def retries(self) -> int:
        return self.http.retries

    @property
    def quota_remaining(self) -> int | None:
        """Requests left in the organisation's daily quota as Zoho's last API answer said
        (`X-Rate-Limit-Remaining`); None before the first answer."""
        return self.http.quota_remaining

    def close(self) -> None:
        self.http.close()

    # --- transport --------------------------------------------------------------------------

    def _refresh(self, refresh_token: str):
        accounts = str(self.config.accounts_url or ACCOUNTS_HOSTS[self.config.region]).rstrip("/")
        return request_tokens(
            self.http,
            f"{accounts}/oauth/v2/token",
            params={
                "refresh_token": refresh_token,
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret.get_secret_value(),
                "grant_type": "refresh_token",
            },
            check=token_check,
        )

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.http.get_json(
            path,
            params={"organization_id": self.org, **(params or {})},
            auth=self.auth,
            rate_key=f"zoho_books:{self.org}",
        )

    def _list(self, stream: ZohoStream, params: dict[str, Any]) -> ListEndpoint:
        return ListEndpoint(
            stream.path,
            records_at(stream.list_key),
            lambda: PageNumberPaginator(
                page_size=self.page_size,
                max_page_size=MAX_PAGE_SIZE,
                has_more=lambda body, _: bool(_page_context(body).get("has_more_page")),
            ),
            params=params,
        )

    # --- contract ---------------------------------------------------------------------------

    def test_connection(self) -> ConnectionTest:
        started = datetime.now()
        body = self._get("/organizations")
        latency = int((datetime.now() - started).total_seconds() * 1000)
        orgs = {str(o.get("organization_id")): o for o in body.get("organizations", [])}
        org = orgs.get(self.org)
        if org is None:
            return ConnectionTest(
                False, latency, message=f"organization_id {self.org} is not among this login's"
            )
        return ConnectionTest(True, latency, version="v3", organisation=org.get("name"))

    def customers(self, cursor: str | None) -> Iterator[Page]:
        return self._changed_pages(CONTACTS, cursor)

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        return self._changed_pages(INVOICES, cursor)

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        """Every record the source has now (list calls only). A total that is not a number
        counts as unknown: the record's own error is written by the walk, not here."""
        stream = STREAMS[entity]
        for page in self._list(stream, stream.base_params).pages(self._get):
            for row in page.records:
                if isinstance(row, dict) and row.get(stream.id_field) not in (None, ""):
                    total = _listed_total(row) if stream.has_totals else None
                    yield ListedRecord(str(row[stream.id_field]), total)

    def all_ids(self, entity: Entity) -> Iterator[str]:
        return (record.external_id for record in self.listing(entity))

    # --- the changed-records walk -----------------------------------------------------------

    def _changed_pages(self, stream: ZohoStream, cursor: str | None) -> Iterator[Page]:
        """List pages → detail calls for rows whose version changed → canonical pages.

        The cursor is only given with the last page: the list order is not the modification
        order, so a cursor taken mid-walk could skip rows of later pages after a crash. It never
        passes the walk's start, so a record edited on an already-read page during a long walk
        is read next time. Rows that failed hold it back too (to their own modification time,
        or, for a row without one, to where this walk started), so they are read until they load.
        """
        walk = _Walk(datetime.now(UTC), parse_timestamp(cursor) if cursor else None)
        since = walk.newest - self.overlap if walk.newest else None
        for source_page in self._list(stream, stream.params_since(since)).pages(self._get):
            rows, failures = _valid_rows(source_page.records, stream.id_field)
            for failure in failures:
                walk.hold(_row_time(failure.raw) if isinstance(failure.raw, dict) else None)
            listed = {str(r[stream.id_field]): r for r in rows}
            stamps = {external_id: _row_time(row) for external_id, row in listed.items()}
            known = self.versions(stream.entity, list(stamps))
            records = []
            for external_id, stamp in stamps.items():
                if stamp is not None and known.get(external_id) == stamp:
                    continue  # the warehouse already holds this version
                outcome = self._fetch_and_map(stream, listed[external_id], walk)
                if isinstance(outcome, RecordFailure):
                    failures.append(outcome)
                    walk.hold(stamp)
                elif outcome is not None:
                    records.append(outcome)
            walk.saw(stamps.values())
            yield Page(records, failures)
        yield Page([], [], cursor=walk.cursor())

    def _fetch_and_map(self, stream: ZohoStream, row: dict[str, Any], walk: _Walk) -> Any:
        external_id = str(row[stream.id_field])
        path = f"{stream.path}/{external_id}"
        try:
            body = self._get(path)
        except SyncError as error:
            if error.category == Category.SOURCE_DATA and error.code in ("404", *NOT_FOUND_CODES):
                return None  # deleted between the list call and now
            return walk.detail_failed(error, external_id, path, row)
        walk.detail_read()
        record = body.get(stream.record_key) if isinstance(body, dict) else None
        if not isinstance(record, dict):
            message = f"GET {path} has no '{stream.record_key}'"
            return RecordFailure(external_id, "SOURCE_DATA", message, body)
        try:
            if stream.entity == "customers":
                return map_contact(record)
            return map_invoice(record, self.tax_heads())
        except (MappingError, ValueError, TypeError, KeyError) as exc:
            return RecordFailure(
                external_id,
                "MAPPING",
                f"{stream.record_key} {external_id}: {exc}",
                record,
                suggested_fix="Correct the field named in the message in Zoho Books, or report "
                "the payload (`hub errors show ID`) if the value is valid there.",
            )

    def tax_heads(self) -> dict[str, str]:
        """tax_id and tax_name → GST head ('cgst', 'sgst', 'igst', 'cess', 'group'), from the
        organisation's tax master (`GET /settings/taxes`), read once per connector."""
        if self._tax_heads is None:
            self._tax_heads = {}
            for page in self._list(TAXES, TAXES.base_params).pages(self._get):
                for tax in page.records:
                    head = _head_of_tax(tax)
                    if head:
                        self._tax_heads[str(tax.get("tax_id"))] = head
                        self._tax_heads[_tax_name_key(tax.get("tax_name"))] = head
        return self._tax_heads


# --- mapping (pure functions) ----------------------------------------------------------------


def map_contact(contact: dict[str, Any]) -> Customer:
    """A Zoho contact (detail JSON) as a canonical customer."""
    address = contact.get("billing_address") or {}
    person = _primary_contact_person(contact)
    gstin = _text(contact.get("gst_no"))
    gstin = gstin.upper() if gstin else None
    state = _state(contact, "place_of_contact")
    return Customer(
        external_id=_required_text(contact, "contact_id"),
        name=_required_text(contact, "contact_name"),
        raw=contact,
        display_name=_text(contact.get("company_name")),
        email=_text(contact.get("email")) or _text(person.get("email")),
        phone=_text(contact.get("phone"))
        or _text(person.get("phone"))
        or _text(contact.get("mobile"))
        or _text(person.get("mobile")),
        gstin=gstin,
        pan=_text(contact.get("pan_no")) or (gstin[2:12] if gstin and len(gstin) == 15 else None),
        gst_treatment=_gst_treatment(contact.get("gst_treatment")),
        state_code=state or (gstin[:2] if gstin and gstin[:2].isdigit() else None),
        place_of_supply=state,
        billing_line1=_text(address.get("address")),
        billing_line2=_text(address.get("street2")),
        billing_city=_text(address.get("city")),
        billing_state=_text(address.get("state")),
        billing_postal_code=_text(address.get("zip")),
        billing_country=_text(address.get("country")),
        currency=_text(contact.get("currency_code")),
        is_active=contact.get("status", "active") == "active",
        opening_balance=_money(contact, "opening_balance_amount", required=False),
        outstanding_balance=_money(contact, "outstanding_receivable_amount", required=False),
        source_updated_at=_timestamp(contact, "last_modified_time"),
    )


def map_invoice(invoice: dict[str, Any], heads: dict[str, str]) -> Invoice:
    """A Zoho invoice (detail JSON) as a canonical invoice with lines; `heads` maps tax ids and
    names to GST heads (see `ZohoBooksConnector.tax_heads`)."""
    intra = _is_intra_state(invoice, heads)
    items = invoice.get("line_items")
    if not isinstance(items, list) or not items:
        # Zoho cannot save an invoice without items: an answer without them is incomplete.
        raise MappingError(f"line_items: expected at least one line, got {items!r}")
    lines = [_map_line(item, index, heads, intra) for index, item in enumerate(items, start=1)]
    taxes = _invoice_taxes(invoice, heads, lines)
    subtotal = _money(invoice, "sub_total")
    entity_discount = (
        _money(invoice, "discount_total", required=False) or ZERO
        if invoice.get("discount_type") == "entity_level"
        else ZERO
    )
    shipping = _money(invoice, "shipping_charge", required=False) or ZERO
    status = _text(invoice.get("status")) or ""
    if status not in INVOICE_STATUSES:
        raise MappingError(f"status: unknown Zoho invoice status {status!r}")
    return Invoice(
        external_id=_required_text(invoice, "invoice_id"),
        raw=invoice,
        status=INVOICE_STATUSES[status],
        invoice_number=_text(invoice.get("invoice_number")),
        customer_external_id=_required_text(invoice, "customer_id"),
        customer_name=_text(invoice.get("customer_name")),
        issue_date=_date(invoice, "date"),
        due_date=_date(invoice, "due_date"),
        currency=_text(invoice.get("currency_code")),
        exchange_rate=_money(invoice, "exchange_rate", required=False, places=6),
        subtotal=subtotal,
        discount_total=entity_discount + sum((line.discount for line in lines), ZERO),
        taxable_amount=subtotal - entity_discount + shipping,
        **taxes,
        tax_total=_money(invoice, "tax_total", required=False) or ZERO,
        round_off=_money(invoice, "adjustment", required=False) or ZERO,
        total=_money(invoice, "total"),
        balance_due=_money(invoice, "balance", required=False) or ZERO,
        place_of_supply=_state(invoice, "place_of_supply"),
        gst_treatment=_gst_treatment(invoice.get("gst_treatment")),
        irn=_text(invoice.get("irn")) or _text((invoice.get("einvoice_details") or {}).get("irn")),
        source_updated_at=_timestamp(invoice, "last_modified_time"),
        lines=lines,
    )


# --- mapping helpers


def _page_context(body: Any) -> dict[str, Any]:
    context = body.get("page_context") if isinstance(body, dict) else None
    if isinstance(context, list):  # Zoho's OpenAPI example shows an array; the live API an object
        context = context[0] if context else {}
    return context or {}


def _valid_rows(rows: list[Any], id_field: str) -> tuple[list[dict], list[RecordFailure]]:
    valid, failures = [], []
    for row in rows:
        if isinstance(row, dict) and row.get(id_field) not in (None, ""):
            valid.append(row)
        else:
            failures.append(RecordFailure(None, "SOURCE_DATA", f"list row without {id_field}", row))
    return valid, failures


# Detail answers that fail in a row before the walk gives up: one broken record is a record
# error, but a source that fails every detail call is down, and the run should say so.
MAX_DETAIL_FAILURES_IN_A_ROW = 5


class _Walk:
    """Where a changed-records walk stands: the newest version seen, the oldest that must be read
    again, and how many detail calls failed in a row."""

    def __init__(self, started: datetime, newest: datetime | None) -> None:
        self.started, self.start, self.newest = started, newest, newest
        self.oldest_failed: datetime | None = None
        self.held_at_start = False
        self.failures_in_a_row = 0

    def saw(self, stamps: Iterable[datetime | None]) -> None:
        self.newest = max([t for t in [self.newest, *stamps] if t is not None], default=None)

    def hold(self, stamp: datetime | None) -> None:
        """Keep the cursor at or before a failed row (at the walk's start when it has no time)."""
        if stamp is None:
            self.held_at_start = True
        else:
            self.oldest_failed = _earliest(self.oldest_failed, stamp)

    def detail_read(self) -> None:
        self.failures_in_a_row = 0

    def detail_failed(
        self, error: SyncError, external_id: str, path: str, listed: dict[str, Any]
    ) -> RecordFailure:
        """A detail call that failed after its retries: a record error, unless the source is
        failing as a whole (auth, throttling, network, or many details in a row)."""
        self.failures_in_a_row += 1
        record_level = error.category in (Category.SERVER, Category.SOURCE_DATA)
        if not record_level or self.failures_in_a_row >= MAX_DETAIL_FAILURES_IN_A_ROW:
            raise error
        return RecordFailure(
            external_id,
            str(error.category),
            f"GET {path}: {error.message}",
            listed,  # the list row: all the hub could read of the record
            suggested_fix="The detail of this record could not be read; the next run reads it "
            "again. If it repeats, open the record in the source system and report it.",
        )

    def cursor(self) -> str | None:
        if self.held_at_start or self.newest is None:
            return self.start.isoformat() if self.start else None
        final = _earliest(self.newest, self.oldest_failed, self.started)
        return final.isoformat() if final else None


def _listed_total(row: dict[str, Any]) -> Decimal | None:
    try:
        return to_decimal(row.get("total"))
    except ValueError:
        return None


def _row_time(row: dict[str, Any]) -> datetime | None:
    try:
        return parse_timestamp(row.get("last_modified_time"))
    except ValueError:
        return None  # unknown version: always fetch the detail


def _earliest(*times: datetime | None) -> datetime | None:
    return min([t for t in times if t is not None], default=None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _required_text(record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise MappingError(f"{field}: expected a non-empty string, got {value!r}")
    return str(value).strip()


def _money(
    record: dict[str, Any], field: str, required: bool = True, places: int = 2
) -> Decimal | None:
    value = record.get(field)
    if value is None or value == "":
        if required:
            raise MappingError(f"{field}: missing")
        return None
    try:
        return to_decimal(value, places=places)
    except ValueError as exc:
        raise MappingError(f"{field}: {exc}") from None


def _date(record: dict[str, Any], field: str):
    try:
        return parse_date(_text(record.get(field)))
    except ValueError:
        raise MappingError(f"{field}: not a YYYY-MM-DD date: {record.get(field)!r}") from None


def _timestamp(record: dict[str, Any], field: str) -> datetime | None:
    try:
        return parse_timestamp(_text(record.get(field)))
    except ValueError:
        raise MappingError(f"{field}: not a timestamp: {record.get(field)!r}") from None


def _state(record: dict[str, Any], field: str) -> str | None:
    """A Zoho state code as the GST state code; empty for exports, an error when unknown (a
    wrong place of supply would put the invoice's tax under the wrong state)."""
    code = _text(record.get(field))
    state = gst.state_code_from_zoho(code)
    if code and state is None:
        raise MappingError(f"{field}: {code!r} is not an Indian state or union territory code")
    return state


def _gst_treatment(value: Any) -> str:
    return GST_TREATMENTS.get(_text(value) or "", "unknown")


def _primary_contact_person(contact: dict[str, Any]) -> dict[str, Any]:
    people = [p for p in contact.get("contact_persons") or [] if isinstance(p, dict)]
    primary = [p for p in people if p.get("is_primary_contact")]
    return (primary or people or [{}])[0]


def _head_of_tax(tax: dict[str, Any]) -> str | None:
    """The GST head of a tax-master row: its `tax_specific_type`, a group, or the name prefix."""
    specific = (_text(tax.get("tax_specific_type")) or "").lower()
    if specific in TAX_HEADS:
        return specific
    if tax.get("tax_type") == "tax_group" or tax.get("is_tax_group"):
        return "group"
    return _head_from_name(tax.get("tax_name"))


def _tax_name_key(name: Any) -> str:
    """Summary names carry the rate ("CGST9 (9%)"); the tax master's names may not."""
    return re.sub(r"\s*\(\s*[\d.]+\s*%\s*\)\s*$", "", str(name or "")).strip().lower()


def _head_for(tax: dict[str, Any], heads: dict[str, str]) -> str | None:
    """A tax's GST head: by id or by name in the tax master, else by the name's prefix."""
    return (
        heads.get(str(tax.get("tax_id")))
        or heads.get(_tax_name_key(tax.get("tax_name")))
        or _head_from_name(tax.get("tax_name"))
    )


def _head_from_name(name: Any) -> str | None:
    text = (_text(name) or "").upper()
    for prefix, head in (("CGST", "cgst"), ("SGST", "sgst"), ("UTGST", "sgst"), ("IGST", "igst")):
        if text.startswith(prefix):
            return head
    if "CESS" in text:
        return "cess"
    return None


def _is_intra_state(invoice: dict[str, Any], heads: dict[str, str]) -> bool:
    """Intra-state when the taxes are CGST/SGST (a group); inter-state when IGST."""
    for tax in invoice.get("taxes") or []:
        head = _head_for(tax, heads)
        if head in ("cgst", "sgst"):
            return True
        if head == "igst":
            return False
    return any(
        heads.get(str(item.get("tax_id"))) == "group" for item in invoice.get("line_items") or []
    )


def _map_line(item: dict[str, Any], index: int, heads: dict[str, str], intra: bool) -> InvoiceLine:
    if not isinstance(item, dict):
        raise MappingError(f"line_items[{index}]: not an object")
    try:
        return _line(item, index, heads, intra)
    except ValueError as exc:  # MappingError included: name the line as well as the field
        raise MappingError(f"line_items[{index}].{exc}") from None


def _line(item: dict[str, Any], index: int, heads: dict[str, str], intra: bool) -> InvoiceLine:
    taxable = _money(item, "item_total")
    rate = _money(item, "tax_percentage", required=False, places=4) or ZERO
    cgst = sgst = igst = cess = ZERO
    per_line = [t for t in item.get("line_item_taxes") or [] if isinstance(t, dict)]
    if per_line:  # the source's own per-line amounts win over a computed split
        for tax in per_line:
            head = _head_for(tax, heads)
            amount = _money(tax, "tax_amount", required=False) or ZERO
            cgst, sgst, igst, cess = _add_head(head, amount, (cgst, sgst, igst, cess), tax)
    elif rate:
        cgst, sgst, igst = gst.split_gst(taxable, rate, intra)
    return InvoiceLine(
        line_number=index,  # the position: item_order may repeat or skip; it stays in raw
        raw=item,
        external_id=_text(item.get("line_item_id")),
        item_name=_text(item.get("name")),
        description=_text(item.get("description")),
        hsn_sac=_text(item.get("hsn_or_sac")),
        quantity=_money(item, "quantity", required=False, places=4),
        unit=_text(item.get("unit")),
        rate=_money(item, "rate", required=False, places=4),
        discount=_money(item, "discount_amount", required=False) or ZERO,
        taxable_amount=taxable,
        tax_rate=rate,
        cgst=cgst,
        sgst=sgst,
        igst=igst,
        cess=cess,
        line_total=taxable + cgst + sgst + igst + cess,
    )


def _add_head(head: str | None, amount: Decimal, totals: tuple[Decimal, ...], tax: Any) -> tuple:
    cgst, sgst, igst, cess = totals
    if head == "cgst":
        return cgst + amount, sgst, igst, cess
    if head == "sgst":
        return cgst, sgst + amount, igst, cess
    if head == "igst":
        return cgst, sgst, igst + amount, cess
    if head == "cess":
        return cgst, sgst, igst, cess + amount
    raise MappingError(
        f"taxes: cannot tell whether {tax.get('tax_name')!r} ({amount}) is CGST, SGST, IGST or "
        "cess; give the tax a GST type (tax_specific_type) in Zoho Books"
    )


def _invoice_taxes(
    invoice: dict[str, Any], heads: dict[str, str], lines: list[InvoiceLine]
) -> dict[str, Decimal]:
    """Invoice-level heads from the `taxes` summary, or the sum of the lines when it is absent."""
    summary = [t for t in invoice.get("taxes") or [] if isinstance(t, dict)]
    if not summary:
        return {head: sum((getattr(line, head) for line in lines), ZERO) for head in TAX_HEADS}
    totals: tuple[Decimal, ...] = (ZERO, ZERO, ZERO, ZERO)
    for tax in summary:
        head = _head_for(tax, heads)
        amount = _money(tax, "tax_amount", required=False) or ZERO
        totals = _add_head(head, amount, totals, tax)
    return dict(zip(TAX_HEADS, totals, strict=True))


# --- Dagster resource -------------------------------------------------------------------------


class ZohoBooksResource(dg.ConfigurableResource):
    """How the hub talks to Zoho Books; per-tenant credentials come from the vault at run time."""

    page_size: int = MAX_PAGE_SIZE
    cursor_overlap_seconds: int = 300
    requests_per_minute: int | None = None  # default: the tenant config's (90 = under 100)

    def connector(
        self, config: ZohoBooksConfig, token_store: TokenStore, versions: VersionsLookup, log=None
    ) -> ZohoBooksConnector:
        return ZohoBooksConnector(
            config,
            token_store,
            versions=versions,
            page_size=self.page_size,
            cursor_overlap=timedelta(seconds=self.cursor_overlap_seconds),
            requests_per_minute=self.requests_per_minute,
            log=log,
        )
