"""The Xero Shape on the simulator engine: Books rendered as a Xero organisation, or replayed files.

- Identity (`POST /connect/token`): HTTP Basic client credentials, `grant_type=refresh_token`;
  every refresh rotates the refresh token, the previous one is honoured for 30 minutes (it gets
  the current one back), an unused one dies after 60 days; refusals are 400 `invalid_grant`.
  Xero's identity server is another host than its API, so faults queued for the API do not reach
  it; `lose_token_answers = n` makes it act on the next n refreshes and drop their answers.
  `grant_type=authorization_code` exchanges a code of the consent page
  `GET /identity/connect/authorize`, whose "Allow" connects every organisation of the simulator.
- `GET /connections` (tenantless; only `X-AppMinLimit-Remaining`) lists the grant's tenants.
  Every API call needs `Xero-Tenant-Id` naming one of them (else 403).
- `/api.xro/2.0/Contacts`, `/Invoices` (and `/{id}`), `/TaxRates`: JSON with
  MS-JSON dates; `page`/`pageSize` (≤ 1000) with a `pagination` block, and without `page` every
  row and no `LineItems`; `If-Modified-Since` (inclusive (unverified)), `order=UpdatedDateUTC
  ASC`, `where` (`Field=="text"`, `Field==true`, `!=`, `AND`, `OR`), `Statuses`, `IDs`,
  `includeArchived` (archived contacts are hidden without it).
- Limits per organisation: 60 a minute, 5 at once, 5,000 a day (UTC days); every answer carries
  `X-DayLimit-Remaining`, `X-MinLimit-Remaining`, `X-AppMinLimit-Remaining`; a refusal is 429
  with `Retry-After` and `X-Rate-Limit-Problem` (`day`, `minute`, `concurrent`).
- Books: parties are contacts set up for sales (a default sales tax type) unless named as
  suppliers; `IsCustomer` turns true with a contact's first sales invoice without moving its
  `UpdatedDateUTC`, as in Xero. GST is custom tax rates ("GST 18%" = CGST 9 + SGST 9,
  "IGST 18%"). Books' round-off is a "Rounding" line on account 860. Drafts owe their total
  (`AmountDue`), voids keep it with nothing due; a deleted sale is `DELETED` whatever its status
  (Xero deletes only drafts; Books' truth drops it either way). Each change queues a webhook
  event (`webhook_delivery`, `intent_to_receive`, `send_webhook`).
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub_pipelines.connectors.base import to_decimal
from hub_pipelines.simulation.books import Books, Party, Sale, SaleLine
from hub_pipelines.simulation.catalogue import CATALOGUE
from hub_pipelines.simulation.consent import consent_route
from hub_pipelines.simulation.engine import (
    Knob,
    RateLimits,
    RateStatus,
    Reply,
    RequestLogEntry,
    SimulatorEngine,
    json_bytes,
)
from hub_pipelines.simulation.listings import Listings
from hub_pipelines.simulation.oauth_server import (
    EVERY_REFRESH,
    TokenGrant,
    TokenPolicy,
    TokenRefusal,
)
from hub_pipelines.simulation.replay import read_json, records_by_kind
from hub_pipelines.simulation.simulated import Simulated, switched_on
from hub_pipelines.xero import protocol
from hub_pipelines.xero.mapping import ROUNDING_ACCOUNT
from hub_pipelines.xero.webhooks import signature

DEFAULT_TENANT_ID = "5e0b3b9a-8c1f-4a57-9c39-6a2a7e3f0c11"
CLIENT_ID = "SIMULATORXEROCLIENT0000000000001"
CLIENT_SECRET = "simulator-xero-client-secret"  # noqa: S105 (a simulator's own credential)
WEBHOOK_KEY = "simulator-xero-webhook-key"
TOKEN_PATH = "/connect/token"  # noqa: S105 (a path)
AUTHORIZE_PATH = "/identity/connect/authorize"  # login.xero.com's consent page
API = "/api.xro/2.0"
COLLECTIONS = {"Contacts": "ContactID", "Invoices": "InvoiceID"}
_IDS = uuid.UUID("7d0c51ab-5f4a-4c1e-9d7b-3e0f1a2b4c5d")  # namespace of the rendered ids


@dataclass
class Organisation:
    tenant_id: str
    name: str
    contacts: dict[str, dict] = field(default_factory=dict)  # ContactID -> contact
    invoices: dict[str, dict] = field(default_factory=dict)  # InvoiceID -> invoice, with lines
    tax_rates: list[dict] = field(default_factory=list)
    empty: bool = False  # every list answers empty (`Simulated.answer_empty`)
    # Replayed rows captured without their line items: only unpaged answers can hold them.
    unpaged_only: set[str] = field(default_factory=set)
    # The rows of a list request by what selects and orders them (`_listing_key`), so that a
    # walk's pages are slices of one filtered and sorted listing; emptied by `changed`.
    listings: Listings = field(default_factory=Listings, repr=False, compare=False)

    def changed(self) -> None:
        """Its contacts or invoices changed: every cached listing is stale."""
        self.listings.clear()


class QueryError(ValueError):
    """A `where` the simulator cannot read: Xero's 400 QueryParseException."""


class XeroSimulator(SimulatorEngine):
    json_media_type = "application/json; charset=utf-8"
    daily_limit = Knob("limiter.limits", "per_day")
    requests_per_minute = Knob("limiter.limits", "per_minute")

    def __init__(
        self,
        *,
        requests_per_minute: int = protocol.REQUESTS_PER_MINUTE,
        daily_limit: int = protocol.DAILY_REQUESTS,
        concurrent: int = protocol.CONCURRENT_REQUESTS,
        **engine_options: Any,
    ) -> None:
        super().__init__(
            limits=RateLimits(
                per_minute=requests_per_minute, per_day=daily_limit, concurrent=concurrent
            ),
            token_policy=TokenPolicy(
                access_token_lifetime=int(protocol.ACCESS_TOKEN_LIFETIME.total_seconds()),
                rotation=EVERY_REFRESH,
                previous_token_grace_seconds=protocol.REFRESH_TOKEN_GRACE.total_seconds(),
                refresh_idle_expiry_seconds=protocol.REFRESH_TOKEN_IDLE_EXPIRY.total_seconds(),
            ),
            **engine_options,
        )
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.oauth.add_client(CLIENT_ID, CLIENT_SECRET)
        self.organisations: dict[str, Organisation] = {}
        self.webhook_key = WEBHOOK_KEY
        self.events: list[dict] = []  # webhook events not delivered yet
        self.event_sequence = 0
        self.lose_token_answers = 0
        # The largest page served, whatever pageSize asks: Xero's reference documents 100, and
        # a Xero that kept to it would answer a larger pageSize with pages of 100.
        self.max_page_size = protocol.MAX_PAGE_SIZE

    def add_organisation(self, tenant_id: str, name: str) -> Organisation:
        with self.lock:
            return self.organisations.setdefault(tenant_id, Organisation(tenant_id, name))

    def connect(self, *tenant_ids: str) -> str:
        """A user's consent for these organisations: the grant's first refresh token."""
        context = {"tenants": [t.lower() for t in tenant_ids]}
        return self.oauth.issue_refresh_token(CLIENT_ID, scope=protocol.SCOPES, context=context)

    @property
    def refresh_token(self) -> str:
        """The refresh token the first grant honours now (it rotates on every refresh)."""
        return self.oauth.grants[0].refresh_token

    # --- routes and engine hooks --------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        api = self.api_route
        return [
            Route(TOKEN_PATH, self._token_endpoint, methods=["POST"]),
            # The user connects every organisation of the simulator (Xero lets them pick).
            consent_route(
                self,
                AUTHORIZE_PATH,
                title="Xero",
                context=lambda: {"tenants": list(self.organisations)},
            ),
            api("/connections", self._connections, limited=False),
            api(f"{API}/Contacts", self._lister("Contacts")),
            api(f"{API}/Contacts/{{record_id}}", self._getter("Contacts")),
            api(f"{API}/Invoices", self._lister("Invoices")),
            api(f"{API}/Invoices/{{record_id}}", self._getter("Invoices")),
            api(f"{API}/TaxRates", lambda r, _: self._envelope("TaxRates", self._org(r).tax_rates)),
        ]

    def rate_key(self, request: Request, params: dict[str, str]) -> str:
        return request.headers.get(protocol.TENANT_HEADER, "").strip().lower()

    def refuse(self, request: Request, params: dict[str, str]) -> Reply | None:
        grant = self.oauth.grant_of(self.access_token(request))
        tenant = self.rate_key(request, params)
        if grant and tenant in grant.context.get("tenants", ()) and tenant in self.organisations:
            return None
        return Reply(403, _problem(403, "Forbidden", "AuthenticationUnsuccessful"))  # (unverified)

    def unauthorised_reply(self, request: Request) -> Reply:
        expired = f"TokenExpired: token expired at {datetime.now(UTC):%m/%d/%Y %H:%M:%S}"
        return Reply(401, _problem(401, "Unauthorized", expired))

    def fault_reply(self, status: int) -> Reply:
        if status == 503:
            return Reply(503, "The Xero API is currently offline for maintenance", kind="text")
        return Reply(status, _problem(status, "Internal Server Error", "An error occurred"))

    def throttle_reply(self, status: RateStatus) -> Reply:
        headers = {
            "Retry-After": str(status.retry_after),
            protocol.RATE_LIMIT_PROBLEM_HEADER: status.limit_hit or "minute",
        }
        return Reply(429, "Too Many Requests", headers, kind="text")  # body opaque (unverified)

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        minute = status.remaining.get("minute")
        used = (self.requests_per_minute or 0) - (minute or 0)  # this app has one organisation
        app_left = protocol.APP_REQUESTS_PER_MINUTE - used
        headers = {protocol.APP_MINUTE_REMAINING_HEADER: str(app_left)}
        if "day" in status.remaining:
            headers[protocol.DAY_REMAINING_HEADER] = str(status.remaining["day"])
        if minute is not None:
            headers[protocol.MINUTE_REMAINING_HEADER] = str(minute)
        return headers

    def break_record(self, body: Any, index: int) -> Any:
        for collection, id_field in COLLECTIONS.items():
            if body.get(collection):
                body[collection][index].pop(id_field, None)
        return body

    # --- identity server ----------------------------------------------------------------------

    async def _token_endpoint(self, request: Request) -> Response:
        params = await self.request_params(request)
        client_id, secret = _basic_credentials(request)
        with self.lock:
            grant_type = params.get("grant_type")
            if grant_type == "refresh_token":
                reply = self._refreshed(client_id, secret, params.get("refresh_token", ""))
            elif grant_type == "authorization_code":  # the consent page's code
                code, redirect_uri = params.get("code", ""), params.get("redirect_uri", "")
                reply = self._token_reply(
                    self.oauth.exchange_code(client_id, secret, code, redirect_uri)
                )
            else:
                reply = Reply(400, {"error": "unsupported_grant_type"})
            entry = RequestLogEntry(
                "POST", TOKEN_PATH, {}, self.timer(), self.clock(), reply.status or None
            )
            self.request_log.append(entry)
        return reply.to_response(self.json_media_type)

    def _refreshed(self, client_id: str, secret: str | None, refresh_token: str) -> Reply:
        answer = self.oauth.refresh(client_id, secret, refresh_token)
        if not isinstance(answer, TokenRefusal) and self.lose_token_answers > 0:
            self.lose_token_answers -= 1
            return Reply(0, kind="drop")  # refreshed, but the answer never arrives
        return self._token_reply(answer)

    def _token_reply(self, answer: TokenGrant | TokenRefusal) -> Reply:
        if isinstance(answer, TokenRefusal):
            return Reply(400, {"error": answer.error})
        return Reply(
            200,
            {
                "id_token": secrets.token_urlsafe(16),
                "access_token": answer.access_token,
                "expires_in": answer.expires_in,
                "token_type": "Bearer",
                "refresh_token": answer.refresh_token,
                "scope": answer.scope,
            },
        )

    def _connections(self, request: Request, params: dict[str, str]) -> Reply:
        grant = self.oauth.grant_of(self.access_token(request))
        tenants = grant.context.get("tenants", []) if grant else []
        stamp = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3]
        body = [
            {
                "id": str(uuid.uuid5(_IDS, f"connection/{tenant}")),
                "authEventId": str(uuid.uuid5(_IDS, f"auth/{tenant}")),
                "tenantId": tenant,
                "tenantType": "ORGANISATION",
                "tenantName": self.organisations[tenant].name,
                "createdDateUtc": stamp,
                "updatedDateUtc": stamp,
            }
            for tenant in tenants
            if tenant in self.organisations
        ]
        remaining = str(protocol.APP_REQUESTS_PER_MINUTE - 1)
        return Reply(200, body, {protocol.APP_MINUTE_REMAINING_HEADER: remaining})

    # --- the accounting API -------------------------------------------------------------------

    def _org(self, request: Request) -> Organisation:
        return self.organisations[self.rate_key(request, {})]  # `refuse` checked it

    def _envelope(self, key: str, rows: list[dict], pagination: dict | None = None) -> Reply:
        body: dict[str, Any] = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "Hub Xero simulator",
            "DateTimeUTC": protocol.ms_json_text(self.clock(), with_offset=False),
        }
        if pagination is not None:
            body["pagination"] = pagination
        return Reply(200, {**body, key: rows})

    def _getter(self, collection: str):
        def answer(request: Request, params: dict[str, str]) -> Reply:
            org, wanted = self._org(request), request.path_params["record_id"].lower()
            rows = [r for r in _store(org, collection).values() if _id(r, collection) == wanted]
            if not rows:
                return Reply(404, _problem(404, "Not Found", f"{collection[:-1]} not found"))
            return self._envelope(collection, rows)

        return answer

    def _lister(self, collection: str):
        def answer(request: Request, params: dict[str, str]) -> Reply:
            org = self._org(request)
            since = _since(request.headers.get(protocol.MODIFIED_SINCE_HEADER))
            try:
                rows = [] if org.empty else _listing(org, collection, params, since)
            except QueryError as bad:
                body = {"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(bad)}
                return Reply(400, body)
            if "page" not in params:  # Xero leaves the line items out of unpaged lists
                return self._envelope(collection, [_without_lines(r) for r in rows])
            page = max(1, int(params["page"]))
            asked = int(params.get("pageSize") or protocol.DOCUMENTED_PAGE_SIZE)
            size = min(max(1, asked), self.max_page_size)
            pagination = {
                "page": page,
                "pageSize": size,
                "pageCount": -(-len(rows) // size),
                "itemCount": len(rows),
            }
            return self._envelope(collection, rows[(page - 1) * size : page * size], pagination)

        return answer

    # --- webhooks -----------------------------------------------------------------------------

    def queue_event(self, org: Organisation, category: str, record_id: str, created: bool) -> None:
        """A webhook event for a change (CONTACT or INVOICE), delivered by `webhook_delivery`."""
        resource = {"CONTACT": "Contacts", "INVOICE": "Invoices"}[category]
        self.events.append(
            {
                "resourceUrl": f"https://api.xero.com{API}/{resource}/{record_id}",
                "resourceId": record_id,
                "eventDateUtc": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3],
                "eventType": "CREATE" if created else "UPDATE",
                "eventCategory": category,
                "tenantId": org.tenant_id,
                "tenantType": "ORGANISATION",
            }
        )

    def webhook_delivery(
        self, *, signed: bool = True, events: list[dict] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A delivery of the queued events (or `events`) and its headers; `signed=False` signs it
        with another key, as Xero's intent-to-receive check does on purpose."""
        with self.lock:
            if events is None:
                events, self.events = self.events, []
            first = self.event_sequence + 1
            self.event_sequence += len(events)
        payload = {
            "events": events,
            "firstEventSequence": first,
            "lastEventSequence": max(first, self.event_sequence),
            "entropy": secrets.token_hex(10).upper(),
        }
        body = json_bytes(payload)
        key = self.webhook_key if signed else self.webhook_key + "-not"
        headers = {protocol.SIGNATURE_HEADER: signature(key, body)}
        return body, {**headers, "Content-Type": "application/json"}

    def intent_to_receive(self, *, signed: bool) -> tuple[bytes, dict[str, str]]:
        return self.webhook_delivery(signed=signed, events=[])

    @staticmethod
    def send_webhook(url: str, delivery: tuple[bytes, dict[str, str]]) -> int:
        """POST a delivery to a receiver; its status (Xero wants 200, or 401 when mis-signed)."""
        body, headers = delivery
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code


# --- lists ----------------------------------------------------------------------------------------


def _store(org: Organisation, collection: str) -> dict[str, dict]:
    return org.contacts if collection == "Contacts" else org.invoices


def _id(row: dict, collection: str) -> str:
    return str(row.get(COLLECTIONS[collection], "")).lower()


def _listing(
    org: Organisation, collection: str, params: dict[str, str], since: datetime | None
) -> list[dict]:
    """The rows a list request answers (all pages of it), from the organisation's cache while
    its records are unchanged."""

    def build() -> list[dict]:
        rows = _select(collection, _store(org, collection), params)
        if since is not None:
            rows = [row for row in rows if _updated(row) >= since]
        if "page" in params:
            rows = [row for row in rows if row.get("InvoiceID") not in org.unpaged_only]
        return rows

    return org.listings.get(_listing_key(collection, params, since), build)


def _listing_key(collection: str, params: dict[str, str], since: datetime | None) -> tuple:
    """Everything but the page that decides a list answer's rows and their order."""
    selecting = ("includeArchived", "IDs", "Statuses", "where", "order")
    return (collection, since, "page" in params, *(params.get(name) for name in selecting))


def _select(collection: str, store: dict[str, dict], params: dict[str, str]) -> list[dict]:
    rows = list(store.values())
    if collection == "Contacts" and params.get("includeArchived", "").lower() != "true":
        rows = [row for row in rows if row.get("ContactStatus") != "ARCHIVED"]
    if params.get("IDs"):
        wanted = {part.strip().lower() for part in params["IDs"].split(",")}
        rows = [row for row in rows if _id(row, collection) in wanted]
    if params.get("Statuses"):
        statuses = {part.strip().upper() for part in params["Statuses"].split(",")}
        rows = [row for row in rows if row.get("Status") in statuses]
    if params.get("where"):
        rows = [row for row in rows if where_matches(params["where"], row)]
    if params.get("order", "").replace(" ", "").upper() in ("UPDATEDDATEUTC", "UPDATEDDATEUTCASC"):
        rows.sort(key=lambda row: (_updated(row), _id(row, collection)))
    return rows


_CLAUSE = re.compile(r'\s*(\w+)\s*(==|!=)\s*(?:"([^"]*)"|(true|false))\s*', re.I)


def where_matches(expression: str, row: dict) -> bool:
    """Xero's `where` in its simplest form: clauses `Field=="text"` or `Field==true` (or `!=`),
    joined by AND, which binds tighter than OR. No parentheses, no functions."""
    alternatives = re.split(r"\s+OR\s+", expression.strip(), flags=re.I)
    return any(
        all(_clause_holds(clause, row) for clause in re.split(r"\s+AND\s+", part, flags=re.I))
        for part in alternatives
    )


def _clause_holds(clause: str, row: dict) -> bool:
    match = _CLAUSE.fullmatch(clause)
    if match is None:
        raise QueryError(f"the simulator cannot read the where clause {clause!r}")
    name, operator, text, flag = match.groups()
    value = row.get(name)
    if text is not None:
        equal = str(value or "").lower() == text.lower()
    else:
        equal = value is (flag.lower() == "true")
    return equal if operator == "==" else not equal


def _updated(row: dict) -> datetime:
    return protocol.ms_json_date(row["UpdatedDateUTC"])


def _since(header: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat((header or "").strip())
    except ValueError:
        return None  # absent or unreadable: everything (Xero's handling unverified)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _without_lines(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "LineItems"}


def _problem(status: int, title: str, detail: str) -> dict:
    return {"Type": None, "Title": title, "Status": status, "Detail": detail}


def _basic_credentials(request: Request) -> tuple[str, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return "", None
    return client_id, secret


# --- Books as a Xero organisation -------------------------------------------------------------


def tax_rates() -> tuple[list[dict], dict[tuple[Decimal, bool], str]]:
    """An Indian organisation's custom GST rates, and each (rate, intra-state) pair's TaxType.
    Custom rates get Xero's generated TaxTypes (`TAX001`…): only the component names say GST."""
    rows = [_tax_rate("NONE", "No GST", [("No GST", Decimal(0))])]
    types: dict[tuple[Decimal, bool], str] = {}
    for rate in sorted({item.gst_rate for item in CATALOGUE if item.gst_rate}):
        half = rate / 2
        for intra, name, parts in (
            (True, f"GST {rate}%", [("CGST", half), ("SGST", half)]),
            (False, f"IGST {rate}%", [("IGST", rate)]),
        ):
            types[(rate, intra)] = f"TAX{len(rows):03d}"
            rows.append(_tax_rate(types[(rate, intra)], name, parts))
    return rows, types


def _tax_rate(tax_type: str, name: str, parts: list[tuple[str, Decimal]]) -> dict:
    components = [{"Name": n, "Rate": float(r), "IsCompound": False} for n, r in parts]
    rate = float(sum((r for _, r in parts), Decimal(0)))
    return {
        "Name": name,
        "TaxType": tax_type,
        "Status": "ACTIVE",
        "EffectiveRate": rate,
        "TaxComponents": components,
    }


def render_books(
    simulator: XeroSimulator, books: Books, tenant_id: str, suppliers: frozenset[int] = frozenset()
) -> Organisation:
    """Add `books` as organisation `tenant_id` and follow its mutations (and queue a webhook
    event for each). `suppliers`: parties that are suppliers, without sales defaults."""
    org = simulator.add_organisation(tenant_id, books.seller_name)
    org.tax_rates, types = tax_rates()

    def ids(kind: str, key: Any) -> str:
        return str(uuid.uuid5(_IDS, f"{tenant_id}/{kind}/{key}"))

    def put_party(party: Party) -> str:
        contact_id = ids("contact", party.key)
        invoiced = org.contacts.get(contact_id, {}).get("IsCustomer", False)
        supplier = party.key in suppliers
        local = party.state_code == books.seller_state
        sales_tax = "NONE" if party.overseas else types[(max(r for r, _ in types), local)]
        org.contacts[contact_id] = _contact(party, contact_id, invoiced, supplier, sales_tax)
        org.changed()
        return contact_id

    def put_sale(sale: Sale) -> str:
        invoice_id, contact_id = ids("invoice", sale.key), ids("contact", sale.party_key)
        party = books.parties[sale.party_key]
        org.invoices[invoice_id] = _invoice(sale, invoice_id, contact_id, party.name, types, ids)
        org.contacts[contact_id]["IsCustomer"] = True  # UpdatedDateUTC stays (Xero's own flag)
        org.changed()
        return invoice_id

    with simulator.lock:
        for party in books.parties.values():
            put_party(party)
        for sale in books.sales.values():
            put_sale(sale)

    def follow(kind: str, key: int) -> None:
        with simulator.lock:
            if kind == "party":
                contact_id = put_party(books.parties[key])
                simulator.queue_event(org, "CONTACT", contact_id, created=False)
            else:
                created = ids("invoice", key) not in org.invoices
                invoice_id = put_sale(books.sales[key])
                simulator.queue_event(org, "INVOICE", invoice_id, created)

    books.listeners.append(follow)
    return org


def _contact(party: Party, contact_id: str, invoiced: bool, supplier: bool, sales_tax: str):
    first, _, last = party.contact_person.partition(" ")
    blank = {"City": "", "Region": "", "PostalCode": "", "Country": ""}
    contact = {
        "ContactID": contact_id,
        "ContactStatus": "ACTIVE" if party.active else "ARCHIVED",
        "Name": party.name,
        "FirstName": first,
        "LastName": last,
        "EmailAddress": party.email,
        "TaxNumber": party.gstin or "",
        "Addresses": [
            {
                "AddressType": "POBOX",
                "AddressLine1": party.street,
                "City": party.city,
                "Region": party.region or "",
                "PostalCode": party.postal_code,
                "Country": party.country,
            },
            {"AddressType": "STREET", **blank},
        ],
        "Phones": [
            {"PhoneType": "DEFAULT", "PhoneNumber": party.phone, "PhoneAreaCode": ""},
            {"PhoneType": "MOBILE", "PhoneNumber": "", "PhoneAreaCode": ""},
        ],
        "UpdatedDateUTC": protocol.ms_json_text(party.updated_at),
        "IsSupplier": supplier,
        "IsCustomer": invoiced,
        "HasValidationErrors": False,
    }
    if party.currency != "INR":
        contact["DefaultCurrency"] = party.currency
    contact["AccountsPayableTaxType" if supplier else "AccountsReceivableTaxType"] = sales_tax
    return contact


def _invoice(sale: Sale, invoice_id: str, contact_id: str, name: str, types, ids) -> dict:
    line_id = f"line/{invoice_id}"
    lines = [_line(line, sale, types, ids(line_id, n)) for n, line in enumerate(sale.lines)]
    if sale.round_off:  # Books rounds the total to the rupee: Xero's rounding account
        lines.append(_rounding_line(sale.round_off, ids(line_id, "rounding")))
    status = _status(sale)
    due = {"DRAFT": sale.total, "AUTHORISED": sale.balance}.get(status, Decimal(0))
    rate = Decimal(1) / sale.exchange_rate
    return {
        "Type": "ACCREC",
        "InvoiceID": invoice_id,
        "InvoiceNumber": sale.number,
        "Reference": "",
        "Contact": {"ContactID": contact_id, "Name": name},
        "DateString": f"{sale.issue_date}T00:00:00",
        "Date": _ms_date(sale.issue_date),
        "DueDateString": f"{sale.due_date}T00:00:00",
        "DueDate": _ms_date(sale.due_date),
        "Status": status,
        "LineAmountTypes": "Exclusive",
        "LineItems": lines,
        "SubTotal": float(sale.taxable + sale.round_off),
        "TotalTax": float(sale.tax_total),
        "Total": float(sale.total),
        "AmountDue": float(due),
        "AmountPaid": float(sale.paid),
        "AmountCredited": 0.0,
        "CurrencyCode": sale.currency,
        "CurrencyRate": float(rate.quantize(Decimal("0.000001"))),
        "UpdatedDateUTC": protocol.ms_json_text(sale.updated_at),
        "HasErrors": False,
    }


def _rounding_line(amount: Decimal, line_id: str) -> dict:
    value = float(amount)
    return {
        "LineItemID": line_id,
        "Description": "Rounding",
        "Quantity": 1.0,
        "UnitAmount": value,
        "LineAmount": value,
        "TaxType": "NONE",
        "TaxAmount": 0.0,
        "AccountCode": ROUNDING_ACCOUNT,
    }


def _status(sale: Sale) -> str:
    if sale.deleted:
        return "DELETED"
    return {"draft": "DRAFT", "void": "VOIDED", "paid": "PAID"}.get(
        sale.payment_status, "AUTHORISED"
    )


def _line(line: SaleLine, sale: Sale, types: dict, line_id: str) -> dict:
    cgst, sgst, igst = line.taxes(sale.intra_state)
    code = line.item.hsn_or_sac  # Xero has no HSN field: Indian users keep it as the item code
    item = {"ItemID": str(uuid.uuid5(_IDS, line.item.name)), "Code": code, "Name": line.item.name}
    row = {
        "LineItemID": line_id,
        "ItemCode": code,
        "Item": item,
        "Description": line.item.description,
        "Quantity": float(line.quantity),
        "UnitAmount": float(line.unit_price),
        "LineAmount": float(line.taxable),
        "TaxType": types.get((line.gst_rate, sale.intra_state), "NONE"),
        "TaxAmount": float(cgst + sgst + igst),
        "AccountCode": "200",
        "Tracking": [],
    }
    if line.discount_percent:
        row["DiscountRate"] = float(line.discount_percent)
    return row


def _ms_date(day: date) -> str:
    return protocol.ms_json_text(datetime.combine(day, time(), UTC))


# --- handles --------------------------------------------------------------------------------------


def _simulated(simulator: XeroSimulator, org: Organisation, books: Books | None) -> Simulated:
    def connection_config(base_url: str) -> dict[str, Any]:
        per_minute = simulator.requests_per_minute or protocol.REQUESTS_PER_MINUTE
        return {
            "client_id": simulator.client_id,
            "client_secret": simulator.client_secret,
            "refresh_token": simulator.refresh_token,
            "xero_tenant_id": org.tenant_id,
            "api_base_url": base_url,
            "token_url": base_url + TOKEN_PATH,
            # Under the simulator's limit as 55 is under Xero's 60.
            "requests_per_minute": max(2, min(100_000, per_minute * 11 // 12)),
            "daily_limit": simulator.daily_limit or protocol.DAILY_REQUESTS,
        }

    def break_an_invoice() -> None:
        simulator.faults.malformed_page(f"{API}/Invoices", 1, times=1)

    return Simulated(
        "xero",
        simulator,
        books,
        connection_config,
        refresh_token=lambda: simulator.refresh_token,
        rotates_refresh_tokens=True,
        answer_empty=lambda: switched_on(org, "empty"),
        break_an_invoice=break_an_invoice,
    )


def simulate(
    books: Books,
    *,
    tenant_id: str = DEFAULT_TENANT_ID,
    suppliers: frozenset[int] = frozenset(),
    **limits: Any,
) -> Simulated:
    """A Xero simulator serving `books` as one organisation (limits: `XeroSimulator`'s)."""
    simulator = XeroSimulator(**limits)
    org = render_books(simulator, books, tenant_id.lower(), suppliers)
    simulator.connect(org.tenant_id)
    return _simulated(simulator, org, books)


def replay(paths: list[Path], *, tenant_id: str = DEFAULT_TENANT_ID, **limits: Any) -> Simulated:
    """A simulator serving the contacts, invoices and tax rates found in `paths`: Xero response
    bodies, or nango recordings holding them (a later file's record wins). Webhook payloads
    become queued events. A file that holds none of these, or a record without its id, is a
    `ReplayError`.

    Two gaps of captures are filled as the capture implies: an invoice captured without its line
    items (the vendor's trimmed list example, or a list read without `page`) is served only in
    unpaged answers, as Xero would; a tax type used on taxed lines but not described by a
    captured `TaxRates` answer gets a rate that reproduces the captured amounts, with one
    component named like the tax type (so not GST)."""
    paths = [Path(path) for path in paths]
    hooks = {path: read_json(path) for path in paths}
    hooks = {path: doc for path, doc in hooks.items() if _is_webhook_payload(doc)}
    found = records_by_kind(
        [path for path in paths if path not in hooks],
        {"Contacts": ("Contacts",), "Invoices": ("Invoices",), "TaxRates": ("TaxRates",)},
        "Xero",
        {"Contacts": "ContactID", "Invoices": "InvoiceID", "TaxRates": "TaxType"},
    )
    simulator = XeroSimulator(**limits)
    org = simulator.add_organisation(tenant_id.lower(), "Replayed organisation")
    org.contacts = {row["ContactID"]: row for row in found["Contacts"]}
    org.invoices = {row["InvoiceID"]: row for row in found["Invoices"]}
    described = {row["TaxType"]: row for row in found["TaxRates"]}
    org.tax_rates = [*described.values(), *_implied_tax_rates(org.invoices.values(), described)]
    org.unpaged_only = {key for key, row in org.invoices.items() if _lost_its_lines(row)}
    org.changed()
    for document in hooks.values():
        simulator.events.extend(document["events"])
    simulator.connect(org.tenant_id)
    return _simulated(simulator, org, None)


def _is_webhook_payload(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("events"), list)


def _lost_its_lines(invoice: dict) -> bool:
    lines = invoice.get("LineItems")
    return not lines and bool(invoice.get("Total"))


def _implied_tax_rates(invoices: Iterable[dict], described: dict) -> list[dict]:
    """A rate for each taxed tax type the captures use but do not describe, at the percentage
    that reproduces the captured amounts (the organisation's own rates were not captured)."""
    rates: dict[str, Decimal] = {}
    for invoice in invoices:
        inclusive = invoice.get("LineAmountTypes") == "Inclusive"
        for item in invoice.get("LineItems") or []:
            tax_type = item.get("TaxType") if isinstance(item, dict) else None
            if not tax_type or tax_type in described or tax_type in rates:
                continue
            try:
                tax = to_decimal(item.get("TaxAmount")) or Decimal(0)
                amount = to_decimal(item.get("LineAmount")) or Decimal(0)
            except ValueError:
                continue
            base = amount - tax if inclusive else amount
            if tax and base:
                rates[tax_type] = (tax * 100 / base).quantize(Decimal("0.01"))
    return [_tax_rate(name, name, [(name, rate)]) for name, rate in rates.items()]
