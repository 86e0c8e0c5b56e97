"""QuickBooks Online simulator: the QuickBooks Shape on the simulator engine, serving one company
(realm) rendered from Books (`simulate`) or replayed from recorded answers (`replay`).

Wire behaviour (shared/protocols/quickbooks.md; "(unverified)" where the fact sheet says so):
- `POST /oauth2/v1/tokens/bearer`: HTTP Basic client credentials. The refresh token rotates on
  every refresh (`rotation`, Intuit's own cadence is (unverified)) and the superseded one is
  refused at once: 400 `invalid_grant`, no grace. Rolling 100-day and 5-year hard expiries; the
  hard one is answered in `x_refresh_token_hard_expires_in` when the request carries
  `x-include-refresh-token-hard-expires-in: true`. Wrong client credentials: 401
  `invalid_client` (unverified). `grant_type=authorization_code` exchanges a code of the
  consent page `GET /connect/oauth2`, whose "Allow" redirects with `code`, `state`, `realmId`.
- `GET /v3/company/{realm}/query?query=…`: one entity, conditions joined by AND (OR is a 400
  QueryParserError), `Active` (customers hide inactive rows unless asked), `Id`,
  `MetaData.LastUpdatedTime` comparisons, ORDERBY, STARTPOSITION / MAXRESULTS (default 100, at
  most 1,000), `COUNT(*)`. An entity without rows is absent from `QueryResponse`.
- `GET /v3/company/{realm}/cdc`: changes since `changedSince` (at most 30 days back), deleted
  invoices as `status: Deleted` stubs, at most `cdc_max_objects` (1,000) across the entities.
- `GET /v3/company/{realm}/companyinfo/{realm}`.
- `minorversion`: absent or below `minor_version_floor` (75, as Intuit since Aug 2025) is served
  as the floor; the India fields (`GSTIN`, `GSTRegistrationType`, `BusinessNumber`, an Indian
  address's `CountrySubDivisionCode`) only at 33 and above.
- Limits per realm: 500 a minute, 10 a second; a throttle is 429 with the XML 3001 fault. 401 is
  the lower-case `fault` JSON, 403 (a realm the token is not for) code 3100, 5xx a SystemFault.
  Every API answer carries an `intuit_tid`.

Books as a QuickBooks company holds them:
- a party is a Customer (inactive when archived); a sale an Invoice with `SalesItemLineDetail`
  lines, a subtotal line, and one `TxnTaxDetail.TaxLine` per GST component and rate, pointing to
  the TaxRates "CGST 9%", "SGST 9%", "IGST 18%" (the lines' `TaxCodeRef`: "GST 18%" intra-state,
  "IGST 18%" inter-state; India's structure is (unverified));
- QuickBooks has no line discount: a discount is folded into the line's `UnitPrice`, and
  `Amount` is Books' taxable value;
- round-off: QuickBooks has no field for it. `TotalAmt` is Books' total, rounded to the rupee, so
  it exceeds the lines plus tax by the round-off, which the mapping reads back as `round_off`;
- QuickBooks Online has no draft invoices: a draft sale gets its Invoice when it is issued, and
  the contract suite leaves drafts out of its truth (`Simulated.holds_drafts`);
- a void zeroes amounts and quantities and notes "Voided"; a delete is hard (gone from queries,
  a CDC stub for 30 days); timestamps are in the company's offset (IST).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import operator
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from starlette.requests import Request
from starlette.routing import BaseRoute

from hub_pipelines import gst
from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.quickbooks import protocol
from hub_pipelines.quickbooks.webhooks import OPERATIONS, SIGNATURE_HEADER
from hub_pipelines.simulation import engine
from hub_pipelines.simulation.books import ZERO, Books, Party, Sale, SaleLine
from hub_pipelines.simulation.catalogue import CATALOGUE
from hub_pipelines.simulation.consent import consent_route
from hub_pipelines.simulation.engine import Knob, RateLimits, RateStatus, Reply, SimulatorEngine
from hub_pipelines.simulation.listings import Listings
from hub_pipelines.simulation.oauth_server import EVERY_REFRESH, TokenPolicy, TokenRefusal
from hub_pipelines.simulation.replay import ReplayError, read_json, response_bodies
from hub_pipelines.simulation.simulated import Simulated

IST = timezone(timedelta(hours=5, minutes=30), "IST")
TOKEN_PATH = "/oauth2/v1/tokens/bearer"  # noqa: S105 - a path
AUTHORIZE_PATH = "/connect/oauth2"  # appcenter.intuit.com's consent page
DEFAULT_REALM = "9130357766900456"
CLIENT_ID, CLIENT_SECRET = "ABsimulatedQuickBooksClient", "simulated-quickbooks-secret"
DAY = 86_400
INDIA_FIELDS = ("GSTIN", "GSTRegistrationType", "BusinessNumber")
INDIA_SINCE_MINOR_VERSION = 33
NAME_LISTS = frozenset({"Customer"})  # inactive rows hidden unless a query asks for them
REGISTRATION_TYPES = {
    "registered_regular": "GST_REG_REG",
    "unregistered_business": "GST_UNREG",
    "overseas": "OVERSEAS",
}


def qbo_time(moment: datetime) -> str:
    return moment.astimezone(IST).replace(microsecond=0).isoformat()


def number(amount: Decimal) -> int | float:
    """An amount as a JSON number, as Intuit sends them (the connector reads them back exactly
    through `to_decimal`)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _stamp(record: dict[str, Any]) -> datetime:
    meta = record.get("MetaData") or {}
    return parse_timestamp(meta.get("LastUpdatedTime")) or datetime.min.replace(tzinfo=UTC)


def _id_key(record: dict[str, Any]) -> tuple[int, str]:
    text = str(record.get("Id", ""))
    return (int(text), "") if text.isdigit() else (0, text)


# --- faults --------------------------------------------------------------------------------------

THROTTLE_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse '
    'xmlns="http://schema.intuit.com/finance/v3" time="{time}"><Fault type="SERVICE"><Error '
    'code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>'
    "<Detail>The request limit was reached.  Try again later</Detail></Error></Fault>"
    "</IntuitResponse>"
)


# --- the query language --------------------------------------------------------------------------

_QUERY = re.compile(
    r"\s*SELECT\s+(?P<what>\*|COUNT\(\*\))\s+FROM\s+(?P<entity>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDERBY\s+(?P<order>[\w.]+)(?:\s+(?P<direction>ASC|DESC))?)?"
    r"(?:\s+STARTPOSITION\s+(?P<start>\d+))?(?:\s+MAXRESULTS\s+(?P<max>\d+))?\s*",
    re.I | re.S,
)
_CONDITION = re.compile(r"(?P<field>[\w.]+)\s*(?P<op>>=|<=|=|<|>|\s+IN\s+)\s*(?P<value>.+)", re.I)
_COMPARE = {"=": operator.eq, "<": operator.lt, ">": operator.gt, "<=": operator.le,
            ">=": operator.ge}  # fmt: skip


class QueryError(ValueError):
    """A query QuickBooks would refuse (400 QueryParserError)."""


@dataclass
class Query:
    entity: str
    where: str  # the conditions as written: with the entity, what a listing is cached under
    count: bool
    conditions: list[Callable[[dict[str, Any]], bool]]
    asks_active: bool  # else a name list (Customer) hides its inactive rows
    by_time: bool  # ORDERBY MetaData.LastUpdatedTime, else by Id
    descending: bool
    start: int
    max_results: int

    def matches(self, record: dict[str, Any]) -> bool:
        return all(condition(record) for condition in self.conditions)

    def sort_key(self, record: dict[str, Any]) -> tuple:
        return (_stamp(record), _id_key(record)) if self.by_time else _id_key(record)

    def listing(self, ordered: bool) -> tuple:
        """What the rows this query pages through are cached under: its entity and conditions,
        and its order when they are `ordered` (a COUNT(*) needs none)."""
        selection = (self.entity, self.where)
        return (*selection, self.by_time, self.descending) if ordered else selection


def parse_query(text: str) -> Query:
    """The simulator's share of Intuit's query language (module docstring); QueryError names
    what it refuses."""
    match = _QUERY.fullmatch(text or "")
    if not match:
        raise QueryError(f"Error parsing query: {text!r}")
    where = match["where"] or ""
    if re.search(r"\sOR\s", where, re.I):
        raise QueryError("OR is not supported in QuickBooks queries")
    parts = [part.strip() for part in re.split(r"\s+AND\s+", where, flags=re.I) if part.strip()]
    order = (match["order"] or "Id").lower()
    if order not in ("id", "metadata.lastupdatedtime"):
        raise QueryError(f"ORDERBY {match['order']}: not supported by the simulator")
    return Query(
        entity=match["entity"],
        where=where,
        count=match["what"] != "*",
        conditions=[_condition(part) for part in parts],
        asks_active=any(part.lower().startswith("active") for part in parts),
        by_time=order != "id",
        descending=(match["direction"] or "").upper() == "DESC",
        start=max(int(match["start"] or 1), 1),
        max_results=min(int(match["max"] or 100), protocol.MAX_RESULTS),  # capped (unverified)
    )


def _condition(text: str) -> Callable[[dict[str, Any]], bool]:
    match = _CONDITION.fullmatch(text)
    if not match:
        raise QueryError(f"Error parsing condition {text!r}")
    field, op, value = match["field"].lower(), match["op"].strip().upper(), match["value"].strip()
    if field == "active":
        flags = {_boolean(v) for v in _values(value, op)}
        return lambda record: record.get("Active", True) in flags  # absent: active
    if field == "id":
        ids = set(_values(value, op))
        return lambda record: str(record.get("Id")) in ids
    if field == "metadata.lastupdatedtime" and op in _COMPARE:
        try:
            moment = parse_timestamp(value.strip("'"))
        except ValueError:
            raise QueryError(f"{match['field']}: not a timestamp with an offset: {value}") from None
        return lambda record: _COMPARE[op](_stamp(record), moment)
    raise QueryError(f"{match['field']} {op}: not queryable in the simulator")


def _values(value: str, op: str) -> list[str]:
    if op == "=":
        return [value.strip("'")]
    if op == "IN" and value.startswith("(") and value.endswith(")"):
        return [v.strip().strip("'") for v in value[1:-1].split(",")]
    raise QueryError(f"operator {op} not supported here: {value}")


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise QueryError(f"not a boolean: {value}")
    return value.lower() == "true"


# --- Books rendered as QuickBooks records ------------------------------------------------------


def address(party: Party) -> dict[str, Any]:
    region = gst.zoho_code_from_state_code(party.state_code) if party.state_code else party.region
    fields = {
        "Line1": party.street,
        "City": party.city,
        "CountrySubDivisionCode": region,
        "PostalCode": party.postal_code,
        "Country": party.country,
    }
    return {name: value for name, value in fields.items() if value}  # absent, not null


def customer_record(party: Party, meta: dict[str, Any], balance: Decimal) -> dict[str, Any]:
    given, _, family = party.contact_person.partition(" ")
    record = {
        **meta,
        "domain": "QBO",
        "sparse": False,
        "DisplayName": party.name,
        "CompanyName": party.name,
        "GivenName": given,
        "FamilyName": family,
        "Active": party.active,
        "Job": False,
        "Taxable": not party.overseas,
        "Balance": number(balance),
        "CurrencyRef": {"value": party.currency},
        "PrimaryEmailAddr": {"Address": party.email},
        "PrimaryPhone": {"FreeFormNumber": party.phone},
        "BillAddr": address(party),
        "GSTRegistrationType": REGISTRATION_TYPES[party.gst_treatment],
    }
    if party.gstin:
        record["GSTIN"] = party.gstin
    if party.pan:
        record["BusinessNumber"] = party.pan
    return record


def without_india_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a minorversion below 33 sees it."""
    trimmed = {name: value for name, value in record.items() if name not in INDIA_FIELDS}
    for name in ("BillAddr", "ShipAddr"):
        place = record.get(name)
        if isinstance(place, dict) and place.get("Country") == "India":
            trimmed[name] = {k: v for k, v in place.items() if k != "CountrySubDivisionCode"}
    return trimmed


def deleted_stub(record_id: str, at: datetime) -> dict[str, Any]:
    return {"Id": record_id, "status": "Deleted", "domain": "QBO",
            "MetaData": {"LastUpdatedTime": qbo_time(at)}}  # fmt: skip


class WebhookChange(NamedTuple):
    entity: str  # Customer | Invoice
    id: str
    operation: str  # Create | Update | Delete | Void | Merge | Emailed
    at: datetime


class QuickBooksSimulator(SimulatorEngine):
    """One QuickBooks company (realm) on the engine: `records` by entity and Id, `deleted`
    invoices (for CDC), the OAuth client and the realm's grant.

    Knobs (plain attributes): requests_per_minute (500), requests_per_second (10), rotation
    ("every_refresh", or seconds of a refresh token's age after which a refresh rotates it),
    refresh_hard_expiry_seconds (5 years), cdc_max_objects (1,000), minor_version_floor (75)."""

    requests_per_minute = Knob("limiter.limits", "per_minute")
    requests_per_second = Knob("limiter.limits", "per_second")
    rotation = Knob("oauth.policy", "rotation")
    refresh_hard_expiry_seconds = Knob("oauth.policy", "refresh_hard_expiry_seconds")

    def __init__(
        self,
        *,
        realm_id: str = DEFAULT_REALM,
        company_name: str = "Simulated Company",
        requests_per_minute: int = protocol.REQUESTS_PER_MINUTE,
        requests_per_second: int = protocol.REQUESTS_PER_SECOND,
        daily_limit: int | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            limits=RateLimits(requests_per_second, requests_per_minute, daily_limit),
            token_policy=TokenPolicy(
                access_token_lifetime=3600,
                rotation=EVERY_REFRESH,
                refresh_idle_expiry_seconds=100 * DAY,
                refresh_hard_expiry_seconds=5 * 365 * DAY,
            ),
            clock=clock,
            timer=timer,
            new_token=lambda kind: f"AB11{secrets.token_urlsafe(36)}",
        )
        self.realm_id, self.company_name = realm_id, company_name
        self.cdc_max_objects = protocol.CDC_MAX_OBJECTS
        self.minor_version_floor = protocol.MINOR_VERSION
        self.empty = False
        self.records: dict[str, dict[str, dict[str, Any]]] = {"Customer": {}, "Invoice": {}}
        self.deleted: dict[tuple[str, str], datetime] = {}
        self.books: Books | None = None
        self._ids: dict[tuple[str, Any], str] = {}
        self._counters: dict[str, int] = {}
        self._versions: dict[tuple[str, str], tuple[datetime, int]] = {}
        # Query results by `Query.listing`, so that a walk's pages are slices of one filtered and
        # sorted listing, not a filter and sort of every record each; emptied on every change.
        self._listings = Listings()
        self.oauth.add_client(CLIENT_ID, CLIENT_SECRET)
        self.oauth.issue_refresh_token(CLIENT_ID, scope=protocol.SCOPE, context={"realm": realm_id})

    def current_refresh_token(self) -> str:
        grants = [g for g in self.oauth.grants if g.context.get("realm") == self.realm_id]
        return grants[-1].refresh_token if grants else ""

    def connection_config(self, base_url: str) -> dict[str, Any]:
        return {
            "realm_id": self.realm_id,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": self.current_refresh_token(),
            "api_base_url": base_url,
            "token_url": base_url + TOKEN_PATH,
        }

    @contextmanager
    def answer_empty(self) -> Iterator[None]:
        with self.lock:
            self.empty = True
        try:
            yield
        finally:
            with self.lock:
                self.empty = False

    def load(self, entity: str, record: dict[str, Any]) -> None:
        """A recorded record; of two with one Id, the later `LastUpdatedTime` is kept."""
        with self.lock:
            held = self.records.setdefault(entity, {})
            current = held.get(str(record["Id"]))
            if current is None or _stamp(record) >= _stamp(current):
                held[str(record["Id"])] = record
                self._listings.clear()

    # --- Books ---------------------------------------------------------------------------------

    def render(self, books: Books) -> None:
        """Serve `books` and follow its mutations."""
        with self.lock:
            self.books = books
            self.company_name = books.seller_name
            for rate in sorted({item.gst_rate for item in CATALOGUE if item.gst_rate}):
                for head, percent in (("cgst", rate / 2), ("sgst", rate / 2), ("igst", rate)):
                    self._tax_rate(head, percent)
            for key in books.parties:
                self._id("Customer", key)  # Ids in the parties' order
            for key in books.sales:
                self._put_sale(key)
            balances = _balances(books)  # one pass over the sales, not one per customer
            for key in books.parties:
                self._put_party(key, balances.get(key, ZERO))
        books.listeners.append(self._follow)

    def change(self, kind: str, key: int, operation: str) -> WebhookChange:
        """A Books change ("party" or "sale" `key`) as Intuit's webhook names it."""
        entity = "Customer" if kind == "party" else "Invoice"
        held = self.books.parties if kind == "party" else self.books.sales
        return WebhookChange(entity, self._id(entity, key), operation, held[key].updated_at)

    def _follow(self, kind: str, key: int) -> None:
        with self.lock:
            if kind == "sale":
                self._put_sale(key)
                key = self.books.sales[key].party_key  # its balance changed
            self._put_party(key)

    def _id(self, entity: str, key: Any) -> str:
        if (entity, key) not in self._ids:
            self._counters[entity] = self._counters.get(entity, 0) + 1
            self._ids[(entity, key)] = str(self._counters[entity])
        return self._ids[(entity, key)]

    def _meta(
        self, entity: str, record_id: str, created: datetime, updated: datetime
    ) -> dict[str, Any]:
        """Id, SyncToken (one more on every change) and MetaData of a rendered record."""
        seen = self._versions.get((entity, record_id))
        token = 0 if seen is None else seen[1] + (seen[0] != updated)
        self._versions[(entity, record_id)] = (updated, token)
        times = {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(updated)}
        return {"Id": record_id, "SyncToken": str(token), "MetaData": times}

    def _put_party(self, key: int, balance: Decimal | None = None) -> None:
        """Render a customer; `balance`, what it owes, is summed over its sales when not given."""
        party = self.books.parties[key]
        if balance is None:
            balance = sum((s.balance for s in self.books.live_sales() if s.party_key == key), ZERO)
        customer_id = self._id("Customer", key)
        meta = self._meta("Customer", customer_id, party.created_at, party.updated_at)
        self.records["Customer"][customer_id] = customer_record(party, meta, balance)
        self._listings.clear()

    def _put_sale(self, key: int) -> None:
        self._listings.clear()
        sale = self.books.sales[key]
        if sale.deleted or sale.status == "draft":  # no Invoice (any more): a hard delete
            invoice_id = self._ids.get(("Invoice", key))
            if invoice_id and self.records["Invoice"].pop(invoice_id, None):
                self.deleted[("Invoice", invoice_id)] = sale.updated_at
            return
        invoice_id = self._id("Invoice", key)
        self.records["Invoice"][invoice_id] = self._invoice(sale, invoice_id)

    def _invoice(self, sale: Sale, invoice_id: str) -> dict[str, Any]:
        party, void = self.books.parties[sale.party_key], sale.status == "void"
        amounts = (ZERO,) * 4 if void else (sale.taxable, sale.tax_total, sale.total, sale.balance)
        taxable, tax, total, balance = amounts
        lines = [
            self._line(n, line, sale.intra_state, void) for n, line in enumerate(sale.lines, 1)
        ]
        subtotal = {"Amount": number(taxable), "DetailType": "SubTotalLineDetail",
                    "SubTotalLineDetail": {}}  # fmt: skip
        taxes = [] if void else self._tax_lines(sale)
        record = {
            **self._meta("Invoice", invoice_id, sale.created_at, sale.updated_at),
            "domain": "QBO",
            "sparse": False,
            "DocNumber": sale.number,
            "TxnDate": sale.issue_date.isoformat(),
            "DueDate": sale.due_date.isoformat(),
            "CurrencyRef": {"value": sale.currency},
            "ExchangeRate": number(sale.exchange_rate),
            "CustomerRef": {"value": self._id("Customer", party.key), "name": party.name},
            "BillEmail": {"Address": party.email},
            "BillAddr": address(party),
            "ShipAddr": address(party),
            "Line": [*lines, subtotal],
            "TxnTaxDetail": {"TotalTax": number(tax), **({"TaxLine": taxes} if taxes else {})},
            "GlobalTaxCalculation": "TaxExcluded",
            "ApplyTaxAfterDiscount": False,
            "TotalAmt": number(total),  # with Books' round-off: QuickBooks has no field for it
            "Balance": number(balance),
            "PrintStatus": "NotSet",
            "EmailStatus": "NotSet",
        }
        if void:
            record["PrivateNote"] = "Voided"
        return record

    def _line(self, position: int, line: SaleLine, intra: bool, void: bool) -> dict[str, Any]:
        # No line discounts in QuickBooks: the discount is folded into the unit price.
        price = line.unit_price * (100 - line.discount_percent) / 100
        detail = {
            "ItemRef": {"value": self._id("Item", line.item.name), "name": line.item.name},
            "UnitPrice": number(price),
            "Qty": number(ZERO if void else line.quantity),
            "TaxCodeRef": {"value": self._id("TaxCode", (intra, line.gst_rate))},
        }
        return {
            "Id": str(position),
            "LineNum": position,
            "Description": line.item.description,
            "Amount": number(ZERO if void else line.taxable),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": detail,
        }

    def _tax_lines(self, sale: Sale) -> list[dict[str, Any]]:
        """One TaxLine per GST component and rate, on the lines of that rate."""
        by_rate: dict[Decimal, list[SaleLine]] = {}
        for line in sale.lines:
            if line.gst_rate:
                by_rate.setdefault(line.gst_rate, []).append(line)
        heads = (("cgst", 2, 0), ("sgst", 2, 1)) if sale.intra_state else (("igst", 1, 2),)
        tax_lines = []
        for rate, lines in sorted(by_rate.items()):
            net = sum((line.taxable for line in lines), ZERO)
            taxes = [line.taxes(sale.intra_state) for line in lines]
            for head, share, index in heads:
                detail = {
                    "TaxRateRef": {"value": self._tax_rate(head, rate / share)},
                    "PercentBased": True,
                    "TaxPercent": number(rate / share),
                    "NetAmountTaxable": number(net),
                }
                amount = sum((tax[index] for tax in taxes), ZERO)
                tax_lines.append({"Amount": number(amount), "DetailType": "TaxLineDetail",
                                  "TaxLineDetail": detail})  # fmt: skip
        return tax_lines

    def _tax_rate(self, head: str, percent: Decimal) -> str:
        """The id of the TaxRate "CGST 9%" (created on first use)."""
        known = ("TaxRate", (head, percent)) in self._ids
        rate_id = self._id("TaxRate", (head, percent))
        if not known:
            self._listings.clear()
            name = f"{head.upper()} {_percent(percent)}%"
            self.records.setdefault("TaxRate", {})[rate_id] = {
                **self._meta("TaxRate", rate_id, self.clock(), self.clock()),
                "domain": "QBO",
                "Name": name,
                "Description": name,
                "Active": True,
                "RateValue": number(percent),
                "AgencyRef": {"value": "1"},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
            }
        return rate_id

    # --- HTTP surface --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        company = "/v3/company/{realm}"
        return [
            self.api_route(TOKEN_PATH, self._token, methods=("POST",), auth=False, limited=False),
            consent_route(
                self,
                AUTHORIZE_PATH,
                title=f"QuickBooks: {self.company_name}",
                context=lambda: {"realm": self.realm_id},
                extras=lambda _request: {"realmId": self.realm_id},
            ),
            self.api_route(f"{company}/query", self._query),
            self.api_route(f"{company}/cdc", self._cdc),
            self.api_route(f"{company}/companyinfo/{{company_id}}", self._company_info),
        ]

    def _time(self) -> str:
        return qbo_time(self.clock())

    def _token(self, request: Request, params: dict[str, str]) -> Reply:
        grant_type = params.get("grant_type")
        client_id, secret = _basic_credentials(request.headers.get("authorization", ""))
        wants_hard = request.headers.get(protocol.HARD_EXPIRY_HEADER, "").lower() == "true"
        if grant_type == "refresh_token":
            answer = self.oauth.refresh(
                client_id, secret, params.get("refresh_token", ""), want_hard_expiry=wants_hard
            )
        elif grant_type == "authorization_code":  # the consent page's code
            answer = self.oauth.exchange_code(
                client_id,
                secret,
                params.get("code", ""),
                params.get("redirect_uri", ""),
                want_hard_expiry=wants_hard,
            )
        else:
            return Reply(400, {"error": "unsupported_grant_type"})
        if isinstance(answer, TokenRefusal):
            if answer.error == "invalid_client":
                return Reply(401, {"error": "invalid_client"})
            return Reply(400, {"error": "invalid_grant"})
        body = {
            "token_type": "bearer",
            "access_token": answer.access_token,
            "expires_in": answer.expires_in,
            "refresh_token": answer.refresh_token,
            "x_refresh_token_expires_in": answer.refresh_token_expires_in,
        }
        if answer.hard_expires_in is not None:
            body[protocol.HARD_EXPIRY_FIELD] = answer.hard_expires_in
        return Reply(200, body)

    def _served(self, record: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        asked = params.get("minorversion", "")
        version = max(int(asked) if asked.isdigit() else 0, self.minor_version_floor)
        return record if version >= INDIA_SINCE_MINOR_VERSION else without_india_fields(record)

    def _query(self, request: Request, params: dict[str, str]) -> Reply:
        try:
            query = parse_query(params.get("query", ""))
        except QueryError as exc:
            return self._invalid("QueryParserError: Encountered an error parsing the query", exc)
        rows = [] if self.empty else self._listing(query, ordered=not query.count)
        if query.count:
            return Reply(200, {"QueryResponse": {"totalCount": len(rows)}, "time": self._time()})
        page = rows[query.start - 1 : query.start - 1 + query.max_results]
        found = [self._served(row, params) for row in page]
        answer = {query.entity: found, "startPosition": query.start, "maxResults": len(found)}
        return Reply(200, {"QueryResponse": answer if found else {}, "time": self._time()})

    def _listing(self, query: Query, ordered: bool) -> list[dict[str, Any]]:
        """The rows `query` selects (sorted its way when `ordered`), from the cache while the
        records are unchanged."""

        def build() -> list[dict[str, Any]]:
            if ordered:
                selected = self._listing(query, ordered=False)
                return sorted(selected, key=query.sort_key, reverse=query.descending)
            rows = [r for r in self.records.get(query.entity, {}).values() if query.matches(r)]
            if query.entity in NAME_LISTS and not query.asks_active:
                rows = [row for row in rows if row.get("Active", True)]
            return rows

        return self._listings.get(query.listing(ordered), build)

    def _cdc(self, request: Request, params: dict[str, str]) -> Reply:
        names = [name.strip() for name in params.get("entities", "").split(",") if name.strip()]
        try:
            since = parse_timestamp(params.get("changedSince"))
        except ValueError:
            since = None
        if not names or since is None or set(names) & protocol.CDC_UNSUPPORTED:
            return self._invalid("Invalid CDC request", "entities (CDC-served) and changedSince")
        if self.clock() - since > timedelta(days=protocol.CDC_MAX_DAYS):
            return self._invalid("Invalid changedSince", "at most 30 days back (unverified)")
        room, answers = self.cdc_max_objects, []
        for name in names:
            taken = [] if self.empty else self._changes(name, since)[: max(room, 0)]
            room -= len(taken)
            found = [self._served(row, params) for row in taken]
            answers.append({name: found, "startPosition": 1, "maxResults": len(found)})
        return Reply(200, {"CDCResponse": [{"QueryResponse": answers}], "time": self._time()})

    def _changes(self, name: str, since: datetime) -> list[dict[str, Any]]:
        rows = [row for row in self.records.get(name, {}).values() if _stamp(row) >= since]
        rows += [
            deleted_stub(record_id, at)
            for (entity, record_id), at in self.deleted.items()
            if entity == name and at >= since
        ]
        return sorted(rows, key=lambda row: (_stamp(row), _id_key(row)))

    def _company_info(self, request: Request, params: dict[str, str]) -> Reply:
        info = {"Id": "1", "SyncToken": "0", "domain": "QBO", "CompanyName": self.company_name,
                "Country": "IN", "SupportedLanguages": "en"}  # fmt: skip
        return Reply(200, {"CompanyInfo": info, "time": self._time()})

    def _invalid(self, message: str, detail: Any) -> Reply:
        error = {"Message": message, "Detail": str(detail), "code": "4000", "element": ""}
        fault = {"Error": [error], "type": "ValidationFault"}
        return Reply(400, {"Fault": fault, "time": self._time()})

    def _service_fault(self, status: int, kind: str, code: str, name: str, detail: Any) -> Reply:
        """The lower-case envelope of 401 and 403 answers."""
        message = f"message={name}; errorCode=00{code}; statusCode={status}"
        error = {"message": message, "detail": detail, "code": code, "element": None}
        body = {"warnings": None, "intuitObject": None, "fault": {"error": [error], "type": kind},
                "time": int(self.clock().timestamp() * 1000), "cdcresponse": []}  # fmt: skip
        return Reply(status, body)

    # --- engine hooks --------------------------------------------------------------------------

    def rate_key(self, request: Request, params: dict[str, str]) -> str:
        return request.path_params.get("realm", "")

    def refuse(self, request: Request, params: dict[str, str]) -> Reply | None:
        grant = self.oauth.grant_of(self.access_token(request))
        realm = request.path_params.get("realm")
        if grant is not None and grant.context.get("realm") == realm:
            return None
        return self._service_fault(403, "SERVICE", "3100", "AuthorizationFailed", None)

    def unauthorised_reply(self, request: Request) -> Reply:
        return self._service_fault(401, "AUTHENTICATION", "3200", "AuthenticationFailed",
                                   "Token expired")  # fmt: skip

    def fault_reply(self, status: int) -> Reply:
        error = {"Message": "An application error has occurred while processing your request",
                 "Detail": "System Failure Error: simulated", "code": "10000"}  # fmt: skip
        return Reply(status, {"Fault": {"Error": [error], "type": "SystemFault"}})

    def throttle_reply(self, status: RateStatus) -> Reply:
        body = THROTTLE_XML.format(time=self._time())
        return Reply(429, body, kind="text", media_type="application/xml")

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        return {protocol.TRACE_HEADER: str(uuid.uuid4())}

    def break_record(self, body: Any, index: int) -> Any:
        rows = next(v for v in body["QueryResponse"].values() if isinstance(v, list))
        rows[index].pop("Id", None)
        return body

    def page_of(self, params: dict[str, str]) -> int:
        found = re.search(r"STARTPOSITION\s+(\d+)\s+MAXRESULTS\s+(\d+)", params.get("query", ""))
        return (int(found[1]) - 1) // max(int(found[2]), 1) + 1 if found else 1


def _balances(books: Books) -> dict[int, Decimal]:
    """What each customer owes: the balances of its live sales."""
    owed: dict[int, Decimal] = {}
    for sale in books.live_sales():
        owed[sale.party_key] = owed.get(sale.party_key, ZERO) + sale.balance
    return owed


def _basic_credentials(header: str) -> tuple[str, str | None]:
    scheme, _, encoded = header.partition(" ")
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return "", None
    return (client_id, secret) if scheme.lower() == "basic" else ("", None)


# --- webhooks ------------------------------------------------------------------------------------


def webhook_body(
    realm_id: str, changes: Sequence[WebhookChange], *, cloud_events: bool = False
) -> bytes:
    """Intuit's notice of `changes`: the legacy `eventNotifications` object, or a CloudEvents
    array (`qbo.<entity>.<operation>.v1`, the realm as `intuitaccountid`)."""
    if cloud_events:
        return engine.json_bytes(
            [
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "intuit.simulator",
                    "type": f"qbo.{c.entity.lower()}.{OPERATIONS[c.operation.lower()]}.v1",
                    "datacontenttype": "application/json",
                    "time": c.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "intuitentityid": c.id,
                    "intuitaccountid": realm_id,
                    "data": {},
                }
                for c in changes
            ]
        )
    entities = [
        {"name": c.entity, "id": c.id, "operation": c.operation, "lastUpdated": qbo_time(c.at)}
        for c in changes
    ]
    notice = {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
    return engine.json_bytes({"eventNotifications": [notice]})


def webhook_signature(verifier_token: str, body: bytes) -> str:
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def send_webhook(
    url: str,
    verifier_token: str,
    realm_id: str,
    changes: Sequence[WebhookChange],
    *,
    cloud_events: bool = False,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST a webhook for `changes` (e.g. `simulator.change("sale", key, "Update")`), signed in
    `intuit-signature` with the app's verifier token, as Intuit does."""
    body = webhook_body(realm_id, changes, cloud_events=cloud_events)
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: webhook_signature(verifier_token, body)}  # fmt: skip
    return httpx.post(url, content=body, headers=headers, timeout=timeout)


# --- Simulated, replay, serve ----------------------------------------------------------------


def _simulated(simulator: QuickBooksSimulator, books: Any) -> Simulated:
    return Simulated(
        protocol.SYSTEM,
        simulator,
        books,
        simulator.connection_config,
        refresh_token=simulator.current_refresh_token,
        rotates_refresh_tokens=True,
        answer_empty=simulator.answer_empty,
        holds_drafts=False,
        break_an_invoice=_invoice_breaker(simulator),
    )


def _invoice_breaker(simulator: QuickBooksSimulator) -> Callable[[], None]:
    """`Simulated.break_an_invoice`. Every entity is read through one query path, and its page
    1 is also a TaxCode, a COUNT(*) or a Customer answer, so a counted `malformed_page` could
    be spent on one of those: the armed rule stays on page 1 of the query path, and only the
    next Invoice answer it meets gets the shape's `break_record`; later ones pass unchanged."""
    pending = [0]
    shape_break = simulator.break_record

    def break_record(body: Any, index: int) -> Any:
        if not pending[0] or not body.get("QueryResponse", {}).get("Invoice"):
            return body
        pending[0] -= 1
        return shape_break(body, index)

    def arm() -> None:
        pending[0] += 1
        simulator.break_record = break_record  # type: ignore[method-assign]
        query_path = f"/v3/company/{simulator.realm_id}/query"
        simulator.faults.malformed_page(query_path, 1)

    return arm


def simulate(books: Books, **limits: Any) -> Simulated:
    """A QuickBooks company serving `books`; `limits` are `QuickBooksSimulator`'s options."""
    simulator = QuickBooksSimulator(**limits)
    simulator.render(books)
    return _simulated(simulator, books)


def replay(paths: Sequence[str | Path], **limits: Any) -> Simulated:
    """A QuickBooks company serving the records in recorded answers: query, CDC or single-entity
    bodies, or fixtures that wrap them under `api.<method>.<path>.response` (the realm is taken
    from the recorded path). A file that is none of these raises `ReplayError`."""
    found = [_recorded(Path(path)) for path in paths]
    realm = next((realm for realm, _ in found if realm), DEFAULT_REALM)
    simulator = QuickBooksSimulator(realm_id=realm, company_name="Replayed company", **limits)
    for _, records in found:
        for entity, record in records:
            simulator.load(entity, record)
    return _simulated(simulator, None)


_REALM_IN_PATH = re.compile(r"/v3/company/(\d+)/")


def _recorded(path: Path) -> tuple[str | None, list[tuple[str, dict[str, Any]]]]:
    """The realm (from a recording's path) and the (entity, record) pairs of one file."""
    document = read_json(path)
    records = []
    for body in response_bodies(document):
        found = _records_of(body)
        if found is None:
            raise ReplayError(
                f"{path}: not a QuickBooks answer (a QueryResponse, a CDCResponse or one entity "
                'such as {"Invoice": {…}})'
            )
        for entity, record in found:
            if not isinstance(record, dict) or not str(record.get("Id") or "").strip():
                raise ReplayError(f"{path}: {entity} record without an Id")
            records.append((entity, record))
    realms = [found[1] for found in map(_REALM_IN_PATH.search, _api_paths(document)) if found]
    return (realms[0] if realms else None), records


def _api_paths(document: Any) -> Iterator[str]:
    api = document.get("api") if isinstance(document, dict) else None
    for by_path in api.values() if isinstance(api, dict) else ():
        yield from by_path if isinstance(by_path, dict) else ()


def _records_of(body: Any) -> list[tuple[str, Any]] | None:
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("QueryResponse"), dict):
        answer = body["QueryResponse"]
        return [
            (name, row) for name, rows in answer.items() if isinstance(rows, list) for row in rows
        ]
    if "CDCResponse" in body:
        try:
            changes = protocol.parse_cdc(body)
        except ValueError:
            return None
        return [(name, row) for name, rows in changes.items() for row in rows
                if not protocol.is_deleted(row)]  # fmt: skip
    entities = [
        name for name, value in body.items() if name[:1].isupper() and isinstance(value, dict)
    ]
    return [(entities[0], body[entities[0]])] if len(entities) == 1 else None
