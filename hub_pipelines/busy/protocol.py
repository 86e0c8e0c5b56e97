"""BUSY Accounting's web service: what the hub knows about the protocol (shared/protocols/busy.md,
whose section 0 overrides the rest), as constants and pure functions the connector and the
simulator share. BUSY publishes no developer documentation: everything here rests on
independent clients and on responses captured from one live BUSY 21 server.

- Transport: `GET http://<host>:981/`, every parameter an HTTP request header (`SC`, `UserName`,
  `Pwd`, `Qry`, `VchCode`, `MasterCode`); no query string, no body. The answer says `Result: T`
  or `Result: F` with the error text in `Description`; the status code of a failure is
  (unverified): a public mock answers 200 either way. Credentials travel in clear text.
- `SC: 1` runs SQL (`Qry`) on the company's SQL Server database and answers a Microsoft ADO
  persisted-XML rowset; `SC: 8` answers a voucher's XML by `VchCode`, `SC: 9` a master's.
- One database per company and financial year, `Busy<CompCode>_db1<FY>`. BUSY answers for the
  company and year open in the desktop (unverified), so the hub names the year in every request:
  SQL reads `<database>.dbo.<table>` (three-part names on the same SQL Server; whether BUSY's
  login may read a year that is not open is unverified) and voucher reads carry the hub's own
  `FYDatabase` header (BUSY knows no such header: the connector checks that the voucher it got
  is dated in that year).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from hub_pipelines.connectors import xml
from hub_pipelines.connectors.errors import Category
from hub_pipelines.connectors.http import Failure, body_excerpt

SERVER_HEADER = "WeOnlyDo! wodWebServer, version 1.6.4.346"  # a live capture's `Server`

SQL, VOUCHER_XML = "1", "8"  # the service codes (`SC`) the hub uses: read-only
YEAR_HEADER = "FYDatabase"  # the hub's own: which year's database a voucher read means
ACCOUNT_GROUP, ACCOUNT, ITEM = 1, 2, 6  # Master1.MasterType
SALE = 9  # Tran1.VchType
SUNDRY_DEBTORS = 116  # the group code five independent clients use for Sundry Debtors
PAGE_SIZE = 200  # rows per keyset page (`TOP n`): one call ≈ 0.5 s whatever its size
# The floor of the timestamp expression: a row with neither time still sorts and pages.
NO_TIME = "1900-01-01"

# --- databases and years ----------------------------------------------------------------------


def database(company_code: str, year: int) -> str:
    """`BusyComp0001_db12024`: the company's database for the financial year from April 2024."""
    return f"Busy{company_code}_db1{year}"


def database_year(name: str, company_code: str) -> int | None:
    match = re.fullmatch(rf"Busy{re.escape(company_code)}_db1(\d{{4}})", name.strip(), re.I)
    return int(match[1]) if match else None


def year_of(day: date) -> int:
    """The financial year (April to March) a day belongs to, by its starting year."""
    return day.year if day.month >= 4 else day.year - 1


def year_label(year: int) -> str:
    return f"{year}-{(year + 1) % 100:02d}"


# --- the SQL the hub sends: templates the simulator recognises ---------------------------------

_CUSTOMER_CHANGED = f"COALESCE(M.ModificationTime, M.CreationTime, '{NO_TIME}')"
_SALE_CHANGED = f"COALESCE(ModificationTime, CreationTime, '{NO_TIME}')"
# Keyset paging: rows after (time, code) in the order (time, code); one line, ASCII only.
DATABASES = "SELECT name FROM sys.databases WHERE name LIKE 'Busy{company}_db1%'"
GROUPS = "SELECT Code, Name, ParentGrp FROM {db}.dbo.Master1 WHERE MasterType = 1"
ITEMS = "SELECT Name, HSNCode FROM {db}.dbo.Master1 WHERE MasterType = 6"
CUSTOMERS = (
    "SELECT TOP {limit} M.Code, M.Name, M.Alias, M.PrintName, M.ParentGrp, M.Stamp, "
    "M.CreationTime, M.ModificationTime, M.BlockedMaster, M.DeactiveMaster, A.Address1, "
    "A.Address2, A.Address3, A.Address4, A.TelNo, A.Mobile, A.Email, A.GSTNo, A.ITPAN, "
    f"A.PINCode, {_CUSTOMER_CHANGED} AS Changed FROM {{db}}.dbo.Master1 M LEFT JOIN "
    "{db}.dbo.MasterAddressInfo A ON A.MasterCode = M.Code WHERE M.MasterType = 2 AND "
    f"M.ParentGrp IN ({{groups}}) AND ({_CUSTOMER_CHANGED} > '{{after}}' OR "
    f"({_CUSTOMER_CHANGED} = '{{after}}' AND M.Code > {{code}})) "
    f"ORDER BY {_CUSTOMER_CHANGED}, M.Code"
)
SALES = (
    "SELECT TOP {limit} VchCode, LTRIM(VchNo) AS VchNo, Date, MasterCode1, VchAmtBaseCur, "
    "CurConRate, Cancelled, VchCancelled, Stamp, CreationTime, ModificationTime, EInvIRN, "
    f"{_SALE_CHANGED} AS Changed FROM {{db}}.dbo.Tran1 WHERE VchType = 9 AND "
    f"({_SALE_CHANGED} > '{{after}}' OR ({_SALE_CHANGED} = '{{after}}' AND VchCode > {{code}})) "
    f"ORDER BY {_SALE_CHANGED}, VchCode"
)
CUSTOMER_KEYS = "SELECT Code FROM {db}.dbo.Master1 WHERE MasterType = 2 AND ParentGrp IN ({groups})"
# Every sale of a year with its total: the complete listing (deletes, reconciliation) each run.
SALE_KEYS = "SELECT VchCode, VchAmtBaseCur, CurConRate FROM {db}.dbo.Tran1 WHERE VchType = 9"
TEMPLATES = {
    "databases": DATABASES,
    "groups": GROUPS,
    "items": ITEMS,
    "customers": CUSTOMERS,
    "sales": SALES,
    "sale_keys": SALE_KEYS,
    "customer_keys": CUSTOMER_KEYS,
}
# What each parameter may hold: the values are formatted into SQL text, so nothing else passes.
_PARAMETERS = {
    "company": r"[A-Za-z0-9]+",
    "db": r"[A-Za-z0-9_]+",
    "limit": r"[0-9]+",
    "groups": r"[0-9]+(?:, [0-9]+)*",
    "after": r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?)?",
    "code": r"-?[0-9]+",
}
FIRST_KEY = -1  # `code` of a walk's first page: every code is above it


def query(template: str, **values: Any) -> str:
    """The SQL text of a template; a value outside its parameter's pattern is refused."""
    text = {name: str(value) for name, value in values.items()}
    for name, value in text.items():
        if not re.fullmatch(_PARAMETERS[name], value):
            raise ValueError(f"{name}={value!r} is not a valid value for a BUSY query")
    return template.format(**text)


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the template's SQL with its parameters as named groups (the simulator
    answers only the query shapes the connector sends); a repeated parameter must repeat."""
    parts, seen, pattern = re.split(r"\{(\w+)\}", template), set(), ""
    for index, part in enumerate(parts):
        if index % 2 == 0:
            pattern += re.escape(part)
        else:
            pattern += f"(?P={part})" if part in seen else f"(?P<{part}>{_PARAMETERS[part]})"
            seen.add(part)
    return re.compile(pattern)


def sql_time(moment: datetime) -> str:
    """A naive local time as a SQL Server datetime literal (ISO 8601, milliseconds at most)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + f".{moment.microsecond // 1000:03d}" if moment.microsecond else text


def busy_time(text: Any) -> datetime | None:
    """An ADO `dateTime` value (`2025-04-01T10:22:33`, fractions allowed; a space also taken)
    as a naive datetime in the server's local time; None when blank."""
    text = str(text or "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?)?", text)
    if match is None:
        raise ValueError(f"not a BUSY date-time: {text!r}")
    moment = datetime.fromisoformat(f"{match[1]}T{match[2] or '00:00:00'}")
    return moment.replace(microsecond=int((match[3] or "0")[:6].ljust(6, "0")))


def voucher_date(text: Any) -> date:
    """A voucher XML date, `dd-mm-yyyy`."""
    return datetime.strptime(str(text).strip(), "%d-%m-%Y").date()


# --- requests ---------------------------------------------------------------------------------


def request_headers(service: str, **parameters: str) -> dict[str, str]:
    """The headers of one call besides the credentials (the client adds `UserName`, `Pwd`)."""
    for name, value in parameters.items():
        if not value.isascii() or "\n" in value or "\r" in value:
            raise ValueError(f"header {name} must be one line of ASCII")
    return {"SC": service, **parameters}


# --- answers ------------------------------------------------------------------------------------

_OPEN_COMPANY_FIX = (
    "Open the company in the BUSY desktop (logged in, with the web service running) and keep it "
    "open; the import is retried automatically (docs/connectors/busy.md, section 7)."
)
_CREDENTIALS_FIX = (
    "Check connection_config.username and connection_config.password against a BUSY user "
    "allowed to use the web service (docs/connectors/busy.md, section 2); store the corrected "
    "config with `hub tenants add TENANT busy --config FILE` and check it with "
    "`hub tenants test TENANT busy`."
)
_SQL_FIX = (
    "BUSY refused the hub's SQL. Check connection_config.company_code and "
    "connection_config.financial_years against the company's databases (docs/connectors/busy.md, "
    "section 7); if they are right, report the message (`hub errors show ID`)."
)
NOT_A_BUSY_FIX = (
    "Check connection_config.url (or host and port): it must reach BUSY's web service, port 981 "
    "by default (docs/connectors/busy.md, section 1)."
)
# Description texts by kind, checked in this order. Only "Please open a company" was seen (one
# project); the others are (unverified) wordings of what such errors say.
_DESCRIPTIONS = (
    ("company_not_open", r"open\s+(a|the)\s+company|company\s+(is\s+)?not\s+open|no\s+company"),
    ("credentials", r"user|password|login|logon|authenticat|credential"),
    ("sql_error", r"sql|syntax|invalid\s+(column|object)|conversion|query"),
    ("not_found", r"not\s+found|does\s+not\s+exist|invalid\s+(vch|voucher|master)"),
)
# kind -> (category, retried, what the message says first, the fix)
_KINDS = {
    "company_not_open": (Category.SERVER, True, "BUSY has no company open", _OPEN_COMPANY_FIX),
    "credentials": (Category.AUTH, False, "BUSY refused the sign-in", _CREDENTIALS_FIX),
    "sql_error": (Category.CONFIG, False, "BUSY refused the SQL", _SQL_FIX),
    "not_found": (Category.SOURCE_DATA, False, "BUSY did not find it", None),
    "error": (Category.SERVER, False, "BUSY answered an error", None),
}


def response_check(response: httpx.Response) -> Failure | None:
    """BUSY's answers for `HttpClient(check=…)`: `Result: F` classified from `Description`
    (company not open: retried, and never read as empty data; bad credentials: AUTH, not retried;
    an SQL error fails the batch; a voucher or master not found: SOURCE_DATA). A status of 400 or
    more without `Result` is a proxy's or a tunnel's: the status rules decide."""
    result = response.headers.get("Result", "").strip().upper()
    if result == "T" or (response.status_code >= 400 and not result):
        return None
    if result != "F":
        return Failure(
            Category.CONFIG,
            f"the answer carries no BUSY `Result` header ({body_excerpt(response)})",
            retryable=False,
            code="not_busy",
            suggested_fix=NOT_A_BUSY_FIX,
        )
    said = " ".join(response.headers.get("Description", "").split()) or "(no Description)"
    kind = next((k for k, pattern in _DESCRIPTIONS if re.search(pattern, said, re.I)), "error")
    category, retried, what, fix = _KINDS[kind]
    return Failure(category, f"{what}: {said}", retryable=retried, code=kind, suggested_fix=fix)


# --- ADO rowsets (SC=1) and element XML (SC=8, SC=9) ---------------------------------------------

_S = "uuid:BDC6E3F0-6DA3-11d1-A2A3-00AA00C14882"
_DT = "uuid:C2F41010-65B3-11d1-A29F-00AA00C14882"
_RS = "urn:schemas-microsoft-com:rowset"
NAMESPACES = {"s": _S, "dt": _DT, "rs": _RS, "z": "#RowsetSchema"}
NUMBER_TYPES = frozenset({"float", "r4", "r8", "number", "decimal", "numeric", "fixed.14.4"})
INTEGER_TYPES = frozenset({"int", "i1", "i2", "i4", "i8", "ui1", "ui2", "ui4", "ui8"})


class BusyXmlError(ValueError):
    """An answer that is not the XML it should be; the message says where it breaks."""


@dataclass(frozen=True)
class Rowset:
    """An SC=1 answer: each column's `dt:type` (from the schema block, when there is one) and
    the rows as received: attribute text by column name, a NULL column absent."""

    types: dict[str, str]
    rows: list[dict[str, str]]

    def typed(self, row: dict[str, str]) -> dict[str, Any]:
        return {name: typed_value(value, self.types.get(name)) for name, value in row.items()}


def parse_rowset(body: bytes) -> Rowset:
    """An ADO persisted-XML rowset, read by the shared tolerant reader (encoding from the BOM or
    the declaration; character references decoded; single-quoted attributes)."""
    types: dict[str, str] = {}
    renamed: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    try:
        if xml.root_tag(body) != "xml":
            raise BusyXmlError(f"not an ADO rowset: the root is <{xml.root_tag(body)}>")
        for element in xml.objects(body, {"AttributeType", "row"}):
            if xml.local_name(element.tag) == "row":
                rows.append(
                    {renamed.get(k, k): v for k, v in element.attrib.items() if "}" not in k}
                )
                continue
            # A column whose name is no XML name is written under another, with `rs:name`.
            name = element.get("name", "")
            renamed[name] = element.get(f"{{{_RS}}}name") or name
            datatype = element.find(f"{{{_S}}}datatype")
            kind = datatype.get(f"{{{_DT}}}type") if datatype is not None else None
            types[renamed[name]] = (kind or "string").lower()
    except xml.XmlError as exc:
        raise BusyXmlError(f"unreadable rowset: {exc}") from None
    return Rowset(types, rows)


def typed_value(text: str | None, kind: str | None) -> Any:
    """A rowset value read as its `dt:type` says: numbers as Decimal from the text (never
    through float), bits from 'True'/'False', date-times as naive local times."""
    if text is None or not text.strip():
        return None if kind and kind != "string" else text
    if kind in NUMBER_TYPES:
        return Decimal(text.strip())
    if kind in INTEGER_TYPES:
        return int(text)
    if kind == "boolean":
        return flag(text)
    if kind in ("datetime", "date", "datetime.tz", "datetime.iso8601tz"):
        return busy_time(text)
    return text


def flag(value: Any) -> bool:
    """A bit as BUSY's rowsets write it ('True'/'False'; '1'/'0' taken too)."""
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("true", "1", "-1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise ValueError(f"not a bit: {value!r}")


def parse_document(body: bytes) -> tuple[str, dict[str, Any]]:
    """An SC=8 / SC=9 answer: its root tag (`Sale`, `Account`, `Item`) and its content as
    plain data (a repeated tag, such as `ItemDetail`, becomes a list)."""
    try:
        tag = xml.root_tag(body)
        content: dict[str, Any] = {}
        for element in xml.objects(body, {tag}):
            content = xml.as_dict(element)  # the root comes last (inner matches first)
    except xml.XmlError as exc:
        raise BusyXmlError(f"unreadable XML: {exc}") from None
    return tag, content


def entries(section: Any, tag: str) -> list[dict[str, Any]]:
    """The repeated entries of a section (`ItemEntries`/`ItemDetail`), one or many."""
    found = section.get(tag) if isinstance(section, dict) else None
    items = found if isinstance(found, list) else [found] if found else []
    return [item for item in items if isinstance(item, dict)]
