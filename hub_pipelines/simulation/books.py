"""Books: one neutral generated company, the truth every simulator renders and every contract test
compares the warehouse against.

A seller registered in one Indian state sells to parties across states (registered with valid
GSTINs, unregistered, and a few overseas buyers invoiced in their currency, zero-rated under a
LUT), over several fiscal years (April to March, invoice numbers restarting each year). Each
sale has lines with HSN/SAC and a GST rate; intra-state sales carry CGST + SGST, inter-state IGST,
and totals are rounded to the rupee with a round-off. Drafts, voids, part payments, edits and
deletes happen as in a real company. The same seed gives the same business, so the Zoho Books,
QuickBooks and Xero renderings of one `Books` describe the same sales.

Amounts are Decimal; times are aware UTC datetimes (each system renders its own format).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hub_pipelines import gst
from hub_pipelines.simulation.catalogue import (
    BUSINESS_NAMES,
    CATALOGUE,
    CITIES,
    FIRST_NAMES,
    LAST_NAMES,
    LEGAL_FORMS,
    OVERSEAS_CUSTOMERS,
    PAYMENT_TERMS,
    STREETS,
    TRADES,
    CatalogueItem,
    slug,
    unique,
)

ZERO = Decimal("0.00")
RUPEE = Decimal("1")


@dataclass
class Party:
    """A customer as the business knows it; `key` is the same in every system's rendering."""

    key: int
    name: str
    contact_person: str
    email: str
    phone: str
    street: str
    city: str
    postal_code: str
    country: str  # "India" or the buyer's country
    currency: str  # INR, or an overseas buyer's
    exchange_rate: Decimal  # rupees per unit of `currency`
    state_code: str | None  # GST state code; None overseas
    region: str | None  # the address's state or region as printed
    gstin: str | None
    pan: str | None
    created_at: datetime
    updated_at: datetime
    active: bool = True

    @property
    def overseas(self) -> bool:
        return self.state_code is None

    @property
    def gst_treatment(self) -> str:
        if self.overseas:
            return "overseas"
        return "registered_regular" if self.gstin else "unregistered_business"


@dataclass
class SaleLine:
    item: CatalogueItem
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal = ZERO  # off this line, before tax
    gst_rate: Decimal = ZERO  # percent; 0 for zero-rated exports

    @property
    def gross(self) -> Decimal:
        return gst.round_money(self.quantity * self.unit_price)

    @property
    def discount(self) -> Decimal:
        return gst.round_money(self.gross * self.discount_percent / 100)

    @property
    def taxable(self) -> Decimal:
        return self.gross - self.discount

    def taxes(self, intra_state: bool) -> tuple[Decimal, Decimal, Decimal]:
        """(cgst, sgst, igst), each head rounded on the line, as Indian invoices print them."""
        return gst.split_gst(self.taxable, self.gst_rate, intra_state)


@dataclass
class Sale:
    """A sales invoice. `status` is draft, issued or void; `deleted` removes it from the books."""

    key: int
    number: str
    party_key: int
    issue_date: date
    due_date: date
    lines: list[SaleLine]
    intra_state: bool
    currency: str
    exchange_rate: Decimal
    place_of_supply: str | None  # GST state code of the buyer; None for exports
    created_at: datetime
    updated_at: datetime
    status: str = "issued"
    paid_percent: int = 0  # share of the total received (whole percent, as payments are made)
    deleted: bool = False

    @property
    def taxable(self) -> Decimal:
        return sum((line.taxable for line in self.lines), ZERO)

    def tax_heads(self) -> dict[str, Decimal]:
        heads = {"cgst": ZERO, "sgst": ZERO, "igst": ZERO}
        for line in self.lines:
            cgst, sgst, igst = line.taxes(self.intra_state)
            heads["cgst"] += cgst
            heads["sgst"] += sgst
            heads["igst"] += igst
        return heads

    @property
    def tax_total(self) -> Decimal:
        return sum(self.tax_heads().values(), ZERO)

    @property
    def round_off(self) -> Decimal:
        exact = self.taxable + self.tax_total
        return exact.quantize(RUPEE, rounding=ROUND_HALF_UP) - exact

    @property
    def total(self) -> Decimal:
        return self.taxable + self.tax_total + self.round_off

    @property
    def paid(self) -> Decimal:
        return (
            ZERO
            if self.status != "issued"
            else gst.round_money(self.total * self.paid_percent / 100)
        )

    @property
    def balance(self) -> Decimal:
        return ZERO if self.status != "issued" else self.total - self.paid

    @property
    def payment_status(self) -> str:
        """The canonical status: draft, void, open, partially_paid or paid."""
        if self.status in ("draft", "void"):
            return self.status
        if self.paid_percent >= 100:
            return "paid"
        return "partially_paid" if self.paid_percent > 0 else "open"


@dataclass(frozen=True)
class TruthInvoice:
    """What the warehouse must hold for a sale, compared by its number (ids differ by system)."""

    number: str
    customer_name: str
    issue_date: date
    status: str
    currency: str
    taxable: Decimal
    cgst: Decimal
    sgst: Decimal
    igst: Decimal
    round_off: Decimal
    total: Decimal
    balance: Decimal
    line_count: int


@dataclass
class Books:
    """The company: its parties and sales, and the mutations that change them."""

    seller_name: str
    seller_state: str
    parties: dict[int, Party] = field(default_factory=dict)
    sales: dict[int, Sale] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Called with ("party" | "sale", key) after every mutation, so a Shape can re-render.
    listeners: list[Callable[[str, int], None]] = field(default_factory=list)

    # --- reading -------------------------------------------------------------------------------

    def party(self, key: int) -> Party:
        return self.parties[key]

    def live_sales(self, drafts: bool = True) -> list[Sale]:
        """The sales not deleted; `drafts=False` leaves drafts out (for a system without them)."""
        return [
            sale
            for sale in self.sales.values()
            if not sale.deleted and (drafts or sale.status != "draft")
        ]

    def truth_invoices(self, drafts: bool = True, payments: bool = True) -> dict[str, TruthInvoice]:
        """`payments=False` for a system whose sale document carries no payment state (Tally,
        BUSY: a payment is a receipt voucher of its own): every issued sale is open, owing its
        total."""
        return {sale.number: self._truth(sale, payments) for sale in self.live_sales(drafts)}

    def truth_customers(self, archives: bool = True) -> dict[str, Party]:
        """`archives=False` for a system without an inactive flag on parties (Tally): an archived
        party is still an active one there."""
        return {
            party.name: party if archives else replace(party, active=True)
            for party in self.parties.values()
        }

    def _truth(self, sale: Sale, payments: bool = True) -> TruthInvoice:
        heads = sale.tax_heads()
        unpaid = not payments and sale.status == "issued"
        return TruthInvoice(
            sale.number,
            self.parties[sale.party_key].name,
            sale.issue_date,
            "open" if unpaid else sale.payment_status,
            sale.currency,
            sale.taxable,
            heads["cgst"],
            heads["sgst"],
            heads["igst"],
            sale.round_off,
            sale.total,
            sale.total if unpaid else sale.balance,
            len(sale.lines),
        )

    # --- mutations -----------------------------------------------------------------------------

    def edit_sale(self, key: int, **changes) -> Sale:
        """Change fields of a sale (default: one more unit on its first line)."""
        sale = self.sales[key]
        if not changes:
            first = sale.lines[0]
            sale.lines[0] = replace(first, quantity=first.quantity + 1)
        for name, value in changes.items():
            setattr(sale, name, value)
        return self._touched_sale(sale)

    def pay(self, key: int, percent: int = 100) -> Sale:
        """Receive a payment: `percent` of the total in all (100: paid in full)."""
        sale = self.sales[key]
        sale.paid_percent = min(100, max(sale.paid_percent, percent))
        return self._touched_sale(sale)

    def void_sale(self, key: int) -> Sale:
        sale = self.sales[key]
        sale.status, sale.paid_percent = "void", 0
        return self._touched_sale(sale)

    def delete_sale(self, key: int) -> Sale:
        sale = self.sales[key]
        sale.deleted = True
        return self._touched_sale(sale)

    def add_sale(self, party_key: int, lines: list[SaleLine], issue_date: date | None = None):
        now = self._now()
        issued = issue_date or now.date()
        party = self.parties[party_key]
        sale = Sale(
            key=max(self.sales, default=0) + 1,
            number=self._next_number(issued),
            party_key=party_key,
            issue_date=issued,
            due_date=issued + timedelta(days=30),
            lines=lines,
            intra_state=party.state_code == self.seller_state,
            currency=party.currency,
            exchange_rate=party.exchange_rate,
            place_of_supply=party.state_code,
            created_at=now,
            updated_at=now,
        )
        self.sales[sale.key] = sale
        self._notify("sale", sale.key)
        return sale

    def edit_party(self, key: int, **changes) -> Party:
        party = self.parties[key]
        for name, value in changes.items():
            setattr(party, name, value)
        party.updated_at = self._now()
        self._notify("party", key)
        return party

    def archive_party(self, key: int) -> Party:
        return self.edit_party(key, active=False)

    def _touched_sale(self, sale: Sale) -> Sale:
        sale.updated_at = self._now()
        self._notify("sale", sale.key)
        return sale

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _notify(self, kind: str, key: int) -> None:
        for listener in self.listeners:
            listener(kind, key)

    def _next_number(self, issued: date) -> str:
        year = gst.fiscal_year(issued)
        taken = [s.number for s in self.sales.values() if s.number.startswith(f"INV/{year}/")]
        return invoice_number(year, len(taken) + 1)


def invoice_number(fiscal_year: str, serial: int) -> str:
    """`INV/2025-26/0001`: unique within a fiscal year and at most 16 characters, as GST requires
    (Rule 46(b)); numbering restarts every April."""
    return f"INV/{fiscal_year}/{serial:04d}"


# --- generation ------------------------------------------------------------------------------


def generate(
    *,
    seed: int = 42,
    parties: int = 20,
    sales: int = 100,
    max_lines: int = 4,
    seller_state: str = "29",
    as_of: datetime | None = None,
    years: int = 2,
) -> Books:
    """A company with `parties` customers and `sales` invoices spread over the last `years` years
    up to `as_of` (default: the start of today, UTC). The same arguments give the same company."""
    if seller_state not in gst.STATE_CODES:
        raise ValueError(f"unknown GST state code {seller_state!r}")
    rng = random.Random(seed)
    # Default: the start of today (UTC), so two runs on one day (the demo, then `hub simulate`)
    # serve the same business.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = (as_of or today).astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=365 * years)
    books = Books(seller_name=f"Simulated Traders {seed}", seller_state=seller_state)
    taken: set[str] = set()
    for key in range(1, parties + 1):
        books.parties[key] = _party(rng, key, start, taken, seller_state)
    for issued, when in sorted(_sale_dates(rng, sales, start, end)):
        party = books.parties[rng.randint(1, parties)]
        sale = _sale(rng, books, party, issued, when, end, max_lines)
        books.sales[sale.key] = sale
    return books


def _party(
    rng: random.Random, key: int, start: datetime, taken: set[str], seller_state: str
) -> Party:
    created = start + timedelta(seconds=key * 37)
    person = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if rng.random() < 0.08:
        name, country, city, region, postal, currency, rate = rng.choice(OVERSEAS_CUSTOMERS)
        name = unique(name, taken)
        return Party(
            key, name, person, f"accounts@{slug(name)}.example", "+1 212 555 0100",
            f"{rng.randint(1, 400)} Harbour Street", city, postal, country, currency,
            Decimal(rate), None, region or None, None, None, created, created,
        )  # fmt: skip
    # A third of customers sit in the seller's own state: intra-state (CGST + SGST) supplies.
    local = [city for city in CITIES if city[0] == seller_state]
    if local and rng.random() < 0.35:
        state, city, pin, std, _ = rng.choice(local)
    else:
        state, city, pin, std, _ = rng.choices(CITIES, weights=[c[4] for c in CITIES])[0]
    form, holder = rng.choice(LEGAL_FORMS)
    base = f"{rng.choice(BUSINESS_NAMES)} {rng.choice(TRADES)}"
    name = unique(f"{base} {form}".strip(), taken)
    registered = rng.random() < 0.75
    pan = gst.make_pan(rng, holder, name) if registered else None
    return Party(
        key=key,
        name=name,
        contact_person=person,
        email=f"accounts@{slug(name)}.example",
        phone=f"+91 {std} {rng.randint(2000000, 9999999)}",
        street=f"{rng.randint(1, 300)}, {rng.choice(STREETS)}",
        city=city,
        postal_code=str(pin),
        country="India",
        currency="INR",
        exchange_rate=Decimal("1"),
        state_code=state,
        region=gst.state_name(state),
        gstin=gst.make_gstin(state, pan) if pan else None,
        pan=pan,
        created_at=created,
        updated_at=created,
    )


def _sale_dates(rng: random.Random, count: int, start: datetime, end: datetime):
    """(issue date, creation time) pairs; distinct creation seconds, so that lists sorted by
    creation time have one order in every system."""
    span = int((end - start).total_seconds()) - count
    moments = sorted(rng.sample(range(max(span, count)), count))
    for offset, moment in enumerate(moments):
        when = start + timedelta(seconds=moment + offset)
        yield when.date(), when


def _sale(
    rng: random.Random,
    books: Books,
    party: Party,
    issued: date,
    when: datetime,
    end: datetime,
    max_lines: int,
) -> Sale:
    lines = [_line(rng, party) for _ in range(rng.randint(1, max_lines))]
    days, _ = rng.choice(PAYMENT_TERMS)
    number = books._next_number(issued)
    sale = Sale(
        key=len(books.sales) + 1,
        number=number,
        party_key=party.key,
        issue_date=issued,
        due_date=issued + timedelta(days=days),
        lines=lines,
        intra_state=party.state_code == books.seller_state,
        currency=party.currency,
        exchange_rate=party.exchange_rate,
        place_of_supply=party.state_code,
        created_at=when,
        updated_at=min(end, when + timedelta(seconds=rng.randint(0, 5 * 86400))),
    )
    roll = rng.random()
    if roll < 0.04:
        sale.status = "draft"
    elif roll < 0.07:
        sale.status = "void"
    elif roll < 0.55:
        sale.paid_percent = 100
    elif roll < 0.70:
        sale.paid_percent = rng.randint(10, 90)
    return sale


def _line(rng: random.Random, party: Party) -> SaleLine:
    item = rng.choice(CATALOGUE)
    quantity = Decimal(rng.randint(1, item.max_quantity))
    if item.fractional and rng.random() < 0.3:
        quantity += Decimal("0.5")
    discount = Decimal(rng.choice((5, 10))) if rng.random() < 0.2 else ZERO
    rate = ZERO if party.overseas else item.gst_rate  # exports: zero-rated under a LUT
    return SaleLine(item, quantity, item.price, discount, rate)
