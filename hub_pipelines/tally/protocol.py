"""Tally's XML-over-HTTP protocol (shared/protocols/tally.md): the fields the hub reads, declared
once as collections, and the inline-TDL export requests generated from them; the wire encoding;
the answer checks; the cursor.

Every request is `TALLYREQUEST Export`, `TYPE Collection` with its collection defined inline in
`<TDL><TDLMESSAGE>`, filters as `<SYSTEM TYPE="Formulae">` (tally-database-loader's shape), the
company named by `SVCURRENTCOMPANY` (XML-escaped by the serializer: `&`, `<`, `>`), sent as
UTF-16LE with `Content-Type: text/xml;charset=utf-16`. Answers are read by their BOM, else by
their charset (UTF-16 without a BOM is little-endian, as both mature clients assume), else as
UTF-8. Any `LINEERROR` is an error carrying Tally's text; a company Tally cannot select is a
CONFIG error naming it, never "no data".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import unescape

import httpx
from lxml import etree

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import Failure

# Vouchers per request: tally-database-loader's default; Tally needed 12-13 GB for 15k+ vouchers
# in one collection and stalls past ~10,000.
BATCH_VOUCHERS = 5_000
HEADERS = {"Content-Type": "text/xml;charset=utf-16"}
UTF16_LE, UTF16_BE, UTF8 = b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf"
# Voucher requests name their period (a Voucher collection covers the current period otherwise).
FAR_FUTURE = date(2099, 3, 31)

COMPANY_FIX = (
    "Open the company in Tally on the machine at connection_config.url (Gateway of Tally > "
    "Select Company) and keep it loaded during imports, or correct "
    "connection_config.company_name to the company's exact name as Tally shows it; store it with "
    "`hub tenants add TENANT tally --config FILE` (docs/connectors/tally.md, section 9)."
)
TDL_FIX = (
    "Tally refused the request: this Tally release may not know a field or function in its "
    "TDL. Note the Tally release (F1 > About) and report the message with it "
    "(docs/connectors/tally.md, section 9)."
)


@dataclass(frozen=True)
class Collection:
    """One inline TDL collection: its name (the request's ID), Tally's object type, the element
    an object arrives as, and the fields fetched (sub-fields of lists as `List.Field`)."""

    name: str
    type: str
    tag: str
    fetch: tuple[str, ...]


@dataclass(frozen=True)
class Formula:
    """A filter: a named `SYSTEM TYPE="Formulae"` that objects must satisfy."""

    name: str
    expression: str


# --- the declaration: every field the hub reads, once ---------------------------------------------

NAMED = ("Name", "Guid", "AlterId")
COMPANY = Collection("HubCompany", "Company", "COMPANY",
                     ("Name", "Guid", "BooksFrom", "AltMstId", "AltVchId"))  # fmt: skip
# Groups and voucher types resolve Sundry Debtors and Sales by reserved name, through renames.
GROUPS = Collection("HubGroups", "Group", "GROUP", (*NAMED, "Parent", "ReservedName"))
VOUCHER_TYPES = Collection("HubVoucherTypes", "VoucherType", "VOUCHERTYPE",
                           (*NAMED, "Parent", "ReservedName", "NumberingMethod"))  # fmt: skip
CURRENCIES = Collection("HubCurrencies", "Currency", "CURRENCY",
                        (*NAMED, "MailingName", "ExpandedSymbol", "OriginalName"))  # fmt: skip
# Every ledger, light: the customers' GUID list and what invoices need of the others (party
# GUIDs by name, GST duty heads of tax ledgers, round-off ledgers).
LEDGER_LIST = Collection("HubLedgerList", "Ledger", "LEDGER", (*NAMED, "Parent", "GSTDutyHead",
                         "TaxType", "RoundingMethod", "CurrencyName"))  # fmt: skip
CUSTOMERS = Collection("HubCustomers", "Ledger", "LEDGER", (*LEDGER_LIST.fetch, "MasterId",
    "PartyGSTIN", "LedGSTRegDetails", "LedMailingDetails", "LedStateName", "Address", "PinCode",
    "CountryName", "Email", "LedgerMobile", "LedgerCountryISDCode", "IncomeTaxNumber",
    "GSTRegistrationType", "OpeningBalance", "AlteredOn", "UpdatedDateTime"))  # fmt: skip
# Sales vouchers, light: the invoices' GUID list, and the dates that size the batches.
SALES_LIST = Collection("HubSalesList", "Voucher", "VOUCHER",
                        ("Guid", "AlterId", "Date", "VoucherTypeName"))  # fmt: skip
SALES = Collection("HubSales", "Voucher", "VOUCHER", (*SALES_LIST.fetch, "MasterId",
    "VoucherNumber", "Reference", "PartyLedgerName", "PartyName", "PartyGSTIN", "PlaceOfSupply",
    "StateName", "CountryOfResidence", "CmpGSTState", "Narration", "IsCancelled", "IsOptional",
    "IsPostDated", "IsInvoice", "IRN", "UpdatedDateTime", "AllLedgerEntries.LedgerName",
    "AllLedgerEntries.Amount", "AllLedgerEntries.IsPartyLedger", "AllLedgerEntries.RoundType",
    "AllLedgerEntries.BillAllocations", "AllInventoryEntries.StockItemName",
    "AllInventoryEntries.BasicUserDescription", "AllInventoryEntries.GSTHSNName",
    "AllInventoryEntries.Rate", "AllInventoryEntries.BilledQty", "AllInventoryEntries.Amount",
    "AllInventoryEntries.Discount", "AllInventoryEntries.RateDetails",
    "AllInventoryEntries.AccountingAllocations"))  # fmt: skip

IS_CURRENT = Formula("HubIsCurrent", "$$IsEqual:##SVCurrentCompany:$Name")
NOT_OPTIONAL = Formula("HubNotOptional", "NOT $IsOptional")


def changed(after: int, upto: int | None = None) -> Formula:
    """`$AlterID > after` (exclusive, as the cursor), up to `upto` when a day is split."""
    expression = f"$AlterID > {int(after)}"
    return Formula("HubChanged", expression + (f" AND $AlterID <= {int(upto)}" if upto else ""))


def dated(first: date, last: date) -> Formula:
    """Vouchers dated `first` to `last`, both included."""
    return Formula(
        "HubPeriod", f'$Date >= $$Date:"{first:%Y%m%d}" AND $Date <= $$Date:"{last:%Y%m%d}"'
    )


def of_types(names: list[str]) -> Formula | None:
    """Vouchers of these types; None when a name holds a `"` (TDL strings cannot escape it):
    the mapping's own type check then keeps the sales."""
    if not names or any('"' in name for name in names):
        return None
    return Formula("HubTypes", " OR ".join(f'$VoucherTypeName = "{n}"' for n in sorted(names)))


# --- requests -------------------------------------------------------------------------------------


def request(
    collection: Collection,
    company: str | None,
    filters: tuple[Formula | None, ...] = (),
    period: tuple[date, date] | None = None,
) -> str:
    """The export envelope for `collection` in `company` (None: the active one)."""
    root = etree.Element("ENVELOPE")
    header = etree.SubElement(root, "HEADER")
    for tag, text in (("VERSION", "1"), ("TALLYREQUEST", "Export"), ("TYPE", "Collection"),
                      ("ID", collection.name)):  # fmt: skip
        etree.SubElement(header, tag).text = text
    desc = etree.SubElement(etree.SubElement(root, "BODY"), "DESC")
    static = etree.SubElement(desc, "STATICVARIABLES")
    etree.SubElement(static, "SVEXPORTFORMAT").text = "$$SysName:XML"
    if company is not None:
        etree.SubElement(static, "SVCURRENTCOMPANY").text = company
    if period is not None:
        etree.SubElement(static, "SVFROMDATE").text = tally_date(period[0])
        etree.SubElement(static, "SVTODATE").text = tally_date(period[1])
    message = etree.SubElement(etree.SubElement(desc, "TDL"), "TDLMESSAGE")
    definition = etree.SubElement(message, "COLLECTION", NAME=collection.name)
    etree.SubElement(definition, "TYPE").text = collection.type
    etree.SubElement(definition, "FETCH").text = ",".join(collection.fetch)
    used = [formula for formula in filters if formula is not None]
    if used:
        etree.SubElement(definition, "FILTER").text = ",".join(f.name for f in used)
    for formula in used:
        etree.SubElement(
            message, "SYSTEM", TYPE="Formulae", NAME=formula.name
        ).text = formula.expression
    return etree.tostring(root, encoding="unicode")


def tally_date(day: date) -> str:
    """`1-Apr-2025`, the static-variable form tally-database-loader sends."""
    return f"{day.day}-{day:%b-%Y}"


def encode(xml: str) -> bytes:
    """UTF-16LE without a BOM, as Tally's own clients send it (with `HEADERS`)."""
    return xml.encode("utf-16-le")


def answer_bytes(content: bytes, content_type: str = "") -> bytes:
    """The answer with a BOM whenever it is UTF-16, so a reader detects it: by its BOM, else by
    its charset (the byte order read from the first `<`), else UTF-8 as sent."""
    if content.startswith((UTF16_LE, UTF16_BE, UTF8)):
        return content
    if "utf-16" in content_type.lower().replace("_", "-"):
        return (UTF16_BE if content[:1] == b"\x00" else UTF16_LE) + content
    return content


_LINE_ERROR = re.compile(r"<LINEERROR>(.*?)</LINEERROR>", re.S)
_NO_COMPANY = re.compile(r"Could not set 'SVCurrentCompany' to '(.*)'", re.S | re.I)


def line_error(body: bytes) -> str | None:
    """Tally's `LINEERROR` text, if the answer carries one."""
    if b"LINEERROR" not in body and "LINEERROR".encode("utf-16-le") not in body:
        return None
    encoding = "utf-16" if body.startswith((UTF16_LE, UTF16_BE)) else "utf-8"
    found = _LINE_ERROR.search(body.decode(encoding, errors="replace"))
    return " ".join(unescape(found.group(1)).split()) if found else "LINEERROR without text"


def response_check(response: httpx.Response) -> Failure | None:
    """For `HttpClient(check=…)`: a `LINEERROR` in a 200 answer is not retried: CONFIG naming
    the company Tally could not select, else CONFIG with Tally's text (our TDL or its release)."""
    if response.status_code != 200:
        return None
    text = line_error(answer_bytes(response.content, response.headers.get("content-type", "")))
    if text is None:
        return None
    company = _NO_COMPANY.search(text)
    if company:
        message = f"Tally could not select the company {company.group(1)!r} ({text}): it is not "
        message += "loaded in Tally, or connection_config.company_name is not its exact name"
        return Failure(Category.CONFIG, message, False, code="company", suggested_fix=COMPANY_FIX)
    return Failure(
        Category.CONFIG, f"Tally: {text}", False, code="LINEERROR", suggested_fix=TDL_FIX
    )


def company_not_found(company: str | None) -> SyncError:
    """The empty-collection variant of a company Tally does not have loaded."""
    named = f"the company {company!r}" if company else "an active company"
    return SyncError(
        Category.CONFIG,
        f"Tally answered no company for {named}: it is not loaded in Tally (or closed), or "
        "connection_config.company_name is not its exact name; nothing was read or deleted",
        suggested_fix=COMPANY_FIX,
        code="company",
    )


# --- answers --------------------------------------------------------------------------------------


def text(element: etree._Element, tag: str) -> str:
    """A direct child's text, stripped ("" when absent); `NAME` also from the attribute."""
    child = element.find(tag)
    if child is not None and child.text:
        return child.text.strip()
    return (element.get(tag) or "").strip()


def number(value: str) -> int:
    """`" 22062"` → 22062; 0 when empty or unreadable."""
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else 0


def day(value: str) -> date | None:
    """`20250308` → a date; None when absent."""
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Counters:
    """The company's identity and its last AlterIDs: masters and vouchers, two sequences."""

    name: str
    guid: str
    books_from: date | None
    masters: int
    vouchers: int

    @classmethod
    def of(cls, element: etree._Element) -> Counters:
        return cls(
            text(element, "NAME"),
            text(element, "GUID"),
            day(text(element, "BOOKSFROM")),
            number(text(element, "ALTMSTID")),
            number(text(element, "ALTVCHID")),
        )

    def cursor(self, entity: str) -> Cursor:
        return Cursor(self.guid, self.masters if entity == "customers" else self.vouchers)


@dataclass(frozen=True)
class Cursor:
    """What an entity's import last read: the company (its GUID) and its counter then."""

    company: str
    alter_id: int

    def text(self) -> str:
        return json.dumps({"company": self.company, "alter_id": self.alter_id})

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """None (a full pull) for no cursor or one this module did not write."""
        try:
            found = json.loads(value or "")
            return cls(str(found["company"]), int(found["alter_id"]))
        except (ValueError, TypeError, KeyError):
            return None

    def resumed_by(self, now: Cursor) -> bool:
        """Whether an incremental pull from here is sound: the same company, a counter that did
        not go down (a restored backup or a migration to a new company: re-read everything)."""
        return self.company == now.company and self.alter_id <= now.alter_id


@dataclass(frozen=True)
class Batch:
    """One request's share: vouchers dated `first` to `last` changed after `after`, up to `upto`
    when a single day holds more than a batch; `first` None for undated objects (ledgers)."""

    first: date | None
    last: date | None
    after: int
    upto: int | None = None

    def filters(self) -> tuple[Formula, ...]:
        period = (dated(self.first, self.last),) if self.first and self.last else ()
        return (changed(self.after, self.upto), *period)

    @property
    def period(self) -> tuple[date, date] | None:
        return (self.first, self.last) if self.first and self.last else None


def batches(changes: list[tuple[date | None, int]], after: int, cap: int) -> list[Batch]:
    """Requests of at most `cap` objects for the changed (day, AlterID) pairs: consecutive days
    grouped while they fit (per-day counts), a day over the cap split by AlterID ranges."""
    per_day = Counter(day for day, _ in changes)
    found: list[Batch] = []
    group: list = []  # [first, last, size]
    for when in sorted(per_day, key=lambda d: d or date.min):
        size = per_day[when]
        if group and group[2] + size <= cap:
            group[1:] = [when, group[2] + size]
            continue
        if group:
            found.append(Batch(group[0], group[1], after))
        group = [when, when, size]
        if size > cap:  # one day too big for one request: AlterID ranges within it
            ids = sorted(alter_id for d, alter_id in changes if d == when)
            edges = [after] + ids[cap - 1 :: cap][: -1 if len(ids) % cap == 0 else None]
            found += [
                Batch(when, when, low, high) for low, high in zip(edges, edges[1:], strict=False)
            ]
            found.append(Batch(when, when, edges[-1]))
            group = []
    if group:
        found.append(Batch(group[0], group[1], after))
    return found
