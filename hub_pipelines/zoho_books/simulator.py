"""A local Zoho Books v3 (India data centre) for tests, the demo and the benchmarks.

One Starlette app serves both hosts Zoho splits across domains: the accounts server
(`POST /oauth/v2/token`, and the consent page `GET /oauth/v2/auth`) and the Books API
(`/books/v3/...`). It follows the Zoho Books protocol fact sheet (`protocols/zoho_books.md`):
refresh without rotation, HTTP 200 token errors, mandatory `organization_id`, list rows without
line items, `last_modified_time` filters with `±hhmm` offsets, 100 requests/minute/organisation
and a daily quota with `X-Rate-Limit-*` headers, HTTP 429 without `Retry-After`.

Test code drives it in-process:

    sim = ZohoBooksSimulator()
    sim.seed_generated("60001234567", customers=50, invoices=200)
    with LoopbackServer(sim.app) as server: ...

and shapes what the next requests see through `sim.faults` (latency, 5xx, 429, dropped
connections, token expiry, malformed pages), `sim.clock` (record timestamps) and the mutation
methods (`edit_invoice`, `void_invoice`, `delete_invoice`, ...). `hub simulate` serves it
(through `rendering.simulate` or `rendering.replay`).

Values marked (unverified) in the fact sheet are implemented as the fact sheet describes them and
are listed in the docstrings where they matter, so that a real capture can correct them.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hub_pipelines import gst
from hub_pipelines.simulation.catalogue import (
    BUSINESS_NAMES,
    CATALOGUE,
    CITIES,
    FIRST_NAMES,
    LAST_NAMES,
    LEGAL_FORMS,
    NIL_RATED_CATALOGUE,
    OVERSEAS_CUSTOMERS,
    PAYMENT_TERMS,
    STREETS,
    TRADES,
    CatalogueItem,
    slug,
    unique,
)
from hub_pipelines.simulation.consent import consent_route
from hub_pipelines.simulation.engine import (
    Knob,
    RateLimits,
    RateStatus,
    Reply,
    SimulatorEngine,
    json_bytes,
)
from hub_pipelines.simulation.listings import Listings
from hub_pipelines.simulation.oauth_server import NEVER, TokenPolicy, TokenRefusal
from hub_pipelines.zoho_books.demo_organisation import SIMULATOR_INFO_PATH

IST = timezone(timedelta(hours=5, minutes=30))

# Fake credentials of the simulator itself; printing and committing them is harmless.
DEFAULT_ORG_ID = "60001234567"
DEFAULT_CLIENT_ID = "1000.SIMULATORZOHOBOOKSCLIENT01"
DEFAULT_CLIENT_SECRET = "simulator0secret0zoho0books0000000000000"  # noqa: S105
DEFAULT_REFRESH_TOKEN = "1000.simulatorrefreshtoken0000000000.simulator0000000000000000"  # noqa: S105


MAX_PER_PAGE = 200
TOO_MANY_REQUESTS = (
    "You have made too many requests continuously. Please try again after some time."
)
JSON_MEDIA_TYPE = "application/json;charset=UTF-8"
ORGANIZATIONS_PATH = "/books/v3/organizations"  # the one API path without organization_id

_ZERO = Decimal("0")
_RUPEE = Decimal("1")


# --- Formats -------------------------------------------------------------------------------------

_ZOHO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")


def zoho_time(moment: datetime) -> str:
    """Zoho's timestamp format: org time zone (IST here), offset without a colon."""
    return moment.astimezone(IST).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_zoho_time(text: str) -> datetime | None:
    """`2025-03-07T11:17:40+0530` -> aware datetime; None for anything else (e.g. an unencoded
    `+` that arrived as a space)."""
    if not isinstance(text, str) or not _ZOHO_TIME.match(text):
        return None
    return datetime.fromisoformat(text)


def json_number(amount: Decimal) -> int | float:
    """Zoho writes whole amounts as integers (598) and others as doubles (149.97)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _percent_label(rate: Decimal) -> str:
    """9 -> '9', 2.5 -> '2.5': how Zoho India names its GST taxes (CGST9, CGST2.5)."""
    return format(rate.normalize(), "f")


# --- Tax master ----------------------------------------------------------------------------------

GST_RATES = (Decimal(5), Decimal(12), Decimal(18), Decimal(28))
CESS_RATES = (Decimal(1), Decimal(12))


@dataclass(slots=True)
class TaxMaster:
    """One organisation's `GET /settings/taxes`: IGST/CGST/SGST/cess taxes plus the intra-state
    groups (GST18 = CGST9 + SGST9) that invoices reference on their lines."""

    rows: list[dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    igst_by_rate: dict[Decimal, dict[str, Any]]
    group_by_rate: dict[Decimal, dict[str, Any]]
    by_name: dict[str, dict[str, Any]]

    def non_gst(self, name: str, rate: Decimal, new_id: Callable[[], str]) -> dict[str, Any]:
        """A tax that is not GST (a VAT, a US sales tax): no GST `tax_specific_type`. Added to
        the master the first time an invoice charges it."""
        if name not in self.by_name:
            row = _tax_row(new_id(), name, rate, "")
            self.rows.append(row)
            self.by_name[name] = row
        return self.by_name[name]


def _tax_row(tax_id: str, name: str, rate: Decimal, specific: str, tax_type: str = "tax") -> dict:
    return {
        "tax_id": tax_id,
        "tax_name": name,
        "tax_percentage": json_number(rate),
        "tax_type": tax_type,
        "tax_specific_type": specific,
        "is_value_added": False,
        "is_default_tax": False,
        "is_editable": True,
        "status": "active",
    }


def build_tax_master(new_id: Callable[[], str]) -> TaxMaster:
    rows: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    igst_by_rate: dict[Decimal, dict[str, Any]] = {}
    group_by_rate: dict[Decimal, dict[str, Any]] = {}

    def add(name: str, rate: Decimal, specific: str, tax_type: str = "tax") -> dict[str, Any]:
        row = _tax_row(new_id(), name, rate, specific, tax_type)
        rows.append(row)
        by_name[name] = row
        return row

    for rate in GST_RATES:
        igst_by_rate[rate] = add(f"IGST{_percent_label(rate)}", rate, "igst")
        half = rate / 2
        members = [
            add(f"{head.upper()}{_percent_label(half)}", half, head) for head in ("cgst", "sgst")
        ]
        group = add(f"GST{_percent_label(rate)}", rate, "", tax_type="tax_group")
        group_by_rate[rate] = group
        groups[group["tax_id"]] = {
            "tax_group_id": group["tax_id"],
            "tax_group_name": group["tax_name"],
            "tax_group_percentage": group["tax_percentage"],
            "taxes": [
                {key: member[key] for key in ("tax_id", "tax_name", "tax_percentage", "tax_type")}
                | {"tax_specific_type": member["tax_specific_type"]}
                for member in members
            ],
        }
    for rate in CESS_RATES:
        add(f"Cess{_percent_label(rate)}", rate, "cess")
    add("Nil Rated", _ZERO, "nil")
    return TaxMaster(rows, groups, igst_by_rate, group_by_rate, by_name)


# --- Catalogues for generated data ---------------------------------------------------------------

ITEM_ID_BASE = 174460000000000100  # below every id the simulator allocates


def _item_number(item: CatalogueItem) -> int:
    if item in NIL_RATED_CATALOGUE:
        return len(CATALOGUE) + NIL_RATED_CATALOGUE.index(item)
    return CATALOGUE.index(item)


# --- Invoices ------------------------------------------------------------------------------------

INVOICE_LIST_FIELDS = (
    "invoice_id", "customer_id", "customer_name", "status", "invoice_number", "reference_number",
    "date", "due_date", "currency_code", "total", "balance", "created_time", "last_modified_time",
    "exchange_rate", "adjustment", "shipping_charge", "write_off_amount",
)  # fmt: skip
CONTACT_LIST_FIELDS = (
    "contact_id", "contact_name", "customer_name", "company_name", "contact_type", "status",
    "customer_sub_type", "payment_terms", "payment_terms_label", "currency_code",
    "outstanding_receivable_amount", "first_name", "last_name", "email", "phone", "mobile",
    "created_time", "last_modified_time",
)  # fmt: skip


def _project(record: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: record[name] for name in names if name in record}


@dataclass(slots=True)
class GeneratedLine:
    item: CatalogueItem
    quantity: Decimal
    rate: Decimal
    discount_percent: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceTerms:
    """How one generated invoice departs from a plain, tax-exclusive one (issue 8). Field values
    are the ones a Zoho user picks on the invoice form."""

    tax_inclusive: bool = False  # item rates include tax (`is_inclusive_tax`)
    discount_percent: Decimal = _ZERO  # invoice-level discount (`discount_type: entity_level`)
    discount_before_tax: bool = True  # `is_discount_before_tax`
    shipping: Decimal = _ZERO  # shipping charge as entered (tax-inclusive when the invoice is)
    shipping_taxed: bool = False  # GST on the shipping charge (SAC 996812, 18 %)
    adjustment: Decimal = _ZERO  # a free adjustment of the total (not a rounding)
    adjustment_description: str = "Adjustment"
    einvoiced: bool = False  # an IRN from the e-invoicing portal (`einvoice_details`)
    non_gst_tax: str | None = None  # a tax that is not GST charged instead (e.g. "VAT"): its name
    non_gst_rate: Decimal = _ZERO


PLAIN_TERMS = InvoiceTerms()
# `transaction_rounding_type` of an organisation that rounds totals to the nearest whole number;
# only "no_rounding" is seen in real answers, this value is (unverified). The hub does not read it.
ROUND_TO_RUPEE = "round_to_whole_number"
SHIPPING_SAC = "996812"  # courier services
SHIPPING_GST_RATE = Decimal(18)
NOT_ISSUED = ("draft", "pending_approval", "approved", "rejected")  # no receivable, no IRN


@dataclass(slots=True)
class GeneratedInvoice:
    """A generated invoice kept compact (a few scalars per line); the Zoho JSON is rendered on
    request, so that 100k invoices fit in memory."""

    invoice_id: str
    invoice_number: str
    customer: dict[str, Any]  # the contact as it was when the invoice was raised
    place_of_supply: str  # Zoho alpha code; "" for exports
    intra_state: bool
    date: str
    due_date: str
    payment_terms: int
    status: str
    paid_percent: int  # share of the total paid, for partially_paid
    rounds_off: bool  # the organisation rounds totals to the rupee (`roundoff_value`)
    created_time: datetime
    last_modified_time: datetime
    lines: tuple[GeneratedLine, ...]
    # Real India organisations compute each tax on the invoice's total (`entity_level`); the
    # per-line amounts are rounded on their own and may differ from the summary by a paisa.
    tax_rounding: str = "entity_level"
    terms: InvoiceTerms = PLAIN_TERMS

    @property
    def customer_id(self) -> str:
        return self.customer["contact_id"]

    def summary(self, taxes: TaxMaster) -> dict[str, Any]:
        return _project(self.detail(taxes), INVOICE_LIST_FIELDS)

    def detail(self, taxes: TaxMaster) -> dict[str, Any]:
        terms, inclusive = self.terms, self.terms.tax_inclusive
        amounts = [self._line_amount(line) for line in self.lines]
        sub_total = sum(amounts, _ZERO)
        discount = gst.round_money(sub_total * terms.discount_percent / 100)
        shares = _shares(amounts, discount) if terms.discount_before_tax else [_ZERO] * len(amounts)
        summary = _TaxSummary(self.tax_rounding)
        rendered = [
            self._render_line(order, line, amount - share, taxes, summary)
            for order, (line, amount, share) in enumerate(
                zip(self.lines, amounts, shares, strict=True)
            )
        ]
        shipping = self._shipping(taxes, summary)
        tax_total = summary.total()
        shipping_value = shipping.inclusive if inclusive else shipping.exclusive
        lines_value = sub_total - discount  # discounts before and after tax both leave the total
        total_before = lines_value + shipping_value + terms.adjustment
        if not inclusive:
            total_before += tax_total
        roundoff = _ZERO
        if self.rounds_off:
            roundoff = total_before.quantize(_RUPEE, rounding=ROUND_HALF_UP) - total_before
        total = total_before + roundoff
        taxed_value = sum((line.base for line in rendered if line.taxed), _ZERO)
        taxed_value += shipping_value if shipping.taxes else _ZERO
        total_taxable = taxed_value - tax_total if inclusive else taxed_value
        payment_made = self._payment_made(total)
        customer = self.customer
        detail = {
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
            "status": self.status,
            "customer_id": customer["contact_id"],
            "customer_name": customer["contact_name"],
            "date": self.date,
            "due_date": self.due_date,
            "payment_terms": self.payment_terms,
            "payment_terms_label": _terms_label(self.payment_terms),
            "reference_number": "",
            "gst_no": customer.get("gst_no", ""),
            "gst_treatment": customer.get("gst_treatment", ""),
            "place_of_supply": self.place_of_supply,
            "tax_specification": "intra" if self.intra_state else "inter",
            "is_pre_gst": False,
            "currency_code": customer.get("currency_code", "INR"),
            "exchange_rate": customer.get("_exchange_rate", 1),
            "is_inclusive_tax": inclusive,
            "discount": json_number(terms.discount_percent),
            "discount_percent": json_number(terms.discount_percent),
            "is_discount_before_tax": terms.discount_before_tax,
            "discount_type": "entity_level" if terms.discount_percent else "item_level",
            "discount_total": json_number(discount),
            "discount_applied_on_amount": json_number(sub_total if discount else _ZERO),
            "line_items": [line.json for line in rendered],
            "sub_total": json_number(sub_total),
            "sub_total_inclusive_of_tax": json_number(sub_total if inclusive else _ZERO),
            "total_taxable_amount": json_number(total_taxable),
            "tax_total": json_number(tax_total),
            "taxes": [
                {"tax_name": name, "tax_amount": json_number(amount)}
                for name, amount in summary.amounts().items()
            ],
            **shipping.json,
            "adjustment": json_number(terms.adjustment),
            "adjustment_description": terms.adjustment_description if terms.adjustment else "",
            "roundoff_value": json_number(roundoff),
            "transaction_rounding_type": ROUND_TO_RUPEE if self.rounds_off else "no_rounding",
            "rounding_mode": "round_half_up",
            "total": json_number(total),
            "payment_made": json_number(payment_made),
            "credits_applied": 0,
            "balance": json_number(total - payment_made),
            "write_off_amount": 0,
            "price_precision": 2,
            "tax_rounding": self.tax_rounding,
            "billing_address": dict(customer.get("billing_address") or {}),
            "shipping_address": dict(customer.get("shipping_address") or {}),
            "created_time": zoho_time(self.created_time),
            "last_modified_time": zoho_time(self.last_modified_time),
        }
        if terms.einvoiced and self.status not in NOT_ISSUED:
            detail["einvoice_details"] = self._einvoice_details()
        return detail

    def _payment_made(self, total: Decimal) -> Decimal:
        if self.status == "paid":
            return total
        if self.status == "partially_paid":
            return gst.round_money(total * self.paid_percent / 100)
        return _ZERO  # not issued, sent, overdue and void keep the full balance (void: as Zoho)

    @staticmethod
    def _line_amount(line: GeneratedLine) -> Decimal:
        gross = gst.round_money(line.rate * line.quantity)
        return gross - gst.round_money(gross * line.discount_percent / 100)

    def _render_line(
        self, order: int, line: GeneratedLine, base: Decimal, taxes: TaxMaster, summary: _TaxSummary
    ) -> RenderedLine:
        """`discount` is the line's percentage and `discount_amount` its rupee value (how Zoho
        reports a percentage discount in responses is (unverified)). `base` is the line's amount
        after its share of an invoice-level discount before tax: what its tax is computed on.
        On a tax-inclusive invoice `rate`, `item_total` and `item_total_inclusive_of_tax` include
        the tax (what `item_total` holds in that mode is (unverified); the hub does not read it)."""
        gross = gst.round_money(line.rate * line.quantity)
        discount_amount = gst.round_money(gross * line.discount_percent / 100)
        item_total = gross - discount_amount
        tax, charged = self._line_taxes(line.item.gst_rate, taxes)
        line_taxes = summary.charge(base, charged, self.terms.tax_inclusive)
        tax_amount = sum((amount for _, amount in line_taxes), _ZERO)
        base_id = int(self.invoice_id)
        line_json = {
            "line_item_id": str(base_id + 5 + order),
            "item_id": str(ITEM_ID_BASE + _item_number(line.item)),
            "item_order": order + 1,
            "name": line.item.name,
            "description": line.item.description,
            "hsn_or_sac": line.item.hsn_or_sac,
            "product_type": line.item.product_type,
            "item_type": "sales",
            "rate": json_number(line.rate),
            "bcy_rate": json_number(line.rate),
            "quantity": json_number(line.quantity),
            "unit": line.item.unit,
            "discount": json_number(line.discount_percent),
            "discount_amount": json_number(discount_amount),
            "tax_id": tax["tax_id"] if tax else "",
            "tax_name": tax["tax_name"] if tax else "",
            "tax_type": tax["tax_type"] if tax else "tax",
            "tax_percentage": tax["tax_percentage"] if tax else 0,
            "item_total": json_number(item_total),
            "item_total_inclusive_of_tax": json_number(
                item_total if self.terms.tax_inclusive else item_total + tax_amount
            ),
            "line_item_taxes": [
                {
                    "tax_id": row["tax_id"],
                    "tax_name": _summary_name(row),
                    "tax_amount": json_number(amount),
                    "tax_percentage": row["tax_percentage"],
                    "tax_specific_type": row["tax_specific_type"],
                }
                for row, amount in line_taxes
            ],
            "account_name": "Sales",
        }
        taxed = any(Decimal(str(row["tax_percentage"])) for row, _ in line_taxes)
        return RenderedLine(line_json, base, taxed)

    def _line_taxes(
        self, gst_rate: Decimal, taxes: TaxMaster
    ) -> tuple[dict | None, list[dict[str, Any]]]:
        """The tax (or group) named on a line and the taxes it charges (tax master rows)."""
        if self.terms.non_gst_tax:  # a tax that is not GST, whatever the item's GST rate
            row = taxes.by_name[self.terms.non_gst_tax]
            return row, [row]
        if not self.place_of_supply:  # export: no GST charged in this simulator
            return None, []
        if not gst_rate:
            row = taxes.by_name["Nil Rated"]
            return row, [row]
        if not self.intra_state:
            tax = taxes.igst_by_rate[gst_rate]
            return tax, [tax]
        half = _percent_label(gst_rate / 2)
        members = [taxes.by_name[f"{head}{half}"] for head in ("CGST", "SGST")]
        return taxes.group_by_rate[gst_rate], members

    def _shipping(self, taxes: TaxMaster, summary: _TaxSummary) -> RenderedShipping:
        """The shipping charge, GST at 18 % on it when taxed (exports: never)."""
        charge, inclusive = self.terms.shipping, self.terms.tax_inclusive
        tax, charged = None, []
        if charge and self.terms.shipping_taxed and self.place_of_supply:
            tax, charged = self._line_taxes(SHIPPING_GST_RATE, taxes)
        ship_taxes = summary.charge(charge, charged, inclusive)
        tax_amount = sum((amount for _, amount in ship_taxes), _ZERO)
        exclusive = charge - tax_amount if inclusive else charge
        json = {
            "shipping_charge": json_number(charge),
            "shipping_charge_exclusive_of_tax": json_number(exclusive),
            "shipping_charge_inclusive_of_tax": json_number(exclusive + tax_amount),
            "shipping_charge_tax": json_number(tax_amount) if tax else "",
            "shipping_charge_tax_id": tax["tax_id"] if tax else "",
            "shipping_charge_tax_name": tax["tax_name"] if tax else "",
            "shipping_charge_tax_percentage": tax["tax_percentage"] if tax else "",
            "shipping_charge_sac_code": SHIPPING_SAC if charge else "",
            "shipping_charge_taxes": [
                {
                    "tax_id": row["tax_id"],
                    "tax_name": _summary_name(row),
                    "tax_amount": json_number(amount),
                    "tax_specific_type": row["tax_specific_type"],
                }
                for row, amount in ship_taxes
            ],
        }
        return RenderedShipping(json, exclusive, exclusive + tax_amount, ship_taxes)

    def _einvoice_details(self) -> dict[str, Any]:
        """What Zoho returns once the invoice is registered with the IRP: the IRN is the 64-hex
        SHA-256 the portal issues, in `inv_ref_num` (Zoho has no top-level `irn`)."""
        digest = hashlib.sha256(f"{self.invoice_id}/{self.invoice_number}".encode()).hexdigest()
        acknowledged = self.created_time + timedelta(minutes=10)
        cancelled = self.status == "void"
        return {
            "inv_ref_num": digest,
            "ack_number": f"1{int(digest[:16], 16) % 10**14:014d}",
            "ack_date": acknowledged.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S"),
            "status": "cancelled" if cancelled else "pushed",
            "status_formatted": "Cancelled" if cancelled else "Pushed",
        }


def _shares(amounts: list[Decimal], discount: Decimal) -> list[Decimal]:
    """An invoice-level discount over the lines, in proportion to their amounts, rounded to the
    paisa; the last line takes what rounding leaves."""
    total = sum(amounts, _ZERO)
    if not discount or not total:
        return [_ZERO] * len(amounts)
    shares = [gst.round_money(discount * amount / total) for amount in amounts[:-1]]
    return [*shares, discount - sum(shares, _ZERO)]


class _TaxSummary:
    """The invoice's `taxes` summary while its lines are rendered: per tax name, the sum of the
    rounded line amounts (`item_level`) or the rounded sum of the exact ones (`entity_level`)."""

    def __init__(self, rounding: str) -> None:
        self.entity_level = rounding == "entity_level"
        self.exact: dict[str, Decimal] = {}
        self.rounded: dict[str, Decimal] = {}

    def charge(
        self, base: Decimal, charged: list[dict[str, Any]], inclusive: bool
    ) -> list[tuple[dict[str, Any], Decimal]]:
        """Each tax's amount on `base` (tax-inclusive: base × rate ÷ (100 + total rate)),
        rounded per line, and added to the summary."""
        total_rate = sum((Decimal(str(row["tax_percentage"])) for row in charged), _ZERO)
        out = []
        for row in charged:
            rate = Decimal(str(row["tax_percentage"]))
            exact = base * rate / ((100 + total_rate) if inclusive else 100)
            amount = gst.round_money(exact)
            name = _summary_name(row)
            self.exact[name] = self.exact.get(name, _ZERO) + exact
            self.rounded[name] = self.rounded.get(name, _ZERO) + amount
            out.append((row, amount))
        return out

    def amounts(self) -> dict[str, Decimal]:
        if self.entity_level:
            return {name: gst.round_money(exact) for name, exact in self.exact.items()}
        return dict(self.rounded)

    def total(self) -> Decimal:
        return sum(self.amounts().values(), _ZERO)


def _summary_name(tax: dict[str, Any]) -> str:
    return f"{tax['tax_name']} ({tax['tax_percentage']}%)"


class RenderedLine(NamedTuple):
    json: dict[str, Any]
    base: Decimal  # what the line's tax is computed on (tax-inclusive when the invoice is)
    taxed: bool  # a tax at a rate above 0 (not nil-rated, not an export)


class RenderedShipping(NamedTuple):
    json: dict[str, Any]
    exclusive: Decimal
    inclusive: Decimal
    taxes: list[tuple[dict[str, Any], Decimal]]


@dataclass(frozen=True)
class InvoiceMix:
    """Shares (0..1) of generated invoices that depart from a plain one, as real organisations'
    books do. The default (no mix) is plain, so that a seed gives the data it always gave."""

    tax_inclusive: float = 0.0  # item rates include GST
    invoice_discount: float = 0.0  # an invoice-level discount (of tax-exclusive invoices)
    discount_after_tax: float = 0.0  # share of those discounts given after tax
    shipping: float = 0.0  # a shipping charge
    shipping_taxed: float = 0.5  # share of shipping charges with GST on them
    adjustment: float = 0.0  # a free adjustment (not a rounding)
    approvals: float = 0.0  # pending approval, approved or rejected (not issued)
    nil_rated: float = 0.0  # a nil-rated line (GST 0 %, a zero-amount tax entry)
    einvoicing: bool = False  # the organisation e-invoices: B2B invoices carry an IRN


REALISTIC_MIX = InvoiceMix(
    tax_inclusive=0.1,
    invoice_discount=0.1,
    discount_after_tax=0.2,
    shipping=0.15,
    adjustment=0.05,
    approvals=0.03,
    nil_rated=0.05,
    einvoicing=True,
)
ADJUSTMENTS = (
    (Decimal(250), "Handling charges"),
    (Decimal(-100), "Goodwill"),
    (Decimal("75.50"), "Packing"),
)
APPROVAL_STATUSES = ("pending_approval", "approved", "rejected")


class _Mixer:
    """Applies an `InvoiceMix` to generated invoices, drawing from its own random stream (the
    same number of draws per invoice whatever comes out, so a seed gives the same data)."""

    def __init__(self, mix: InvoiceMix, seed: int) -> None:
        self.mix = mix
        self.rng = random.Random(f"invoice-mix-{seed}")

    def apply(self, invoice: GeneratedInvoice) -> None:
        mix, rng = self.mix, self.rng
        draws = [rng.random() for _ in range(8)]
        discount_percent = Decimal(rng.choice(("2.5", "5", "10")))
        shipping = Decimal(rng.choice((150, 250, 500, 1200)))
        adjustment, description = rng.choice(ADJUSTMENTS)
        approval = rng.choice(APPROVAL_STATUSES)
        nil_item = rng.choice(NIL_RATED_CATALOGUE)
        nil_quantity = Decimal(rng.randint(5, 40))
        domestic = bool(invoice.place_of_supply)
        inclusive = domestic and draws[0] < mix.tax_inclusive
        discounted = not inclusive and draws[1] < mix.invoice_discount
        shipped = draws[3] < mix.shipping
        invoice.terms = InvoiceTerms(
            tax_inclusive=inclusive,
            discount_percent=discount_percent if discounted else _ZERO,
            discount_before_tax=not (discounted and draws[2] < mix.discount_after_tax),
            shipping=shipping if shipped else _ZERO,
            shipping_taxed=shipped and domestic and draws[4] < mix.shipping_taxed,
            adjustment=adjustment if draws[5] < mix.adjustment else _ZERO,
            adjustment_description=description,
            einvoiced=mix.einvoicing and invoice.customer.get("gst_treatment") == "business_gst",
        )
        if draws[6] < mix.approvals:
            invoice.status = approval  # not issued: nothing paid
        if draws[7] < mix.nil_rated:
            nil_line = GeneratedLine(nil_item, nil_quantity, nil_item.price, _ZERO)
            invoice.lines = (*invoice.lines[:-1], nil_line)


def _terms_label(days: int) -> str:
    return dict(PAYMENT_TERMS).get(days, f"Net {days}")


@dataclass(slots=True)
class StoredInvoice:
    """An invoice held as Zoho JSON: seeded from files, added by a test, or edited."""

    data: dict[str, Any]
    invoice_id: str = ""
    invoice_number: str = ""
    customer_id: str = ""
    status: str = ""
    date: str = ""
    created_time: datetime | None = None
    last_modified_time: datetime | None = None

    def __post_init__(self) -> None:
        data = self.data
        self.invoice_id = str(data["invoice_id"])
        self.invoice_number = str(data.get("invoice_number", ""))
        self.customer_id = str(data.get("customer_id", ""))
        self.status = str(data.get("status", ""))
        self.date = str(data.get("date", ""))
        self.created_time = parse_zoho_time(data.get("created_time", ""))
        self.last_modified_time = parse_zoho_time(data.get("last_modified_time", ""))

    def summary(self, taxes: TaxMaster) -> dict[str, Any]:
        return _project(self.data, INVOICE_LIST_FIELDS)

    def detail(self, taxes: TaxMaster) -> dict[str, Any]:
        return self.data


AnyInvoice = GeneratedInvoice | StoredInvoice


# --- Organisations -------------------------------------------------------------------------------


@dataclass
class Organisation:
    org_id: str
    name: str
    state_code: str  # GST numeric code of the seller's registration
    taxes: TaxMaster
    tax_rounding: str = "entity_level"  # "item_level" as an option: how generated taxes round
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, AnyInvoice] = field(default_factory=dict)
    last_invoice_number: int = 0
    # Invoices sorted per (column, order), and the rows each list request selects (its filters
    # and sort), so that a walk's pages are slices of one listing; emptied by `changed`.
    listings: Listings = field(default_factory=Listings, repr=False, compare=False)

    def changed(self) -> None:
        self.listings.clear()

    def next_invoice_number(self) -> str:
        self.last_invoice_number += 1
        return f"INV-{self.last_invoice_number:06d}"


def _zoho_token(kind: str) -> str:
    """Zoho's token shape: `1000.<32 hex>.<32 hex>` for access and refresh tokens alike."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


def _zoho_redirect_extras(request: Request) -> dict[str, str]:
    """Zoho's multi-DC redirect names the user's data centre and its accounts server; this one
    is both hosts, in the India DC."""
    return {"location": "in", "accounts-server": f"{request.url.scheme}://{request.url.netloc}"}


def _break_record(body: dict[str, Any], index: int) -> dict[str, Any]:
    """One realistic defect per entity, so connectors' per-record error handling is exercised
    (`body` is the engine's copy)."""
    if body.get("invoices"):
        rows = body["invoices"]
        rows[min(index, len(rows) - 1)].pop("invoice_id", None)
    elif body.get("contacts"):
        rows = body["contacts"]
        rows[min(index, len(rows) - 1)]["contact_name"] = 404
    elif "invoice" in body:
        lines = body["invoice"].get("line_items") or []
        if lines:
            lines[min(index, len(lines) - 1)]["rate"] = "1,2O0.OO"
        else:
            body["invoice"]["total"] = "N/A"
    elif "contact" in body:
        body["contact"]["contact_name"] = {"first": body["contact"].get("contact_name")}
    return body


# --- The simulator -------------------------------------------------------------------------------


def _error(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


def _not_found(entity: str) -> Reply:
    return _error(404, 1002, f"{entity} does not exist.")


def _invalid(param: str) -> Reply:
    return _error(400, 2, f"Invalid value passed for {param}")  # code (unverified)


class BadParameter(Exception):
    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.reply = _invalid(param)


def _int_param(params: dict[str, str], name: str, default: int, low: int = 1) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name) from None
    if value < low:
        raise BadParameter(name)
    return value


def _choice_param(params: dict[str, str], name: str, allowed: Iterable[str], default: str) -> str:
    value = params.get(name) or default
    if value not in allowed:
        raise BadParameter(name)
    return value


def _page(rows: Sequence[Any], params: dict[str, str]) -> tuple[Sequence[Any], dict[str, Any]]:
    page = _int_param(params, "page", 1)
    per_page = min(_int_param(params, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
    start = (page - 1) * per_page
    context = {"page": page, "per_page": per_page, "has_more_page": len(rows) > start + per_page}
    return rows[start : start + per_page], context


def _list_reply(
    key: str,
    rows: Sequence[Any],
    render: Callable[[Any], dict[str, Any]],
    params: dict[str, str],
    report: tuple[str, str, str, str],
) -> Reply:
    """One page of a list endpoint with Zoho's `page_context` (report name, filter, sort)."""
    page_rows, context = _page(rows, params)
    name, applied, column, order = report
    context |= {
        "report_name": name,
        "applied_filter": applied,
        "sort_column": column,
        "sort_order": order,
    }
    listed = [render(row) for row in page_rows]
    return Reply(200, {"code": 0, "message": "success", key: listed, "page_context": context})


class ZohoBooksSimulator(SimulatorEngine):
    """State and HTTP surface of a fake Zoho Books India organisation set: the Zoho Shape on the
    simulator engine (pipeline, faults, limits, OAuth server and request log are the engine's).

    Knobs (plain attributes, changeable at any time):
      requests_per_minute: 100 per organisation, sliding 60 s window.
      daily_limit: 10000 per organisation, resets at midnight IST.
      access_token_lifetime: 3600 s.
      token_requests_per_window / token_window_seconds: 10 per 600 s per refresh token.
      token_throttle_status: 200, like every other token error (the real status is unverified).
      max_active_access_tokens: 15 per refresh token; the 16th invalidates the oldest silently
        (Zoho CRM v8 "Token validity"; other Zoho products say 30; Zoho Books states none).
      contacts_default_filter: "Status.All" when `filter_by` is absent (a real recording's
        `page_context.applied_filter`).
      sort_honoured: True; False makes the list endpoints ignore sort_column/sort_order.
      api_domain: None means this server's own base URL.
      clock: record timestamps (aware datetime); timer: monotonic seconds for windows/expiry.
      max_refresh_tokens_per_client: 20; the 21st refresh token deletes the oldest.
    Counters: requests_served, requests_throttled, requests_dropped, request_log.
    """

    json_media_type = JSON_MEDIA_TYPE
    requests_per_minute = Knob("limiter.limits", "per_minute")
    daily_limit = Knob("limiter.limits", "per_day")
    access_token_lifetime = Knob("oauth.policy", "access_token_lifetime")
    token_requests_per_window = Knob("oauth.policy", "token_requests_per_window")
    token_window_seconds = Knob("oauth.policy", "token_window_seconds")
    max_active_access_tokens = Knob("oauth.policy", "max_active_access_tokens")
    max_refresh_tokens_per_client = Knob("oauth.policy", "max_grants_per_client")

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        requests_per_minute: int = 100,
        daily_limit: int = 10_000,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            limits=RateLimits(
                per_minute=requests_per_minute, per_day=daily_limit, day_resets_in=IST
            ),
            token_policy=TokenPolicy(
                access_token_lifetime=3600,
                rotation=NEVER,
                token_requests_per_window=10,
                token_window_seconds=600.0,
                max_active_access_tokens=15,
                max_grants_per_client=20,
            ),
            clock=clock,
            timer=timer,
            new_token=_zoho_token,
        )
        self.token_throttle_status = 200
        self.contacts_default_filter = "Status.All"
        # False: the list endpoints ignore sort_column/sort_order (a source that does not honour
        # them) and answer in their default order, echoing it in page_context.
        self.sort_honoured = True
        self.api_domain: str | None = None
        self.organisations: dict[str, Organisation] = {}
        self._next_id = 174460000000100001
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        self.add_client(client_id, client_secret)
        self.issue_refresh_token(client_id, refresh_token)

    @property
    def _lock(self) -> Any:
        """The engine's `lock` under its name from before the engine (zoho_books/rendering.py)."""
        return self.lock

    # --- identities ------------------------------------------------------------------------------

    def new_id(self, step: int = 1000) -> str:
        """Long digit-string ids; spaced by 1000 so line items can take the next numbers."""
        with self.lock:
            value = self._next_id
            self._next_id += step
            return str(value)

    def add_client(self, client_id: str, client_secret: str) -> None:
        self.oauth.add_client(client_id, client_secret)

    def issue_refresh_token(self, client_id: str, token: str | None = None) -> str:
        """A grant-code exchange's result. The 21st refresh token of a client silently deletes
        its oldest, as Zoho Accounts does."""
        return self.oauth.issue_refresh_token(client_id, token)

    def issue_access_token(self, refresh_token: str | None = None) -> str:
        """Back door for tests that do not exercise the token endpoint (no rate limit)."""
        return self.oauth.issue_access_token(refresh_token or self.refresh_token)

    def expire_access_tokens(self) -> None:
        """Every issued access token stops working now (clients must refresh)."""
        self.oauth.expire_access_tokens()

    # --- organisations and records ---------------------------------------------------------------

    def add_organisation(
        self, org_id: str = DEFAULT_ORG_ID, name: str | None = None, state_code: str = "29"
    ) -> Organisation:
        if state_code not in gst.STATE_CODES:
            raise ValueError(f"unknown GST state code {state_code!r}")
        with self.lock:
            if org_id not in self.organisations:
                self.organisations[org_id] = Organisation(
                    org_id=org_id,
                    name=name or f"Simulated Books {org_id}",
                    state_code=state_code,
                    taxes=build_tax_master(lambda: self.new_id(step=1)),
                )
            return self.organisations[org_id]

    def get_contact(self, org_id: str, contact_id: str) -> dict[str, Any]:
        """The contact's current detail JSON (a copy)."""
        with self.lock:
            return copy.deepcopy(_public(self.organisations[org_id].contacts[contact_id]))

    def get_invoice(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        """The invoice's current detail JSON (a copy), as `GET /invoices/{id}` returns it."""
        with self.lock:
            org = self.organisations[org_id]
            return copy.deepcopy(org.invoices[invoice_id].detail(org.taxes))

    def invoice_ids(self, org_id: str) -> list[str]:
        with self.lock:
            return list(self.organisations[org_id].invoices)

    def contact_ids(self, org_id: str) -> list[str]:
        with self.lock:
            return list(self.organisations[org_id].contacts)

    def _now(self) -> datetime:
        return self.clock().astimezone(IST).replace(microsecond=0)

    # --- generated data --------------------------------------------------------------------------

    def seed_generated(
        self,
        org_id: str = DEFAULT_ORG_ID,
        *,
        customers: int = 50,
        invoices: int = 200,
        lines_per_invoice: int = 3,
        seed: int = 42,
        seller_state: str = "29",
        as_of: datetime | None = None,
        mix: InvoiceMix | None = None,
        tax_rounding: str = "entity_level",
    ) -> Organisation:
        """Deterministic Indian customers and GST invoices. The same seed, sizes, `as_of` (taken
        at midnight IST; default: today by `clock`) and a fresh simulator give identical data.

        Invoices carry 1..lines_per_invoice lines, dates and last_modified_time spread over the
        year before `as_of`. `mix` (e.g. `REALISTIC_MIX`) makes shares of them tax-inclusive,
        discounted at invoice level, shipped, adjusted, awaiting approval, nil-rated or
        e-invoiced; it draws from its own random stream, so the plain data stays the same.
        `tax_rounding` is the organisation's: "entity_level" (real India organisations) or
        "item_level"."""
        if (customers < 1 and invoices) or lines_per_invoice < 1:
            raise ValueError("invoices need at least one customer and one line")
        if tax_rounding not in ("entity_level", "item_level"):
            raise ValueError(f"tax_rounding: entity_level or item_level, not {tax_rounding!r}")
        rng = random.Random(seed)
        mixer = _Mixer(mix, seed) if mix else None
        anchor = (as_of or self.clock()).astimezone(IST)
        anchor = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        with self.lock:
            org = self.add_organisation(org_id, state_code=seller_state)
            org.tax_rounding = tax_rounding
            taken = {contact["contact_name"] for contact in org.contacts.values()}
            contacts = [self._generate_contact(rng, org, anchor, taken) for _ in range(customers)]
            for contact in contacts:
                org.contacts[contact["contact_id"]] = contact
            for _ in range(invoices):
                invoice = self._generate_invoice(
                    rng, org, rng.choice(contacts), anchor, lines_per_invoice
                )
                if mixer:
                    mixer.apply(invoice)
                org.invoices[invoice.invoice_id] = invoice
            self._total_outstanding(org, contacts)
            org.changed()
            return org

    def _generate_contact(
        self, rng: random.Random, org: Organisation, anchor: datetime, taken: set[str]
    ) -> dict[str, Any]:
        kind = rng.choices(
            ("business_gst", "business_none", "consumer", "overseas"), (72, 8, 14, 6)
        )[0]
        if kind == "overseas":
            identity = self._overseas_identity(rng, taken)
        else:
            identity = self._indian_identity(rng, org, kind, taken)
        created = anchor - timedelta(days=rng.randint(380, 900), seconds=rng.randint(0, 86_399))
        modified = created + timedelta(
            seconds=rng.randint(0, int((anchor - created).total_seconds()))
        )
        terms = rng.choice(PAYMENT_TERMS)
        person_first, person_last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        phone, mobile = identity.pop("_phone"), f"+91-9{rng.randrange(10**9):09d}"
        contact_id = self.new_id()
        return {
            "contact_id": contact_id,
            **identity,
            "contact_type": "customer",
            "status": "inactive" if rng.random() < 0.04 else "active",
            "payment_terms": terms[0],
            "payment_terms_label": terms[1],
            "phone": phone,
            "mobile": mobile,
            "outstanding_receivable_amount": 0,
            "contact_persons": [
                {
                    "contact_person_id": str(int(contact_id) + 2),
                    "first_name": person_first,
                    "last_name": person_last,
                    "email": identity["email"],
                    "phone": phone,
                    "mobile": mobile,
                    "is_primary_contact": True,
                }
            ],
            "created_time": zoho_time(created),
            "last_modified_time": zoho_time(modified),
        }

    def _indian_identity(
        self, rng: random.Random, org: Organisation, kind: str, taken: set[str]
    ) -> dict[str, Any]:
        state, city, pin, std, _ = self._pick_city(rng, org)
        if kind == "consumer":
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name = unique(f"{first} {last}", taken)
            company, holder, email = "", "P", f"{slug(first)}.{slug(last)}@gmail.com"
        else:
            form, holder = rng.choice(LEGAL_FORMS)
            first, last = "", ""
            base = f"{rng.choice(BUSINESS_NAMES)} {rng.choice(TRADES)}"
            name = unique(f"{base} {form}".strip(), taken)
            company, email = name, f"accounts@{slug(base)}.in"
        registered = kind == "business_gst"
        pan = gst.make_pan(rng, holder, last or name) if registered else ""
        address = {
            "attention": "",
            "address": f"{rng.randint(1, 250)}, {rng.choice(STREETS)}",
            "street2": "",
            "city": city,
            "state": gst.STATE_CODES[state],
            "state_code": gst.zoho_code_from_state_code(state),
            "zip": str(pin + rng.randrange(40)),
            "country": "India",
            "phone": f"+91-{std}-{rng.randrange(10**7):07d}",
        }
        return {
            "contact_name": name,
            "company_name": company,
            "first_name": first,
            "last_name": last,
            "customer_sub_type": "individual" if kind == "consumer" else "business",
            "gst_no": gst.make_gstin(state, pan, rng.choice((1, 1, 1, 2))) if registered else "",
            "gst_treatment": kind,
            "place_of_contact": gst.zoho_code_from_state_code(state),
            "pan_no": pan,
            "is_taxable": True,
            "currency_code": "INR",
            "_exchange_rate": 1,
            "email": email,
            "billing_address": address,
            "shipping_address": dict(address),
            "_phone": address["phone"],
        }

    def _pick_city(self, rng: random.Random, org: Organisation) -> tuple[str, str, int, str, int]:
        # A third of customers sit in the seller's own state: intra-state (CGST+SGST) supplies.
        local = [city for city in CITIES if city[0] == org.state_code]
        if local and rng.random() < 0.35:
            return rng.choice(local)
        return rng.choices(CITIES, [city[4] for city in CITIES])[0]

    def _overseas_identity(self, rng: random.Random, taken: set[str]) -> dict[str, Any]:
        name, country, city, state, zip_code, currency, rate = rng.choice(OVERSEAS_CUSTOMERS)
        name = unique(name, taken)
        address = {
            "attention": "",
            "address": f"{rng.randint(1, 900)} Harbour Street",
            "street2": "",
            "city": city,
            "state": state,
            "state_code": "",
            "zip": zip_code,
            "country": country,
            "phone": "",
        }
        return {
            "contact_name": name,
            "company_name": name,
            "first_name": "",
            "last_name": "",
            "customer_sub_type": "business",
            "gst_no": "",
            "gst_treatment": "overseas",
            "place_of_contact": "",
            "pan_no": "",
            "is_taxable": False,
            "currency_code": currency,
            "_exchange_rate": float(rate),
            "email": f"ap@{slug(name)}.com",
            "billing_address": address,
            "shipping_address": dict(address),
            "_phone": f"+1-{rng.randrange(10**10):010d}",
        }

    def _generate_invoice(
        self,
        rng: random.Random,
        org: Organisation,
        customer: dict[str, Any],
        anchor: datetime,
        max_lines: int,
        issued: date | None = None,
    ) -> GeneratedInvoice:
        issued = issued or (anchor - timedelta(days=rng.randint(1, 365))).date()
        created = datetime(issued.year, issued.month, issued.day, 9, tzinfo=IST) + timedelta(
            seconds=rng.randint(0, 10 * 3600)
        )
        # Invoices are touched again within a month (sent, paid), but never after `anchor`.
        modified = min(created + timedelta(seconds=rng.randint(0, 30 * 86_400)), anchor)
        modified = max(modified, created)
        terms = customer.get("payment_terms", 15)
        due = issued + timedelta(days=terms)
        status = rng.choices(
            ("draft", "sent", "paid", "partially_paid", "void"), (8, 25, 50, 10, 5)
        )[0]
        if status == "sent" and due < anchor.date():
            status = "overdue"
        pos = customer.get("place_of_contact", "")
        return GeneratedInvoice(
            invoice_id=self.new_id(),
            invoice_number=org.next_invoice_number(),
            customer=customer,
            place_of_supply=pos,
            intra_state=gst.state_code_from_zoho(pos) == org.state_code,
            date=issued.isoformat(),
            due_date=due.isoformat(),
            payment_terms=terms,
            status=status,
            paid_percent=rng.randint(10, 90),
            rounds_off=customer["currency_code"] == "INR" and rng.random() < 0.85,
            created_time=created,
            last_modified_time=modified,
            lines=tuple(self._generate_line(rng) for _ in range(rng.randint(1, max_lines))),
            tax_rounding=org.tax_rounding,
        )

    @staticmethod
    def _generate_line(rng: random.Random) -> GeneratedLine:
        item = rng.choice(CATALOGUE)
        quantity = Decimal(rng.randint(1, item.max_quantity))
        if item.fractional and rng.random() < 0.5:
            quantity -= Decimal("0.5")
        rate = gst.round_money(item.price * Decimal(rng.randint(90, 110)) / 100)
        discount = Decimal(rng.choice((5, 10, "2.5", "7.5"))) if rng.random() < 0.15 else _ZERO
        return GeneratedLine(item, max(quantity, Decimal("0.5")), rate, discount)

    @staticmethod
    def _total_outstanding(org: Organisation, contacts: list[dict[str, Any]]) -> None:
        """Contacts' outstanding_receivable_amount as of seeding (not updated by later edits)."""
        owed: dict[str, Decimal] = {}
        for invoice in org.invoices.values():
            if invoice.status not in (*NOT_ISSUED, "void"):
                detail = invoice.detail(org.taxes)
                owed[invoice.customer_id] = owed.get(invoice.customer_id, _ZERO) + Decimal(
                    str(detail.get("balance", 0))
                )
        for contact in contacts:
            contact["outstanding_receivable_amount"] = json_number(
                owed.get(contact["contact_id"], _ZERO)
            )

    # --- mutations for tests ---------------------------------------------------------------------

    def add_contact(
        self, org_id: str, contact: dict[str, Any] | None = None, *, seed: int = 0, **fields: Any
    ) -> str:
        """Add a contact: the given Zoho JSON (ids/times filled in if missing) or, without one, a
        generated customer. Extra keyword fields override. Returns the contact_id."""
        with self.lock:
            org = self.organisations[org_id]
            now = self._now()
            if contact is None:
                taken = {c["contact_name"] for c in org.contacts.values()}
                contact = self._generate_contact(random.Random(seed), org, now, taken)
            record = {**contact, **fields}
            record.setdefault("contact_id", self.new_id())
            record["contact_id"] = str(record["contact_id"])
            record["created_time"] = record.get("created_time") or zoho_time(now)
            record["last_modified_time"] = zoho_time(now)
            org.contacts[record["contact_id"]] = record
            org.changed()
            return record["contact_id"]

    def edit_contact(self, org_id: str, contact_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields (e.g. status="inactive", gst_no=...) and bump last_modified_time."""
        with self.lock:
            org = self.organisations[org_id]
            record = {**org.contacts[contact_id], **changes}
            record["last_modified_time"] = zoho_time(self._now())
            org.contacts[contact_id] = record
            org.changed()
            return copy.deepcopy(record)

    def add_invoice(
        self,
        org_id: str,
        invoice: dict[str, Any] | None = None,
        *,
        customer_id: str | None = None,
        seed: int = 0,
        lines: int = 3,
        status: str | None = None,
        tax_rounding: str | None = None,
        rounds_off: bool | None = None,
        nil_rated: bool = False,
        **terms: Any,
    ) -> str:
        """Add an invoice: the given Zoho detail JSON, or (without one) a generated invoice dated
        today for `customer_id` (default: first contact), created and modified now.

        A generated invoice takes a `status` (e.g. "pending_approval"), the organisation's
        `tax_rounding` unless given, `rounds_off` (round the total to the rupee; default: as
        generated), `nil_rated` (its last line a nil-rated item) and `InvoiceTerms` fields as
        keywords, e.g.
        `tax_inclusive=True`, `discount_percent=10, discount_before_tax=False`,
        `shipping=250, shipping_taxed=True`, `adjustment=-100`, `einvoiced=True`,
        `non_gst_tax="VAT", non_gst_rate=5`."""
        with self.lock:
            org = self.organisations[org_id]
            if invoice is not None:
                record = StoredInvoice(self._stamped_invoice(org, invoice))
            else:
                record = self._fresh_generated_invoice(org, customer_id, random.Random(seed), lines)
                record.terms = self._terms(org, terms)
                record.status = status or record.status
                record.tax_rounding = tax_rounding or record.tax_rounding
                record.rounds_off = record.rounds_off if rounds_off is None else rounds_off
                if nil_rated:
                    item = NIL_RATED_CATALOGUE[seed % len(NIL_RATED_CATALOGUE)]
                    nil_line = GeneratedLine(item, Decimal(10), item.price, _ZERO)
                    record.lines = (*record.lines[:-1], nil_line)
            org.invoices[record.invoice_id] = record
            org.changed()
            return record.invoice_id

    def _terms(self, org: Organisation, terms: dict[str, Any]) -> InvoiceTerms:
        for name in ("discount_percent", "shipping", "adjustment", "non_gst_rate"):
            if name in terms:
                terms[name] = Decimal(str(terms[name]))
        made = InvoiceTerms(**terms)
        if made.non_gst_tax:
            org.taxes.non_gst(made.non_gst_tax, made.non_gst_rate, lambda: self.new_id(step=1))
        return made

    def _stamped_invoice(self, org: Organisation, invoice: dict[str, Any]) -> dict[str, Any]:
        now = zoho_time(self._now())
        data = copy.deepcopy(invoice)
        data["invoice_id"] = str(data.get("invoice_id") or self.new_id())
        data.setdefault("invoice_number", org.next_invoice_number())
        data.setdefault("created_time", now)
        data["last_modified_time"] = now
        return data

    def _fresh_generated_invoice(
        self, org: Organisation, customer_id: str | None, rng: random.Random, lines: int
    ) -> GeneratedInvoice:
        if not org.contacts:
            raise ValueError("add a contact before generating an invoice")
        customer = org.contacts[customer_id] if customer_id else next(iter(org.contacts.values()))
        now = self._now()
        invoice = self._generate_invoice(rng, org, customer, now, lines, issued=now.date())
        invoice.created_time = invoice.last_modified_time = now
        return invoice

    def edit_invoice(self, org_id: str, invoice_id: str, **changes: Any) -> dict[str, Any]:
        """Change detail fields (Zoho names) and bump last_modified_time to `clock()` now.
        Arithmetic after editing amounts is the caller's business, as in Zoho's API."""
        with self.lock:
            org = self.organisations[org_id]
            data = copy.deepcopy(org.invoices[invoice_id].detail(org.taxes))
            data.update(changes)
            data["last_modified_time"] = zoho_time(self._now())
            org.invoices[invoice_id] = StoredInvoice(data)
            org.changed()
            return copy.deepcopy(data)

    def void_invoice(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        """Zoho keeps a voided invoice, amounts and balance included; only the status changes."""
        return self.edit_invoice(org_id, invoice_id, status="void")

    def delete_invoice(self, org_id: str, invoice_id: str) -> None:
        """Hard delete: the invoice vanishes from lists and its detail returns 404."""
        with self.lock:
            org = self.organisations[org_id]
            del org.invoices[invoice_id]
            org.changed()

    def delete_contact(self, org_id: str, contact_id: str) -> None:
        with self.lock:
            org = self.organisations[org_id]
            del org.contacts[contact_id]
            org.changed()

    # --- seeding from Zoho-format files ----------------------------------------------------------

    def seed_from_files(
        self,
        org_id: str = DEFAULT_ORG_ID,
        *,
        contacts_path: str | Path | Sequence[str | Path] | None = None,
        invoices_path: str | Path | Sequence[str | Path] | None = None,
        seller_state: str = "29",
    ) -> Organisation:
        """Load Zoho response bodies (`{"contacts":[...]}`, `{"contact":{...}}`, `{"invoices":
        [...]}`, `{"invoice":{...}}`) or recorded fixtures that wrap them under
        `api.<method>.<path>.response`. A list row and a detail of the same id are merged, the
        detail winning, so a list capture plus a few detail captures make one data set."""
        with self.lock:
            org = self.add_organisation(org_id, state_code=seller_state)
            for record in _records_in(_paths(contacts_path), "contacts", "contact"):
                key = str(record["contact_id"])
                org.contacts[key] = {**org.contacts.get(key, {}), **record, "contact_id": key}
            for record in _records_in(_paths(invoices_path), "invoices", "invoice"):
                key = str(record["invoice_id"])
                previous = org.invoices.get(key)
                merged = {
                    **(previous.data if isinstance(previous, StoredInvoice) else {}),
                    **record,
                }
                org.invoices[key] = StoredInvoice(merged)
                org.last_invoice_number = max(org.last_invoice_number, _number_of(merged))
            org.changed()
            return org

    # --- HTTP surface: the Zoho Shape's routes and engine hooks ----------------------------------

    def routes(self) -> list[BaseRoute]:
        api = self._api_route
        token = self.api_route(
            "/oauth/v2/token", self._token_endpoint, methods=("POST",), auth=False, limited=False
        )
        return [
            token,
            consent_route(self, "/oauth/v2/auth", title="Zoho Books", extras=_zoho_redirect_extras),
            api(ORGANIZATIONS_PATH, self._list_organisations),
            api("/books/v3/contacts", self._list_contacts),
            api("/books/v3/contacts/{contact_id}", self._get_contact),
            api("/books/v3/invoices", self._list_invoices),
            api("/books/v3/invoices/{invoice_id}", self._get_invoice),
            api("/books/v3/settings/taxes", self._list_taxes),
            api("/books/v3/settings/taxgroups/{tax_group_id}", self._get_tax_group),
            Route(SIMULATOR_INFO_PATH, self._info_endpoint),
        ]

    def _api_route(self, path: str, handler: Callable[..., Reply]) -> Route:
        """A Books API route: `handler(org, params, **path_params)` (org None when unknown)."""

        def answer(request: Request, params: dict[str, str]) -> Reply:
            org = self.organisations.get(params.get("organization_id", ""))
            try:
                return handler(org, params, **request.path_params)
            except BadParameter as bad:
                return bad.reply

        return self.api_route(path, answer)

    async def _info_endpoint(self, request: Request) -> Response:
        return JSONResponse(simulator_info(self))

    def _token_endpoint(self, request: Request, params: dict[str, str]) -> Reply:
        # Zoho documents query-string parameters; a form body is accepted too (the engine merges
        # both), as OAuth libraries send one.
        grant_type = params.get("grant_type")
        client = (params.get("client_id", ""), params.get("client_secret"))
        if grant_type == "refresh_token":
            answer = self.oauth.refresh(*client, params.get("refresh_token", ""))
        elif grant_type == "authorization_code":  # the consent page's code (`hub serve` onboarding)
            answer = self.oauth.exchange_code(
                *client, params.get("code", ""), params.get("redirect_uri", "")
            )
        else:
            return Reply(200, {"error": "unsupported_grant_type"})  # (unverified)
        if isinstance(answer, TokenRefusal):
            return self._token_refusal(answer)
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        body = {
            "access_token": answer.access_token,
            "expires_in": answer.expires_in,
            "api_domain": self.api_domain or base_url,
            "token_type": "Bearer",
        }
        if grant_type == "authorization_code":  # only a code exchange hands out a refresh token
            body["refresh_token"] = answer.refresh_token
        return Reply(200, body)

    def _token_refusal(self, refusal: TokenRefusal) -> Reply:
        """Zoho answers token errors with HTTP 200; an unknown refresh token is `invalid_code`."""
        if refusal.error == "throttled":
            body = {"error": "Access Denied", "error_description": TOO_MANY_REQUESTS}
            return Reply(self.token_throttle_status, body)
        error = "invalid_code" if refusal.error == "invalid_grant" else refusal.error
        return Reply(200, {"error": error})

    def access_token(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme == "Zoho-oauthtoken" else ""

    def rate_key(self, request: Request, params: dict[str, str]) -> str:
        return params.get("organization_id", "")  # limits count per organisation

    def refuse(self, request: Request, params: dict[str, str]) -> Reply | None:
        org_id = params.get("organization_id", "")
        if request.url.path == ORGANIZATIONS_PATH or org_id in self.organisations:
            return None
        # Zoho's code and wording for a missing/unknown organisation are (unverified).
        message = f"This user is not associated with the CompanyID/CompanyName:{org_id}."
        return _error(400, 6041, message)

    def unauthorised_reply(self, request: Request) -> Reply:
        return _error(401, 57, "You are not authorized to perform this operation")

    def fault_reply(self, status: int) -> Reply:
        return _error(status, 1000, "Internal error")

    def throttle_reply(self, status: RateStatus) -> Reply:
        return _error(429, 45, TOO_MANY_REQUESTS)  # code 45 per third-party guides

    def rate_headers(self, status: RateStatus) -> dict[str, str]:
        """Daily quota counters, as Zoho sends them since build Dec_10_2019 (no Retry-After)."""
        return {
            "X-Rate-Limit-Limit": str(self.daily_limit),
            "X-Rate-Limit-Remaining": str(status.remaining["day"]),
            "X-Rate-Limit-Reset": str(int(status.resets_in["day"])),
        }

    def break_record(self, body: Any, index: int) -> Any:
        return _break_record(body, index)

    def not_found_reply(self, request: Request) -> Reply:
        return Reply(404, {"code": 5, "message": "Invalid URL Passed"})

    def method_not_allowed_reply(self, request: Request) -> Reply:
        message = f"The HTTP method {request.method} is not allowed for the requested resource"
        return Reply(405, {"code": 37, "message": message})

    # --- route handlers (called under the lock) --------------------------------------------------

    def _list_organisations(self, org: Organisation | None, params: dict[str, str]) -> Reply:
        rows = [
            {
                "organization_id": o.org_id,
                "name": o.name,
                "contact_name": "Simulator Admin",
                "email": "admin@simulator.invalid",
                "is_default_org": index == 0,
                "is_org_active": True,
                "country": "India",
                "state_code": gst.zoho_code_from_state_code(o.state_code),
                "currency_code": "INR",
                "currency_symbol": "₹",
                "price_precision": 2,
                "time_zone": "Asia/Calcutta",
                "fiscal_year_start_month": "april",
                "tax_group_enabled": True,
            }
            for index, o in enumerate(self.organisations.values())
        ]
        return Reply(200, {"code": 0, "message": "success", "organizations": rows})

    def _list_contacts(self, org: Organisation, params: dict[str, str]) -> Reply:
        applied = params.get("filter_by") or self.contacts_default_filter
        column = _choice_param(params, "sort_column", CONTACT_SORTS, "contact_name")
        order = _choice_param(params, "sort_order", ("A", "D"), "A")
        if not self.sort_honoured:
            column, order = "contact_name", "A"
        contact_type = params.get("contact_type")
        # `last_modified_time` is not documented for contacts and is ignored here (unverified).

        def listing() -> list[dict[str, Any]]:
            rows = [
                c
                for c in org.contacts.values()
                if (not contact_type or c.get("contact_type") == contact_type)
                and _status_matches(c.get("status"), applied)
            ]
            sort_key = CONTACT_SORTS[column]
            rows.sort(key=lambda c: (sort_key(c), c["contact_id"]), reverse=order == "D")
            return rows

        rows = org.listings.get(("contacts", applied, column, order, contact_type), listing)
        return _list_reply(
            "contacts", rows, _contact_row, params, ("Contacts", applied, column, order)
        )

    def _get_contact(self, org: Organisation, params: dict[str, str], contact_id: str) -> Reply:
        contact = org.contacts.get(contact_id)
        if contact is None:
            return _not_found("Contact")
        return Reply(200, {"code": 0, "message": "success", "contact": _public(contact)})

    def _list_invoices(self, org: Organisation, params: dict[str, str]) -> Reply:
        column = _choice_param(params, "sort_column", INVOICE_SORTS, "created_time")
        order = _choice_param(params, "sort_order", ("A", "D"), "D")
        if not self.sort_honoured:
            column, order = "created_time", "D"
        applied = params.get("filter_by") or "Status.All"
        filters = tuple(params.get(name) for name in INVOICE_FILTERS)
        matches = org.listings.get(
            ("invoices", applied, column, order, *filters),
            lambda: [
                i for i in self._sorted_invoices(org, column, order) if _keep(i, params, applied)
            ],
        )
        return _list_reply(
            "invoices",
            matches,
            lambda invoice: invoice.summary(org.taxes),
            params,
            ("Invoices", applied, column, order),
        )

    def _sorted_invoices(self, org: Organisation, column: str, order: str) -> list[AnyInvoice]:
        key = INVOICE_SORTS[column]
        return org.listings.get(
            ("sorted invoices", column, order),
            lambda: sorted(
                org.invoices.values(),
                key=lambda i: (key(i, org.taxes), i.invoice_id),
                reverse=order == "D",
            ),
        )

    def _get_invoice(self, org: Organisation, params: dict[str, str], invoice_id: str) -> Reply:
        invoice = org.invoices.get(invoice_id)
        if invoice is None:
            return _not_found("Invoice")
        return Reply(200, {"code": 0, "message": "success", "invoice": invoice.detail(org.taxes)})

    def _list_taxes(self, org: Organisation, params: dict[str, str]) -> Reply:
        rows, context = _page(org.taxes.rows, params)
        return Reply(
            200, {"code": 0, "message": "success", "taxes": list(rows), "page_context": context}
        )

    def _get_tax_group(self, org: Organisation, params: dict[str, str], tax_group_id: str) -> Reply:
        group = org.taxes.groups.get(tax_group_id)
        if group is None:
            return _not_found("Tax group")
        return Reply(200, {"code": 0, "message": "success", "tax_group": group})

    @staticmethod
    def send_webhook(url: str, entity: str, record: dict[str, Any], secret: str) -> httpx.Response:
        """See the module-level `send_webhook`."""
        return send_webhook(url, entity, record, secret)


# --- list helpers --------------------------------------------------------------------------------


def _time_key(text: Any) -> datetime:
    return parse_zoho_time(text) or datetime.min.replace(tzinfo=IST)


def _text_key(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda contact: str(contact.get(name) or "").lower()


CONTACT_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "contact_name": _text_key("contact_name"),
    "first_name": _text_key("first_name"),
    "last_name": _text_key("last_name"),
    "email": _text_key("email"),
    "outstanding_receivable_amount": lambda c: float(c.get("outstanding_receivable_amount") or 0),
    "created_time": lambda c: _time_key(c.get("created_time")),
    "last_modified_time": lambda c: _time_key(c.get("last_modified_time")),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=IST)

# Sort columns Zoho documents for invoices (not last_modified_time). Cheap ones read the index;
# the others render the list row.
INVOICE_SORTS: dict[str, Callable[[AnyInvoice, TaxMaster], Any]] = {
    "date": lambda i, _: i.date,
    "created_time": lambda i, _: i.created_time or _EPOCH,
    "invoice_number": lambda i, _: i.invoice_number,
    "customer_name": lambda i, t: str(i.summary(t).get("customer_name", "")).lower(),
    "due_date": lambda i, t: str(i.summary(t).get("due_date", "")),
    "total": lambda i, t: float(i.summary(t).get("total") or 0),
    "balance": lambda i, t: float(i.summary(t).get("balance") or 0),
}

INVOICE_STATUS_FILTERS = {
    "sent": {"sent"},
    "draft": {"draft"},
    "overdue": {"overdue"},
    "paid": {"paid"},
    "void": {"void"},
    "partially_paid": {"partially_paid"},
    "viewed": {"viewed"},
    "unpaid": {"sent", "overdue", "partially_paid", "viewed"},
}


# The parameters `_keep` reads: with the filter and the sort, what a cached listing is kept under.
INVOICE_FILTERS = ("status", "customer_id", "date_start", "date_end", "last_modified_time")


def _keep(invoice: AnyInvoice, params: dict[str, str], applied: str) -> bool:
    """Invoice list filters: status/filter_by, customer_id, date range, last_modified_time."""
    status = params.get("status")
    if status is not None and invoice.status not in _statuses(status, "status"):
        return False
    if applied.startswith("Status.") and applied != "Status.All":
        wanted = _statuses(applied.removeprefix("Status.").lower(), "filter_by")
        if invoice.status not in wanted:
            return False
    customer_id = params.get("customer_id")
    if customer_id and invoice.customer_id != customer_id:
        return False
    if params.get("date_start") and invoice.date < params["date_start"]:
        return False
    if params.get("date_end") and invoice.date > params["date_end"]:
        return False
    return _modified_since(invoice, params.get("last_modified_time"))


def _statuses(value: str, param: str) -> set[str]:
    if value not in INVOICE_STATUS_FILTERS:
        raise BadParameter(param)
    return INVOICE_STATUS_FILTERS[value]


def _modified_since(invoice: AnyInvoice, bound_text: str | None) -> bool:
    """ "Modified after" per Zoho; inclusive at second granularity here (the fact sheet's reading),
    so a cursor equal to a record's last_modified_time returns that record again."""
    if bound_text is None:
        return True
    bound = parse_zoho_time(bound_text)
    if bound is None:
        raise BadParameter("last_modified_time")
    return invoice.last_modified_time is not None and invoice.last_modified_time >= bound


def _status_matches(status: Any, applied: str) -> bool:
    if applied == "Status.Active":
        return status == "active"
    if applied == "Status.Inactive":
        return status == "inactive"
    return True  # Status.All and the filters this simulator does not model


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """Generated records keep private helper keys (prefixed `_`) that Zoho does not send."""
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _contact_row(contact: dict[str, Any]) -> dict[str, Any]:
    row = _project(contact, CONTACT_LIST_FIELDS)
    if contact.get("contact_type") == "customer":
        row.setdefault("customer_name", contact.get("contact_name"))
    return row


# --- seeding helpers -----------------------------------------------------------------------------


def _paths(value: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


def _response_bodies(document: Any) -> Iterator[dict[str, Any]]:
    """A Zoho body as is, or each recorded `api.<method>.<path>.response` of a fixture file
    (a recording may be a single object or a list of them)."""
    if not isinstance(document, dict) or "api" not in document:
        yield document
        return
    for by_path in document["api"].values():
        for recordings in by_path.values():
            for recording in recordings if isinstance(recordings, list) else [recordings]:
                yield recording["response"]


def _records_in(paths: list[Path], list_key: str, item_key: str) -> Iterator[dict[str, Any]]:
    """List rows first, then single-record bodies, so that merging lets details win."""
    details: list[dict[str, Any]] = []
    for path in paths:
        for body in _response_bodies(json.loads(path.read_text(encoding="utf-8"))):
            yield from body.get(list_key) or []
            if isinstance(body.get(item_key), dict):
                details.append(body[item_key])
    yield from details


def _number_of(invoice: dict[str, Any]) -> int:
    digits = re.sub(r"\D", "", str(invoice.get("invoice_number", "")))
    return int(digits) if digits else 0


# --- webhooks ------------------------------------------------------------------------------------

_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9]{12,50}$")


def webhook_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(
    url: str, entity: str, record: dict[str, Any], secret: str, *, timeout: float = 10.0
) -> httpx.Response:
    """POST a Books workflow webhook with the "Default Payload": the module record's JSON under
    its entity name (`{"invoice": {...}}`), signed in `X-Zoho-Webhook-Signature` as the hex
    HMAC-SHA256 of the raw body with the webhook secret.

    The Books signature scheme is (unverified): this follows the closest documented Zoho scheme
    (Billing) without its sorted-parameter prefix. The hub treats verification as pluggable and
    webhooks only as a hint to re-fetch."""
    if not _WEBHOOK_SECRET.match(secret):
        raise ValueError("Zoho webhook secrets are 12-50 alphanumeric characters")
    body = json_bytes({entity: record})
    headers = {
        "Content-Type": "application/json",
        "X-Zoho-Webhook-Signature": webhook_signature(secret, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=timeout)


# --- CLI entry point -----------------------------------------------------------------------------


def simulator_info(simulator: ZohoBooksSimulator) -> dict:
    """What a tenant config needs to reach this simulator (its credentials are fake)."""
    org_id = next(iter(simulator.organisations))
    return {
        "system": "zoho_books",
        "organization_id": org_id,
        "client_id": simulator.client_id,
        "client_secret": simulator.client_secret,
        "refresh_token": simulator.refresh_token,
        "requests_per_minute": simulator.requests_per_minute,
    }
