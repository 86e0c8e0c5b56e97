"""Zoho Books v3: everything the hub knows about its protocol (see shared/protocols/zoho_books.md).

- Auth: Zoho OAuth 2 refresh grant on the data centre's accounts host; the refresh token is not
  rotated, access tokens (3,600 s) are cached encrypted with the config because Zoho caps token
  creation at 10 per 10 minutes. Calls carry `Authorization: Zoho-oauthtoken …` and
  `organization_id`; every body has `code` (0 = success).
- Lists: `page` / `per_page` (≤ 200) until `page_context.has_more_page` is false, read in
  windows that overlap the rows already read (`OverlappingWindows`), so a row deleted or added
  during the walk never makes another one skip. List rows carry no GST fields and no lines, so
  changed records are fetched one by one: only those whose `last_modified_time` differs from what
  the warehouse holds.
- Incremental: invoices (oldest created first) filter on `last_modified_time` (inclusive, second
  granularity, not sortable), so the cursor moves only when a run has read every page, minus an
  overlap. Contacts have no change filter: they are listed newest-modified first and the walk
  stops after the first window older than the cursor. A walk without a cursor lists everything
  and serves reconciliation and delete detection (`listed`); otherwise `count` counts the source
  from the page flags, in about one call.
- Rate limit: 100 requests/minute/organisation; the shared token bucket keeps under it.
- Daily quota: every API answer carries `X-Rate-Limit-Limit/-Remaining/-Reset` (daily counters);
  `quota_remaining` is the last `X-Rate-Limit-Remaining` seen, for progress reports, and
  `DailyQuota` stops a walk before it eats into a reserve, naming the reset.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

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
    MappingError,
    OverlappingWindows,
    PageNumberPaginator,
    money,
    parse_date,
    parse_timestamp,
    records_at,
    to_decimal,
)
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.gst_heads import (
    TAX_AMOUNTS,
    TAX_HEADS,
    add_tax,
    head_from_name,
    no_taxes,
)
from hub_pipelines.connectors.http import Failure, HttpClient, LogSink, json_body
from hub_pipelines.connectors.oauth import (
    BearerAuth,
    OAuthTokenManager,
    TokenStore,
    request_tokens,
    token_response_check,
)
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.source import ConnectorResource, HttpConnector
from hub_pipelines.connectors.walk import (
    ReadOutcome,
    Stream,
    VersionsLookup,
    Walk,
    changed_pages,
    field_time,
    mapped,
)
from hub_pipelines.tenants.models import ZohoBooksConfig

ACCOUNTS_HOSTS = {
    "in": "https://accounts.zoho.in",
    "com": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "com.au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
    "uk": "https://accounts.zoho.uk",
}
API_HOSTS = {
    "in": "https://www.zohoapis.in",
    "com": "https://www.zohoapis.com",
    "eu": "https://www.zohoapis.eu",
    "com.au": "https://www.zohoapis.com.au",
    "jp": "https://www.zohoapis.jp",
    "ca": "https://www.zohoapis.ca",
    "sa": "https://www.zohoapis.sa",
    "uk": "https://www.zohoapis.uk",
}
MAX_PAGE_SIZE = 200
# Detail calls in flight at once per import. Zoho enforces a concurrent-call limit whose size it
# does not publish (protocol sheet: unverified); a few at once hide the round trip's latency,
# and the per-minute bucket still paces every call.
CONCURRENT_DETAIL_READS = 4
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
    # Organisations that use approvals (API strings unverified): not issued, like drafts.
    "pending_approval": "pending_approval",
    "approved": "approved",
    "rejected": "rejected",
}


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
        body = json_body(response)
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
        error = json_body(response).get("error")
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
    which id names a record, how its list is sorted and how its incremental walk is bounded."""

    entity: Entity
    path: str  # list at {path}, one record at {path}/{id}
    list_key: str  # the list body's records
    record_key: str  # the detail body's record
    id_field: str
    base_params: dict[str, Any]
    # Zoho filters invoices by `last_modified_time`; contacts have no documented change filter.
    change_filter: bool
    has_totals: bool  # list rows carry `total` (for reconciliation)
    sort_field: str = "created_time"  # the list row field `base_params` sorts by
    descending: bool = False
    # Sorted newest-modified first, the walk stops after the first window older than the cursor
    # (contacts): only while the rows come in that order.
    stops_early: bool = False

    @property
    def walked(self) -> Stream:
        """The stream as the kit's walk reads it: rows are versioned by `last_modified_time`."""
        total = _listed_total if self.has_totals else None
        return Stream(self.entity, self.id_field, field_time("last_modified_time"), total)

    def params_since(self, since: datetime | None) -> dict[str, Any]:
        if not self.change_filter or since is None:
            return dict(self.base_params)
        return {**self.base_params, "last_modified_time": zoho_timestamp(since)}


# Contacts: `sort_column=last_modified_time` is honoured (a real answer with `sort_order=A` echoes
# it and comes in that order); newest first, an incremental walk stops at the cursor.
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
    sort_field="last_modified_time",
    descending=True,
    stops_early=True,
)
# Invoices: oldest created first, so new invoices join the end of the walk (Zoho's default order,
# newest first, puts them in front of it); `created_time` never changes.
INVOICES = ZohoStream(
    entity="invoices",
    path="/invoices",
    list_key="invoices",
    record_key="invoice",
    id_field="invoice_id",
    base_params={"filter_by": "Status.All", "sort_column": "created_time", "sort_order": "A"},
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

MAPPING_FIX = (
    "Correct the field named in the message in Zoho Books, or report the payload "
    "(`hub errors show ID`) if the value is valid there."
)


class ZohoBooksConnector(HttpConnector):
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
        quota_reserve_percent: float = 10.0,
    ) -> None:
        self.config = config
        self.org = config.organization_id
        self.versions = versions
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.overlap = cursor_overlap
        self.quota = DailyQuota(reserve_percent=quota_reserve_percent)
        api = str(config.api_base_url or API_HOSTS[config.region]).rstrip("/")
        self.http = HttpClient(
            settings,
            base_url=f"{api}/books/v3",
            rate_limit=requests_per_minute or config.requests_per_minute,
            check=self._check,
            logger=log,
            quota_header=QUOTA_HEADER,
            calls_at_once=CONCURRENT_DETAIL_READS,
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
        self._tax_heads_lock = threading.Lock()

    # --- transport --------------------------------------------------------------------------

    def _check(self, response: httpx.Response) -> Failure | None:
        self.quota.note(response.headers)  # the limit and the reset come with every API answer
        return response_check(response)

    def _spend(self) -> None:
        """Refuse a call that would eat into the daily quota's reserve (`DailyQuota`)."""
        if self.quota.spent(self.quota_remaining):
            raise self.quota.stop(self.quota_remaining)

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

    def _spending_get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        self._spend()
        return self._get(path, params)

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
        """Every record the source has now (list calls only, in overlapping windows). A total
        that is not a number counts as unknown: the record's own error is written by the walk."""
        stream = STREAMS[entity]
        for rows in self._windows(stream, stream.base_params):
            for row in rows:
                if isinstance(row, dict) and row.get(stream.id_field) not in (None, ""):
                    total = _listed_total(row) if stream.has_totals else None
                    yield ListedRecord(str(row[stream.id_field]), total)

    def count(self, entity: Entity, near: int = 0) -> int:
        """How many records the source lists now, from `page`/`per_page`/`has_more_page` alone
        (Zoho's list answers carry no count): the page where record `near` would be, then
        doubling or halving until the last page is found. One call when the count is within a
        page of `near` (the warehouse's count), about 2·log2(difference / page) otherwise."""
        stream = STREAMS[entity]
        per_page = self.page_size
        low, high = 0, None  # a page known full with more after it / a page known empty
        page, step = max(1, math.ceil(near / per_page)), 1
        for _ in range(64):
            self._spend()
            body = self._get(
                stream.path, {**stream.base_params, "page": page, "per_page": per_page}
            )
            rows = records_at(stream.list_key)(body)
            more = bool(_page_context(body).get("has_more_page"))
            if rows and not more:
                return (page - 1) * per_page + len(rows)
            if rows:
                low = page
            elif page == 1:
                return 0
            else:
                high = page
            if high is None:
                page = low + step  # gallop forward
            elif low == 0:
                page = max(1, high - step)  # gallop back
            elif high - low > 1:
                page = (low + high) // 2
            else:
                page = low  # the list changed between two calls: look again
            step *= 2
        raise SyncError(Category.SOURCE_DATA, f"could not count the {entity} Zoho lists")

    # --- the changed-records walk -----------------------------------------------------------

    def _windows(self, stream: ZohoStream, params: dict[str, Any]) -> OverlappingWindows:
        """The stream's list in overlapping windows (`OverlappingWindows`): no row is skipped
        when rows are deleted, added or edited while the walk pages through the list."""

        def fetch(page: int, per_page: int) -> Any:
            self._spend()
            return self._get(stream.path, {**params, "page": page, "per_page": per_page})

        return OverlappingWindows(
            fetch,
            records_at(stream.list_key),
            lambda body: bool(_page_context(body).get("has_more_page")),
            key=lambda row: _row_time(row, stream.sort_field),
            identity=stream.walked.row_id,
            page_size=self.page_size,
            max_page_size=MAX_PAGE_SIZE,
            descending=stream.descending,
        )

    def _changed_pages(self, stream: ZohoStream, cursor: str | None) -> Iterator[Page]:
        """The kit's walk (`connectors.walk`) over the stream's list windows, with a detail call
        for each row whose version changed. List order is not modification order, so the cursor
        comes with the last page. Invoices are filtered by `last_modified_time`; contacts have
        no change filter and, listed newest-modified first, stop after the first window older
        than the cursor. Before a call that would eat into the daily quota's reserve, the
        records read so far are handed over and the walk stops (`DailyQuota`)."""
        walk = Walk(cursor, self.overlap)
        listed = self.new_listing(stream.entity)
        windows = self._windows(stream, stream.params_since(walk.since))
        stops_early = stream.stops_early and walk.since is not None
        yield from changed_pages(
            stream.walked,
            windows,
            lambda row, walk: self._fetch_and_map(stream, row, walk),
            walk=walk,
            versions=self.versions,
            listed=listed,
            complete=walk.since is None or not stream.change_filter,
            budget=self._budget,
            stop_after=(lambda: _passed(windows, walk.since)) if stops_early else None,
            concurrency=CONCURRENT_DETAIL_READS,
        )

    def _budget(self, in_flight: int = 0) -> SyncError | None:
        """Stop before a call that would eat into the reserve, counting the calls still in
        flight as spent (the quota is read from answers): with them, a call that might find
        nothing left at all waits for their answers (the walk then asks again)."""
        remaining = self.quota_remaining
        if remaining is None:
            return None
        remaining -= in_flight
        if self.quota.spent(remaining) or remaining < 0:
            return self.quota.stop(remaining)
        return None

    def _fetch_and_map(self, stream: ZohoStream, row: dict[str, Any], walk: Walk) -> ReadOutcome:
        external_id = str(row[stream.id_field])
        path = f"{stream.path}/{external_id}"
        try:
            body = self._get(path)
        except SyncError as error:
            if error.category == Category.SOURCE_DATA and error.code in ("404", *NOT_FOUND_CODES):
                return None  # deleted between the list call and now
            return walk.detail_failed(error, external_id, f"GET {path}", row)
        walk.detail_read()
        record = body.get(stream.record_key) if isinstance(body, dict) else None
        if not isinstance(record, dict):
            message = f"GET {path} has no '{stream.record_key}'"
            return RecordFailure(external_id, "SOURCE_DATA", message, body)
        mapper = map_contact if stream.entity == "customers" else self._map_invoice
        return mapped(external_id, record, mapper, stream.record_key, MAPPING_FIX)

    def _map_invoice(self, record: dict[str, Any]) -> Invoice:
        return map_invoice(record, self.tax_heads())

    def tax_heads(self) -> dict[str, str]:
        """tax_id and tax_name → GST head ('cgst', 'sgst', 'igst', 'cess', 'group'), from the
        organisation's tax master (`GET /settings/taxes`), read once per connector."""
        with self._tax_heads_lock:  # detail reads run concurrently: one master read, whole
            if self._tax_heads is None:
                heads: dict[str, str] = {}
                for page in self._list(TAXES, TAXES.base_params).pages(self._spending_get):
                    for tax in page.records:
                        head = _head_of_tax(tax)
                        if head:
                            heads[str(tax.get("tax_id"))] = head
                            heads[_tax_name_key(tax.get("tax_name"))] = head
                self._tax_heads = heads
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
    names to GST heads (see `ZohoBooksConnector.tax_heads`).

    Amounts are tax-exclusive whatever `is_inclusive_tax` says; an invoice-level discount before
    tax is spread over the lines; the lines' taxable values are checked against Zoho's own
    `total_taxable_amount`; `roundoff_value` is the round-off and everything else in the total
    outside the taxable value and tax is `adjustment` (docs/connectors/zoho_books.md, section 10).
    """
    items = invoice.get("line_items")
    if not isinstance(items, list) or not items:
        # Zoho cannot save an invoice without items: an answer without them is incomplete.
        raise MappingError(f"line_items: expected at least one line, got {items!r}")
    status = _text(invoice.get("status")) or ""
    if status not in INVOICE_STATUSES:
        raise MappingError(f"status: unknown Zoho invoice status {status!r}")
    intra = _is_intra_state(invoice, heads)
    inclusive = _flag(invoice.get("is_inclusive_tax"))
    drafts = [_map_line(item, index, heads, inclusive) for index, item in enumerate(items, start=1)]
    discount = (
        _money(invoice, "discount_total", required=False) or ZERO
        if invoice.get("discount_type") == "entity_level"
        else ZERO
    )
    before_tax = _flag(invoice.get("is_discount_before_tax"), default=True)
    if discount and before_tax:
        _spread(drafts, discount)
    lines = [_finish_line(draft, heads, intra, inclusive) for draft in drafts]
    shipping = _shipping(invoice, heads, intra, inclusive)
    _match_zoho_taxable(invoice, lines, shipping, inclusive)
    lines_taxable = sum((line.taxable_amount for line in lines), ZERO)
    amounts = _invoice_taxes(invoice, heads, lines, shipping)
    tax_total = _money(invoice, "tax_total", required=False)
    if inclusive or invoice.get("sub_total") in (None, ""):
        subtotal = lines_taxable + (discount if before_tax else ZERO)
    else:
        subtotal = _money(invoice, "sub_total")
    adjustment = (
        (_money(invoice, "adjustment", required=False) or ZERO)
        + (ZERO if shipping.taxed else shipping.exclusive)  # a charge outside the taxable value
        - (ZERO if before_tax else discount)  # a discount after tax leaves the taxable value
    )
    einvoice = invoice.get("einvoice_details")
    einvoice = einvoice if isinstance(einvoice, dict) else {}
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
        discount_total=discount + sum((draft.item_discount for draft in drafts), ZERO),
        taxable_amount=lines_taxable + (shipping.exclusive if shipping.taxed else ZERO),
        **amounts,
        tax_total=sum(amounts.values(), ZERO) if tax_total is None else tax_total,
        round_off=_money(invoice, "roundoff_value", required=False) or ZERO,
        adjustment=adjustment,
        total=_money(invoice, "total"),
        balance_due=_money(invoice, "balance", required=False) or ZERO,
        place_of_supply=_state(invoice, "place_of_supply"),
        gst_treatment=_gst_treatment(invoice.get("gst_treatment")),
        irn=_text(einvoice.get("inv_ref_num"))
        or _text(invoice.get("irn"))
        or _text(einvoice.get("irn")),
        source_updated_at=_timestamp(invoice, "last_modified_time"),
        lines=lines,
    )


# --- mapping helpers


def _page_context(body: Any) -> dict[str, Any]:
    context = body.get("page_context") if isinstance(body, dict) else None
    if isinstance(context, list):  # Zoho's OpenAPI example shows an array; the live API an object
        context = context[0] if context else {}
    return context or {}


def _listed_total(row: dict[str, Any]) -> Decimal | None:
    try:
        return to_decimal(row.get("total"))
    except ValueError:
        return None


def _row_time(row: Any, field: str = "last_modified_time") -> datetime | None:
    if not isinstance(row, dict):
        return None
    try:
        return parse_timestamp(row.get(field))
    except (ValueError, TypeError):
        return None  # unknown version: always fetch the detail


def _passed(windows: OverlappingWindows, since: datetime) -> bool:
    """A newest-first walk has passed `since`: its last row read is older, and every window so
    far came in that order (a source that ignored the sort would be listed to the end)."""
    return windows.ordered and windows.last is not None and windows.last < since


@dataclass
class DailyQuota:
    """Zoho's daily API quota as its answers state it, kept as a budget.

    Every API answer carries `X-Rate-Limit-Limit` (the day's quota: 1,000 on a free plan),
    `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (seconds until the counter resets: midnight
    in the organisation's time zone in real answers). The walk stops before a call once the
    remaining requests are down to `reserve_percent` of the limit, so the day's quota is never
    used up by an import (other tools of the organisation, and the hub's next run, keep some),
    and the stop names the reset: the retry sensor resumes then. A reserve of 0 (limit × percent
    under one request) keeps nothing back: Zoho's own 429 stops the walk instead.
    """

    reserve_percent: float = 10.0
    limit: int | None = None
    resets_at: datetime | None = None

    def note(self, headers: Mapping[str, str]) -> None:
        limit = (headers.get("X-Rate-Limit-Limit") or "").strip()
        reset = (headers.get("X-Rate-Limit-Reset") or "").strip()
        if limit.isdigit():
            self.limit = int(limit)
        if reset.isdigit():
            self.resets_at = datetime.now(UTC) + timedelta(seconds=int(reset))

    @property
    def reserve(self) -> int:
        return int(self.limit * self.reserve_percent / 100) if self.limit else 0

    def spent(self, remaining: int | None) -> bool:
        """Whether the next call would eat into the reserve."""
        return bool(self.reserve) and remaining is not None and remaining <= self.reserve

    def seconds_to_reset(self) -> int | None:
        if self.resets_at is None:
            return None
        return max(0, math.ceil((self.resets_at - datetime.now(UTC)).total_seconds()))

    def stop(self, remaining: int | None) -> SyncError:
        wait = self.seconds_to_reset()
        if wait is None or self.resets_at is None:
            when = "after Zoho's daily reset (the answers gave no X-Rate-Limit-Reset)"
        else:
            when = f"after {self.resets_at:%Y-%m-%d %H:%M} UTC, when it resets (in {wait:,} s)"
        return SyncError(
            Category.RATE_LIMIT,
            f"stopped before Zoho's daily API quota ran out: {remaining:,} of {self.limit:,} "
            f"requests left today and {self.reserve:,} kept in reserve; the records read so far "
            f"are loaded and the import resumes {when}",
            retryable=False,
            retry_after=wait,
            code="quota_reserve",
            suggested_fix="Nothing to do: the retry sensor re-runs the import after the reset and "
            "skips the records already loaded. To finish a large first import sooner, ask Zoho to "
            "raise the organisation's daily limit, or lower quota_reserve_percent on the "
            "zoho_books resource.",
        )


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
    """Zoho's amounts are required unless said otherwise."""
    return money(record, field, required=required, places=places)


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


def _flag(value: Any, default: bool = False) -> bool:
    """A Zoho boolean: JSON true/false, or the strings "true"/"false"; blank is `default`."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _head_of_tax(tax: dict[str, Any]) -> str | None:
    """The GST head of a tax-master row: its `tax_specific_type`, a group, or the name prefix."""
    specific = (_text(tax.get("tax_specific_type")) or "").lower()
    if specific in TAX_HEADS:
        return specific
    if tax.get("tax_type") == "tax_group" or tax.get("is_tax_group"):
        return "group"
    return head_from_name(tax.get("tax_name"))


def _tax_name_key(name: Any) -> str:
    """Summary names carry the rate ("CGST9 (9%)"); the tax master's names may not."""
    return re.sub(r"\s*\(\s*[\d.]+\s*%\s*\)\s*$", "", str(name or "")).strip().lower()


def _head_for(tax: dict[str, Any], heads: dict[str, str]) -> str | None:
    """A tax entry's GST head ('cgst', 'sgst', 'igst', 'cess' or 'group'): its own
    `tax_specific_type` (India's per-line taxes carry one), else by id or by name in the tax
    master, else by the name's prefix; None for a tax that is not GST."""
    specific = (_text(tax.get("tax_specific_type")) or "").lower()
    if specific in TAX_HEADS:
        return specific
    return (
        heads.get(str(tax.get("tax_id")))
        or heads.get(_tax_name_key(tax.get("tax_name")))
        or head_from_name(tax.get("tax_name"))
    )


def _is_intra_state(invoice: dict[str, Any], heads: dict[str, str]) -> bool:
    """Zoho's own `tax_specification` ("intra" / "inter") when present; otherwise intra-state
    when the taxes are CGST/SGST (a group), inter-state when IGST."""
    specification = (_text(invoice.get("tax_specification")) or "").lower()
    if specification in ("intra", "inter"):
        return specification == "intra"
    for tax in invoice.get("taxes") or []:
        head = _head_for(tax, heads) if isinstance(tax, dict) else None
        if head in ("cgst", "sgst", "group"):
            return True
        if head == "igst":
            return False
    return any(
        isinstance(item, dict) and heads.get(str(item.get("tax_id"))) == "group"
        for item in invoice.get("line_items") or []
    )


def _classified(entries: Any, heads: dict[str, str], field: str) -> dict[str, Decimal] | None:
    """Tax entries (`taxes`, `line_item_taxes`, `shipping_charge_taxes`) summed per head; None
    when there are none."""
    entries = [t for t in entries or [] if isinstance(t, dict)]
    if not entries:
        return None
    totals = no_taxes()
    for index, tax in enumerate(entries):
        try:
            amount = _money(tax, "tax_amount", required=False) or ZERO
        except MappingError as exc:
            raise MappingError(f"{field}[{index}].{exc}") from None
        add_tax(totals, _head_for(tax, heads), amount)
    return totals


@dataclass
class _LineDraft:
    """A line while its invoice is mapped: amounts as Zoho states them, before the share of an
    invoice-level discount is taken off and the tax-exclusive value is derived."""

    line: InvoiceLine
    item: dict[str, Any]
    amount: Decimal  # the line's total as stated: tax-inclusive when the invoice is
    item_discount: Decimal
    taxes: dict[str, Decimal] | None  # from `line_item_taxes`; None: computed from the rate
    share: Decimal = ZERO  # of an invoice-level discount before tax


def _map_line(item: Any, index: int, heads: dict[str, str], inclusive: bool) -> _LineDraft:
    if not isinstance(item, dict):
        raise MappingError(f"line_items[{index}]: not an object")
    try:
        return _line(item, index, heads, inclusive)
    except ValueError as exc:  # MappingError included: name the line as well as the field
        raise MappingError(f"line_items[{index}].{exc}") from None


def _line(item: dict[str, Any], index: int, heads: dict[str, str], inclusive: bool) -> _LineDraft:
    amount = _money(item, "item_total")
    if inclusive:  # Zoho's name for the inclusive amount; what item_total holds is unverified
        amount = _money(item, "item_total_inclusive_of_tax", required=False) or amount
    rate = _money(item, "tax_percentage", required=False, places=4) or ZERO
    item_discount = _money(item, "discount_amount", required=False) or ZERO
    line = InvoiceLine(
        line_number=index,  # the position: item_order may repeat or skip; it stays in raw
        raw=item,
        external_id=_text(item.get("line_item_id")),
        item_name=_text(item.get("name")),
        description=_text(item.get("description")),
        hsn_sac=_text(item.get("hsn_or_sac")),
        quantity=_money(item, "quantity", required=False, places=4),
        unit=_text(item.get("unit")),
        rate=_money(item, "rate", required=False, places=4),
        discount=item_discount,
        tax_rate=rate,
    )
    taxes = _classified(item.get("line_item_taxes"), heads, "line_item_taxes")
    return _LineDraft(line, item, amount, item_discount, taxes)


def _spread(drafts: list[_LineDraft], discount: Decimal) -> None:
    """An invoice-level discount before tax, shared over the lines in proportion to their
    amounts (rounded to the paisa, the last line taking what rounding leaves), as Zoho computes
    each line's tax on its discounted amount."""
    weight = sum((draft.amount for draft in drafts), ZERO)
    if not weight:
        return
    left = discount
    for draft in drafts[:-1]:
        draft.share = gst.round_money(discount * draft.amount / weight)
        left -= draft.share
    drafts[-1].share = left


def _finish_line(
    draft: _LineDraft, heads: dict[str, str], intra: bool, inclusive: bool
) -> InvoiceLine:
    """The line's tax-exclusive taxable value and its taxes by head."""
    line, item = draft.line, draft.item
    base = draft.amount - draft.share
    taxes = draft.taxes
    if taxes is None:
        head = _head_for({"tax_id": item.get("tax_id"), "tax_name": item.get("tax_name")}, heads)
        if head is None and not _text(item.get("tax_name")):
            head = "group" if intra else "igst"  # a bare percentage: GST by the supply type
        taxes = _computed_taxes(base, line.tax_rate or ZERO, head, inclusive)
    line.discount = draft.item_discount + draft.share
    line.taxable_amount = base - sum(taxes.values(), ZERO) if inclusive else base
    for name, amount in taxes.items():
        setattr(line, name, amount)
    line.line_total = line.taxable_amount + sum(taxes.values(), ZERO)
    return line


def _computed_taxes(
    amount: Decimal, rate: Decimal, head: str | None, inclusive: bool
) -> dict[str, Decimal]:
    """A line's taxes from its rate when Zoho gives no per-line amounts: intra-state CGST = SGST
    at half the rate each, inter-state IGST; on a tax-inclusive amount the tax is
    amount × rate ÷ (100 + rate) (Zoho's KB "tax inclusive" formula)."""
    taxes = no_taxes()
    if not rate:
        return taxes
    base = amount * 100 / (100 + rate) if inclusive else amount
    if head in ("group", "cgst", "sgst"):
        half = gst.round_money(base * rate / 200)
        taxes["cgst"] = taxes["sgst"] = half
    else:
        taxes[head if head in TAX_HEADS else "other_tax"] = gst.round_money(base * rate / 100)
    return taxes


@dataclass(frozen=True)
class _Shipping:
    exclusive: Decimal  # the charge without its tax
    taxed: bool
    taxes: dict[str, Decimal]


def _shipping(
    invoice: dict[str, Any], heads: dict[str, str], intra: bool, inclusive: bool
) -> _Shipping:
    """The shipping charge: taxable (and part of the taxable value) only when it is taxed."""
    charge = _money(invoice, "shipping_charge", required=False) or ZERO
    taxes = _classified(invoice.get("shipping_charge_taxes"), heads, "shipping_charge_taxes")
    stated_tax = _money(invoice, "shipping_charge_tax", required=False) or ZERO
    if taxes is None:
        taxes = no_taxes()
        tax_entry = {
            "tax_id": invoice.get("shipping_charge_tax_id"),
            "tax_name": invoice.get("shipping_charge_tax_name"),
        }
        head = _head_for(tax_entry, heads)
        if head is None and not _text(tax_entry["tax_name"]):
            head = "group" if intra else "igst"  # no name to tell: GST by the supply type
        add_tax(taxes, head, stated_tax)
    tax = sum(taxes.values(), ZERO)
    exclusive = _money(invoice, "shipping_charge_exclusive_of_tax", required=False)
    if not exclusive:
        exclusive = charge - tax if inclusive else charge
    taxed = bool(tax) or bool(_text(invoice.get("shipping_charge_tax_id")))
    return _Shipping(exclusive, taxed and bool(exclusive), taxes)


def _is_taxed(line: InvoiceLine) -> bool:
    return bool(line.tax_rate) or any(getattr(line, name) for name in TAX_AMOUNTS)


def _match_zoho_taxable(
    invoice: dict[str, Any], lines: list[InvoiceLine], shipping: _Shipping, inclusive: bool
) -> None:
    """Check the lines' derived taxable values against Zoho's own figures and absorb the
    rounding difference into the largest line, so that they add up to what Zoho states.

    Zoho's `total_taxable_amount` (when present and not 0; 0 on a recorded invoice without tax)
    is matched against the taxed lines or all lines, each with or without taxed shipping (which
    one Zoho means is unverified): on an invoice with tax, a difference beyond rounding means
    this mapping misreads it, and it is refused rather than loaded with wrong taxable values
    (an invoice without any tax has no GST at stake and is not checked). Without it, a
    tax-inclusive invoice's lines must add up to their inclusive amounts less the invoice's tax
    on them (rounding only; anything more is left for the `invoice_totals_add_up` check)."""
    taxed = [line for line in lines if _is_taxed(line)]
    stated = _money(invoice, "total_taxable_amount", required=False)
    tolerance = Decimal("0.02") * (len(lines) + 1)
    if stated and (taxed or shipping.taxed):
        shipped = [shipping.exclusive, ZERO] if shipping.taxed else [ZERO]
        for group, extra in ((group, extra) for group in (taxed, lines) for extra in shipped):
            derived = sum((line.taxable_amount for line in group), ZERO)
            if abs(stated - extra - derived) <= tolerance:
                _absorb(group, stated - extra - derived)
                return
        derived = sum((line.taxable_amount for line in taxed), ZERO)
        raise MappingError(
            f"total_taxable_amount: Zoho states {stated}, the taxed lines add up to {derived}"
            + (f" (taxed shipping {shipping.exclusive})" if shipping.taxed else "")
            + "; the invoice's discounts or tax mode are not read right"
        )
    if inclusive:
        line_tax = (_money(invoice, "tax_total", required=False) or ZERO) - sum(
            shipping.taxes.values(), ZERO
        )
        gross = sum((line.line_total for line in lines), ZERO)
        derived = sum((line.taxable_amount for line in lines), ZERO)
        difference = gross - line_tax - derived
        if abs(difference) <= tolerance:
            _absorb(taxed or lines, difference)


def _absorb(lines: list[InvoiceLine], difference: Decimal) -> None:
    if not difference or not lines:
        return
    largest = max(lines, key=lambda line: abs(line.taxable_amount))
    largest.taxable_amount += difference
    largest.line_total += difference


def _invoice_taxes(
    invoice: dict[str, Any], heads: dict[str, str], lines: list[InvoiceLine], shipping: _Shipping
) -> dict[str, Decimal]:
    """Invoice-level heads from the `taxes` summary, or the sums of the lines and the shipping
    charge's taxes when it is absent. Zero entries change nothing; a tax that is not GST is
    `other_tax`."""
    summary = _classified(invoice.get("taxes"), heads, "taxes")
    if summary is not None:
        return summary
    totals = dict(shipping.taxes)
    for line in lines:
        for name in TAX_AMOUNTS:
            totals[name] += getattr(line, name)
    return totals


# --- Dagster resource -------------------------------------------------------------------------


class ZohoBooksResource(ConnectorResource):
    """How the hub talks to Zoho Books; per-tenant credentials come from the vault at run time.
    `requests_per_minute` None: the tenant config's (90, under Zoho's 100)."""

    connector_class: ClassVar[type] = ZohoBooksConnector
    page_size: int = MAX_PAGE_SIZE
    # Share of the daily quota (X-Rate-Limit-Limit) an import leaves unused (`DailyQuota`).
    quota_reserve_percent: float = 10.0

    def options(self) -> dict[str, Any]:
        return {"quota_reserve_percent": self.quota_reserve_percent}
