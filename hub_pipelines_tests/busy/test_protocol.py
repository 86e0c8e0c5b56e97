"""BUSY's wire protocol: header parameters, `Result: F` classification, credentials kept out of
logs and errors, ADO rowset quirks, and the real captures parsed into the right rows."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub_pipelines.busy import mapping, protocol
from hub_pipelines.busy.simulator import PASSWORD, rowset_xml, simulate
from hub_pipelines.connectors.base import to_decimal
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines_tests.busy.conftest import QUICK, connector
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import small_books

BUSY = REAL_FIXTURES / "busy"
ZONE = ZoneInfo("Asia/Kolkata")


class Desktop:
    """A stand-in BUSY answering every call with the given headers, recording what it got."""

    def __init__(self, result: str | None, description: str = "", status: int = 200) -> None:
        self.result, self.description, self.status = result, description, status
        self.requests: list[tuple[str, str, str, bytes, dict]] = []

    async def answer(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(
            (request.method, request.url.path, request.url.query, body, dict(request.headers))
        )
        headers = {"Description": self.description}
        if self.result:
            headers["Result"] = self.result
        rows = rowset_xml({"name": "string"}, [{"name": "BusyComp0001_db12025"}])
        return Response(rows, self.status, headers, media_type="text/xml")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST"])])


def run_against(desktop: Desktop, **overrides):
    """Ask a stand-in desktop for the company's years; the error, if any."""
    simulated = simulate(small_books())
    with LoopbackServer(desktop.app()) as server:
        busy = connector(simulated, server.url, **overrides)
        try:
            busy.years()
        except SyncError as error:
            return error
        finally:
            busy.close()
    return None


def test_every_parameter_travels_as_a_header_of_a_bare_get():
    desktop = Desktop("T")

    assert run_against(desktop) is None

    ((method, path, query, body, headers),) = desktop.requests
    assert (method, path, query, body) == ("GET", "/", "", b"")
    assert headers["sc"] == "1" and headers["username"] == "hub" and headers["pwd"] == PASSWORD
    assert headers["qry"] == "SELECT name FROM sys.databases WHERE name LIKE 'BusyComp0001_db1%'"


@pytest.mark.parametrize(
    ("description", "category", "retried", "code"),
    [
        ("Invalid User Name or Password", Category.AUTH, False, "credentials"),
        ("Please open a company", Category.SERVER, True, "company_not_open"),
        ("[SQL Server]Invalid object name 'x.dbo.Tran1'.", Category.CONFIG, False, "sql_error"),
        ("Something else went wrong", Category.SERVER, False, "error"),
    ],
)
def test_result_f_is_classified_from_its_description(description, category, retried, code):
    desktop = Desktop("F", description)

    error = run_against(desktop)

    assert (error.category, error.retryable, error.code) == (category, retried, code)
    assert description in error.message
    assert len(desktop.requests) == (QUICK.retry_max_attempts if retried else 1)


def test_an_answer_without_result_is_not_busy_and_a_proxys_503_is_retried():
    assert run_against(Desktop(None)).code == "not_busy"
    proxy = Desktop(None, status=503)
    assert run_against(proxy).category == Category.SERVER
    assert len(proxy.requests) == QUICK.retry_max_attempts


def test_the_password_never_reaches_a_log_or_an_error(caplog):
    # A desktop that echoes the password in its error text, and fails every retry.
    desktop = Desktop("F", f"Please open a company (user hub, password {PASSWORD})")
    logger = logging.getLogger("busy-test")
    simulated = simulate(small_books())
    with caplog.at_level(logging.INFO), LoopbackServer(desktop.app()) as server:
        busy = connector(simulated, server.url, log=logger)
        with pytest.raises(SyncError) as raised:
            busy.years()

    assert caplog.records and desktop.requests
    assert PASSWORD not in caplog.text and PASSWORD not in str(raised.value)
    assert PASSWORD not in raised.value.message and "***" in raised.value.message


# --- ADO rowsets ----------------------------------------------------------------------------------

QUIRKY = """<xml xmlns:s='uuid:BDC6E3F0-6DA3-11d1-A2A3-00AA00C14882'
 xmlns:dt='uuid:C2F41010-65B3-11d1-A29F-00AA00C14882'
 xmlns:rs='urn:schemas-microsoft-com:rowset' xmlns:z='#RowsetSchema'>
<s:Schema id='RowsetSchema'><s:ElementType name='row' content='eltOnly'>
 <s:AttributeType name='Code' rs:number='1'><s:datatype dt:type='int'/></s:AttributeType>
 <s:AttributeType name='Name' rs:number='2'><s:datatype dt:type='string'/></s:AttributeType>
 <s:AttributeType name='c2' rs:name='Vch Amt' rs:number='3'><s:datatype dt:type='float'/>
 </s:AttributeType>
 <s:AttributeType name='Blocked' rs:number='4'><s:datatype dt:type='boolean'/></s:AttributeType>
 <s:AttributeType name='Made' rs:number='5'><s:datatype dt:type='dateTime'/></s:AttributeType>
 <s:extends type='rs:rowbase'/></s:ElementType></s:Schema>
<rs:data>
 <z:row Code='1' Name='&#x27;ENAIBE L C (MRS)' c2='1234.5599999999999' Blocked='True'
  Made='2025-04-01T10:22:33.457'/>
 <z:row Code='2' Name='O&#39;Brien "Chukwu" &amp; Sons &#2360;'/>
</rs:data></xml>"""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_rowset_is_read_with_its_quirks_and_typed_by_its_schema(encoding):
    document = QUIRKY if encoding == "utf-8" else "<?xml version='1.0' encoding='UTF-16'?>" + QUIRKY
    rowset = protocol.parse_rowset(document.encode(encoding))  # utf-16: with its BOM

    first, second = rowset.rows
    assert first["Name"] == "'ENAIBE L C (MRS)" and second["Name"] == 'O\'Brien "Chukwu" & Sons स'
    assert "Blocked" not in second and "Vch Amt" not in second  # NULL columns are left out
    typed = rowset.typed(first)
    assert typed == {
        "Code": 1,
        "Name": "'ENAIBE L C (MRS)",
        "Vch Amt": Decimal("1234.5599999999999"),  # from the text, never through float
        "Blocked": True,
        "Made": datetime(2025, 4, 1, 10, 22, 33, 457000),
    }
    assert to_decimal(typed["Vch Amt"]) == Decimal("1234.56")  # paise, noise gone


def test_broken_xml_and_a_body_that_is_no_rowset_are_named_errors():
    with pytest.raises(protocol.BusyXmlError, match="unreadable"):
        protocol.parse_rowset(QUIRKY[: len(QUIRKY) // 2].encode())
    with pytest.raises(protocol.BusyXmlError, match="not an ADO rowset"):
        protocol.parse_rowset(b"<Sale><VchNo>1</VchNo></Sale>")


def test_queries_accept_only_safe_values_and_the_simulator_recognises_their_shapes():
    sql = protocol.query(protocol.SALE_KEYS, db="BusyComp0001_db12025")
    assert protocol.template_pattern(protocol.SALE_KEYS).fullmatch(sql)
    with pytest.raises(ValueError, match="db="):
        protocol.query(protocol.SALE_KEYS, db="x; DROP TABLE Tran1")
    simulated = simulate(small_books())
    with LoopbackServer(simulated.app) as server:
        answer = httpx.get(
            server.url,
            headers={"SC": "1", "UserName": "hub", "Pwd": PASSWORD, "Qry": "SELECT * FROM Tran1"},
        )
        with_query = httpx.get(server.url + "/?SC=1", headers={"UserName": "hub", "Pwd": PASSWORD})
    assert answer.headers["Result"] == "F" and "Incorrect syntax" in answer.headers["Description"]
    assert with_query.headers["Result"] == "F"  # parameters belong in headers


# --- the real captures ----------------------------------------------------------------------------


def real(name: str) -> protocol.Rowset:
    return protocol.parse_rowset((BUSY / name).read_bytes())


@pytest.mark.real_fixtures
def test_the_captured_catalogue_rowsets_hold_the_real_tables_and_columns():
    tables = [row["TABLE_NAME"] for row in real("tables_rowset.xml").rows]
    assert len(tables) == 88
    assert {"Master1", "MasterAddressInfo", "Tran1", "Tran2", "DeletedInfo"} <= set(tables)
    columns = {
        table: {
            row["COLUMN_NAME"]: row["DATA_TYPE"] for row in real(f"columns_{table}_rowset.xml").rows
        }
        for table in ("master1", "tran1", "tran2")
    }
    assert [len(c) for c in columns.values()] == [156, 118, 104]
    # Every column the hub's SQL reads exists, with the type the mapping expects.
    master, tran1 = columns["master1"], columns["tran1"]
    assert master["ModificationTime"] == "datetime" and master["DeactiveMaster"] == "bit"
    assert {master[c] for c in ("Code", "ParentGrp", "Stamp")} == {"int"}
    assert tran1["VchAmtBaseCur"] == "float" and tran1["Cancelled"] == "bit"
    sale_columns = ("VchCode", "VchNo", "Date", "MasterCode1", "CurConRate", "VchCancelled")
    assert all(column in tran1 for column in (*sale_columns, "CreationTime", "EInvIRN"))


@pytest.mark.real_fixtures
def test_captured_voucher_numbers_are_padded_and_read_trimmed():
    rowset = real("vchno_sample_rowset.xml")
    raw = [row["VchNo"] for row in rowset.rows]
    trimmed = [number.strip() for number in raw]

    assert len(raw) == 300 and {len(number) for number in raw} == {25}
    assert trimmed[:4] == ["1", "1", "2", "JCT-1"] and len(set(trimmed)) == 298
    assert rowset.types == {"VchNo": "string"}


@pytest.mark.real_fixtures
def test_captured_accounts_map_to_customers_with_their_names_decoded():
    rows = real("customers_with_entities_rowset.xml").rows  # reconstructed: no schema block
    customers = [mapping.map_customer(row, "Comp0001", ZONE, "INR") for row in rows]

    assert [c.name for c in customers] == [
        "'ENAIBE L C (MRS)",
        "O'Brien Chukwu",
        "Discontinued Supplier Ltd",
    ]
    assert [c.external_id for c in customers][0] == "Comp0001:4021"
    assert [c.is_active for c in customers] == [True, True, False]  # BlockedMaster='True'


@pytest.mark.real_fixtures
def test_the_captured_item_master_reads_as_plain_data():
    tag, item = protocol.parse_document((BUSY / "item_master_xml.xml").read_bytes())

    assert tag == "Item" and item["Name"] == "Cable-infinix Micro"
    assert item["TaxCategory"] == "<<---None--->>" and item["Address"]["TmpMasterCode"] == "1613"


# --- a sale voucher in the vendor sample's shape -----------------------------------------------

VENDOR_SALE = b"""<Sale><VchSeriesName>Main</VchSeriesName><Date>01-04-2024</Date><VchType>9</VchType>
<VchNo>1</VchNo><STPTName>Local-ItemWise</STPTName><MasterName1>Customer-Amit Gupta</MasterName1>
<ItemEntries><ItemDetail><SrNo>1</SrNo><ItemName>Acer Laptop</ItemName><UnitName>Pcs.</UnitName>
<Qty>1</Qty><Price>26000</Price><Amt>30680</Amt><ItemTaxCategory>GST 18%</ItemTaxCategory>
<STAmount>4680</STAmount><STPercent>9</STPercent><STPercent1>9</STPercent1></ItemDetail>
</ItemEntries><BillSundries><BSDetail><SrNo>1</SrNo><BSName>Discount</BSName><PercentVal>2
</PercentVal><Amt>1203.6</Amt></BSDetail></BillSundries></Sale>"""


@pytest.mark.parametrize(("sale_type", "heads"), [("Local-ItemWise", ("2340.00", "2340.00", "0")), ("Central-ItemWise", ("0", "0", "4680.00"))])  # fmt: skip
def test_a_vendor_shaped_sale_maps_its_lines_taxes_and_sundries(sale_type, heads):
    tag, voucher = protocol.parse_document(
        VENDOR_SALE.replace(b"Local-ItemWise", sale_type.encode())
    )
    header = {"VchCode": "40018", "VchNo": "1", "Date": "2024-04-01T00:00:00", "MasterCode1": "4021",
              "Cancelled": "False", "CreationTime": "2024-04-01T11:00:00", "Changed": "2024-04-01T11:00:00"}  # fmt: skip

    invoice = mapping.map_invoice(
        header, voucher, company="Comp0001", year=2024, zone=ZONE, currency="INR", hsn={}
    )

    (line,) = invoice.lines
    assert tag == "Sale" and invoice.external_id == "Comp0001:2024:40018"
    assert (line.taxable_amount, line.line_total, line.tax_rate) == (26000, 30680, 18)
    assert (invoice.cgst, invoice.sgst, invoice.igst) == tuple(map(Decimal, heads))
    assert invoice.adjustment == Decimal("-1203.60")  # a discount after tax
    assert invoice.total == Decimal("29476.40") == invoice.balance_due
    assert invoice.status == "open" and invoice.customer_name == "Customer-Amit Gupta"
