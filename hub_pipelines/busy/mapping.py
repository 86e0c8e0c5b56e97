"""BUSY rows and vouchers to canonical records: pure functions.

- Customers: accounts (`MasterType` 2) whose group chain reaches Sundry Debtors, anchored on its
  group code (116) and walked down through sub-groups; contact and tax data from
  `MasterAddressInfo`. Active means neither blocked nor deactivated. GST treatment needs the
  account's `TypeOfDealerGST` from its master XML (one call each): not read, so it is
  "unknown"; the state comes from the GSTIN.
- Invoices: the `Tran1` header (number, date, party, cancelled, times) with the voucher XML's
  items and bill sundries. An item's `Amt` includes its tax (`STAmount`): taxable = Amt −
  STAmount, as both vendor samples add up. The split is (unverified): a "Local…" sale type is
  CGST at `STPercent` with SGST the rest of `STAmount`; any other is IGST. A "Round Off" bill
  sundry is the round-off, a discount one is taken off the total, any other is added to it.
  Sale vouchers carry no payment state: an issued sale is open, owing its total.
- Amounts: BUSY keeps floats in SQL Server, and a rowset may show their binary noise
  (`1234.5599999999999`): read as Decimal from the text, never through float, and rounded to
  paise (quantities to 4 places).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from hub_pipelines import gst
from hub_pipelines.busy import protocol
from hub_pipelines.canonical import ZERO, Customer, Invoice, InvoiceLine
from hub_pipelines.connectors.base import MappingError, to_decimal
from hub_pipelines.connectors.gst_heads import add_tax, no_taxes

# Currency names as companies write them (BUSY's currency masters are the company's own,
# (unverified)); an ISO code is taken as it is, anything else is a mapping error.
CURRENCY_NAMES = {"rs.": "INR", "rs": "INR", "₹": "INR", "inr": "INR", "$": "USD", "€": "EUR"}


def debtor_groups(groups: Iterable[Mapping[str, Any]], anchor: int) -> set[int]:
    """The group `anchor` and every group below it (through `ParentGrp`). When no group has
    that code, the group named Sundry Debtors anchors instead; an empty set when neither is
    there."""
    parent = {int(g["Code"]): int(g.get("ParentGrp") or 0) for g in groups if g.get("Code")}
    names = {int(g["Code"]): str(g.get("Name") or "").strip().lower() for g in groups}
    if anchor not in parent:
        named = [code for code, name in names.items() if name == "sundry debtors"]
        if not named:
            return set()
        anchor = named[0]
    found, frontier = {anchor}, [anchor]
    while frontier:  # a cycle in ParentGrp cannot loop: a group is added once
        children = [code for code, up in parent.items() if up in frontier and code not in found]
        found.update(children)
        frontier = children
    return found


def changed_at(row: Mapping[str, Any], zone: tzinfo) -> datetime | None:
    """`COALESCE(ModificationTime, CreationTime)` (the `Changed` column) as an aware time: BUSY
    writes the server's local time without a zone."""
    moment = protocol.busy_time(row.get("Changed"))
    return moment.replace(tzinfo=zone) if moment else None


def map_customer(row: Mapping[str, str], company: str, zone: tzinfo, currency: str) -> Customer:
    name = _text(row, "Name")
    if not name:
        raise MappingError("Name: missing")
    gstin = (_text(row, "GSTNo") or "").upper() or None
    state = gstin[:2] if gstin and gstin[:2] in gst.STATE_CODES else None
    rest = ", ".join(filter(None, (_text(row, f"Address{n}") for n in (2, 3, 4))))
    return Customer(
        external_id=f"{company}:{row['Code']}",
        name=name,
        raw=dict(row),
        display_name=_text(row, "PrintName"),
        email=_text(row, "Email"),
        phone=_text(row, "Mobile") or _text(row, "TelNo"),
        gstin=gstin,
        pan=(_text(row, "ITPAN") or "").upper() or None,
        state_code=state,
        billing_line1=_text(row, "Address1"),
        billing_line2=rest or None,
        billing_state=gst.state_name(state) if state else None,
        billing_postal_code=_text(row, "PINCode"),
        currency=currency,
        is_active=not (
            protocol.flag(row.get("BlockedMaster")) or protocol.flag(row.get("DeactiveMaster"))
        ),
        source_updated_at=changed_at(row, zone),
    )


def listed_total(row: Mapping[str, str]) -> Decimal | None:
    """The voucher total in its own currency from `Tran1`: `VchAmtBaseCur` (base currency,
    (unverified) the total) divided by `CurConRate` when that is a rate, to paise."""
    base = to_decimal(row.get("VchAmtBaseCur"), places=None)
    if base is None:
        return None
    rate = to_decimal(row.get("CurConRate"), places=None)
    return gst.round_money(base / rate if rate and rate != 1 else base)


def currency_of(voucher: Mapping[str, Any], base: str, names: Mapping[str, str]) -> str:
    """The voucher's currency from `TranCurName` ("Rs." in vendor samples); the company's base
    currency when absent."""
    said = str(voucher.get("TranCurName") or "").strip()
    if not said:
        return base
    known = {**CURRENCY_NAMES, **{k.lower(): v for k, v in names.items()}}.get(said.lower())
    if known:
        return known
    if len(said) == 3 and said.isalpha():
        return said.upper()
    raise MappingError(
        f"TranCurName: {said!r} is not a currency the hub knows; add it to "
        "connection_config.currency_names"
    )


def map_invoice(
    header: Mapping[str, str],
    voucher: Mapping[str, Any],
    *,
    company: str,
    year: int,
    zone: tzinfo,
    currency: str,
    hsn: Mapping[str, str],
) -> Invoice:
    """One sale: its `Tran1` row and its SC=8 voucher XML. `hsn`: item name → HSN code."""
    intra = str(voucher.get("STPTName") or "").strip().lower().startswith("local")
    lines = [
        _line(n, item, intra, hsn)
        for n, item in enumerate(protocol.entries(voucher.get("ItemEntries"), "ItemDetail"), 1)
    ]
    taxable = sum((line.taxable_amount for line in lines), ZERO)
    taxes = no_taxes()
    for line in lines:
        for head in ("cgst", "sgst", "igst"):
            add_tax(taxes, head, getattr(line, head))
    round_off = adjustment = ZERO
    for sundry in protocol.entries(voucher.get("BillSundries"), "BSDetail"):
        amount = _amount(sundry, "Amt") or ZERO
        name = str(sundry.get("BSName") or "").lower()
        if "round" in name:
            round_off += amount
        else:  # a discount after tax is taken off; freight and other charges are added
            adjustment += -abs(amount) if "discount" in name else amount
    tax_total = sum(taxes.values(), ZERO)
    total = taxable + tax_total + round_off + adjustment
    void = protocol.flag(header.get("Cancelled")) or protocol.flag(header.get("VchCancelled"))
    issued = protocol.busy_time(header.get("Date"))
    return Invoice(
        external_id=f"{company}:{year}:{header['VchCode']}",
        raw={"Tran1": dict(header), "voucher": dict(voucher)},
        status="void" if void else "open",
        invoice_number=(header.get("VchNo") or "").strip() or None,
        customer_external_id=f"{company}:{header['MasterCode1']}"
        if header.get("MasterCode1")
        else None,
        customer_name=str(voucher.get("MasterName1") or "").strip() or None,
        issue_date=issued.date() if issued else None,
        currency=currency,
        exchange_rate=to_decimal(header.get("CurConRate"), places=6) or None,
        subtotal=taxable,
        discount_total=sum((line.discount for line in lines), ZERO),
        taxable_amount=taxable,
        tax_total=tax_total,
        round_off=round_off,
        adjustment=adjustment,
        total=total,
        balance_due=ZERO if void else total,
        gst_treatment=None,
        irn=(header.get("EInvIRN") or "").strip() or None,
        source_updated_at=changed_at(header, zone),
        lines=lines,
        **{head: taxes[head] for head in ("cgst", "sgst", "igst", "cess", "other_tax")},
    )


def _line(number: int, item: Mapping[str, Any], intra: bool, hsn: Mapping[str, str]):
    quantity = _amount(item, "Qty", places=4)
    rate = _amount(item, "Price", places=4)
    amount = _amount(item, "Amt", required=True)
    tax = _amount(item, "STAmount") or ZERO
    taxable = amount - tax
    first, second = (_amount(item, f, places=4) or ZERO for f in ("STPercent", "STPercent1"))
    heads = {"cgst": ZERO, "sgst": ZERO, "igst": ZERO}
    if intra:
        heads["cgst"] = gst.round_money(taxable * first / 100 if second else tax / 2)
        heads["sgst"] = tax - heads["cgst"]
    else:
        heads["igst"] = tax
    gross = gst.round_money(quantity * rate) if quantity is not None and rate is not None else None
    name = str(item.get("ItemName") or "").strip() or None
    return InvoiceLine(
        line_number=int(item.get("SrNo") or number),
        raw=dict(item),
        item_name=name,
        description=str(item.get("Description") or "").strip() or None,
        hsn_sac=hsn.get(name or "") or None,
        quantity=quantity,
        unit=str(item.get("UnitName") or "").strip() or None,
        rate=rate,
        discount=max(gross - taxable, ZERO) if gross is not None else ZERO,
        taxable_amount=taxable,
        tax_rate=first + second,  # CGST + SGST rates, or IGST alone (STPercent1 0)
        line_total=amount,
        **heads,
    )


def _amount(
    record: Mapping[str, Any], field: str, *, required: bool = False, places: int = 2
) -> Decimal | None:
    try:
        value = to_decimal(record.get(field), places=places)
    except ValueError as exc:
        raise MappingError(f"{field}: {exc}") from None
    if value is None and required:
        raise MappingError(f"{field}: missing")
    return value


def _text(row: Mapping[str, Any], field: str) -> str | None:
    value = row.get(field)
    return str(value).strip() or None if value is not None else None
