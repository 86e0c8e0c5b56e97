"""The Tally Shape on the simulator engine: Books rendered as a Tally company, or the objects of
real export files replayed, answering the inline-TDL collection exports of `protocol`.

- `POST /` (a `GET /` says the server runs, as Tally's does). Requests in UTF-16 (`charset=utf-16`)
  or UTF-8, answered alike: UTF-16LE with a BOM, or UTF-8.
- One request at a time: Tally is one GUI process, so a second request waits for the first.
- The request is read with lxml: `Export` of a `Collection` defined inline (`TYPE`, `FETCH`,
  `FILTER` naming `SYSTEM TYPE="Formulae"`), the formulas interpreted for what the hub sends
  (`$Field` compared with a number, `$$Date:"YYYYMMDD"` or `"text"`; AND, OR, NOT;
  `$$IsEqual:##SVCurrentCompany:$Name`); `SVFROMDATE`/`SVTODATE` bound vouchers. Anything else
  is `LINEERROR Error in TDL…`. FETCH keeps the fetched fields (and whole lists) of an object.
- The company: `SVCURRENTCOMPANY` must name it exactly, else (and after `close_company()`)
  `LINEERROR Could not set 'SVCurrentCompany' to '…'`; `answer_empty()` answers every collection
  empty instead, as some setups do.
- Books as a company: a renamed Sundry Debtors ("Trade Receivables") with user sub-groups two
  deep; a renamed Sales type ("GST Sale Invoice") with a child type for exports, and Receipt,
  Credit Note, Purchase; CGST/SGST/IGST tax ledgers by GSTDUTYHEAD and older ones spelled
  Central/State/Integrated Tax; Round Off; party ledgers in TallyPrime's shape or ERP 9's flat one
  (every third), one with a raw control byte in its name; a supplier ledger. Sales are vouchers
  with inventory entries (`" 3 Nos"`, `57.00/Nos`, RATEDETAILS, `UDF:` tags), tax lines, round
  off, the party line = −total; overseas buyers in forex form (`-$448.44 @ ₹ 82.99/$ = -₹ …`).
  Drafts are optional vouchers, voids `ISCANCELLED=Yes` without postings, a deleted sale
  vanishes; a payment is a Receipt voucher and leaves the sale alone; archiving changes nothing.
  An object's ALTERID (and UPDATEDDATETIME) moves only when its rendering changes, from the
  company's counters (masters and vouchers apart); GUIDs are `<company guid>-<hex MASTERID>` on
  two MASTERID sequences, so a master and a voucher share GUIDs. A delete moves AltVchId
  (unverified). Auto-renumbering is not simulated.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub_pipelines import gst
from hub_pipelines.simulation.books import Books, Party, Sale, SaleLine
from hub_pipelines.simulation.engine import RateLimits, RateStatus, Reply, SimulatorEngine
from hub_pipelines.simulation.replay import ReplayError
from hub_pipelines.simulation.simulated import Simulated, switched_on
from hub_pipelines.tally import protocol

IST = timezone(timedelta(hours=5, minutes=30))
PRIMARY = "\x04 Primary"  # rendered `&#4; Primary`, as Tally writes the top of the tree
NOT_APPLICABLE = "\x04 Not Applicable"
SALES_TYPE, EXPORT_TYPE = "GST Sale Invoice", "Export Invoice"
DEBTORS = "Trade Receivables"  # Sundry Debtors, renamed
GROUPS = (  # name, parent, reserved name
    ("Current Assets", PRIMARY, "Current Assets"), (DEBTORS, "Current Assets", "Sundry Debtors"),
    ("Retail Debtors", DEBTORS, ""), ("Walk-in Retail", "Retail Debtors", ""),
    ("Export Debtors", DEBTORS, ""), ("Bank Accounts", "Current Assets", "Bank Accounts"),
    ("Current Liabilities", PRIMARY, "Current Liabilities"),
    ("Duties & Taxes", "Current Liabilities", "Duties & Taxes"),
    ("Sundry Creditors", "Current Liabilities", "Sundry Creditors"),
    ("Sales Accounts", PRIMARY, "Sales Accounts"),
    ("Indirect Expenses", PRIMARY, "Indirect Expenses"),
)  # fmt: skip
VOUCHER_TYPES = ((SALES_TYPE, SALES_TYPE, "Sales"), (EXPORT_TYPE, SALES_TYPE, ""),
                 ("Receipt", "Receipt", "Receipt"), ("Credit Note", "Credit Note", "Credit Note"),
                 ("Purchase", "Purchase", "Purchase"))  # fmt: skip
# head -> (ledger, duty head) as TallyPrime names them, and as older companies still do
TAX_LEDGERS = {
    False: {"cgst": ("CGST", "CGST"), "sgst": ("SGST", "SGST/UTGST"), "igst": ("IGST", "IGST")},
    True: {"cgst": ("Output CGST", "Central Tax"), "sgst": ("Output SGST", "State Tax"),
           "igst": ("Output IGST", "Integrated Tax")},
}  # fmt: skip
OTHER_LEDGERS = (  # name, parent, extra fields
    ("Round Off", "Indirect Expenses", (("ROUNDINGMETHOD", "Normal Rounding"),)),
    ("Local Sales", "Sales Accounts", ()), ("Interstate Sales", "Sales Accounts", ()),
    ("Export Sales", "Sales Accounts", ()), ("HDFC Bank", "Bank Accounts", ()),
    ("Office Supplies Co", "Sundry Creditors", ()),  # a supplier: never a customer
)  # fmt: skip
SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "SGD": "S$"}
UDF_PACKETS = '<UDF:PKT.LIST DESC="`Pkt`" ISLIST="YES" TYPE="Number" INDEX="1007">'
UDF_PACKETS += '<UDF:PKT DESC="`Pkt`"> 1</UDF:PKT></UDF:PKT.LIST>'


def f(tag: str, value: Any) -> tuple[str, str]:
    """A field as Tally writes it; a U+0004 in the value becomes the `&#4;` marker."""
    text = escape(str(value)).replace("\x04", "&#4;")
    return tag, f"<{tag}>{text}</{tag}>"


def fields_xml(*pairs: tuple[str, Any]) -> str:
    return "".join(f(tag, value)[1] for tag, value in pairs)


def _base(tag: str) -> str:
    """A field's name as FETCH names it: `ALLLEDGERENTRIES.LIST` and ERP 9's `LEDGERENTRIES.LIST`
    are both `LedgerEntries`."""
    return tag.upper().removesuffix(".LIST").removeprefix("ALL")


@dataclass(frozen=True)
class TallyObject:
    """A master or voucher: its element, NAME attribute, other attributes, and its children
    (tag, XML) in document order; `fields` holds the scalar ones for the filters."""

    kind: str
    name: str
    children: tuple[tuple[str, str], ...]
    attrs: str = ""
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.fields:
            for tag, xml in self.children:
                if not tag.endswith(".LIST"):
                    plain = re.sub(r"<[^>]*>", "", xml).replace("&#4;", "")
                    self.fields[tag] = plain.replace("&lt;", "<").replace("&gt;", ">").replace(
                        "&amp;", "&").strip()  # fmt: skip

    def stamped(self, *extra: tuple[str, str]) -> TallyObject:
        return replace(self, children=self.children + extra, fields={})

    def xml(self, fetch: set[str] | None) -> str:
        """The object with the FETCHed fields (None: every field, as an export file holds)."""
        named = f" NAME={quoteattr(self.name)}" if self.kind != "VOUCHER" else ""
        kept = "".join(xml for tag, xml in self.children if fetch is None or _base(tag) in fetch)
        return f"<{self.kind}{named}{self.attrs}>{kept}</{self.kind}>"


@dataclass
class Stored:
    obj: TallyObject
    master_id: int
    alter_id: int
    changed_at: datetime


@dataclass
class Company:
    """The loaded company: objects by (sequence, key) and the two AlterID counters."""

    name: str
    guid: str
    books_from: date
    objects: dict[tuple[str, Any], Stored] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {"masters": 0, "vouchers": 0})
    ids: dict[str, int] = field(default_factory=lambda: {"masters": 0, "vouchers": 0})
    closed: bool = False
    empty: bool = False

    def put(self, sequence: str, key: Any, build: Callable[[str], TallyObject], at: datetime):
        """Render an object; a new rendering takes the next AlterID of its sequence."""
        old = self.objects.get((sequence, key))
        if old is None:
            self.ids[sequence] += 1
        master_id = old.master_id if old else self.ids[sequence]
        obj = build(f"{self.guid}-{master_id:08x}")
        if old is None or old.obj != obj:
            self.counters[sequence] += 1
            self.objects[(sequence, key)] = Stored(obj, master_id, self.counters[sequence], at)

    def drop(self, sequence: str, key: Any) -> None:
        if self.objects.pop((sequence, key), None) is not None:
            self.counters[sequence] += 1  # (unverified): Tally may not move it on a delete

    def served(self, kind: str) -> Iterator[TallyObject]:
        if kind == "COMPANY":
            yield TallyObject("COMPANY", self.name, (
                f("GUID", self.guid), f("BOOKSFROM", f"{self.books_from:%Y%m%d}"),
                f("ALTMSTID", f" {self.counters['masters']}"),
                f("ALTVCHID", f" {self.counters['vouchers']}")))  # fmt: skip
            return
        for stored in self.objects.values():
            obj = stored.obj
            if obj.kind == kind and "ALTERID" in obj.fields:  # replayed as captured
                yield obj
            elif obj.kind == kind:
                stamp = stored.changed_at.astimezone(IST)
                extra = [f("ALTERID", f" {stored.alter_id}"), f("MASTERID", f" {stored.master_id}")]
                if kind == "VOUCHER":
                    extra.append(f("UPDATEDDATETIME", f"{stamp:%Y%m%d%H%M%S}000"))
                elif kind == "LEDGER":
                    extra.append(f("ALTEREDON", f"{stamp:%Y%m%d}"))
                yield obj.stamped(*extra)


# --- the request and its formulas -----------------------------------------------------------------


class TdlError(ValueError):
    """What the simulator cannot interpret: Tally's `Error in TDL`."""


@dataclass
class Export:
    type: str
    fetch: set[str]
    formulas: list[str]
    company: str | None
    period: tuple[str, str] | None


def read_export(body: bytes, content_type: str) -> Export:
    encoding = "utf-16" if "utf-16" in content_type.lower() else "utf-8"
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", body.decode(encoding).lstrip("\ufeff"))
    root = etree.fromstring(text.encode(), etree.XMLParser(resolve_entities=False))

    def one(path: str) -> str | None:
        found = root.find(path)
        return found.text.strip() if found is not None and found.text else None

    if (one("HEADER/TALLYREQUEST") or "").lower() != "export" or one("HEADER/TYPE") != "Collection":
        raise TdlError("the simulator serves only Export requests of TYPE Collection")
    name = one("HEADER/ID") or ""
    tdl = root.find("BODY/DESC/TDL/TDLMESSAGE")
    defined = tdl.find(f"COLLECTION[@NAME={quoteattr(name)}]") if tdl is not None else None
    if defined is None:
        raise TdlError(f"Could not find Collection '{name}'")
    formulas = {s.get("NAME"): s.text or "" for s in tdl.iterfind("SYSTEM[@TYPE='Formulae']")}
    names = [n.strip() for n in (defined.findtext("FILTER") or "").split(",") if n.strip()]
    if missing := [n for n in names if n not in formulas]:
        raise TdlError(f"Could not find Formula '{missing[0]}'")
    static = "BODY/DESC/STATICVARIABLES/"
    first, last = one(static + "SVFROMDATE"), one(static + "SVTODATE")
    return Export(
        (defined.findtext("TYPE") or "").strip().upper(),
        {_base(n.split(".")[0].strip()) for n in (defined.findtext("FETCH") or "").split(",")},
        [formulas[n] for n in names],
        one(static + "SVCURRENTCOMPANY"),
        (_day(first), _day(last)) if first and last else None,
    )


def _day(value: str) -> str:
    """`1-Apr-2025` or `20250401` → `20250401`."""
    if value.isdigit():
        return value
    return datetime.strptime(value, "%d-%b-%Y").strftime("%Y%m%d")


_OUTSIDE_QUOTES = r'(?=(?:[^"]*"[^"]*")*[^"]*$)'
_CLAUSE = re.compile(
    r"(NOT\s+)?(?:(\$\$IsEqual:##SVCurrentCompany:\$Name)|\$(\w+)"
    r'(?:\s*(>=|<=|<>|=|<|>)\s*(?:\$\$Date:"(\d{8})"|"([^"]*)"|(-?\d+)))?)',
    re.I,
)
_COMPARE = {"=": "__eq__", "<>": "__ne__", "<": "__lt__", ">": "__gt__", "<=": "__le__",
            ">=": "__ge__"}  # fmt: skip


def holds(formula: str, obj: TallyObject, company: str) -> bool:
    """Whether `obj` satisfies a formula in the forms the hub writes: clauses joined by OR and
    AND (AND binding tighter), each `[NOT] $Field [op value]` or the current-company test."""
    alternatives = re.split(r"\s+OR\s+" + _OUTSIDE_QUOTES, formula.strip(), flags=re.I)
    return any(
        all(
            _clause(c, obj, company)
            for c in re.split(r"\s+AND\s+" + _OUTSIDE_QUOTES, a, flags=re.I)
        )
        for a in alternatives
    )


def _clause(clause: str, obj: TallyObject, company: str) -> bool:
    match = _CLAUSE.fullmatch(clause.strip())
    if match is None:
        raise TdlError(f"Could not evaluate '{clause.strip()}'")
    negated, current, name, operator, day, text, digits = match.groups()
    if current:
        held = obj.name == company
    else:
        value = _field(obj, name.upper())
        if operator is None:
            held = bool(value)
        else:
            other: Any = int(digits) if digits else day or text
            if type(value) is not type(other):
                value, other = str(value), str(other)
            held = getattr(value, _COMPARE[operator])(other)
    return held != bool(negated)


def _field(obj: TallyObject, name: str) -> Any:
    """A field's value: Logical as bool, Number as int, a Date (`YYYYMMDD`) and text as text."""
    value = obj.name if name == "NAME" else obj.fields.get(name, "")
    if value in ("Yes", "No"):
        return value == "Yes"
    return int(value) if name != "DATE" and value.lstrip("-").isdigit() else value


# --- the Shape ------------------------------------------------------------------------------------


class TallySimulator(SimulatorEngine):
    def __init__(self, company: Company, **limits: Any) -> None:
        per = {"per_minute": limits.pop("requests_per_minute", None),
               "per_day": limits.pop("daily_limit", None)}  # fmt: skip
        super().__init__(limits=RateLimits(**per), **limits)  # a tunnel's limits, if any
        self.company = company
        self._one_at_a_time = asyncio.Lock()

    def routes(self) -> list[BaseRoute]:
        running = Response("<RESPONSE>TallyPrime Server is Running</RESPONSE>")
        return [
            self.api_route("/", self._export, methods=("POST",), auth=False),
            Route("/", lambda _request: running, methods=["GET"]),
        ]

    async def respond(self, request: Request, handler, *, auth=True, limited=True) -> Response:
        async with self._one_at_a_time:  # one GUI process: the next request waits
            return await super().respond(request, handler, auth=auth, limited=limited)

    async def request_params(self, request: Request) -> dict[str, str]:
        """The body rides along for the handler, which takes it out of the request log."""
        body = await request.body()
        batch = b"LEDGERENTRIES" in body.replace(b"\x00", b"").upper()
        content_type = request.headers.get("content-type", "")
        return {"content_type": content_type, "batch": str(batch), "body": body.decode("latin-1")}

    def page_of(self, params: dict[str, str]) -> int:
        """Faults count the voucher answers with postings (a batch) as page 1."""
        if params.get("batch") == "True":
            return 1
        raise ValueError("not a voucher batch")

    def fault_reply(self, status: int) -> Reply:
        return Reply(status, "Service Unavailable (proxy)", kind="text")

    def throttle_reply(self, status: RateStatus) -> Reply:  # a tunnel or proxy in front of Tally
        return Reply(429, "Too Many Requests", {"Retry-After": str(status.retry_after)}, "text")

    def break_record(self, body: Any, index: int) -> Any:
        """Unbalance one voucher: its party line loses 100 (a record error, raw kept)."""
        text, encoding = _decoded(body)
        found = list(
            re.finditer(r"(<ISPARTYLEDGER>Yes</ISPARTYLEDGER><AMOUNT>)(-?\d+\.\d\d)", text)
        )
        if found:
            match = found[min(index, len(found) - 1)]
            broken = f"{Decimal(match.group(2)) - 100:.2f}"
            text = text[: match.start(2)] + broken + text[match.end(2) :]
        return ("\ufeff" + text).encode(encoding) if encoding == "utf-16-le" else text.encode()

    def _export(self, request: Request, params: dict[str, str]) -> Reply:
        content_type, body = params["content_type"], params.pop("body").encode("latin-1")
        utf16 = "utf-16" in content_type.lower()
        try:
            export = read_export(body, content_type)
            answer = self._collection(export)
        except (TdlError, etree.XMLSyntaxError, ValueError) as bad:
            answer = _envelope(f"<LINEERROR>Error in TDL: {escape(str(bad))}</LINEERROR>")
        charset = "utf-16" if utf16 else "utf-8"
        data = ("\ufeff" + answer).encode("utf-16-le") if utf16 else answer.encode()
        return Reply(200, data, kind="text", media_type=f"text/xml; charset={charset}")

    def _collection(self, export: Export) -> str:
        company = self.company
        if export.company is not None and (company.closed or export.company != company.name):
            said = escape(export.company)
            return _envelope(f"<LINEERROR>Could not set 'SVCurrentCompany' to '{said}'</LINEERROR>")
        if export.type not in ("COMPANY", "GROUP", "VOUCHERTYPE", "CURRENCY", "LEDGER", "VOUCHER"):
            raise TdlError(f"'{export.type}' is not a valid Type")
        if company.empty or company.closed:
            return _envelope("<DATA><COLLECTION></COLLECTION></DATA>")
        objects = [
            obj.xml(export.fetch | {"GUID"})
            for obj in company.served(export.type)
            if _in_period(obj, export.period)
            and all(
                holds(formula, obj, export.company or company.name) for formula in export.formulas
            )
        ]
        return _envelope(f"<DATA><COLLECTION>{''.join(objects)}</COLLECTION></DATA>")

    def close_company(self, closed: bool = True) -> None:
        """The user closed the company in Tally (or loaded another): LINEERROR from now on."""
        with self.lock:
            self.company.closed = closed


# What an office's Tally writes for Day Book > Alt+E > XML (with masters): one envelope of
# TALLYMESSAGEs, masters first and the COMPANY object last, UTF-16 LE with a byte-order mark.
EXPORT_KINDS = ("GROUP", "VOUCHERTYPE", "CURRENCY", "LEDGER", "VOUCHER", "COMPANY")
EXPORT_HEAD = (
    "<ENVELOPE>\r\n<HEADER><TALLYREQUEST>Import Data</TALLYREQUEST></HEADER>\r\n<BODY><IMPORTDATA>"
    "<REQUESTDESC><REPORTNAME>Day Book</REPORTNAME><STATICVARIABLES><SVCURRENTCOMPANY>{company}"
    "</SVCURRENTCOMPANY></STATICVARIABLES></REQUESTDESC><REQUESTDATA>\r\n"
)
EXPORT_TAIL = "</REQUESTDATA></IMPORTDATA></BODY>\r\n</ENVELOPE>\r\n"


def day_book_export(company: Company) -> bytes:
    """The company as an office drops it: a Day Book export file with its masters."""
    messages = (
        f'<TALLYMESSAGE xmlns:UDF="TallyUDF">{obj.xml(None)}</TALLYMESSAGE>\r\n'
        for kind in EXPORT_KINDS
        for obj in company.served(kind)
    )
    text = EXPORT_HEAD.format(company=escape(company.name)) + "".join(messages) + EXPORT_TAIL
    return ("\ufeff" + text).encode("utf-16-le")


def _in_period(obj: TallyObject, period: tuple[str, str] | None) -> bool:
    return (
        obj.kind != "VOUCHER"
        or period is None
        or period[0] <= obj.fields.get("DATE", "") <= period[1]
    )


def _envelope(body: str) -> str:
    header = "<HEADER><VERSION>1</VERSION><STATUS>1</STATUS></HEADER>"
    return f"<ENVELOPE>{header}<BODY>{body}</BODY></ENVELOPE>"


def _decoded(body: Any) -> tuple[str, str]:
    data = body.encode() if isinstance(body, str) else bytes(body)
    if data.startswith(protocol.UTF16_LE):
        return data[2:].decode("utf-16-le"), "utf-16-le"
    return data.decode("utf-8"), "utf-8"


# --- Books as a Tally company ---------------------------------------------------------------------


@dataclass(frozen=True)
class Forex:
    symbol: str
    rate: Decimal  # rupees per unit

    def amount_in_rupees(self, value: Decimal) -> Decimal:
        return (value * self.rate).quantize(Decimal("0.01"))

    def amount(self, value: Decimal, rupees: Decimal | None = None) -> str:
        """`-$448.44 @ ₹ 82.99/$ = -₹ 37216.04` (the rupees given, or converted)."""
        sign, symbol = "-" if value < 0 else "", self.symbol
        rupees = abs(self.amount_in_rupees(value) if rupees is None else rupees)
        return f"{sign}{symbol}{abs(value):.2f} @ ₹ {self.rate:.2f}/{symbol} = {sign}₹ {rupees:.2f}"


class BooksRendering:
    """Renders `books` into `company` and follows its mutations."""

    def __init__(self, books: Books, company: Company, lock: Any) -> None:
        self.books, self.company, self.lock = books, company, lock
        self.state = gst.state_name(books.seller_state) or ""
        at = min((s.created_at for s in books.sales.values()), default=books.clock())
        for name, parent, reserved in GROUPS:
            self._master("GROUP", name, at, ("PARENT", parent), reserved=reserved)
        for name, parent, reserved in VOUCHER_TYPES:
            numbering = ("NUMBERINGMETHOD", "Manual")
            self._master("VOUCHERTYPE", name, at, ("PARENT", parent), numbering, reserved=reserved)
        for code, symbol in SYMBOLS.items():
            self._master("CURRENCY", symbol, at, ("MAILINGNAME", code), ("EXPANDEDSYMBOL", code))
        for ledger, head in [pair for heads in TAX_LEDGERS.values() for pair in heads.values()]:
            duty = (("GSTDUTYHEAD", head), ("TAXTYPE", "GST"))
            self._master("LEDGER", ledger, at, ("PARENT", "Duties & Taxes"), *duty)
        for name, parent, extra in OTHER_LEDGERS:
            self._master("LEDGER", name, at, ("PARENT", parent), *extra)
        for party in books.parties.values():
            self._party(party, party.created_at)
        for sale in books.sales.values():
            self._sale(sale, sale.updated_at)
        books.listeners.append(self._follow)

    def _follow(self, kind: str, key: int) -> None:
        with self.lock:
            now = self.books.clock()
            if kind == "party":
                self._party(self.books.parties[key], now)
            sales = [s for s in self.books.sales.values() if kind == "party" and s.party_key == key]
            for sale in sales if kind == "party" else [self.books.sales[key]]:
                self._sale(sale, now)

    def _master(self, kind: str, name: str, at: datetime, *pairs, reserved: str = "") -> None:
        attrs = f" RESERVEDNAME={quoteattr(reserved)}"
        build = lambda guid: TallyObject(  # noqa: E731
            kind, name, (f("GUID", guid), *(f(*pair) for pair in pairs)), attrs
        )
        self.company.put("masters", (kind, name), build, at)

    def _party(self, party: Party, at: datetime) -> None:
        self.company.put("masters", ("party", party.key), lambda g: self._ledger(party, g), at)

    def _sale(self, sale: Sale, at: datetime) -> None:
        if sale.deleted:
            self.company.drop("vouchers", ("sale", sale.key))
            self.company.drop("vouchers", ("receipt", sale.key))
            return
        self.company.put("vouchers", ("sale", sale.key), lambda g: self._voucher(sale, g), at)
        if sale.paid and sale.status == "issued":
            receipt = lambda g: self._receipt(sale, g)  # noqa: E731
            self.company.put("vouchers", ("receipt", sale.key), receipt, at)

    def ledger_name(self, party: Party) -> str:
        """One party's name carries a raw control byte, as pasted names do (tally_migrator)."""
        return party.name + ("\x05" if party.key == 2 else "")

    def _ledger(self, party: Party, guid: str) -> TallyObject:
        groups = (DEBTORS, "Retail Debtors", "Walk-in Retail")
        group = "Export Debtors" if party.overseas else groups[party.key % 3]
        registration = "Unknown" if party.overseas else "Unregistered/Consumer"
        registration = "Regular" if party.gstin else registration
        state, symbol = party.region or "", SYMBOLS.get(party.currency, party.currency)
        lines = fields_xml(("ADDRESS", party.street), ("ADDRESS", party.city))
        address = ("ADDRESS.LIST", f'<ADDRESS.LIST TYPE="String">{lines}</ADDRESS.LIST>')
        pairs = [("GUID", guid), ("CURRENCYNAME", symbol), ("PARENT", group),
                 ("GSTTYPE", NOT_APPLICABLE), ("OPENINGBALANCE", "0.00"), ("EMAIL", party.email),
                 ("INCOMETAXNUMBER", party.pan or "")]  # fmt: skip
        if party.key % 3 == 0:  # Tally.ERP 9's flat shape
            pairs += [("LEDSTATENAME", state), ("PINCODE", party.postal_code),
                      ("PARTYGSTIN", party.gstin or ""), ("GSTREGISTRATIONTYPE", registration),
                      ("COUNTRYNAME", party.country)]  # fmt: skip
            children = [*(f(*pair) for pair in pairs), address]
        else:  # TallyPrime: registration and mailing details as dated lists
            gstin = [("GSTIN", party.gstin)] if party.gstin else []
            since = ("APPLICABLEFROM", "20170701")
            details = fields_xml(since, ("GSTREGISTRATIONTYPE", registration),
                                 ("PLACEOFSUPPLY", state), *gstin)  # fmt: skip
            mailing = address[1] + fields_xml(since, ("PINCODE", party.postal_code),
                ("MAILINGNAME", party.name), ("STATE", state),
                ("COUNTRY", party.country))  # fmt: skip
            children = [*(f(*pair) for pair in pairs), f("LEDGERMOBILE", party.phone),
                        _list("LEDGSTREGDETAILS.LIST", details),
                        _list("LEDMAILINGDETAILS.LIST", mailing)]  # fmt: skip
        return TallyObject("LEDGER", self.ledger_name(party), tuple(children), ' RESERVEDNAME=""')

    def _head(self, sale: Sale, guid: str, vtype: str, number: str) -> list[tuple[str, str]]:
        party = self.books.parties[sale.party_key]
        supply = gst.state_name(sale.place_of_supply or "") or NOT_APPLICABLE
        pairs = (("DATE", f"{sale.issue_date:%Y%m%d}"), ("GUID", guid),
                 ("STATENAME", party.region or ""), ("PARTYGSTIN", party.gstin or ""),
                 ("PLACEOFSUPPLY", supply), ("COUNTRYOFRESIDENCE", party.country),
                 ("CMPGSTSTATE", self.state), ("VOUCHERTYPENAME", vtype),
                 ("PARTYLEDGERNAME", self.ledger_name(party)), ("VOUCHERNUMBER", number),
                 ("ISCANCELLED", "Yes" if sale.status == "void" else "No"),
                 ("ISOPTIONAL", "Yes" if sale.status == "draft" else "No"),
                 ("ISPOSTDATED", "No"),
                 ("ISINVOICE", "Yes" if vtype != "Receipt" else "No"))  # fmt: skip
        return [f(*pair) for pair in pairs]

    def _voucher(self, sale: Sale, guid: str) -> TallyObject:
        party = self.books.parties[sale.party_key]
        vtype = EXPORT_TYPE if party.overseas else SALES_TYPE
        children = self._head(sale, guid, vtype, sale.number)
        symbol = SYMBOLS.get(party.currency, party.currency)
        forex = Forex(symbol, party.exchange_rate) if party.currency != "INR" else None
        if sale.status != "void":  # a cancelled voucher keeps its number, not its postings
            children += [_list("ALLINVENTORYENTRIES.LIST", self._item(line, sale, forex))
                         for line in sale.lines]  # fmt: skip
            children += [_list("ALLLEDGERENTRIES.LIST", e) for e in self._entries(sale, forex)]
        attrs = f' REMOTEID={quoteattr(guid)} VCHTYPE={quoteattr(vtype)} ACTION="Create"'
        return TallyObject("VOUCHER", "", tuple(children), attrs)

    def _item(self, line: SaleLine, sale: Sale, forex: Forex | None) -> str:
        item, heads = line.item, TAX_LEDGERS[sale.key % 3 == 0]
        quantity = f" {line.quantity.normalize():f} {item.unit}"
        amount = forex.amount(line.taxable) if forex else f"{line.taxable:.2f}"
        sales = "Local Sales" if sale.intra_state else "Interstate Sales"
        halves = {"cgst": line.gst_rate / 2, "sgst": line.gst_rate / 2, "igst": line.gst_rate}
        rates = "".join(
            _list("RATEDETAILS.LIST", fields_xml(("GSTRATEDUTYHEAD", heads[head][1]),
                  ("GSTRATE", f" {rate.normalize():f}")))[1]
            for head, rate in halves.items())  # fmt: skip
        discount = [("DISCOUNT", f" {line.discount_percent.normalize():f}")]
        allocation = fields_xml(
            ("LEDGERNAME", "Export Sales" if forex else sales), ("AMOUNT", amount)
        )
        batch = fields_xml(("GODOWNNAME", "Main Location"), ("AMOUNT", amount)) + UDF_PACKETS
        described = fields_xml(("BASICUSERDESCRIPTION", item.description))
        return (_list("BASICUSERDESCRIPTION.LIST", described, ' TYPE="String"')[1]
                + fields_xml(("STOCKITEMNAME", item.name), ("GSTHSNNAME", item.hsn_or_sac),
                             ("RATE", f"{line.unit_price:.2f}/{item.unit}"),
                             *(discount if line.discount_percent else []), ("AMOUNT", amount),
                             ("ACTUALQTY", quantity), ("BILLEDQTY", quantity))
                + _list("ACCOUNTINGALLOCATIONS.LIST", allocation)[1] + rates
                + _list("BATCHALLOCATIONS.LIST", batch)[1])  # fmt: skip

    def _entries(self, sale: Sale, forex: Forex | None) -> list[str]:
        """Party line (debit, −total) first, then tax lines and round off (credits)."""
        heads = TAX_LEDGERS[sale.key % 3 == 0]
        credits = [(heads[h][0], amount, "") for h, amount in sale.tax_heads().items() if amount]
        if sale.round_off:
            credits.append(("Round Off", sale.round_off, "<ROUNDTYPE>Normal Rounding</ROUNDTYPE>"))
        money = forex.amount if forex else lambda value, _rupees=None: f"{value:.2f}"
        rupees = None
        if forex:  # the party's rupees balance the credits' rupees, as Tally keeps them
            parts = [*(line.taxable for line in sale.lines), *(a for _, a, _ in credits)]
            rupees = -sum((forex.amount_in_rupees(part) for part in parts), Decimal(0))
        total, days = money(-sale.total, rupees), (sale.due_date - sale.issue_date).days
        jd = (sale.issue_date - date(1899, 12, 31)).days
        period = f'<BILLCREDITPERIOD JD="{jd}" P="{days} Days">{days} Days</BILLCREDITPERIOD>'
        bill = fields_xml(("NAME", sale.number)) + period
        bill += fields_xml(("BILLTYPE", "New Ref"), ("AMOUNT", total))
        party = self.ledger_name(self.books.parties[sale.party_key])
        entries = [fields_xml(("LEDGERNAME", party), ("ISDEEMEDPOSITIVE", "Yes"),
                              ("ISPARTYLEDGER", "Yes"), ("AMOUNT", total))
                   + _list("BILLALLOCATIONS.LIST", bill)[1]]  # fmt: skip
        for name, amount, extra in credits:
            pairs = (("LEDGERNAME", name), ("ISDEEMEDPOSITIVE", "No"), ("ISPARTYLEDGER", "No"))
            entries.append(extra + fields_xml(*pairs, ("AMOUNT", money(amount))))
        return entries

    def _receipt(self, sale: Sale, guid: str) -> TallyObject:
        """A payment: a Receipt voucher of its own (the sale stays as it was)."""
        party = self.ledger_name(self.books.parties[sale.party_key])
        children = self._head(sale, guid, "Receipt", f"R-{sale.number}")
        for ledger, amount in ((party, sale.paid), ("HDFC Bank", -sale.paid)):
            entry = fields_xml(("LEDGERNAME", ledger), ("AMOUNT", f"{amount:.2f}"))
            children.append(_list("ALLLEDGERENTRIES.LIST", entry))
        return TallyObject("VOUCHER", "", tuple(children), ' VCHTYPE="Receipt" ACTION="Create"')


def _list(tag: str, inner: str, attrs: str = "") -> tuple[str, str]:
    return tag, f"<{tag}{attrs}>{inner}</{tag}>"


# --- handles --------------------------------------------------------------------------------------


def _simulated(simulator: TallySimulator, books: Books | None) -> Simulated:
    company = simulator.company

    return Simulated(
        "tally",
        simulator,
        books,
        lambda base_url: connection_config(base_url, company.name),
        refresh_token=lambda: "",
        rotates_refresh_tokens=False,
        answer_empty=lambda: switched_on(company, "empty"),
        break_an_invoice=lambda: simulator.faults.malformed_page("/", 1, times=1),
        holds_drafts=False,
        records_payments=False,
        archives_parties=False,
    )


def connection_config(base_url: str, company_name: str) -> dict[str, Any]:
    """The tenant config reaching a simulated Tally at `base_url` with `company_name` loaded."""
    return {"url": base_url, "company_name": company_name, "timeout_seconds": 60}


def simulate(books: Books, **limits: Any) -> Simulated:
    """A Tally instance with `books` loaded as its company (limits: a tunnel's, if any)."""
    first = min((s.issue_date for s in books.sales.values()), default=books.clock().date())
    start = date(first.year if first.month >= 4 else first.year - 1, 4, 1)
    guid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tally/{books.seller_name}"))
    company = Company(books.seller_name, guid, start)
    simulator = TallySimulator(company, **limits)
    BooksRendering(books, company, simulator.lock)
    return _simulated(simulator, books)


REPLAYED = ("GROUP", "VOUCHERTYPE", "CURRENCY", "LEDGER", "VOUCHER")


def replay(paths: list[Path], **limits: Any) -> Simulated:
    """A Tally instance serving the masters and vouchers found in export files (UTF-16 or UTF-8,
    `&#4;` markers and all); the company is named by the first file's `SVCURRENTCOMPANY`, and
    its counters are the highest ALTERIDs captured. A later file's object wins (by GUID)."""
    from hub_pipelines.connectors import xml  # the tolerant reader (real exports need it)

    company: Company | None = None
    for path in paths:
        found = 0
        try:
            with open(path, "rb") as source:
                for element in xml.objects(source, {"SVCURRENTCOMPANY", *REPLAYED}):
                    if element.tag == "SVCURRENTCOMPANY" or company is None:
                        named = element.text if element.tag == "SVCURRENTCOMPANY" else None
                        company = company or Company((named or "Replayed").strip(), "", date.max)
                    if element.tag != "SVCURRENTCOMPANY" and protocol.text(element, "GUID"):
                        found += 1
                        _keep(company, element)
        except (OSError, xml.XmlError) as exc:
            raise ReplayError(f"{path}: {exc}") from None
        if not found:
            raise ReplayError(f"{path}: no Tally masters or vouchers in it ({', '.join(REPLAYED)})")
    if company is None:
        raise ReplayError("no files to replay")
    if company.books_from == date.max:
        company.books_from = date(2000, 4, 1)
    return _simulated(TallySimulator(company, **limits), None)


def _keep(company: Company, element: etree._Element) -> None:
    guid = protocol.text(element, "GUID")
    company.guid = company.guid or guid[:36]
    children = tuple((child.tag, etree.tostring(child, encoding="unicode", with_tail=False))
                     for child in element if isinstance(child.tag, str))  # fmt: skip
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in element.attrib.items() if k != "NAME")
    obj = TallyObject(element.tag, element.get("NAME", ""), children, attrs)
    sequence = "vouchers" if element.tag == "VOUCHER" else "masters"
    alter_id = protocol.number(obj.fields.get("ALTERID", ""))
    company.counters[sequence] = max(company.counters[sequence], alter_id)
    company.objects[(sequence, guid)] = Stored(obj, 0, alter_id, datetime.now(UTC))
    when = protocol.day(obj.fields.get("DATE", ""))
    if when and when < company.books_from:
        company.books_from = date(when.year if when.month >= 4 else when.year - 1, 4, 1)
