"""The BUSY Shape on the simulator engine: Books rendered as a BUSY company, or replayed captures.

- `GET /` only, every parameter a header; a query string or a body is refused (BUSY reads
  headers only). `UserName`/`Pwd` on every call. Answers carry `Result: T|F`, `Description` and
  `Server: WeOnlyDo! …`; SC=1 an ADO rowset, SC=8 a voucher's XML. Error wordings other than
  "Please open a company" are (unverified).
- SQL is not interpreted: the connector's query shapes (`protocol.TEMPLATES`) are recognised, a
  three-part name picking the year's database, and anything else is an SQL error.
- Books as a company: groups (116 Sundry Debtors with sub-groups two levels deep; creditors;
  cash), an account per party (and a supplier and a cash account, which are no customers) with
  its MasterAddressInfo, item masters with HSN, and a database per financial year holding its
  sales (VchType 9) and a receipt (VchType 14) per payment: a payment never touches the sale.
  Codes restart every year; VchNo is left-padded to 25; floats show binary noise; Stamp counts
  a row's revisions; ModificationTime is NULL until a row is first edited (`never_edited_null`)
  and moves only when what BUSY shows changes; times are IST without a zone. Drafts are not
  rendered (BUSY has none); a deleted sale leaves no trace; an archived party is DeactiveMaster.
- Faults besides the engine's (latency, concurrency 1): `close_company(n)` (or `company_open`)
  answers "Please open a company"; `hang_next(n, seconds)` holds answers past a client's
  timeout; `honours_year_header = False` serves vouchers from `open_year` whatever the request
  names, as real BUSY does (unverified).
"""

from __future__ import annotations

import asyncio
import bisect
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.routing import BaseRoute

from hub_pipelines import gst
from hub_pipelines.busy import protocol
from hub_pipelines.connectors import xml
from hub_pipelines.simulation.books import Books, Party, Sale, SaleLine
from hub_pipelines.simulation.catalogue import CATALOGUE
from hub_pipelines.simulation.engine import RateLimits, RateStatus, Reply, SimulatorEngine
from hub_pipelines.simulation.replay import MAX_FILE_BYTES, ReplayError
from hub_pipelines.simulation.simulated import Simulated, switched_on

COMPANY, USERNAME, PASSWORD = "Comp0001", "hub", "simulator-busy-password"  # noqa: S105
IST = ZoneInfo("Asia/Kolkata")
RECEIPT = 14
ACCOUNT_BASE, ITEM_BASE = 5000, 7000
# (code, name, parent); only 116 is a code seen in real companies, the others are this one's.
GROUPS = (
    (113, "Current Assets", 0),
    (116, "Sundry Debtors", 113),
    (1001, "Export Debtors", 116),
    (1002, "Key Accounts", 116),
    (1003, "Key Accounts - North", 1002),
    (112, "Current Liabilities", 0),
    (117, "Sundry Creditors", 112),
    (125, "Cash-in-hand", 113),
)
OTHER_ACCOUNTS = ((3001, "Simulated Supplies Pvt Ltd", 117), (3002, "Cash", 125))


def _columns(spec: str) -> dict[str, str]:
    """`"Code:int Name"` -> {"Code": "int", "Name": "string"}: a rowset's schema."""
    return dict((part.split(":") + ["string"])[:2] for part in spec.split())  # type: ignore[misc]


_STAMPS = "Stamp:int CreationTime:dateTime ModificationTime:dateTime"
COLUMNS = {
    "databases": _columns("name"),
    "groups": _columns("Code:int Name ParentGrp:int"),
    "items": _columns("Name HSNCode"),
    "customers": _columns(
        f"Code:int Name Alias PrintName ParentGrp:int {_STAMPS} BlockedMaster:boolean "
        "DeactiveMaster:boolean Address1 Address2 Address3 Address4 TelNo Mobile Email GSTNo "
        "ITPAN PINCode Changed:dateTime"
    ),
    "sales": _columns(
        "VchCode:int VchNo Date:dateTime MasterCode1:int VchAmtBaseCur:float CurConRate:float "
        f"Cancelled:boolean VchCancelled:boolean {_STAMPS} EInvIRN Changed:dateTime"
    ),
    "sale_keys": _columns("VchCode:int VchAmtBaseCur:float CurConRate:float"),
    "customer_keys": _columns("Code:int"),
}


class Table(dict):
    """A table's rows by code (Master1, a year's Tran1) that counts the writes to it: a keyset
    listing sorted from the table stays valid while the count does. Rows are replaced, never
    edited in place, once the table has been served (tests write tables directly too)."""

    writes = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.writes += 1
        super().__delitem__(key)

    def __ior__(self, other: Any) -> Table:
        self.writes += 1
        return super().__ior__(other)

    def pop(self, *args: Any) -> Any:
        self.writes += 1
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self.writes += 1
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.writes += 1
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.writes += 1
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self.writes += 1
        super().clear()


@dataclass
class Database:
    """One financial year's database: Tran1 rows and each voucher's XML, by VchCode."""

    year: int
    tran1: Table = field(default_factory=Table)
    vouchers: dict[int, str] = field(default_factory=dict)
    next_code: int = 1

    def allocate(self) -> int:
        self.next_code += 1
        return self.next_code - 1


class BusySimulator(SimulatorEngine):
    def __init__(
        self,
        *,
        company_code: str = COMPANY,
        latency: float = 0.0,
        never_edited_null: bool = True,
        noisy_floats: bool = True,
        requests_per_minute: int | None = None,
        daily_limit: int | None = None,
        **engine_options: Any,
    ) -> None:
        limits = RateLimits(per_minute=requests_per_minute, per_day=daily_limit, concurrent=1)
        super().__init__(limits=limits, **engine_options)
        self.faults.latency = latency
        self.company_code, self.username, self.password = company_code, USERNAME, PASSWORD
        self.never_edited_null, self.noisy_floats = never_edited_null, noisy_floats
        self.masters = Table()  # Master1 (+ its address), every year's
        # Keyset listings by name: (the table, its writes then, rows sorted by (time, code)).
        self._sorted: dict[tuple, tuple[Table, int, list[tuple[Any, dict]]]] = {}
        self.databases: dict[int, Database] = {}
        self.sale_codes: dict[int, tuple[int, int]] = {}  # Books sale key -> (year, VchCode)
        self.receipted: dict[int, int] = {}  # Books sale key -> paid percent with receipts
        self.company_open, self.closed_for, self.empty = True, 0, False
        self.honours_year_header, self.open_year = True, None  # None: the newest year
        self.hangs: deque[float] = deque()
        self._patterns = {n: protocol.template_pattern(t) for n, t in protocol.TEMPLATES.items()}

    def close_company(self, requests: int = 1) -> None:
        """The next `requests` answers are "Please open a company"."""
        self.closed_for += requests

    def hang_next(self, requests: int = 1, seconds: float = 5.0) -> None:
        self.hangs.extend([seconds] * requests)

    # --- engine hooks -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [self.api_route("/", self._busy, auth=False)]

    async def respond(self, request: Request, handler, *, auth: bool = True, limited: bool = True):
        if self.hangs:  # a hung desktop: the client gives up first
            await asyncio.sleep(self.hangs.popleft())
        return await super().respond(request, handler, auth=auth, limited=limited)

    async def request_params(self, request: Request) -> dict[str, str]:
        """The header parameters (never the credentials: they would reach the request log)."""
        names = ("SC", "Qry", "VchCode", "MasterCode", protocol.YEAR_HEADER)
        params = {name: request.headers[name] for name in names if name in request.headers}
        if request.url.query:
            params["query_string"] = request.url.query
        if await request.body():
            params["body"] = "(present)"
        return params

    def page_of(self, params: dict[str, str]) -> int:
        """Only a sales page counts as a page (1: a walk's first), for `malformed_page`."""
        match = self._patterns["sales"].fullmatch(params.get("Qry", "").strip())
        if params.get("SC") != protocol.SQL or match is None:
            raise ValueError("not a sales page")
        return 1 if int(match["code"]) == protocol.FIRST_KEY else 2

    def break_record(self, body: Any, index: int) -> Any:
        """Row `index` of a rowset loses its VchCode."""
        row = list(re.finditer(r"<z:row\b[^>]*/>", body))[index]
        broken = re.sub(r"\sVchCode='[^']*'", "", row.group(0), count=1)
        return body[: row.start()] + broken + body[row.end() :]

    def fault_reply(self, status: int) -> Reply:  # a proxy's or tunnel's answer: no Result
        return Reply(status, "Service Unavailable", kind="text")

    def throttle_reply(self, status: RateStatus) -> Reply:
        return Reply(429, "Too Many Requests", {"Retry-After": str(status.retry_after)}, "text")

    # --- answers ------------------------------------------------------------------------------

    def _busy(self, request: Request, params: dict[str, str]) -> Reply:
        if "query_string" in params or "body" in params:
            return _fail("parameters go in headers: no query string or body (simulator)")
        given = (request.headers.get("UserName"), request.headers.get("Pwd"))
        if given != (self.username, self.password):
            return _fail("Invalid User Name or Password")
        if not self.company_open or self.closed_for > 0:
            self.closed_for = max(0, self.closed_for - 1)
            return _fail("Please open a company")
        if params.get("SC") == protocol.SQL:
            return self._sql(params.get("Qry", "").strip())
        if params.get("SC") == protocol.VOUCHER_XML:
            return self._voucher(params)
        return _fail(f"Invalid Service Code {params.get('SC')!r}")

    def _sql(self, qry: str) -> Reply:
        found = ((n, p.fullmatch(qry)) for n, p in self._patterns.items())
        name, match = next(((n, m) for n, m in found if m), ("", None))
        if match is None:
            return _fail(f"[SQL Server]Incorrect syntax near '{qry[:40]}'.")
        values = match.groupdict()
        db = self._named(values["db"]) if "db" in values else None
        if "db" in values and db is None:
            return _fail(f"[SQL Server]Invalid object name '{values['db']}.dbo.Master1'.")
        rows = [] if self.empty else getattr(self, f"_{name}")(values, db)
        return _ok(rowset_xml(COLUMNS[name], rows))

    def _named(self, name: str) -> Database | None:
        year = protocol.database_year(name or "", self.company_code)
        return self.databases.get(year) if year else None

    def _databases(self, values: dict[str, str], _db: Database | None) -> list[dict]:
        if values["company"].lower() != self.company_code.lower():
            return []
        return [{"name": protocol.database(self.company_code, y)} for y in sorted(self.databases)]

    def _groups(self, _values: dict[str, str], _db: Database | None) -> list[dict]:
        return [m for m in self.masters.values() if m["MasterType"] == str(protocol.ACCOUNT_GROUP)]

    def _items(self, _values: dict[str, str], _db: Database | None) -> list[dict]:
        return [m for m in self.masters.values() if m["MasterType"] == str(protocol.ITEM)]

    def _customer_keys(self, values: dict[str, str], _db: Database | None) -> list[dict]:
        groups = set(values["groups"].split(", "))
        return [
            {**m, "Changed": _changed(m)}
            for m in self.masters.values()
            if m["MasterType"] == str(protocol.ACCOUNT) and m.get("ParentGrp") in groups
        ]

    def _customers(self, values: dict[str, str], db: Database | None) -> list[dict]:
        name, rows = ("customers", values["groups"]), lambda: self._customer_keys(values, db)
        return self._keyset(name, self.masters, rows, values, "Code")

    def _sales(self, values: dict[str, str], db: Database) -> list[dict]:
        def rows() -> list[dict]:
            return [
                {**row, "VchNo": row["VchNo"].lstrip(), "Changed": _changed(row)}
                for row in db.tran1.values()
                if row["VchType"] == str(protocol.SALE)
            ]

        return self._keyset(("sales", db.year), db.tran1, rows, values, "VchCode")

    def _keyset(
        self,
        name: tuple,
        table: Table,
        rows: Callable[[], list[dict]],
        values: dict[str, str],
        code: str,
    ) -> list[dict]:
        """`TOP n … WHERE (time, code) > (after, code) ORDER BY time, code`: a slice of `rows()`
        sorted once while `table` is unwritten, so a page costs its own rows, not the table's."""
        cached = self._sorted.get(name)
        if cached is None or cached[0] is not table or cached[1] != table.writes:
            ordered = sorted(((_position(row, code), row) for row in rows()), key=itemgetter(0))
            cached = self._sorted[name] = (table, table.writes, ordered)
        ordered = cached[2]
        after = (protocol.busy_time(values["after"]), int(values["code"]))
        start = bisect.bisect_right(ordered, after, key=itemgetter(0))
        return [row for _, row in ordered[start : start + int(values["limit"])]]

    def _sale_keys(self, _values: dict[str, str], db: Database) -> list[dict]:
        return [row for row in db.tran1.values() if row["VchType"] == str(protocol.SALE)]

    def _voucher(self, params: dict[str, str]) -> Reply:
        named = self._named(params.get(protocol.YEAR_HEADER, ""))
        open_year = self.open_year or max(self.databases, default=0)
        db = named if named and self.honours_year_header else self.databases.get(open_year)
        code = params.get("VchCode", "")
        found = db.vouchers.get(int(code)) if db and code.isdigit() and not self.empty else None
        return _ok(found) if found else _fail(f"Voucher not found (VchCode {code})")

    # --- Books as a BUSY company --------------------------------------------------------------

    def database(self, year: int) -> Database:
        return self.databases.setdefault(year, Database(year))

    def put_party(self, party: Party) -> None:
        code = ACCOUNT_BASE + party.key
        group = 1001 if party.overseas else 1003 if party.key % 4 == 0 else 116
        content = {
            **_master(code, protocol.ACCOUNT, party.name, group),
            "DeactiveMaster": str(not party.active),
            "Address1": party.street,
            "Address2": party.city,
            "Address3": party.region,
            "TelNo": party.phone,
            "Email": party.email,
            "GSTNo": party.gstin,
            "ITPAN": party.pan,
            "PINCode": party.postal_code,
        }
        old = self.masters.get(code)
        self.masters[code] = self._revised(old, content, party.created_at, party.updated_at)

    def put_sale(self, books: Books, sale: Sale) -> None:
        year, known = protocol.year_of(sale.issue_date), self.sale_codes.get(sale.key)
        if known and (sale.deleted or sale.status == "draft" or known[0] != year):
            gone = self.databases[known[0]]  # no trace left, as a deleted voucher in BUSY
            gone.tran1.pop(known[1]), gone.vouchers.pop(known[1])
            del self.sale_codes[sale.key]
            known = None
        if sale.deleted or sale.status == "draft":
            return
        db = self.database(year)
        code = known[1] if known else db.allocate()
        party = books.parties[sale.party_key]
        db.vouchers[code] = voucher_xml(sale, party)
        content = {
            "VchCode": str(code),
            "VchType": str(protocol.SALE),
            "Date": f"{sale.issue_date}T00:00:00",
            "VchNo": sale.number.rjust(25),
            "MasterCode1": str(ACCOUNT_BASE + party.key),
            "VchAmtBaseCur": self._float(gst.round_money(sale.total * sale.exchange_rate)),
            "CurConRate": self._float(sale.exchange_rate),
            "Cancelled": str(sale.status == "void"),
            "VchCancelled": "False",
            "xml": db.vouchers[code],  # not a column: an edit of the lines is an edit
        }
        old = db.tran1.get(code)
        db.tran1[code] = self._revised(old, content, sale.created_at, sale.updated_at)
        self.sale_codes[sale.key] = (year, code)
        if sale.paid_percent > self.receipted.get(sale.key, 0):  # a receipt, not an edit
            self.receipted[sale.key], receipt = sale.paid_percent, db.allocate()
            number = {"VchCode": str(receipt), "VchNo": f"R-{receipt}".rjust(25)}
            db.tran1[receipt] = {**db.tran1[code], **number, "VchType": str(RECEIPT)}

    def _revised(self, old: dict | None, content: dict, created: datetime, updated: datetime):
        """The row with BUSY's bookkeeping: Stamp counts revisions, ModificationTime moves only
        when what BUSY shows changed (a payment is a receipt voucher of its own)."""
        if old is not None and all(old.get(key) == value for key, value in content.items()):
            return old
        if old is not None:
            stamp, created_at, modified = str(int(old["Stamp"]) + 1), old["CreationTime"], updated
        else:  # as generated: edited if its update came later
            stamp, created_at = ("2" if updated > created else "1"), _ist(created)
            modified = updated if updated > created else None if self.never_edited_null else created
        times = {"ModificationTime": _ist(modified) if modified else None, "Stamp": stamp}
        return {**content, "CreationTime": created_at, **times}

    def _float(self, value: Decimal) -> str:
        """A float column as the rowset shows it: with its binary noise (`1234.5599999999999`)."""
        return format(float(value), ".17g") if self.noisy_floats else _plain(value)


def _master(code: int, kind: int, name: str, parent: int) -> dict[str, Any]:
    return {
        "Code": str(code),
        "MasterType": str(kind),
        "Name": name,
        "Alias": "",
        "PrintName": name,
        "ParentGrp": str(parent),
        "BlockedMaster": "False",
        "DeactiveMaster": "False",
    }


def _standard_masters(simulator: BusySimulator) -> None:
    stamps = {"Stamp": "1", "CreationTime": "2015-04-01T00:00:00"}
    for code, name, parent in GROUPS:
        simulator.masters[code] = {**_master(code, protocol.ACCOUNT_GROUP, name, parent), **stamps}
    for code, name, parent in OTHER_ACCOUNTS:
        simulator.masters[code] = {**_master(code, protocol.ACCOUNT, name, parent), **stamps}
    for n, item in enumerate(CATALOGUE, 1):
        row = {**_master(ITEM_BASE + n, protocol.ITEM, item.name, 0), "HSNCode": item.hsn_or_sac}
        simulator.masters[ITEM_BASE + n] = {**row, **stamps}


def voucher_xml(sale: Sale, party: Party) -> str:
    """A sale as SC=8 answers it (the vendor sample's shape): items whose `Amt` includes their
    tax, CGST/SGST percents for a local sale type, IGST for a central one, a Round Off sundry."""
    kind = "Local" if sale.intra_state else "Export" if party.overseas else "Central"
    items = "".join(_item(n, line, sale.intra_state) for n, line in enumerate(sale.lines, 1))
    head = {
        "VchSeriesName": "Main",
        "Date": f"{sale.issue_date:%d-%m-%Y}",
        "VchType": protocol.SALE,
        "VchNo": sale.number,
        "STPTName": f"{kind}-ItemWise",
        "MasterName1": party.name,
        "MasterName2": "Main Store",
        "TranCurName": "Rs." if party.currency == "INR" else party.currency,
    }
    round_off = {"SrNo": 1, "BSName": "Round Off", "Amt": _plain(sale.round_off)}
    sundries = f"<BillSundries>{_tags('BSDetail', round_off)}</BillSundries>"
    return (
        f"<Sale>{_fields(head)}<ItemEntries>{items}</ItemEntries>"
        f"{sundries if sale.round_off else ''}</Sale>"
    )


def _item(number: int, line: SaleLine, intra_state: bool) -> str:
    tax, rate = sum(line.taxes(intra_state), Decimal(0)), line.gst_rate
    first, second = (rate / 2, rate / 2) if intra_state else (rate, Decimal(0))
    values = {
        "SrNo": number,
        "ItemName": line.item.name,
        "UnitName": line.item.unit,
        "Qty": _plain(line.quantity),
        "Price": _plain(line.unit_price),
        "Amt": _plain(line.taxable + tax),
        "ItemTaxCategory": f"GST {_plain(rate)}%",
        "STAmount": _plain(tax),
        "STPercent": _plain(first),
        "STPercent1": _plain(second),
        "MC": "Main Store",
    }
    return _tags("ItemDetail", values)


def _fields(values: dict[str, Any]) -> str:
    return "".join(f"<{tag}>{escape(str(value))}</{tag}>" for tag, value in values.items())


def _tags(tag: str, values: dict[str, Any]) -> str:
    return f"<{tag}>{_fields(values)}</{tag}>"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _ist(moment: datetime) -> str:
    return moment.astimezone(IST).strftime("%Y-%m-%dT%H:%M:%S")


def _changed(row: dict[str, Any]) -> str:
    return row.get("ModificationTime") or row.get("CreationTime") or protocol.NO_TIME


def _position(row: dict, code: str) -> tuple[datetime, int]:
    """A row's place in a keyset walk: (its change time, its code)."""
    return protocol.busy_time(row["Changed"]), int(row[code])


def rowset_xml(columns: dict[str, str], rows: list[dict[str, Any]]) -> str:
    """An ADO persisted-XML rowset: the schema block, a `z:row` per row with single-quoted
    attributes, NULL columns left out, `'` written as `&#x27;` (as in a capture)."""
    schema = "".join(
        f"<s:AttributeType name='{name}' rs:number='{n}' rs:nullable='true' "
        f"rs:writeunknown='true'><s:datatype dt:type='{kind}'/></s:AttributeType>"
        for n, (name, kind) in enumerate(columns.items(), 1)
    )
    data = "".join(
        "\t<z:row "
        + " ".join(f"{k}='{_attribute(row[k])}'" for k in columns if row.get(k) is not None)
        + "/>\r\n"
        for row in rows
    )
    namespaces = " ".join(f"xmlns:{p}='{u}'" for p, u in protocol.NAMESPACES.items())
    return (
        f"<xml {namespaces}>\r\n<s:Schema id='RowsetSchema'><s:ElementType name='row' "
        f"content='eltOnly' rs:CommandTimeout='30'>{schema}<s:extends type='rs:rowbase'/>"
        f"</s:ElementType></s:Schema>\r\n<rs:data>\r\n{data}</rs:data>\r\n</xml>"
    )


def _attribute(value: Any) -> str:
    text = escape(str(value), {"'": "&#x27;"})
    return re.sub(r"[\x00-\x1f]", lambda m: f"&#{ord(m[0])};", text)


def _ok(body: str) -> Reply:
    headers = {"Result": "T", "Description": "", "Server": protocol.SERVER_HEADER}
    return Reply(200, body, headers, "text", "text/xml; charset=utf-8")


def _fail(description: str) -> Reply:
    headers = {"Result": "F", "Description": description, "Server": protocol.SERVER_HEADER}
    return Reply(200, "", headers, "text")


# --- handles ------------------------------------------------------------------------------------


def _simulated(simulator: BusySimulator, books: Books | None) -> Simulated:
    def connection_config(base_url: str) -> dict[str, Any]:
        return {
            "url": base_url,
            "username": simulator.username,
            "password": simulator.password,
            "company_code": simulator.company_code,
            "first_financial_year": min(simulator.databases),
        }

    return Simulated(
        "busy",
        simulator,
        books,
        connection_config,
        refresh_token=lambda: "",
        rotates_refresh_tokens=False,
        answer_empty=lambda: switched_on(simulator, "empty"),
        break_an_invoice=lambda: simulator.faults.malformed_page("/", 1, times=1),
        holds_drafts=False,
        records_payments=False,
    )


def simulate(books: Books, **options: Any) -> Simulated:
    """A BUSY simulator serving `books` as one company (options: `BusySimulator`'s)."""
    simulator = BusySimulator(**options)
    _standard_masters(simulator)
    years = [protocol.year_of(sale.issue_date) for sale in books.sales.values()]
    today = protocol.year_of(books.clock().astimezone(IST).date())
    for year in range(min(years, default=today), max(years, default=today) + 1):
        simulator.database(year)
    with simulator.lock:
        for party in books.parties.values():
            simulator.put_party(party)
        for sale in sorted(books.sales.values(), key=lambda s: s.created_at):
            simulator.put_sale(books, sale)

    def follow(kind: str, key: int) -> None:
        with simulator.lock:
            if kind == "party":
                simulator.put_party(books.parties[key])
            else:
                simulator.put_sale(books, books.sales[key])

    books.listeners.append(follow)
    return _simulated(simulator, books)


def replay(paths: list[Path], **options: Any) -> Simulated:
    """A simulator serving captured answers: rowsets of accounts (`Code`, `Name`: Master1 rows,
    served as Sundry Debtors when the capture lacks `ParentGrp`) and of `Tran1` rows (`VchCode`,
    `Date`), and item master XML (its HSN); catalogue captures (`TABLE_NAME`, `COLUMN_NAME`,
    `VchNo` alone) are accepted and not served. Anything else is a `ReplayError`."""
    simulator = BusySimulator(**options)
    _standard_masters(simulator)
    simulator.database(protocol.year_of(datetime.now(IST).date()))
    for path in map(Path, paths):
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ReplayError(f"{path}: larger than 256 MiB")
        body = path.read_bytes()
        try:
            tag = xml.root_tag(body)
            if tag == "xml":
                _replay_rowset(simulator, path, protocol.parse_rowset(body))
            elif tag == "Item":
                item = protocol.parse_document(body)[1]
                code = ITEM_BASE + 1000 + len(simulator.masters)
                row = _master(code, protocol.ITEM, str(item.get("Name") or ""), 0)
                simulator.masters[code] = {**row, "HSNCode": str(item.get("HSNCode") or "")}
            else:
                raise ReplayError(f"{path}: <{tag}> is not a BUSY rowset or item master")
        except (xml.XmlError, protocol.BusyXmlError) as exc:
            raise ReplayError(f"{path}: {exc}") from None
    return _simulated(simulator, None)


def _replay_rowset(simulator: BusySimulator, path: Path, rowset: protocol.Rowset) -> None:
    columns = set(rowset.types).union(*rowset.rows)
    if {"Code", "Name"} <= columns:
        debtor = {"MasterType": str(protocol.ACCOUNT), "ParentGrp": str(protocol.SUNDRY_DEBTORS)}
        for row in rowset.rows:
            simulator.masters[int(row["Code"])] = {**debtor, **row}
    elif {"VchCode", "Date"} <= columns:
        for row in rowset.rows:
            when = protocol.busy_time(row["Date"])
            db = simulator.database(protocol.year_of(when.date() if when else date.today()))
            db.tran1[int(row["VchCode"])] = {"VchType": str(protocol.SALE), "VchNo": "", **row}
    elif not columns <= {"TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "VchNo"}:
        raise ReplayError(f"{path}: a rowset of {sorted(columns)} is not one the simulator serves")
