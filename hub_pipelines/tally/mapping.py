"""Tally ledgers and sales vouchers as canonical records: pure functions over lxml elements.

The same objects arrive from export files (Day Book, All Masters; ERP 9 and TallyPrime) and from
collection answers, so everything is read by tag, whichever of the shapes is present. What a
voucher means depends on the masters (which groups are Sundry Debtors, which voucher types are
Sales, which ledgers are tax or round-off ledgers): `Masters` holds them, `is_invoice` says which
vouchers are invoices, `customer` and `invoice` map one object each.

Amounts: negative is debit, positive credit. A sale's party line is its total, −(its amount);
the voucher's own tax ledgers are the truth for the GST heads (by the ledger's duty head), and the
lines' RATEDETAILS only share each head out over the lines (taxable × rate). That settles intra-
vs inter-state without guessing from the place of supply, which is wrong for SEZ supplies (IGST
inside one state). Other ledger lines: a credit line that carries a GST nature or rate, or posts
to a ledger under Sales Accounts, is an invoice line (a service, a taxed freight); a line to a
ledger the items apportion (their EXPENSEALLOCATIONS: a Discount ledger) is a discount (debit) or
charge (credit) inside the taxable value (GST s.15(3): the real Day Book's tax is computed after
it); any other line (freight outside the tax, rounding typed by hand) is in `adjustment`.

Decisions:
- Post-dated vouchers (ISPOSTDATED=Yes) are imported as the open invoices they are, with their
  future date: Tally only keeps them out of its ledgers until that date. Reports that select by
  issue_date <= today leave them out the same way; skipping them instead would make the GUID
  diff delete and re-create them.
- A party the masters do not know (a Day Book without its masters) gives customer_external_id
  None; customer_name is always set.
- Currency: a forex amount (`-$448.44 @ ₹ 82.99/$ = -₹ 37216.04`) makes the invoice's currency
  that of its symbol, looked up in the CURRENCY masters (ISO code from EXPANDEDSYMBOL,
  MAILINGNAME or the name); without masters only ₹, € and £ are known: `$` (USD, AUD, SGD…) and
  the `?` of ASCII exports are a MappingError rather than a guess.
- Cancelled (ISCANCELLED, or ISVOID (unverified meaning)) → void, lines or none.
- Optional vouchers (memoranda) are not invoices: `is_invoice` is False and `invoice` refuses one.
- Times (ALTEREDON, UPDATEDDATETIME) are Tally's local time, taken as India time (unverified).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from lxml import etree

from hub_pipelines import gst
from hub_pipelines.canonical import ZERO, Customer, Invoice, InvoiceLine
from hub_pipelines.connectors.base import MappingError, to_decimal
from hub_pipelines.connectors.gst_heads import TAX_HEADS, head_from_name
from hub_pipelines.connectors.xml import as_dict, as_dicts, local_name, text, texts

__all__ = [
    "Masters",
    "as_dict",
    "customer",
    "invoice",
    "is_invoice",
    "parse_amount",
    "plain",
    "voucher_type",
]

INDIA_TIME = timezone(timedelta(hours=5, minutes=30))
DEBTORS, SALES_TYPE, SALES_ACCOUNTS = "Sundry Debtors", "Sales", "Sales Accounts"
ENTRY_LISTS = ("LEDGERENTRIES.LIST", "ALLLEDGERENTRIES.LIST")
ITEM_LISTS = ("ALLINVENTORYENTRIES.LIST", "INVENTORYENTRIES.LIST")  # the latter: ERP 9
KNOWN_SYMBOLS = {"€": "EUR", "£": "GBP"}
BASE_SYMBOLS = {"₹", "Rs", "Rs."}
# Tally writes "not applicable" as `&#4; Not Applicable` (the reader drops the &#4;); copies
# that went through other tools carry it as `;`, `4` or `[`.
_MARKED = re.compile(r"^(?:[;4\[]\s+)?(Not Applicable|Primary|Applicable|Any|End of List)$")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
_ISO_CODE = re.compile(r"[A-Z]{3}")
_TAX_SIDE = re.compile(r"^\s*(?:output|input)\s+", re.I)  # "Output CGST" names its head after
_TREATMENTS = {
    "regular": "registered_regular",
    "composition": "registered_composition",
    "consumer": "consumer",
    "unregistered/consumer": "consumer",  # TallyPrime's one value for both
    "unregistered": "unregistered_business",  # ERP 9 keeps Consumer apart
    "overseas": "overseas",
    "deemed export": "deemed_export",
}


def plain(value: str | None) -> str | None:
    """A Tally value without its "not applicable" marker; None when blank or not applicable."""
    word = value.strip() if value is not None else ""
    if not word:
        return None
    found = _MARKED.match(word)
    word = found.group(1) if found else word
    return None if word in ("Not Applicable", "Primary") else word


def _value(element: etree._Element, path: str) -> str | None:
    return plain(text(element, path))


def _name(element: etree._Element) -> str | None:
    """An object's name: the NAME attribute (exports), else a NAME child (collections)."""
    named = plain(element.get("NAME")) or _value(element, "NAME")
    return named or _value(element, "LANGUAGENAME.LIST/NAME.LIST/NAME")


def _yes(element: etree._Element, path: str) -> bool:
    return (_value(element, path) or "").lower() == "yes"


# --- masters --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """A group or voucher type: its reserved name and its parent's name."""

    reserved: str | None
    parent: str | None


@dataclass(frozen=True, slots=True)
class _Ledger:
    guid: str | None
    parent: str | None
    duty_head: str | None  # "cgst", "sgst", "igst", "cess" from GSTDUTYHEAD
    is_gst: bool  # TAXTYPE GST: a duty ledger even without a duty head
    rounds: bool  # ROUNDINGMETHOD set: a round-off ledger


@dataclass
class Masters:
    """What vouchers and ledgers are read against, by name (unique per kind in a company).
    Objects repeat in exports: the last copy of a name wins."""

    groups: dict[str, _Node] = field(default_factory=dict)
    voucher_types: dict[str, _Node] = field(default_factory=dict)
    ledgers: dict[str, _Ledger] = field(default_factory=dict)
    currencies: dict[str, str | None] = field(default_factory=dict)  # symbol -> ISO (None: clash)
    company: str | None = None
    company_state: str | None = None  # GST state code
    base_symbol: str | None = None

    def add(self, element: etree._Element) -> None:
        """Take in a GROUP, VOUCHERTYPE, LEDGER, CURRENCY or COMPANY element (others ignored)."""
        kind = local_name(element.tag)
        if kind == "COMPANY":
            self._add_company(element)
            return
        name = _name(element)
        if name is None:
            return
        table = {"GROUP": self.groups, "VOUCHERTYPE": self.voucher_types, "LEDGER": self.ledgers}
        if kind in table:
            table[kind][name] = _ledger(element) if kind == "LEDGER" else _node(element)
        elif kind == "CURRENCY":
            code = _currency_code(element)
            if code is not None:
                known = self.currencies.get(name, code)
                self.currencies[name] = code if known == code else None  # "?" for two: unknown

    def merged(self, newer: Masters) -> Masters:
        """A copy of these masters with `newer`'s added over them."""
        return Masters(
            {**self.groups, **newer.groups},
            {**self.voucher_types, **newer.voucher_types},
            {**self.ledgers, **newer.ledgers},
            {**self.currencies, **newer.currencies},
            newer.company or self.company,
            newer.company_state or self.company_state,
            newer.base_symbol or self.base_symbol,
        )

    @classmethod
    def of_parties(cls, parties: dict[str, str]) -> Masters:
        """Masters knowing only the party ledgers (name -> GUID) the warehouse holds, so that a
        Day Book dropped alone (it carries no masters) links its invoices to their customers."""
        known = cls()
        for name, guid in parties.items():
            known.ledgers[name] = _Ledger(guid, None, None, False, False)
        return known

    def is_debtor_group(self, group: str | None) -> bool:
        return _reaches(self.groups, group, DEBTORS)

    def is_sales_type(self, voucher_type: str | None) -> bool:
        return _reaches(self.voucher_types, voucher_type, SALES_TYPE)

    def is_sales_ledger(self, name: str | None) -> bool:
        ledger = self.ledgers.get(name or "")
        return ledger is not None and _reaches(self.groups, ledger.parent, SALES_ACCOUNTS)

    def ledger_guid(self, name: str | None) -> str | None:
        ledger = self.ledgers.get(name or "")
        return ledger.guid if ledger else None

    def tax_head(self, name: str | None) -> str | None:
        """The GST head a ledger posts to: its duty head, else (a GST ledger without one, or a
        ledger the masters do not know) what its name says ("Output CGST", "IGST @18%")."""
        ledger = self.ledgers.get(name or "")
        if ledger is not None and (ledger.duty_head or not ledger.is_gst):
            return ledger.duty_head
        return head_from_name(_TAX_SIDE.sub("", name or ""))

    def rounds(self, name: str | None) -> bool:
        ledger = self.ledgers.get(name or "")
        return ledger is not None and ledger.rounds

    @property
    def base_currency(self) -> str:
        known = self.currencies.get(self.base_symbol or "")
        return known or "INR"

    def currency_code(self, symbol: str | None) -> str | None:
        """ISO code of a currency symbol: the masters' word first; ₹ is the company's base."""
        symbol = (symbol or "").strip()
        if symbol in self.currencies:
            return self.currencies[symbol]
        if symbol in BASE_SYMBOLS or symbol == self.base_symbol:
            return self.base_currency
        if _ISO_CODE.fullmatch(symbol):
            return symbol
        return KNOWN_SYMBOLS.get(symbol)

    def _add_company(self, element: etree._Element) -> None:
        named = plain(element.get("NAME")) or _value(element, "NAME")
        self.company = named or _value(element, ".//REMOTECMPNAME") or self.company
        state = _value(element, "STATENAME") or _value(element, ".//REMOTECMPSTATE")
        self.company_state = gst.state_code_from_name(state) or self.company_state
        symbol = _value(element, "BASECURRENCYSYMBOL")  # field name (unverified)
        self.base_symbol = symbol or self.base_symbol


def _node(element: etree._Element) -> _Node:
    reserved = plain(element.get("RESERVEDNAME")) or _value(element, "RESERVEDNAME")
    return _Node(reserved, _value(element, "PARENT"))


def _ledger(element: etree._Element) -> _Ledger:
    head = _value(element, "GSTDUTYHEAD")
    return _Ledger(
        guid=_value(element, "GUID"),
        parent=_value(element, "PARENT"),
        duty_head=head_from_name(head) if head else None,
        is_gst=(_value(element, "TAXTYPE") or "").upper() == "GST",
        rounds=_value(element, "ROUNDINGMETHOD") is not None,
    )


def _currency_code(element: etree._Element) -> str | None:
    fields = ("EXPANDEDSYMBOL", "MAILINGNAME", "ORIGINALNAME")
    candidates = [*(_value(element, f) for f in fields), _name(element)]
    return next((c for c in candidates if c and _ISO_CODE.fullmatch(c)), None)


def _reaches(nodes: dict[str, _Node], name: str | None, reserved: str) -> bool:
    """Whether `name`'s parent chain reaches the node reserved as `reserved`. A name the masters
    do not know counts when it is literally `reserved` (no masters read, or not all of them)."""
    seen: set[str] = set()
    while name and name not in seen:
        seen.add(name)
        node = nodes.get(name)
        if node is None:
            return name == reserved
        if node.reserved == reserved:
            return True
        name = node.parent
    return False


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Amount:
    """A Tally amount: `base` in the company's currency; for a forex amount also the foreign
    amount, its currency symbol and the rate (base units per foreign unit)."""

    base: Decimal
    foreign: Decimal | None = None
    symbol: str | None = None
    rate: Decimal | None = None


def parse_amount(value: str | None, field: str) -> Amount | None:
    """`-48091.00`, or forex `-$448.44 @ ₹ 82.99/$ = -₹ 37216.04` (spaces optional)."""
    if value is None or not value.strip():
        return None
    if "=" not in value:
        return Amount(_number(value, field))
    left, base = value.split("=", 1)
    foreign, _, rate = left.partition("@")
    rate_number, _, per = rate.partition("/")
    symbol = _NUMBER.sub("", foreign).replace("-", "").strip() or per.strip()
    return Amount(
        _number(base, field),
        _number(foreign, field),
        symbol or None,
        _number(rate_number, field, signed=False) if rate_number.strip() else None,
    )


def _number(value: str, field: str, *, signed: bool = True) -> Decimal:
    found = _NUMBER.search(value)
    if found is None:
        raise MappingError(f"{field}: not an amount: {value!r}")
    number = to_decimal(found.group().replace(",", ""), places=None)
    negative = signed and "-" in value[: found.start()]
    return -number if negative else number


def _measure(value: str | None, field: str) -> tuple[Decimal | None, str | None]:
    """`" 670 Pair"` -> (670, "Pair"); `57.00/Pair` -> (57.00, "Pair"); alternate units
    (`10 Box = 100 Nos`) keep the first."""
    if value is None or not value.strip():
        return None, None
    first = value.split("=", 1)[0]
    number_part, slash, unit_part = first.partition("/")
    number = _number(number_part, field)
    unit = unit_part if slash else _NUMBER.sub("", number_part).replace("-", "")
    return number, unit.strip() or None


def _date(element: etree._Element, field: str) -> date | None:
    value = _value(element, field)
    if value is None:
        return None
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        raise MappingError(f"{field}: not a YYYYMMDD date: {value!r}") from None


def _updated(element: etree._Element) -> datetime | None:
    """UPDATEDDATETIME (`20250308184233000`: YYYYMMDDhhmmssSSS), else ALTEREDON (a date); both
    only when Tally keeps an edit log."""
    stamp = _value(element, "UPDATEDDATETIME")
    if stamp and len(stamp) >= 14 and stamp.isdigit():
        return datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=INDIA_TIME)
    day = _date(element, "ALTEREDON")
    return datetime(day.year, day.month, day.day, tzinfo=INDIA_TIME) if day else None


def _required(element: etree._Element, field: str) -> str:
    value = _value(element, field)
    if value is None:
        raise MappingError(f"{field}: missing")
    return value


def _treatment(value: str | None, gstin: str | None) -> str:
    if value is None:
        return "unknown"
    lowered = value.lower()
    if "sez" in lowered or "special economic" in lowered:
        return "sez"
    return _TREATMENTS.get(lowered, "registered_regular" if gstin else "unknown")


def _state_code(name: str | None, gstin: str | None = None) -> str | None:
    code = gst.state_code_from_name(name)
    if code is None and gstin and gstin[:2] in gst.STATE_CODES:
        code = gstin[:2]
    return code


# --- customers ------------------------------------------------------------------------------


def customer(ledger: etree._Element, masters: Masters) -> Customer:
    """A ledger (one under Sundry Debtors: the caller checks) as a customer. ERP 9 keeps GST and
    address fields on the ledger; TallyPrime in dated LEDGSTREGDETAILS / LEDMAILINGDETAILS lists,
    the last of which is the current one."""
    name = _name(ledger)
    if name is None:
        raise MappingError("NAME: missing")
    registration = _last(ledger, "LEDGSTREGDETAILS.LIST")
    mailing = _last(ledger, "LEDMAILINGDETAILS.LIST")
    gstin = _value(ledger, "PARTYGSTIN") or _value(registration, "GSTIN")
    gstin = gstin.upper() if gstin else None
    state = _value(ledger, "LEDSTATENAME") or _value(mailing, "STATE")
    address = texts(ledger, "ADDRESS.LIST/ADDRESS") or texts(mailing, "ADDRESS.LIST/ADDRESS")
    opening = parse_amount(_value(ledger, "OPENINGBALANCE"), "OPENINGBALANCE")
    currency = _value(ledger, "CURRENCYNAME")
    state_code = _state_code(state, gstin)
    return Customer(
        external_id=_required(ledger, "GUID"),
        name=name,
        raw=as_dict(ledger),
        display_name=_value(ledger, "MAILINGNAME.LIST/MAILINGNAME")
        or _value(mailing, "MAILINGNAME"),
        email=_value(ledger, "EMAIL"),
        phone=_phone(ledger),
        gstin=gstin,
        pan=_value(ledger, "INCOMETAXNUMBER") or (gstin[2:12] if gstin else None),
        gst_treatment=_treatment(
            _value(ledger, "GSTREGISTRATIONTYPE") or _value(registration, "GSTREGISTRATIONTYPE"),
            gstin,
        ),
        state_code=state_code,
        place_of_supply=_state_code(_value(registration, "PLACEOFSUPPLY")) or state_code,
        billing_line1=address[0] if address else None,
        billing_line2=", ".join(address[1:]) or None,
        billing_state=state,
        billing_postal_code=_value(ledger, "PINCODE") or _value(mailing, "PINCODE"),
        billing_country=_value(ledger, "COUNTRYNAME") or _value(mailing, "COUNTRY"),
        currency=masters.currency_code(currency) if currency else masters.base_currency,
        # Receivable positive: a debtor's debit (negative) opening balance is what they owe.
        opening_balance=-_in_own_currency(opening) if opening else None,
        source_updated_at=_updated(ledger),
    )


def _last(element: etree._Element, path: str) -> etree._Element:
    found = element.findall(path)
    return found[-1] if found else etree.Element("NONE")


def _phone(ledger: etree._Element) -> str | None:
    mobile = _value(ledger, "LEDGERMOBILE")
    if mobile is None:
        return _value(ledger, "LEDGERPHONE")
    code = _value(ledger, "LEDGERCOUNTRYISDCODE")
    return f"{code} {mobile}" if code else mobile


def _in_own_currency(amount: Amount) -> Decimal:
    return amount.foreign if amount.foreign is not None else amount.base


# --- invoices -------------------------------------------------------------------------------


def voucher_type(voucher: etree._Element) -> str | None:
    return _value(voucher, "VOUCHERTYPENAME") or plain(voucher.get("VCHTYPE"))


def is_invoice(voucher: etree._Element, masters: Masters) -> bool:
    """A sale: its type resolves to the reserved type Sales, and it is not optional."""
    return masters.is_sales_type(voucher_type(voucher)) and not _yes(voucher, "ISOPTIONAL")


@dataclass(slots=True)
class _Entry:
    element: etree._Element
    ledger: str | None
    amount: Amount


def invoice(voucher: etree._Element, masters: Masters) -> Invoice:
    """A sales voucher as an invoice (see the module docstring for the rules)."""
    external_id = _required(voucher, "GUID")
    if _yes(voucher, "ISOPTIONAL"):
        raise MappingError("ISOPTIONAL: an optional voucher is a memorandum, not an invoice")
    void = _yes(voucher, "ISCANCELLED") or _yes(voucher, "ISVOID")
    entries = _entries(voucher, ENTRY_LISTS)
    items = [i for path in ITEM_LISTS for i in voucher.findall(path) if _is_item(i)]
    allocations = [e for item in items for e in _entries(item, ("ACCOUNTINGALLOCATIONS.LIST",))]
    if _balance(entries) == 0 and _balance(allocations) != 0:
        # The answer lists the items' postings among its ledger entries as well (unverified
        # whether a collection's AllLedgerEntries does): count them once.
        posted = {entry.ledger for entry in allocations}
        entries = [entry for entry in entries if entry.ledger not in posted]
    _check_balance(entries, allocations)
    party_name = _value(voucher, "PARTYLEDGERNAME")
    party = [e for e in entries if _yes(e.element, "ISPARTYLEDGER")]
    party = party or [e for e in entries if party_name and e.ledger == party_name]
    if not party and not void:
        raise MappingError(
            "party line: no ledger entry has ISPARTYLEDGER=Yes or names PARTYLEDGERNAME "
            f"{party_name!r}: the sale has no total"
        )
    money = _Money.of(party + entries, masters)
    raw, line_raws = as_dicts(voucher, [*items, *(entry.element for entry in entries)])
    rated = [_item_line(item, money, line_raws[item]) for item in items]
    apportioned = {n for i in items for n in texts(i, "EXPENSEALLOCATIONS.LIST/LEDGERNAME")}
    heads = dict.fromkeys(TAX_HEADS, ZERO)
    round_off = discounts = charges = ZERO  # discounts and charges apportioned to the items
    for entry in entries:
        if any(entry is p for p in party):
            continue
        amount = money.convert(entry.amount)
        head = masters.tax_head(entry.ledger)
        if head is not None:
            heads[head] += amount
        elif masters.rounds(entry.ledger) or _value(entry.element, "ROUNDTYPE"):
            round_off += amount
        elif amount > 0 and _is_sale_line(entry, masters):
            rated.append(_ledger_line(entry, amount, line_raws[entry.element]))
        elif entry.ledger in apportioned and amount < 0:
            discounts -= amount
        elif entry.ledger in apportioned:
            charges += amount
    _share_taxes(rated, heads)
    lines = [line for line, _ in rated]
    for number, line in enumerate(lines, start=1):
        line.line_number = number
        line.line_total = line.taxable_amount + line.cgst + line.sgst + line.igst + line.cess
    total = -sum((money.convert(e.amount) for e in party), ZERO)
    subtotal = sum((line.taxable_amount for line in lines), ZERO)
    taxable = subtotal - discounts + charges
    tax_total = sum(heads.values(), ZERO)
    issued = _date(voucher, "DATE")
    registration = _value(voucher, "GSTREGISTRATIONTYPE")
    customer_name = party_name or (party[0].ledger if party else None)
    customer_name = customer_name or _value(voucher, "PARTYNAME")
    if customer_name is None:
        raise MappingError("PARTYLEDGERNAME: missing: the sale names no party")
    return Invoice(
        external_id=external_id,
        raw=raw,
        status="void" if void else "open",
        invoice_number=_value(voucher, "VOUCHERNUMBER"),
        customer_external_id=masters.ledger_guid(customer_name),
        customer_name=customer_name,
        issue_date=issued,
        due_date=_due_date(party, issued),
        currency=money.currency,
        exchange_rate=money.rate,
        subtotal=subtotal,
        discount_total=discounts + sum((line.discount for line in lines), ZERO),
        taxable_amount=taxable,
        **heads,
        tax_total=tax_total,
        round_off=round_off,
        adjustment=total - taxable - tax_total - round_off,
        total=total,
        balance_due=ZERO if void else total,
        place_of_supply=_state_code(_value(voucher, "PLACEOFSUPPLY")),
        gst_treatment=_treatment(registration, None) if registration else None,
        irn=_value(voucher, "IRN"),
        source_updated_at=_updated(voucher),
        lines=lines,
    )


def _entries(element: etree._Element, paths: Iterable[str]) -> list[_Entry]:
    found = []
    for path in paths:
        for entry in element.findall(path):
            amount = parse_amount(_value(entry, "AMOUNT"), f"{path}/AMOUNT")
            if amount is not None or _value(entry, "LEDGERNAME"):
                found.append(_Entry(entry, _value(entry, "LEDGERNAME"), amount or Amount(ZERO)))
    return found


def _is_item(item: etree._Element) -> bool:
    return _value(item, "STOCKITEMNAME") is not None or _value(item, "AMOUNT") is not None


def _balance(entries: list[_Entry]) -> Decimal:
    return sum((entry.amount.base for entry in entries), ZERO)


def _check_balance(entries: list[_Entry], allocations: list[_Entry]) -> None:
    ledgers, items = _balance(entries), _balance(allocations)
    if ledgers + items != 0:
        raise MappingError(
            f"voucher does not balance: ledger entries add up to {ledgers} and the items' "
            f"accounting allocations to {items}: {ledgers + items} off zero"
        )


@dataclass(frozen=True, slots=True)
class _Money:
    """The invoice's currency: the base, or a forex voucher's (the party line's symbol)."""

    currency: str
    rate: Decimal | None = None

    @classmethod
    def of(cls, entries: list[_Entry], masters: Masters) -> _Money:
        forex = next((e.amount for e in entries if e.amount.foreign is not None), None)
        if forex is None or masters.currency_code(forex.symbol) == masters.base_currency:
            return cls(masters.base_currency)
        code = masters.currency_code(forex.symbol)
        if code is None:
            raise MappingError(
                f"currency: the symbol {forex.symbol!r} of a forex amount is not a currency the "
                "masters name (read the CURRENCY masters, or export as UTF-8/UTF-16, not ASCII)"
            )
        if not forex.rate:
            raise MappingError(f"AMOUNT: forex amount without a rate: {forex}")
        return cls(code, forex.rate)

    def convert(self, amount: Amount) -> Decimal:
        if self.rate is None:
            return gst.round_money(amount.base)
        if amount.foreign is not None:
            return gst.round_money(amount.foreign)
        return gst.round_money(amount.base / self.rate)


def _item_line(
    item: etree._Element, money: _Money, raw: dict[str, Any]
) -> tuple[InvoiceLine, dict[str, Decimal]]:
    amount = parse_amount(_value(item, "AMOUNT"), "INVENTORYENTRIES/AMOUNT")
    taxable = money.convert(amount) if amount else ZERO
    quantity, unit = _measure(_value(item, "BILLEDQTY"), "BILLEDQTY")
    rate, rate_unit = _measure(_value(item, "RATE"), "RATE")
    discount = ZERO
    if _value(item, "DISCOUNT") and quantity and rate:  # DISCOUNT: a percentage (unverified)
        discount = max(gst.round_money(quantity * rate) - taxable, ZERO)
    descriptions = texts(item, "BASICUSERDESCRIPTION.LIST/BASICUSERDESCRIPTION")
    line = InvoiceLine(
        line_number=0,
        raw=raw,
        item_name=_value(item, "STOCKITEMNAME"),
        description="\n".join(descriptions) or None,
        hsn_sac=_value(item, "GSTHSNNAME"),
        quantity=quantity,
        unit=unit or rate_unit,
        rate=rate,
        discount=discount,
        taxable_amount=taxable,
    )
    return line, _rates(item)


def _ledger_line(
    entry: _Entry, amount: Decimal, raw: dict[str, Any]
) -> tuple[InvoiceLine, dict[str, Decimal]]:
    line = InvoiceLine(
        line_number=0,
        raw=raw,
        item_name=entry.ledger,
        hsn_sac=_value(entry.element, "GSTHSNNAME"),
        taxable_amount=amount,
    )
    return line, _rates(entry.element)


def _is_sale_line(entry: _Entry, masters: Masters) -> bool:
    element = entry.element
    return (
        _value(element, "GSTOVRDNNATURE") is not None
        or bool(_rates(element))
        or masters.is_sales_ledger(entry.ledger)
    )


def _rates(element: etree._Element) -> dict[str, Decimal]:
    """GST rates by head from RATEDETAILS: on an item (TallyPrime), in its accounting
    allocations (ERP 9) or on a ledger line."""
    rates: dict[str, Decimal] = {}
    for detail in element.iterfind(".//RATEDETAILS.LIST"):
        head = head_from_name(_value(detail, "GSTRATEDUTYHEAD"))
        rate = _value(detail, "GSTRATE")
        if head is not None and rate is not None:
            rates[head] = _number(rate, "RATEDETAILS/GSTRATE")
    return rates


def _share_taxes(
    rated: list[tuple[InvoiceLine, dict[str, Decimal]]], heads: dict[str, Decimal]
) -> None:
    """Each head's voucher amount over the lines, in proportion to taxable × the line's rate
    for that head (by taxable value when no line states one), to the paisa. A line's tax_rate
    is that of the heads the voucher charges: IGST, or CGST + SGST."""
    charged = [head for head in TAX_HEADS if heads[head]]
    for line, rates in rated:
        if "igst" in charged and "igst" in rates:
            line.tax_rate = rates["igst"]
        elif "cgst" in charged and ("cgst" in rates or "sgst" in rates):
            line.tax_rate = rates.get("cgst", ZERO) + rates.get("sgst", ZERO)
    if not rated:
        return
    for head in charged:
        weights = [line.taxable_amount * rates.get(head, ZERO) for line, rates in rated]
        if not any(weights):
            weights = [line.taxable_amount for line, _ in rated]
        for (line, _), share in zip(rated, _split(heads[head], weights), strict=True):
            setattr(line, head, share)


def _split(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` in parts proportional to `weights`, rounded to the paisa, the rounding left on
    the largest part so that the parts add up to `amount` exactly."""
    total = sum(weights, ZERO)
    if not total:
        weights, total = [Decimal(1)] * len(weights), Decimal(len(weights))
    parts = [gst.round_money(amount * weight / total) for weight in weights]
    largest = max(range(len(parts)), key=lambda index: abs(weights[index]))
    parts[largest] += amount - sum(parts, ZERO)
    return parts


def _due_date(party: list[_Entry], issued: date | None) -> date | None:
    """The voucher date plus the party's bill credit period (`60 Days`), when it has one."""
    for entry in party:
        period = _value(entry.element, "BILLALLOCATIONS.LIST/BILLCREDITPERIOD") or ""
        days = re.fullmatch(r"(\d+)\s*Days?", period, re.I)
        if days and issued:
            return issued + timedelta(days=int(days.group(1)))
    return None
