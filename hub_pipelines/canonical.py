"""The canonical, GST-aware records every connector maps its source into.

Field names are the column names of `accounting.customers`, `accounting.invoices` and
`accounting.invoice_lines` (see `sql/0002_accounting.sql`), so the loader copies them as they are.
Money is `Decimal`, never float. `raw` is the source record exactly as received. The allowed
`gst_treatment` and `status` values are the tables' CHECK constraints.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, get_args

ZERO = Decimal("0.00")

Entity = Literal["customers", "invoices"]
ENTITIES: tuple[Entity, ...] = get_args(Entity)  # customers first: invoices depend on them


@dataclass(slots=True)
class Customer:
    external_id: str
    name: str
    raw: dict[str, Any]
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    gstin: str | None = None
    pan: str | None = None
    gst_treatment: str = "unknown"
    state_code: str | None = None
    place_of_supply: str | None = None
    billing_line1: str | None = None
    billing_line2: str | None = None
    billing_city: str | None = None
    billing_state: str | None = None
    billing_postal_code: str | None = None
    billing_country: str | None = None
    currency: str | None = None
    is_active: bool = True
    opening_balance: Decimal | None = None
    outstanding_balance: Decimal | None = None
    source_updated_at: datetime | None = None


@dataclass(slots=True)
class InvoiceLine:
    line_number: int
    raw: dict[str, Any]
    external_id: str | None = None
    item_name: str | None = None
    description: str | None = None
    hsn_sac: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None
    rate: Decimal | None = None
    discount: Decimal = ZERO
    taxable_amount: Decimal = ZERO
    tax_rate: Decimal | None = None
    cgst: Decimal = ZERO
    sgst: Decimal = ZERO
    igst: Decimal = ZERO
    cess: Decimal = ZERO
    line_total: Decimal = ZERO


@dataclass(slots=True)
class Invoice:
    external_id: str
    raw: dict[str, Any]
    status: str
    invoice_number: str | None = None
    customer_external_id: str | None = None
    customer_name: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = None
    exchange_rate: Decimal | None = None
    subtotal: Decimal = ZERO
    discount_total: Decimal = ZERO
    taxable_amount: Decimal = ZERO
    cgst: Decimal = ZERO
    sgst: Decimal = ZERO
    igst: Decimal = ZERO
    cess: Decimal = ZERO
    tax_total: Decimal = ZERO
    round_off: Decimal = ZERO
    total: Decimal = ZERO
    balance_due: Decimal = ZERO
    place_of_supply: str | None = None
    gst_treatment: str | None = None
    irn: str | None = None
    source_updated_at: datetime | None = None
    lines: list[InvoiceLine] = field(default_factory=list)


def column_names(record_type: type) -> list[str]:
    """The table columns a record type fills (everything but nested lines)."""
    return [f.name for f in fields(record_type) if f.name != "lines"]


@dataclass(slots=True)
class RecordFailure:
    """A source record that could not be mapped; it goes to the errors table, the sync goes on."""

    entity_id: str | None
    category: str  # a connectors.errors.Category value
    message: str
    raw: Any
    suggested_fix: str | None = None


@dataclass(slots=True)
class Page:
    """One page of canonical records; `cursor` is safe to store once this page is committed."""

    records: list[Customer] | list[Invoice]
    failures: list[RecordFailure] = field(default_factory=list)
    cursor: str | None = None
    # How many records (loaded or failed) the whole walk yields, when the source says so (a count
    # in its list answers); only for progress estimates. None when it does not: Zoho's do not.
    walk_total: int | None = None


@dataclass(slots=True)
class ConnectionTest:
    success: bool
    latency_ms: int
    version: str | None = None
    organisation: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ListedRecord:
    """A record as a list call shows it: enough for delete detection and reconciliation."""

    external_id: str
    total: Decimal | None = None


class Connector(Protocol):
    """What every system's connector offers (see "Connector contract" in the design brief).

    `customers` / `invoices` yield pages of changed records; a page's `cursor` is safe to store
    once that page is committed. `listing` streams every id the source has now (with invoice
    totals) for reconciliation and delete detection; `all_ids` is its ids alone.
    `quota_remaining` is what the source's last answer said is left of its API quota (None when
    the source does not say: the default), for progress reports.
    """

    @property
    def api_calls(self) -> int: ...

    @property
    def retries(self) -> int: ...

    @property
    def quota_remaining(self) -> int | None:
        return None

    def test_connection(self) -> ConnectionTest: ...

    def customers(self, cursor: str | None) -> Iterator[Page]: ...

    def invoices(self, cursor: str | None) -> Iterator[Page]: ...

    def listing(self, entity: Entity) -> Iterator[ListedRecord]: ...

    def all_ids(self, entity: Entity) -> Iterator[str]: ...

    def close(self) -> None: ...
