"""Xero contacts and sales invoices as canonical records: pure functions, no I/O.

Xero has no India GST edition. An Indian business on Xero keeps GST in tax rates it names itself
(`GET /TaxRates`: a rate such as "GST 18%" with components "CGST" 9 and "SGST" 9), so a line's
GST heads come from its `TaxType`'s components, classified by name (`gst_heads.head_from_name`),
with the line's `TaxAmount` split across them in proportion to their rates, to the paisa. A rate
is read as Indian GST only when one of its components is named CGST or IGST (by
`head_from_name`): a component named plain "GST" (New Zealand, Australia, Singapore, Canada) or
"State Tax" (US sales tax) is not Indian GST, so it is `other_tax`, never refused.

Xero has no round-off field. A business that rounds totals to the rupee posts the difference as a
line on the rounding account (`ROUNDING_ACCOUNT`, 860 in Xero's default chart): such an untaxed
line is the invoice's `round_off`, not an invoice line, so the warehouse holds the lines the
invoice was written with.

What the connector needs besides the two mappers:
- `is_deleted(invoice)`: Xero keeps deleted drafts as `Status: DELETED`; the canonical invoice
  has no such status, so the connector hands the walk a tombstone for it (the loader marks the
  warehouse row deleted in that page's transaction). `map_invoice` refuses one, so a caller that
  forgets cannot load it with a wrong status.
- `should_import_contact(contact, referenced)`: Xero sets `IsCustomer` only once a contact has an
  AR invoice, so contacts are imported when flagged, set up for sales (a default sales tax or
  account), or referenced by sales invoices (`referenced_contact_ids`).
- `missing_tax_types(invoice, tax_rates)`: tax types a line uses that the tax rates read do not
  know (a rate created since): read `GET /TaxRates` again before mapping.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from hub_pipelines import gst
from hub_pipelines.canonical import ZERO, Customer, Invoice, InvoiceLine
from hub_pipelines.connectors.base import MappingError, money, parse_date
from hub_pipelines.connectors.gst_heads import TAX_AMOUNTS, add_tax, head_from_name, no_taxes
from hub_pipelines.xero.protocol import ms_json_calendar_date, ms_json_date

SALES_INVOICE = "ACCREC"
DELETED = "DELETED"
INVOICE_STATUSES = {
    "DRAFT": "draft",
    "SUBMITTED": "draft",  # awaiting approval: not issued yet
    "AUTHORISED": "open",  # partially_paid once anything is paid or credited
    "PAID": "paid",
    "VOIDED": "void",
}
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
ACTIVE = "ACTIVE"  # ARCHIVED and GDPRREQUEST contacts are inactive, never deleted
ADDRESS_PREFERENCE = ("POBOX", "STREET")  # POBOX is the postal (billing) address
PHONE_PREFERENCE = ("DEFAULT", "MOBILE")
ROUNDING_ACCOUNT = "860"  # "Rounding" in Xero's default chart of accounts
SALES_DEFAULTS = ("AccountsReceivableTaxType", "SalesDefaultAccountCode")
INDIA = frozenset({"india", "in", "ind"})
_PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]")
_PAISA = Decimal("0.01")


# --- tax rates ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaxComponent:
    """One component of a Xero tax rate; `head` is its GST head, None for a tax that is not
    Indian GST (`other_tax`)."""

    name: str
    rate: Decimal
    is_compound: bool = False
    head: str | None = None


@dataclass(frozen=True, slots=True)
class TaxRateInfo:
    """A row of `GET /TaxRates`, keyed by `TaxType` (what invoice lines name)."""

    tax_type: str
    name: str | None
    effective_rate: Decimal | None
    components: tuple[TaxComponent, ...]
    # Each component's share of the tax (`_weights`): worked out once per rate, not per line.
    weights: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(_weights(self.components)))

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, indian_gst: bool = True) -> TaxRateInfo:
        """`{"TaxType", "Name", "EffectiveRate", "TaxComponents": [{Name, Rate, IsCompound}]}`.

        `indian_gst=False` (an organisation known to be outside India) keeps every component in
        `other_tax` whatever its name. A rate without components counts as one component with
        the rate's own name and `EffectiveRate`."""
        tax_type = _text(row.get("TaxType"))
        if tax_type is None:
            raise MappingError(f"TaxType: missing in tax rate {row.get('Name')!r}")
        name = _text(row.get("Name"))
        effective = money(row, "EffectiveRate", places=4)
        components = [
            _component(entry, index)
            for index, entry in enumerate(row.get("TaxComponents") or [])
            if isinstance(entry, dict)
        ]
        if not components and effective is not None:
            components = [TaxComponent(name or tax_type, effective)]
        if indian_gst and _is_indian_gst(components):
            components = [_with_head(component) for component in components]
        return cls(tax_type, name, _effective_rate(effective, components), tuple(components))

    @property
    def is_gst(self) -> bool:
        return any(component.head for component in self.components)


def tax_rates_by_type(
    rows: Iterable[Mapping[str, Any]], *, indian_gst: bool = True
) -> dict[str, TaxRateInfo]:
    """The rows of `GET /TaxRates` (`TaxRates` in the body) by their `TaxType`."""
    rates = [TaxRateInfo.from_row(row, indian_gst=indian_gst) for row in rows]
    return {rate.tax_type: rate for rate in rates}


def _component(entry: Mapping[str, Any], index: int) -> TaxComponent:
    try:
        rate = money(entry, "Rate", places=4) or ZERO
    except MappingError as exc:
        raise MappingError(f"TaxComponents[{index}].{exc}") from None
    return TaxComponent(
        name=_text(entry.get("Name")) or "",
        rate=rate,
        is_compound=entry.get("IsCompound") is True,
    )


def _is_indian_gst(components: Sequence[TaxComponent]) -> bool:
    """Indian GST is CGST (with SGST/UTGST) or IGST: a rate naming neither is some other tax,
    even when a component's name looks like a GST head on its own ("State Tax" in the US)."""
    return any(head_from_name(component.name) in ("cgst", "igst") for component in components)


def _with_head(component: TaxComponent) -> TaxComponent:
    return replace(component, head=head_from_name(component.name))


def _effective_rate(stated: Decimal | None, components: Sequence[TaxComponent]) -> Decimal | None:
    if stated is not None:
        return stated
    if not components:
        return None
    weights = _weights(components)
    return sum(weights, ZERO).quantize(Decimal("0.0001"))


def _weights(components: Sequence[TaxComponent]) -> list[Decimal]:
    """Each component's share of the tax: its rate, and for a compound component (charged on the
    amount plus the simple taxes) its rate grown by those taxes."""
    simple = sum((c.rate for c in components if not c.is_compound), ZERO)
    return [c.rate * (100 + simple) / 100 if c.is_compound else c.rate for c in components]


def split_tax(amount: Decimal, rate: TaxRateInfo) -> dict[str, Decimal]:
    """A line's `TaxAmount` across its rate's components in proportion to their rates, exactly to
    the paisa (largest remainder; ties go to the earlier component), then summed by head, so the
    heads add up to `amount`. Xero's stated amount is split, never recomputed: a user may have
    adjusted it. Components with no rate at all share equally."""
    taxes = no_taxes()
    if not amount:
        return taxes
    if not rate.components:
        taxes["other_tax"] = amount
        return taxes
    shares = largest_remainder(amount, rate.weights)
    for component, share in zip(rate.components, shares, strict=True):
        add_tax(taxes, component.head, share)
    return taxes


def largest_remainder(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """`amount` (to the paisa) in parts proportional to `weights` that add up to it exactly."""
    paise = int((abs(amount) / _PAISA).to_integral_value())
    sign = -1 if amount < 0 else 1
    if len(set(weights)) == 1:  # equal shares (one component, CGST with SGST, no rates at all)
        # What the division below gives then, without it: the same share each, the paise left
        # over to the earliest components.
        share, left = divmod(paise, len(weights))
        return [sign * Decimal(share + (i < left)) * _PAISA for i in range(len(weights))]
    total = sum(weights, ZERO)
    exact = [Decimal(paise) * weight / total for weight in weights]
    floors = [int(share) for share in exact]
    left = paise - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in order[:left]:
        floors[index] += 1
    return [sign * Decimal(part) * _PAISA for part in floors]


# --- what the connector asks before mapping -------------------------------------------------------


def is_sales_invoice(invoice: Mapping[str, Any]) -> bool:
    return invoice.get("Type") == SALES_INVOICE


def is_deleted(invoice: Mapping[str, Any]) -> bool:
    """Whether Xero says the invoice is deleted (`Status: DELETED`, drafts and submitted ones):
    the connector treats it as gone, not as a record to load."""
    return invoice.get("Status") == DELETED


def is_customer(contact: Mapping[str, Any]) -> bool:
    """Xero's `IsCustomer` flag. It is set only once the contact has an AR invoice, so a new
    customer without one reads False: see `should_import_contact`."""
    return contact.get("IsCustomer") is True


def referenced_contact_ids(invoices: Iterable[Mapping[str, Any]]) -> set[str]:
    """The contacts that sales invoices (not deleted ones) are addressed to. Their `IsCustomer`
    and their `UpdatedDateUTC` may not have moved, so the connector fetches them by id."""
    ids = set()
    for invoice in invoices:
        contact = invoice.get("Contact")
        contact_id = _text(contact.get("ContactID")) if isinstance(contact, dict) else None
        if contact_id and is_sales_invoice(invoice) and not is_deleted(invoice):
            ids.add(contact_id)
    return ids


def should_import_contact(contact: Mapping[str, Any], referenced: Collection[str]) -> bool:
    """A contact is a customer when Xero flags it, a sales invoice names it, or the user set it
    up for sales (a default sales tax type or account): a customer not invoiced yet."""
    return (
        is_customer(contact)
        or _text(contact.get("ContactID")) in referenced
        or any(_text(contact.get(field)) for field in SALES_DEFAULTS)
    )


def missing_tax_types(invoice: Mapping[str, Any], tax_rates: Mapping[str, TaxRateInfo]) -> set[str]:
    """Tax types of the invoice's taxed lines that `tax_rates` does not know."""
    missing = set()
    for item in _line_items(invoice):
        tax_type = _text(item.get("TaxType"))
        if tax_type and tax_type not in tax_rates and _tax_amount_of(item):
            missing.add(tax_type)
    return missing


# --- contacts -------------------------------------------------------------------------------------


def map_contact(contact: dict[str, Any]) -> Customer:
    """A Xero contact as a canonical customer. `TaxNumber` counts as the GSTIN only when it is a
    valid one (then registered_regular, and the state and PAN come from it); otherwise the state
    comes from the billing address's region for an Indian or unstated country."""
    gstin = _gstin(contact.get("TaxNumber"))
    address = _billing_address(contact.get("Addresses"))
    state = _gstin_state(gstin) if gstin else _address_state(address)
    return Customer(
        external_id=_required_text(contact, "ContactID"),
        name=_required_text(contact, "Name"),
        raw=contact,
        email=_text(contact.get("EmailAddress")),
        phone=_phone(contact.get("Phones")),
        gstin=gstin,
        pan=_pan(gstin),
        gst_treatment="registered_regular" if gstin else "unknown",
        state_code=state,
        place_of_supply=state,
        billing_line1=_text(address.get("AddressLine1")),
        billing_line2=_joined(address.get(f"AddressLine{n}") for n in (2, 3, 4)),
        billing_city=_text(address.get("City")),
        billing_state=_text(address.get("Region")),
        billing_postal_code=_text(address.get("PostalCode")),
        billing_country=_text(address.get("Country")),
        currency=_text(contact.get("DefaultCurrency")),
        is_active=(_text(contact.get("ContactStatus")) or ACTIVE) == ACTIVE,
        outstanding_balance=_receivable(contact),
        source_updated_at=_timestamp(contact, "UpdatedDateUTC"),
    )


def _gstin(value: Any) -> str | None:
    text = re.sub(r"\s+", "", str(value or "")).upper()
    return text if gst.is_valid_gstin(text) else None


def _gstin_state(gstin: str) -> str | None:
    code = gst.state_code_of_gstin(gstin)
    return code if code in gst.STATE_CODES else None  # 99: the Centre (OIDAR), no state


def _pan(gstin: str | None) -> str | None:
    pan = gst.pan_from_gstin(gstin) if gstin else None
    return pan if pan and _PAN.fullmatch(pan) else None  # TDS and UIN registrations carry none


def _address_state(address: Mapping[str, Any]) -> str | None:
    """The GST state of an address's region, only for India or an unstated country: "Punjab" in
    Pakistan is not state 03."""
    country = (_text(address.get("Country")) or "").lower()
    if country and country not in INDIA:
        return None
    return gst.state_code_from_name(_text(address.get("Region")))


_ADDRESS_FIELDS = (
    "AddressLine1",
    "AddressLine2",
    "AddressLine3",
    "AddressLine4",
    "City",
    "Region",
    "PostalCode",
    "Country",
)


def _billing_address(addresses: Any) -> Mapping[str, Any]:
    """The POBOX (postal) address, else STREET: the first that holds anything (Xero sends both
    types, often as empty strings)."""
    by_type = _by_type(addresses, "AddressType")
    for kind in ADDRESS_PREFERENCE:
        address = by_type.get(kind) or {}
        if any(_text(address.get(name)) for name in _ADDRESS_FIELDS):
            return address
    return {}


def _by_type(entries: Any, key: str) -> dict[Any, Mapping[str, Any]]:
    """Addresses or phones by their type (the first of each)."""
    found: dict[Any, Mapping[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            found.setdefault(entry.get(key), entry)
    return found


def _phone(phones: Any) -> str | None:
    """DEFAULT, else MOBILE: country code, area code and number joined by spaces."""
    by_type = _by_type(phones, "PhoneType")
    for kind in PHONE_PREFERENCE:
        phone = by_type.get(kind) or {}
        if _text(phone.get("PhoneNumber")):
            return _joined(
                (phone.get(name) for name in ("PhoneCountryCode", "PhoneAreaCode", "PhoneNumber")),
                separator=" ",
            )
    return None


def _receivable(contact: Mapping[str, Any]) -> Decimal | None:
    """`Balances.AccountsReceivable.Outstanding`, when the answer has it. A balance change does
    not move `UpdatedDateUTC`, so the value is as fresh as the contact's last import."""
    balances = contact.get("Balances")
    receivable = balances.get("AccountsReceivable") if isinstance(balances, dict) else None
    if not isinstance(receivable, dict):
        return None
    try:
        return money(receivable, "Outstanding")
    except MappingError as exc:
        raise MappingError(f"Balances.AccountsReceivable.{exc}") from None


# --- invoices -------------------------------------------------------------------------------------


def map_invoice(
    invoice: dict[str, Any],
    tax_rates: Mapping[str, TaxRateInfo],
    rounding_account: str | None = ROUNDING_ACCOUNT,
) -> Invoice:
    """A Xero sales invoice (`ACCREC`, with its `LineItems`) as a canonical invoice.

    `tax_rates` are the organisation's (`tax_rates_by_type`). Each line's taxable value is
    `LineAmount` (Exclusive, NoTax) or `LineAmount − TaxAmount` (Inclusive), its tax `TaxAmount`
    split into heads by its `TaxType`. Untaxed lines on `rounding_account` are the round-off, not
    lines (Xero has no round-off field). The lines' tax must add up to `TotalTax`; anything else
    in `Total` outside the taxable value, the tax and the round-off is `adjustment`. A draft owes
    nothing (Xero states `AmountDue` = `Total` on drafts).
    Refused (MappingError naming the field): another `Type` (a bill), a DELETED invoice
    (`is_deleted`), no `Contact.ContactID`, no `LineItems` on an invoice with a total."""
    if not is_sales_invoice(invoice):
        raise MappingError(
            f"Type: {invoice.get('Type')!r} is not a sales invoice ({SALES_INVOICE}); bills and "
            "credit notes are not imported"
        )
    status = _status(invoice)
    amount_type = _text(invoice.get("LineAmountTypes"))
    if amount_type not in LINE_AMOUNT_TYPES:
        raise MappingError(
            f"LineAmountTypes: expected one of {LINE_AMOUNT_TYPES}, got {amount_type!r}"
        )
    total = money(invoice, "Total", required=True)
    items = _required_lines(invoice, total)
    rounding, supplies = [], []
    for index, item in enumerate(items):
        (rounding if _is_rounding(item, rounding_account) else supplies).append((index, item))
    round_off = sum((money(item, "LineAmount") or ZERO for _, item in rounding), ZERO)
    lines = [_map_line(item, index, tax_rates, amount_type) for index, item in supplies]
    for number, line in enumerate(lines, start=1):
        line.line_number = number
    heads = _sum_heads(lines)
    tax_total = sum(heads.values(), ZERO)
    stated_tax = money(invoice, "TotalTax")
    if stated_tax is not None and stated_tax != tax_total:
        raise MappingError(
            f"TotalTax: Xero states {stated_tax}, the lines' TaxAmount add up to {tax_total}"
        )
    taxable = sum((line.taxable_amount for line in lines), ZERO)
    contact = invoice.get("Contact") if isinstance(invoice.get("Contact"), dict) else {}
    return Invoice(
        external_id=_required_text(invoice, "InvoiceID"),
        raw=invoice,
        status=status,
        invoice_number=_text(invoice.get("InvoiceNumber")),
        customer_external_id=_contact_id(contact),
        customer_name=_text(contact.get("Name")),
        issue_date=_calendar_date(invoice, "Date"),
        due_date=_calendar_date(invoice, "DueDate"),
        currency=_text(invoice.get("CurrencyCode")),
        exchange_rate=_exchange_rate(invoice),
        subtotal=_subtotal(invoice, taxable, round_off),
        discount_total=sum((line.discount for line in lines), ZERO),
        taxable_amount=taxable,
        **heads,
        tax_total=tax_total,
        round_off=round_off,
        adjustment=total - taxable - tax_total - round_off,
        total=total,
        balance_due=ZERO if status == "draft" else money(invoice, "AmountDue") or ZERO,
        source_updated_at=_timestamp(invoice, "UpdatedDateUTC"),
        lines=lines,
    )


def _status(invoice: Mapping[str, Any]) -> str:
    status = _text(invoice.get("Status")) or ""
    if status == DELETED:
        raise MappingError(
            "Status: DELETED: a deleted invoice is not a record to load; the connector checks "
            "is_deleted() first and treats it as gone"
        )
    if status not in INVOICE_STATUSES:
        raise MappingError(f"Status: unknown Xero invoice status {status!r}")
    if status == "AUTHORISED" and _settled(invoice):
        return "partially_paid"
    return INVOICE_STATUSES[status]


def _settled(invoice: Mapping[str, Any]) -> bool:
    """Anything paid or credited on an open invoice. Credit notes settle invoices as payments
    do (a recorded invoice is PAID with `AmountPaid` 0 and `AmountCredited` = `Total`)."""
    paid = money(invoice, "AmountPaid") or ZERO
    credited = money(invoice, "AmountCredited") or ZERO
    return paid + credited > 0


def _subtotal(invoice: Mapping[str, Any], taxable: Decimal, round_off: Decimal) -> Decimal:
    """Xero's `SubTotal` (after discounts, without tax) less the rounding line it includes, else
    the lines' taxable values."""
    stated = money(invoice, "SubTotal")
    return taxable if stated is None else stated - round_off


def _is_rounding(item: Any, account: str | None) -> bool:
    """An untaxed line on the rounding account: the total's rounding, not a supply."""
    return (
        account is not None
        and isinstance(item, dict)
        and _text(item.get("AccountCode")) == account
        and not _tax_amount_of(item)
    )


def _exchange_rate(invoice: Mapping[str, Any]) -> Decimal | None:
    """Units of the organisation's currency per unit of the invoice's. Xero's `CurrencyRate` is
    the other way round, invoice currency per base unit (1 INR = 0.012 USD) (unverified)."""
    rate = money(invoice, "CurrencyRate", places=None)
    if not rate:
        return None
    return (1 / rate).quantize(Decimal("0.000001"))


def _contact_id(contact: Mapping[str, Any]) -> str:
    contact_id = _text(contact.get("ContactID"))
    if contact_id is None:
        raise MappingError("Contact.ContactID: missing: the invoice names no customer")
    return contact_id


def _line_items(invoice: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = invoice.get("LineItems")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _required_lines(invoice: Mapping[str, Any], total: Decimal) -> list[Any]:
    """The line items. Absent, or empty on an invoice with a total, they were left out of the
    answer (a list call without `page` omits them): refused rather than loaded without lines."""
    items = invoice.get("LineItems")
    if not isinstance(items, list):
        raise MappingError(
            "LineItems: missing (list calls include line items only when `page` is sent)"
        )
    if not items and total:
        raise MappingError(f"LineItems: none on an invoice whose Total is {total}")
    return items


def _map_line(
    item: Any, index: int, tax_rates: Mapping[str, TaxRateInfo], amount_type: str
) -> InvoiceLine:
    if not isinstance(item, dict):
        raise MappingError(f"LineItems[{index}]: not an object")
    try:
        return _line(item, index + 1, tax_rates, amount_type)
    except MappingError as exc:
        raise MappingError(f"LineItems[{index}].{exc}") from None


def _line(
    item: dict[str, Any], line_number: int, tax_rates: Mapping[str, TaxRateInfo], amount_type: str
) -> InvoiceLine:
    amount = money(item, "LineAmount", required=True)
    tax = money(item, "TaxAmount") or ZERO
    rate = _tax_rate(item, tax, tax_rates)
    taxable = amount - tax if amount_type == "Inclusive" else amount
    quantity = money(item, "Quantity", places=4)
    unit_amount = money(item, "UnitAmount", places=4)
    named = item.get("Item") if isinstance(item.get("Item"), dict) else {}
    return InvoiceLine(
        line_number=line_number,
        raw=item,
        external_id=_text(item.get("LineItemID")),
        item_name=_text(named.get("Name")) or _text(item.get("ItemCode")),
        description=_text(item.get("Description")),
        quantity=quantity,
        rate=unit_amount,
        discount=_discount(item, quantity, unit_amount, amount),
        taxable_amount=taxable,
        tax_rate=rate.effective_rate if rate else None,
        **(split_tax(tax, rate) if rate else no_taxes()),
        line_total=taxable + tax,
    )


def _tax_rate(
    item: Mapping[str, Any], tax: Decimal, tax_rates: Mapping[str, TaxRateInfo]
) -> TaxRateInfo | None:
    """The line's tax rate; a taxed line whose rate is unknown is refused rather than filed under
    a guessed head (read `GET /TaxRates` again: `missing_tax_types`)."""
    tax_type = _text(item.get("TaxType"))
    rate = tax_rates.get(tax_type) if tax_type else None
    if rate is None and tax:
        if tax_type is None:
            raise MappingError(f"TaxType: missing on a line with TaxAmount {tax}")
        raise MappingError(
            f"TaxType: {tax_type!r} is not among the organisation's tax rates (GET /TaxRates)"
        )
    return rate


def _tax_amount_of(item: Mapping[str, Any]) -> Decimal:
    try:
        return money(item, "TaxAmount") or ZERO
    except MappingError:
        return ZERO


def _discount(
    item: Mapping[str, Any], quantity: Decimal | None, unit: Decimal | None, amount: Decimal
) -> Decimal:
    """`DiscountAmount`, else what `DiscountRate` took off `Quantity × UnitAmount` (Xero's
    `LineAmount` is after the discount; on an Inclusive invoice the discount includes tax)."""
    stated = money(item, "DiscountAmount")
    if stated is not None:
        return stated
    if money(item, "DiscountRate", places=4) and quantity is not None and unit is not None:
        return gst.round_money(quantity * unit) - amount
    return ZERO


_heads_of = attrgetter(*TAX_AMOUNTS)


def _sum_heads(lines: Sequence[InvoiceLine]) -> dict[str, Decimal]:
    if not lines:
        return no_taxes()
    columns = zip(*map(_heads_of, lines), strict=True)  # each head's amounts, in line order
    return dict(zip(TAX_AMOUNTS, [sum(column, ZERO) for column in columns], strict=True))


# --- values ---------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Stripped text; None for absent or empty (Xero sends empty strings for absent values)."""
    if type(value) is str:  # nearly always: no conversion (17 values an invoice)
        return value.strip() or None
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _joined(values: Iterable[Any], separator: str = ", ") -> str | None:
    parts = [text for text in (_text(value) for value in values) if text]
    return separator.join(parts) or None


def _required_text(record: Mapping[str, Any], field: str) -> str:
    text = _text(record.get(field))
    if text is None:
        raise MappingError(f"{field}: missing")
    return text


def _timestamp(record: Mapping[str, Any], field: str) -> datetime | None:
    value = record.get(field)
    if value in (None, ""):
        return None
    try:
        return ms_json_date(value)
    except ValueError as exc:
        raise MappingError(f"{field}: {exc}") from None


def _calendar_date(record: Mapping[str, Any], field: str) -> date | None:
    """`Date` / `DueDate` (MS-JSON), else `DateString` / `DueDateString` (ISO)."""
    value = record.get(field)
    try:
        if value not in (None, ""):
            return ms_json_calendar_date(value)
        return parse_date(_text(record.get(f"{field}String")))
    except ValueError as exc:
        raise MappingError(f"{field}: {exc}") from None
