"""QuickBooks Online records as canonical customers and invoices (pure functions, no I/O).

Region-agnostic: Intuit stopped selling QuickBooks Online in India (service ended 31 Jan 2023),
so the India-only fields (`GSTIN`, `GSTRegistrationType`, `BusinessNumber`) are read when present
and a company without them maps just as well, its taxes as `other_tax`. QuickBooks omits empty
properties (absent, not null): every read here treats absent, null and "" alike.

Invoices (docs/connectors/quickbooks.md, section 7):
- Lines: `SalesItemLineDetail` lines become lines; a `GroupLineDetail` (bundle) gives its nested
  lines; `SubTotalLineDetail` is QuickBooks' own sum and is skipped; `DescriptionOnly` lines carry
  text, no amount, and are skipped (their text stays in `raw`).
- Discounts (`DiscountLineDetail`): with `ApplyTaxAfterDiscount` true the discount lowers the
  taxable value, so it is spread over the lines (largest remainder, in paise) and each line's
  taxable amount is net of its share, as GST wants; otherwise (QuickBooks' default) the tax was
  computed on the full amounts and the discount comes off the total after tax: a negative
  `adjustment`, lines untouched. Either way it is `discount_total`.
- Taxes: `TxnTaxDetail.TaxLine[]` classified by the referenced TaxRate (`TaxRateInfo`). QuickBooks
  returns no per-line tax: each tax line is shared over the lines it was computed on (the lines
  whose amounts add up to its `NetAmountTaxable`, `_taxed_by`) in proportion to their taxable
  amounts, in whole paise, so the lines add up to the header exactly.
- Totals: `TotalAmt` is the total as stated. A whole `TotalAmt` within half a unit of the lines
  plus tax is a total rounded to the rupee: the difference is `round_off` (QuickBooks has no
  field for it). Anything else it holds beyond what is read here is left for the
  `invoice_totals_add_up` check to flag, not absorbed (tax-inclusive amounts are read as
  tax-exclusive, `TaxInclusiveAmt` being the gross (unverified)).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hub_pipelines import gst
from hub_pipelines.canonical import ZERO, Customer, Invoice, InvoiceLine
from hub_pipelines.connectors.base import MappingError, parse_date, parse_timestamp, to_decimal
from hub_pipelines.connectors.gst_heads import TAX_HEADS, head_from_name, no_taxes

# GSTRegistrationType (India companies, minorversion ≥ 33) -> the canonical gst_treatment.
GST_TREATMENTS = {
    "GST_REG_REG": "registered_regular",
    "GST_REG_COMP": "registered_composition",
    "GST_UNREG": "unregistered_business",
    "CONSUMER": "consumer",
    "OVERSEAS": "overseas",
    "SEZ": "sez",
    "DEEMED": "deemed_export",
}
INDIA_NAMES = frozenset({"india", "in", "ind"})
NOT_TAXABLE_CODE = "NON"  # US companies: a line's TaxCodeRef is "TAX" or "NON"
PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]")
HALF_A_UNIT = Decimal("0.50")  # the most a rounding to the whole rupee (or dollar) changes


# --- tax rates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaxRateInfo:
    """A QuickBooks TaxRate (`SELECT * FROM TaxRate`), as far as mapping needs it: its GST head
    ('cgst', 'sgst', 'igst', 'cess'), or None for a tax that is not GST (`other_tax`)."""

    id: str
    name: str | None = None
    rate: Decimal | None = None  # RateValue, percent
    agency_id: str | None = None
    head: str | None = None


def tax_rate_info(record: Mapping[str, Any]) -> TaxRateInfo:
    """A TaxRate record as `TaxRateInfo`, its head from its name, description or agency name
    ("CGST 9%", "IGST 18%", "Compensation Cess"); how India companies named them is
    (unverified): a name that says nothing is `other_tax`."""
    agency = _ref(record, "AgencyRef")
    return TaxRateInfo(
        id=_required_text(record, "Id"),
        name=_text(record.get("Name")),
        rate=_money(record, "RateValue", places=4),
        agency_id=agency["value"],
        head=classify_tax(record.get("Name"), record.get("Description"), agency["name"]),
    )


def tax_rates_by_id(records: Iterable[Mapping[str, Any]]) -> dict[str, TaxRateInfo]:
    return {info.id: info for info in map(tax_rate_info, records)}


def classify_tax(*names: Any) -> str | None:
    """The GST head the first recognisable name says, else None (not GST)."""
    return next((head for head in map(head_from_name, names) if head), None)


# --- customers ---------------------------------------------------------------------------------


def map_customer(record: dict[str, Any]) -> Customer:
    """A QuickBooks Customer (query row or detail) as a canonical customer. Sub-customers (jobs,
    `Job: true`) are customers of their own, as QuickBooks lists them."""
    address = _object(record, "BillAddr")
    gstin = _text(record.get("GSTIN"))
    gstin = gstin.upper() if gstin else None
    state = _customer_state(record, gstin)
    return Customer(
        external_id=_required_text(record, "Id"),
        name=_required_text(record, "DisplayName"),
        raw=record,
        display_name=_text(record.get("CompanyName")),
        email=_text(_object(record, "PrimaryEmailAddr").get("Address")),
        phone=_text(_object(record, "PrimaryPhone").get("FreeFormNumber"))
        or _text(_object(record, "Mobile").get("FreeFormNumber")),
        gstin=gstin,
        pan=_pan(record, gstin),
        gst_treatment=GST_TREATMENTS.get(_text(record.get("GSTRegistrationType")) or "", "unknown"),
        state_code=state,
        place_of_supply=state,
        billing_line1=_text(address.get("Line1")),
        billing_line2=_joined(address.get(f"Line{n}") for n in range(2, 6)),
        billing_city=_text(address.get("City")),
        billing_state=_text(address.get("CountrySubDivisionCode")),
        billing_postal_code=_text(address.get("PostalCode")),
        billing_country=_text(address.get("Country")),
        currency=_ref(record, "CurrencyRef")["value"],
        is_active=record.get("Active") is not False,  # absent: active (QuickBooks omits it)
        outstanding_balance=_money(record, "Balance"),
        source_updated_at=_updated_at(record),
    )


def _is_indian(record: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    if _text(record.get("GSTIN")) or _text(record.get("GSTRegistrationType")):
        return True
    return (_text(address.get("Country")) or "").lower() in INDIA_NAMES


def _customer_state(record: Mapping[str, Any], gstin: str | None) -> str | None:
    """The GST state code, for an Indian customer only: the GSTIN's first two digits, else the
    billing address' state (a code such as "MH", a name, or the numeric code; the code list
    QuickBooks India used is (unverified)). A US "CA" or "TN" is a US state, never read as
    Indian."""
    if gstin and gstin[:2] in gst.STATE_CODES:
        return gstin[:2]
    address = _object(record, "BillAddr")
    if not _is_indian(record, address):
        return None
    return indian_state(address.get("CountrySubDivisionCode"))


def indian_state(value: Any) -> str | None:
    """An Indian state as written in an address ("MH", "Maharashtra", "27") as its GST code."""
    text = _text(value)
    if not text:
        return None
    if text in gst.STATE_CODES:
        return text
    return gst.state_code_from_zoho(text) or gst.state_code_from_name(text)


def _pan(record: Mapping[str, Any], gstin: str | None) -> str | None:
    """`BusinessNumber` when it is a PAN (India; elsewhere it holds other numbers: a Canadian BN,
    an Australian ABN), else the PAN inside the GSTIN."""
    number = (_text(record.get("BusinessNumber")) or "").upper()
    if PAN.fullmatch(number):
        return number
    if gstin and len(gstin) == 15 and PAN.fullmatch(gstin[2:12]):
        return gstin[2:12]
    return None


# --- invoices ----------------------------------------------------------------------------------


def is_void(record: Mapping[str, Any]) -> bool:
    """QuickBooks has no void flag: a voided invoice keeps its lines with amounts zeroed, a
    `TotalAmt` of 0 and "Voided" in `PrivateNote` (a heuristic from Intuit's blog and SDK issues,
    (unverified) against a real voided invoice)."""
    total = _money(record, "TotalAmt")
    note = _text(record.get("PrivateNote")) or ""
    return total == ZERO and "voided" in note.lower()


def invoice_status(record: Mapping[str, Any]) -> str:
    """void (`is_void`); paid when nothing is left of a non-zero total; partially_paid when part
    is; else open. QuickBooks has no drafts (unverified)."""
    if is_void(record):
        return "void"
    total = _money(record, "TotalAmt") or ZERO
    balance = _money(record, "Balance") or ZERO
    if total > 0 and balance == 0:
        return "paid"
    if 0 < balance < total:
        return "partially_paid"
    return "open"


def map_invoice(
    record: dict[str, Any],
    tax_rates: Mapping[str, TaxRateInfo],
    customer: Customer | None = None,
) -> Invoice:
    """A QuickBooks Invoice as a canonical invoice with lines. `tax_rates`: the company's TaxRates
    by id (all of them, inactive ones too: old invoices refer to them). `customer`: the invoice's
    customer when known, for its state (place of supply) and GST treatment."""
    customer_ref = _ref(record, "CustomerRef")
    if customer_ref["value"] is None:
        raise MappingError("CustomerRef: missing (an invoice always names its customer)")
    lines, discount, subtotal_line = _read_lines(record)
    before_tax = record.get("ApplyTaxAfterDiscount") is True
    if before_tax and lines:
        _spread_discount(lines, discount)
    taxes = _tax_lines(record, tax_rates)
    heads = no_taxes()
    for tax in taxes:
        heads[tax.head] += tax.amount
        _share_tax(tax, lines)
    goods = sum((line.taxable_amount + line.discount for line in lines), ZERO)
    # No sales line in the answer (real: sandbox invoice 42 has only its subtotal line): the
    # subtotal QuickBooks states is all there is of the goods' value.
    subtotal = goods if lines else subtotal_line or ZERO
    taxable = sum((line.taxable_amount for line in lines), ZERO) if lines else subtotal
    if before_tax and not lines:
        taxable -= discount
    tax_total = sum(heads.values(), ZERO)
    adjustment = ZERO if before_tax else -discount
    total = _required_money(record, "TotalAmt")
    return Invoice(
        external_id=_required_text(record, "Id"),
        raw=record,
        status=invoice_status(record),
        invoice_number=_text(record.get("DocNumber")),
        customer_external_id=customer_ref["value"],
        customer_name=customer_ref["name"],
        issue_date=_date(record, "TxnDate"),
        due_date=_date(record, "DueDate"),
        currency=_ref(record, "CurrencyRef")["value"],
        exchange_rate=_money(record, "ExchangeRate", places=6),
        subtotal=subtotal,
        discount_total=discount,
        taxable_amount=taxable,
        **heads,
        tax_total=tax_total,
        round_off=round_off(total, taxable + tax_total + adjustment),
        adjustment=adjustment,
        total=total,
        balance_due=_money(record, "Balance") or ZERO,
        place_of_supply=_place_of_supply(record, customer, heads),
        gst_treatment=customer.gst_treatment
        if customer and customer.gst_treatment != "unknown"
        else None,
        source_updated_at=_updated_at(record),
        lines=[line.line for line in lines],
    )


def round_off(total: Decimal, exact: Decimal) -> Decimal:
    """QuickBooks has no round-off field. A company that rounds its invoices to the whole rupee
    states a whole `TotalAmt` within half a rupee of the lines plus tax (how QuickBooks India
    kept it is (unverified); the simulator renders Books' round-off so): that difference is the
    round-off. Any other difference is left for the `invoice_totals_add_up` check."""
    difference = total - exact
    if total == total.to_integral_value() and abs(difference) <= HALF_A_UNIT:
        return difference
    return ZERO


@dataclass
class _Line:
    """A line while its invoice is mapped: the canonical line and what its tax share needs."""

    line: InvoiceLine
    tax_code: str | None
    percents: list[Decimal | None]  # of the tax lines shared onto it

    @property
    def taxable_amount(self) -> Decimal:
        return self.line.taxable_amount

    @property
    def discount(self) -> Decimal:
        return self.line.discount


def _read_lines(record: Mapping[str, Any]) -> tuple[list[_Line], Decimal, Decimal | None]:
    """The sales lines (group lines flattened), the invoice's discount and the last subtotal
    QuickBooks states."""
    raw_lines = record.get("Line")
    if not isinstance(raw_lines, list):
        raise MappingError(f"Line: expected a list of lines, got {raw_lines!r}")
    lines: list[_Line] = []
    discount, subtotal = ZERO, None
    for where, raw in _flattened(raw_lines, "Line"):
        kind = raw.get("DetailType")
        if kind == "SalesItemLineDetail":
            lines.append(_sales_line(raw, len(lines) + 1, where))
        elif kind == "DiscountLineDetail":
            discount += _required_money(raw, "Amount", where)
        elif kind == "SubTotalLineDetail":
            subtotal = _money(raw, "Amount", where=where)
        elif kind != "DescriptionOnly":
            raise MappingError(f"{where}.DetailType: unknown line type {kind!r}")
    return lines, discount, subtotal


def _flattened(raw_lines: list[Any], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, raw in enumerate(raw_lines):
        place = f"{where}[{index}]"
        if not isinstance(raw, Mapping):
            raise MappingError(f"{place}: not an object")
        if raw.get("DetailType") != "GroupLineDetail":
            yield place, raw
            continue
        nested = _object(raw, "GroupLineDetail").get("Line") or []
        if not isinstance(nested, list):
            raise MappingError(f"{place}.GroupLineDetail.Line: expected a list")
        yield from _flattened(nested, f"{place}.GroupLineDetail.Line")


def _sales_line(raw: dict[str, Any], number: int, where: str) -> _Line:
    try:
        detail = _object(raw, "SalesItemLineDetail")
        amount = _required_money(raw, "Amount")
        line = InvoiceLine(
            line_number=number,  # the position among the sales lines: LineNum is absent in groups
            raw=raw,
            external_id=_text(raw.get("Id")),
            item_name=_ref(detail, "ItemRef")["name"],
            description=_text(raw.get("Description")),
            quantity=_money(detail, "Qty", places=4),
            rate=_money(detail, "UnitPrice", places=4),
            taxable_amount=amount,
            tax_rate=ZERO,
            line_total=amount,
        )
        tax_code = _ref(detail, "TaxCodeRef")["value"]
    except MappingError as exc:
        raise MappingError(f"{where}.{exc}") from None
    return _Line(line, tax_code, [])


def _spread_discount(lines: list[_Line], discount: Decimal) -> None:
    """A discount before tax, shared over the lines in proportion to their amounts."""
    shares = allocate(discount, [line.taxable_amount for line in lines])
    for line, share in zip(lines, shares, strict=True):
        line.line.discount = share
        line.line.taxable_amount -= share
        line.line.line_total = line.line.taxable_amount


@dataclass(frozen=True)
class _Tax:
    head: str  # a canonical tax amount field: cgst, sgst, igst, cess or other_tax
    amount: Decimal
    percent: Decimal | None
    net_taxable: Decimal | None  # the amount it was computed on, as QuickBooks states it


def _tax_lines(record: Mapping[str, Any], tax_rates: Mapping[str, TaxRateInfo]) -> list[_Tax]:
    """The invoice's taxes, classified; a part of `TotalTax` that no tax line explains is
    `other_tax` (tax, but not known to be GST)."""
    detail = _object(record, "TxnTaxDetail")
    entries = detail.get("TaxLine") or []
    if not isinstance(entries, list):
        raise MappingError("TxnTaxDetail.TaxLine: expected a list")
    taxes = []
    for index, entry in enumerate(entries):
        where = f"TxnTaxDetail.TaxLine[{index}]"
        if not isinstance(entry, Mapping):
            raise MappingError(f"{where}: not an object")
        line = _object(entry, "TaxLineDetail")
        rate = _ref(line, "TaxRateRef")
        info = tax_rates.get(rate["value"] or "")
        head = info.head if info else head_from_name(rate["name"])
        amount = _required_money(entry, "Amount", where)
        percent = _money(line, "TaxPercent", places=4) if line.get("PercentBased") else None
        net = _money(line, "NetAmountTaxable")
        taxes.append(_Tax(head if head in TAX_HEADS else "other_tax", amount, percent, net))
    stated = _money(detail, "TotalTax", where="TxnTaxDetail")
    unexplained = (stated or ZERO) - sum((tax.amount for tax in taxes), ZERO)
    if unexplained > 0:
        taxes.append(_Tax("other_tax", unexplained, None, None))
    return taxes


def _share_tax(tax: _Tax, lines: list[_Line]) -> None:
    """Share one tax line over the lines it was computed on, in whole paise (`allocate`). A
    line's `tax_rate` is the sum of the percentages shared onto it; None when one is not known
    (a flat tax, or a share that is not certainly the line's own)."""
    if not tax.amount:
        return
    targets, exact = _taxed_by(tax, lines)
    shares = allocate(tax.amount, [target.taxable_amount for target in targets])
    for target, share in zip(targets, shares, strict=True):
        setattr(target.line, tax.head, getattr(target.line, tax.head) + share)
        target.line.line_total += share
        target.percents.append(tax.percent if exact else None)
        known = [percent for percent in target.percents if percent is not None]
        target.line.tax_rate = sum(known, ZERO) if len(known) == len(target.percents) else None


def _taxed_by(tax: _Tax, lines: list[_Line]) -> tuple[list[_Line], bool]:
    """The lines a tax line was computed on, and whether that is certain: the lines whose taxable
    amounts add up to its `NetAmountTaxable` — those of one tax code (India: "GST 18%" lines for
    CGST 9% and SGST 9%, "GST 5%" lines for the 2.5% ones), else every taxed line (not "NON"),
    else every line (real: a line marked NON after the tax was computed). Failing all, every taxed
    line, uncertain unless they share one tax code and no `NetAmountTaxable` says otherwise.
    Empty when the answer has no line to carry it (the tax stays on the header)."""
    with_amount = [line for line in lines if line.taxable_amount]
    taxed = [line for line in with_amount if line.tax_code != NOT_TAXABLE_CODE] or with_amount
    codes: dict[str | None, list[_Line]] = {}
    for line in taxed:
        codes.setdefault(line.tax_code, []).append(line)
    if tax.net_taxable is None:
        return taxed, len(codes) < 2
    groups = list(codes.values()) if len(codes) > 1 else []
    matching = [group for group in groups if _adds_up_to(group, tax.net_taxable)]
    if len(matching) == 1:
        return matching[0], True
    for group in (taxed, with_amount):
        if _adds_up_to(group, tax.net_taxable):
            return group, True
    return taxed, False


def _adds_up_to(lines: list[_Line], amount: Decimal) -> bool:
    """Within a paisa a line: a discount spread over the lines rounds each share."""
    total = sum((line.taxable_amount for line in lines), ZERO)
    return abs(total - amount) <= Decimal("0.01") * len(lines)


def allocate(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """`amount` (in paise) split in proportion to `weights` so that the parts add up to it
    exactly: each part rounded towards zero, the paise left over going to the largest
    remainders (the earlier line on a tie). Equal parts when every weight is zero."""
    if not weights:
        return []
    paise = int((amount * 100).to_integral_value())
    if len(weights) == 1:  # most tax lines fall on one line: all of it
        return [Decimal(paise).scaleb(-2)]
    sign, paise = (-1 if paise < 0 else 1), abs(paise)
    sizes = [abs(weight) for weight in weights]
    if not any(sizes):
        sizes = [Decimal(1)] * len(weights)
    whole = sum(sizes, Decimal(0))
    exact = [paise * size / whole for size in sizes]
    parts = [int(share) for share in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (parts[i] - exact[i], i))
    for index in by_remainder[: paise - sum(parts)]:
        parts[index] += 1
    return [Decimal(sign * part).scaleb(-2) for part in parts]


def _place_of_supply(
    record: Mapping[str, Any], customer: Customer | None, heads: Mapping[str, Decimal]
) -> str | None:
    """The customer's state when it is Indian; without the customer, the ship-to (else bill-to)
    state of an invoice that carries GST. QuickBooks has no place-of-supply field for India
    (`TransactionLocationType` is France's): derived, (unverified)."""
    if customer is not None and customer.state_code:
        return customer.state_code
    if not any(heads[head] for head in TAX_HEADS):
        return None
    for field in ("ShipAddr", "BillAddr"):
        state = indian_state(_object(record, field).get("CountrySubDivisionCode"))
        if state:
            return state
    return None


# --- value readers -----------------------------------------------------------------------------


def _object(record: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """A nested object; absent or null is empty (QuickBooks omits empty properties)."""
    value = record.get(field)
    if type(value) is dict:  # parsed JSON: skips the Mapping ABC's slow isinstance check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MappingError(f"{field}: expected an object, got {value!r}")
    return value


def _ref(record: Mapping[str, Any], field: str) -> dict[str, str | None]:
    """A reference (`{"value": "24", "name": "…"}`) as its value and name, None when absent."""
    ref = _object(record, field)
    return {"value": _text(ref.get("value")), "name": _text(ref.get("name"))}


def _text(value: Any) -> str | None:
    if type(value) is str:  # most values, 26 an invoice: no conversion nor ABC check
        return value.strip() or None
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


def _joined(values: Iterable[Any]) -> str | None:
    return ", ".join(text for text in map(_text, values) if text) or None


def _required_text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise MappingError(f"{field}: expected a non-empty string, got {value!r}")
    return str(value).strip()


def _money(
    record: Mapping[str, Any], field: str, places: int = 2, where: str | None = None
) -> Decimal | None:
    try:
        return to_decimal(record.get(field), places=places)
    except ValueError as exc:
        raise MappingError(f"{where + '.' if where else ''}{field}: {exc}") from None


def _required_money(record: Mapping[str, Any], field: str, where: str | None = None) -> Decimal:
    amount = _money(record, field, where=where)
    if amount is None:
        raise MappingError(f"{where + '.' if where else ''}{field}: missing")
    return amount


def _date(record: Mapping[str, Any], field: str) -> date | None:
    try:
        return parse_date(_text(record.get(field)))
    except ValueError:
        raise MappingError(f"{field}: not a YYYY-MM-DD date: {record.get(field)!r}") from None


def _updated_at(record: Mapping[str, Any]) -> datetime | None:
    value = _object(record, "MetaData").get("LastUpdatedTime")
    try:
        return parse_timestamp(_text(value))
    except ValueError:
        raise MappingError(f"MetaData.LastUpdatedTime: not a timestamp: {value!r}") from None
