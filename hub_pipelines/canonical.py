"""The canonical, GST-aware records every connector maps its source into.

Field names are the column names of `accounting.customers`, `accounting.invoices` and
`accounting.invoice_lines` (see `sql/0002_accounting.sql`), so the loader copies them as they are.
Money is `Decimal`, never float. `raw` is the source record exactly as received. The allowed
`gst_treatment` and `status` values are the tables' CHECK constraints.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
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
    # The line's part of its invoice's raw payload (an object found in it, as is): the loader's
    # fingerprint of the invoice covers it through the invoice's raw (warehouse/encoding.py).
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
    other_tax: Decimal = ZERO  # a tax that is not GST (VAT, US sales tax), never refused
    line_total: Decimal = ZERO


@dataclass(slots=True)
class Invoice:
    external_id: str
    raw: dict[str, Any]
    # draft, pending_approval, approved, rejected (not issued) or open, partially_paid, paid,
    # void (issued): the CHECK constraint of sql/0007_amounts_and_approvals.sql.
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
    other_tax: Decimal = ZERO  # not GST; tax_total = cgst + sgst + igst + cess + other_tax
    tax_total: Decimal = ZERO
    round_off: Decimal = ZERO  # the organisation's rounding of the total (to the rupee)
    # Whatever else is in the total, outside the taxable value and tax: a free adjustment, a
    # charge that is not taxed, a discount given after tax (negative). Totals add up as
    # total = taxable_amount + tax_total + round_off + adjustment.
    adjustment: Decimal = ZERO
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


# Digits before the point that each numeric column holds (sql/0002_accounting.sql): money is
# numeric(18,2); the others are named. A value beyond them would refuse the whole page.
INTEGER_DIGITS = {"quantity": 14, "rate": 14, "tax_rate": 5, "exchange_rate": 12}
MONEY_INTEGER_DIGITS = 16
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# PostgreSQL stores neither NUL (in text or jsonb) nor lone UTF-16 surrogates (not UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storage_problem(record: Customer | Invoice) -> str | None:
    """Why the warehouse cannot store this record as it is (naming the field), or None.

    Checked before the COPY so one bad record becomes a record error instead of failing its page.
    """
    for name, value in _fields_of(record):
        problem = _value_problem(name, value)
        if problem:
            return problem
    raws = [("raw", record.raw)] + [
        (f"lines[{line.line_number}].raw", line.raw) for line in getattr(record, "lines", ())
    ]
    for path, raw in raws:
        found = _unstorable_path(raw, path)
        if found:
            return f"{found} holds a character PostgreSQL cannot store (NUL or a lone surrogate)"
    return None


def _fields_of(record) -> Iterator[tuple[str, Any]]:
    for name in column_names(type(record)):
        if name != "raw":
            yield name, getattr(record, name)
    for line in getattr(record, "lines", ()):
        for name in column_names(InvoiceLine):
            if name != "raw":
                yield f"lines[{line.line_number}].{name}", getattr(line, name)


def _value_problem(name: str, value: Any) -> str | None:
    column = name.rsplit(".", 1)[-1]
    if isinstance(value, str) and UNSTORABLE.search(value):
        return f"{name} holds a character PostgreSQL cannot store (NUL or a lone surrogate)"
    if isinstance(value, Decimal):
        digits = INTEGER_DIGITS.get(column, MONEY_INTEGER_DIGITS)
        if value.adjusted() >= digits:
            return f"{name} = {value:.6E} is beyond the warehouse's range (under 10^{digits})"
    if column == "currency" and value is not None and not CURRENCY_CODE.fullmatch(str(value)):
        return f"currency: expected a three-letter ISO 4217 code such as INR, got {value!r}"
    return None


def _unstorable_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) in a JSON value that PostgreSQL cannot store."""
    if isinstance(value, str):
        return path if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        children = [(f"{path}.{key}", str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{index}]", "", item) for index, item in enumerate(value)]
    else:
        return None
    for step, key, item in children:
        found = step if UNSTORABLE.search(key) else _unstorable_path(item, step)
        if found:
            return found
    return None


def storable_json(value: Any) -> Any:
    """`value` with every character PostgreSQL cannot store replaced by U+FFFD, so a record
    error keeps all of its raw payload that can be kept."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


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
    # Tombstones: ids the source itself reports deleted (QuickBooks CDC stubs, Xero's DELETED
    # status). Marked deleted in the page's transaction; an id the warehouse lacks is ignored.
    deleted: list[str] = field(default_factory=list)
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


class ListedTotals(MutableMapping[str, "Decimal | None"]):
    """Each listed id with its total (None: not read), kept in a private SQLite file rather than
    in memory: a complete listing of a million invoices would otherwise hold a million ids in the
    import's process, and memory must stay bounded by a page. SQLite keeps a small page cache
    and the file is gone when the mapping is. Totals are stored as text: exact Decimals."""

    def __init__(self, items: Mapping[str, Decimal | None] | None = None) -> None:
        self._db = sqlite3.connect("", check_same_thread=False)  # "": a temporary file
        self._db.execute("CREATE TABLE listed (id TEXT PRIMARY KEY, total TEXT) WITHOUT ROWID")
        if items:
            self.update(items)

    def __setitem__(self, key: str, total: Decimal | None) -> None:
        self._db.execute("INSERT OR REPLACE INTO listed VALUES (?, ?)", (key, _text(total)))

    def update(self, items: Mapping[str, Decimal | None], /) -> None:  # type: ignore[override]
        """A page of ids in one statement. SQLite lets go of the GIL for every step of a
        statement, and `executemany` steps once per row: beside a thread that keeps the GIL
        busy (the loader), each row waited for its turn, 195 s for 100,000 ids instead of 0.2 s."""
        rows = json.dumps([[key, _text(total)] for key, total in items.items()])
        self._db.execute(_INSERT_JSON_ROWS, (rows,))

    def __getitem__(self, key: str) -> Decimal | None:
        row = self._db.execute("SELECT total FROM listed WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return _decimal(row[0])

    def __delitem__(self, key: str) -> None:
        if not self._db.execute("DELETE FROM listed WHERE id = ?", (key,)).rowcount:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (key for (key,) in self._db.execute("SELECT id FROM listed"))

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM listed").fetchone()[0]

    def items(self) -> Iterator[tuple[str, Decimal | None]]:  # type: ignore[override]
        return ((key, _decimal(total)) for key, total in self._db.execute("SELECT * FROM listed"))

    def among(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` are held: one statement for a page of ids, answered in one row (one
        step: see `update`)."""
        wanted = json.dumps(list(dict.fromkeys(keys)))
        (found,) = self._db.execute(_HELD_AMONG_JSON_IDS, (wanted,)).fetchone()
        return set(json.loads(found))

    def sum(self) -> Decimal:
        """The sum of the known totals, exact (summed as Decimals, one row at a time)."""
        found = self._db.execute("SELECT total FROM listed WHERE total IS NOT NULL")
        return sum((Decimal(total) for (total,) in found), ZERO)


_INSERT_JSON_ROWS = (
    "INSERT OR REPLACE INTO listed "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)"
)
_HELD_AMONG_JSON_IDS = (
    "SELECT json_group_array(id) FROM listed WHERE id IN (SELECT value FROM json_each(?))"
)


def _text(total: Decimal | None) -> str | None:
    return None if total is None else str(total)


def _decimal(total: str | None) -> Decimal | None:
    return None if total is None else Decimal(total)


@dataclass(slots=True)
class Listing:
    """What a walk listed: each id it saw (less those it then found deleted) with its listed total.
    `complete` when the walk listed every record the source has (no change filter, no early stop):
    then it serves reconciliation (count and sum of totals) and delete detection, and no second
    listing is needed. `totals_known` is False for a complete list of ids that read only the
    changed records' totals (Tally's GUID list on an incremental run): it counts and deletes, but
    its sum of totals is not compared."""

    complete: bool = False
    totals: ListedTotals = field(default_factory=ListedTotals)
    totals_known: bool = True

    @property
    def count(self) -> int:
        return len(self.totals)

    @property
    def total(self) -> Decimal:
        return self.totals.sum()


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

    def listed(self, entity: Entity) -> Listing:
        """What the last `customers` / `invoices` walk listed (incomplete before one ran)."""
        ...

    def count(self, entity: Entity, near: int = 0) -> int | None:
        """How many records the source has now, by its cheapest means (Zoho: one list call near
        `near`, the count the warehouse expects); raises `SyncError` when it cannot tell, and
        answers None for a source that is a slice of the books (a dropped file): nothing to
        count."""
        ...

    def all_ids(self, entity: Entity) -> Iterator[str]: ...

    def close(self) -> None: ...
