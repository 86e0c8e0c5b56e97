"""Tally export files: every real file in ../shared/fixtures/real/tally (counts, parties, GSTINs,
totals and the tax split, computed again here from the raw ledger entries), synthetic files for
what they lack (UTF-8 with control bytes, broken and foreign files, record errors), and a ~20 MB
export mapped in a few MB."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from hub_pipelines.connectors.xml import objects
from hub_pipelines.tally.export_file import ExportFile, ExportFileError
from hub_pipelines.tally.mapping import plain
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.own_interpreter import traced_peak

D = Decimal
TALLY = REAL_FIXTURES / "tally"
real = pytest.mark.real_fixtures

NEW_MASTER_DEBTORS = {
    "Ethan": "33GSPTN0371G1ZD",
    "Flashter Inc.": "32AJIPD2210L1ZR",
    "Ganesh": None,
    "Gannu": None,
    "John Smith": None,
    "Kesu": None,
    "Mr. Jabu Ran": "33GSPTN0371G1ZD",
    "Mrs. Ponny": "32AAACV5492Q1ZR",
    "Ram": "33GSPTN0372G1ZD",
    "Sreeram": None,
    "VIRAT KOHLI": "32AACCJ3176B1Z3",
}


def records(pages) -> list:
    pages = list(pages)
    assert [failure.message for page in pages for failure in page.failures] == []
    return [record for page in pages for record in page.records]


def strict_vouchers() -> list[etree._Element]:
    """The Day Book's vouchers through a strict parser, without the hub's reader."""
    text = (TALLY / "DayBook.xml").read_bytes().decode("utf-16")
    root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(huge_tree=True))
    return list(root.iter("VOUCHER"))


def amounts(voucher: etree._Element, path: str) -> list[tuple[str, Decimal]]:
    return [(e.findtext("LEDGERNAME"), D(e.findtext("AMOUNT"))) for e in voucher.iterfind(path)]


# --- the real files ---------------------------------------------------------------------------


@real
def test_every_real_file_is_read():
    assert sorted(p.name for p in TALLY.glob("*.xml")) == [
        "DayBook.xml",
        "Master_from_tally.xml",
        "TKMmaster.xml",
        "new_master.xml",
    ]
    companies = {path.name: ExportFile(path).company for path in TALLY.glob("*.xml")}
    assert companies == {
        "DayBook.xml": "TKM Company",
        "TKMmaster.xml": "TKM Company",
        "new_master.xml": "TKM Company",
        "Master_from_tally.xml": "Test Company",
    }


@real
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "DayBook.xml",
            {"vouchers": {"Sales": 27, "Purchase": 72, "Credit Note": 18, "Debit Note": 5},
             "invoices": 27, "ledgers": 0, "debtor_ledgers": 0, "groups": 0},
        ),
        ("TKMmaster.xml", {"vouchers": {}, "ledgers": 12, "debtor_ledgers": 2, "groups": 28}),
        ("new_master.xml", {"vouchers": {}, "ledgers": 58, "debtor_ledgers": 11, "groups": 28}),
        ("Master_from_tally.xml", {"vouchers": {}, "ledgers": 0, "currencies": 1, "groups": 0}),
    ],
)  # fmt: skip
def test_counts(name, expected):
    counts = ExportFile(TALLY / name).counts()
    assert {key: counts[key] for key in expected} == expected
    assert counts["voucher_types"] == (24 if name in ("TKMmaster.xml", "new_master.xml") else 0)


@real
def test_masters_files_customers():
    tkm = records(ExportFile(TALLY / "TKMmaster.xml").customers())
    assert {(c.name, c.gstin, c.state_code) for c in tkm} == {
        ("John Smith", None, "32"),
        ("Kesu", None, "32"),
    }
    new = records(ExportFile(TALLY / "new_master.xml").customers(page_size=4))
    assert {c.name: c.gstin for c in new} == NEW_MASTER_DEBTORS
    assert len({c.external_id for c in new}) == 11  # repeated objects appear once
    ram = next(c for c in new if c.name == "Ram")
    assert (ram.gst_treatment, ram.state_code, ram.billing_line1) == (
        "registered_composition",
        "33",
        "Ram & Co.",
    )
    assert ExportFile(TALLY / "new_master.xml").guids("customers") == {c.external_id for c in new}
    assert records(ExportFile(TALLY / "Master_from_tally.xml").customers()) == []
    assert records(ExportFile(TALLY / "DayBook.xml").customers()) == []


@real
def test_day_book_invoices_match_the_ledger_entries():
    masters = ExportFile(TALLY / "new_master.xml").masters()
    day_book = ExportFile(TALLY / "DayBook.xml")
    invoices = {i.external_id: i for i in records(day_book.invoices(page_size=10, masters=masters))}
    sales = [v for v in strict_vouchers() if v.findtext("VOUCHERTYPENAME") == "Sales"]
    assert set(invoices) == {v.findtext("GUID") for v in sales} == day_book.guids("invoices")
    assert len(invoices) == 27
    debtors = {
        c.name: c.external_id for c in records(ExportFile(TALLY / "new_master.xml").customers())
    }
    for voucher in sales:
        mapped = invoices[voucher.findtext("GUID")]
        entries = amounts(voucher, "LEDGERENTRIES.LIST")
        party = voucher.findtext("PARTYLEDGERNAME")
        assert mapped.total == -sum(amount for name, amount in entries if name == party)
        for head in ("cgst", "sgst", "igst"):
            expected = sum((a for name, a in entries if head.upper() in name), D("0.00"))
            assert getattr(mapped, head) == expected, (mapped.invoice_number, head)
        assert (mapped.customer_name, mapped.customer_external_id) == (party, debtors[party])
        assert mapped.status == "open" and mapped.balance_due == mapped.total
        assert mapped.total == (
            mapped.taxable_amount + mapped.tax_total + mapped.round_off + mapped.adjustment
        )
        assert mapped.cgst == mapped.sgst and not (mapped.igst and mapped.cgst)
    total = sum((i.total for i in invoices.values()), D(0))
    party_lines = [
        amount
        for v in sales
        for name, amount in amounts(v, "LEDGERENTRIES.LIST")
        if name == v.findtext("PARTYLEDGERNAME")
    ]
    assert total == -sum(party_lines)


@real
def test_every_real_voucher_balances():
    for voucher in strict_vouchers():
        posted = amounts(voucher, "LEDGERENTRIES.LIST")
        posted += amounts(voucher, "INVENTORYENTRIES.LIST/ACCOUNTINGALLOCATIONS.LIST")
        assert sum(amount for _, amount in posted) == 0, voucher.findtext("GUID")


@real
def test_named_day_book_vouchers():
    by_guid = {i.external_id[-8:]: i for i in records(ExportFile(TALLY / "DayBook.xml").invoices())}
    first = by_guid["00000035"]  # No. 1, Mrs. Ponny, 2018: a discount apportioned to an item
    assert (first.invoice_number, str(first.issue_date), first.customer_name) == (
        "1",
        "2018-09-01",
        "Mrs. Ponny",
    )
    assert first.customer_external_id is None  # a Day Book alone does not know the ledgers
    assert (first.subtotal, first.discount_total) == (D("19116.00"), D("45.60"))
    # The tax was charged after the 3 % discount on the tooth paste: (1520 − 45.60) × 2.5 %
    # plus 17596 × 6 %, per head.
    expected = (D("1520.00") - D("45.60")) * D("0.025") + D("17596.00") * D("0.06")
    assert first.cgst == first.sgst == expected.quantize(D("0.01"))
    assert first.taxable_amount == D("19070.40") and first.adjustment == D("-0.20")
    assert [(line.quantity, line.unit, line.rate) for line in first.lines] == [
        (19, "Number", D("80.00")),
        (400, "Number", D("43.99")),
    ]
    service = by_guid["0000004d"]  # No. 12, Ganesh: accounting mode, three rated service lines
    taxable = [D("10000.00"), D("12000.00"), D("8200.00")]
    rates = [D(5), D(5), D(12)]
    assert [line.taxable_amount for line in service.lines] == taxable
    expected = [t * r / 100 for t, r in zip(taxable, rates, strict=True)]
    assert [line.igst for line in service.lines] == expected
    assert service.igst == D("2084.00") and service.place_of_supply == "33"
    goa = by_guid["00000042"]  # Gannu: two IGST rates; the freight is outside the tax
    assert [line.igst for line in goa.lines] == [D("14.40"), D("2311.70")]
    assert (goa.taxable_amount, goa.adjustment) == (D("46314.00"), D("2218.16"))


@real
def test_mangled_not_applicable_markers_read_as_markers():
    found: dict[str, set] = {}
    for name in ("TKMmaster.xml", "new_master.xml", "Master_from_tally.xml"):
        tags = ("TAXUNITNAME", "EXCISEUNITNAME", "SERVICECATEGORY", "GSTAPPLICABLE", "STATENAME")
        for element in objects((TALLY / name).read_bytes(), tags):
            found.setdefault(name, set()).add(plain(element.text))
        names = objects((TALLY / name).read_bytes(), ("INCOMETAXCLASSIFICATION",))
        found[name] |= {plain(e.get("NAME")) for e in names if "Not Applicable" in e.get("NAME")}
    assert found["TKMmaster.xml"] == {None}  # `; Primary`, `; Not Applicable`, `[ Not Applicable`
    # `4 Primary`, `4 Not Applicable`, `4 Applicable`, `4 Any`, and a plain `Taxable`
    assert found["new_master.xml"] == {None, "Applicable", "Any", "Taxable"}
    assert found["Master_from_tally.xml"] == {None, "Applicable", "Any"}  # genuine `&#4;`


# --- synthetic files --------------------------------------------------------------------------

ENVELOPE = (
    "<ENVELOPE><HEADER><TALLYREQUEST>Import Data</TALLYREQUEST></HEADER><BODY><IMPORTDATA>"
    "<REQUESTDESC><STATICVARIABLES><SVCURRENTCOMPANY>Acme &amp; Sons</SVCURRENTCOMPANY>"
    "</STATICVARIABLES></REQUESTDESC><REQUESTDATA>{}</REQUESTDATA></IMPORTDATA></BODY></ENVELOPE>"
)
LEDGER = (
    '<TALLYMESSAGE><LEDGER NAME="Sharma\x05 &#4;Traders"><GUID>led-1</GUID>'
    "<PARENT>Sundry Debtors</PARENT><PARTYGSTIN>27AAAPS1234C1Z5</PARTYGSTIN>"
    "<UDF:TAG>x</UDF:TAG></LEDGER></TALLYMESSAGE>"
)


def sale(guid: str, party_amount: str) -> str:
    return (
        f'<TALLYMESSAGE><VOUCHER VCHTYPE="Sales"><DATE>20250401</DATE><GUID>{guid}</GUID>'
        "<VOUCHERTYPENAME>Sales</VOUCHERTYPENAME><PARTYLEDGERNAME>Sharma Traders</PARTYLEDGERNAME>"
        f"<VOUCHERNUMBER>{guid}</VOUCHERNUMBER><LEDGERENTRIES.LIST><LEDGERNAME>Sharma Traders"
        f"</LEDGERNAME><ISPARTYLEDGER>Yes</ISPARTYLEDGER><AMOUNT>{party_amount}</AMOUNT>"
        "</LEDGERENTRIES.LIST><LEDGERENTRIES.LIST><LEDGERNAME>Sales</LEDGERNAME>"
        "<GSTOVRDNNATURE>Sales Taxable</GSTOVRDNNATURE><AMOUNT>100.00</AMOUNT>"
        "</LEDGERENTRIES.LIST></VOUCHER></TALLYMESSAGE>"
    )


def write(tmp_path: Path, body: str, name: str = "export.xml", encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode(encoding))
    return path


def test_a_utf8_export_with_control_bytes_and_undeclared_prefixes(tmp_path):
    body = ENVELOPE.format(LEDGER + sale("v-1", "-100.00") + sale("v-1", "-100.00"))
    for encoding in ("utf-8", "utf-16"):  # Python's utf-16 writes a BOM, as Tally does
        export = ExportFile(write(tmp_path, body, encoding=encoding))
        assert export.company == "Acme & Sons"
        (party,) = records(export.customers())
        assert (party.name, party.gstin, party.raw["UDF:TAG"]) == (
            "Sharma Traders",
            "27AAAPS1234C1Z5",
            "x",
        )
        (invoice,) = records(export.invoices())  # the repeated voucher appears once
        assert (invoice.total, invoice.customer_external_id) == (D("100.00"), "led-1")


def test_a_voucher_that_cannot_be_mapped_is_a_record_error_with_its_raw(tmp_path):
    body = ENVELOPE.format(LEDGER + sale("good", "-100.00") + sale("bad", "-99.00"))
    pages = list(ExportFile(write(tmp_path, body)).invoices())
    assert [record.external_id for page in pages for record in page.records] == ["good"]
    (failure,) = [failure for page in pages for failure in page.failures]
    assert (failure.entity_id, failure.category) == ("bad", "MAPPING")
    assert "voucher does not balance" in failure.message and "1.00 off zero" in failure.message
    assert failure.raw["GUID"] == "bad" and failure.raw["@VCHTYPE"] == "Sales"
    assert ExportFile(write(tmp_path, body)).guids("invoices") == {"good", "bad"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<LEDGER NAME='x'/>", "not a Tally export (its root element is <LEDGER>"),
        ("Date,Voucher,Amount\n2025-04-01,1,100\n", "not readable as XML"),
        (ENVELOPE.format(LEDGER)[:-40], "not readable as XML"),
    ],
    ids=["no-envelope", "csv", "truncated"],
)
def test_what_is_not_a_tally_export_says_how_to_make_one(tmp_path, body, problem):
    export = ExportFile(write(tmp_path, body, name="upload.xml"))
    with pytest.raises(ExportFileError, match="upload.xml") as raised:
        list(export.customers())
    assert problem in str(raised.value)
    assert "Gateway > Display > Day Book > Alt+E > XML" in str(raised.value)
    assert isinstance(raised.value, ValueError)


MAPPING = "from hub_pipelines.tally.export_file import ExportFile"
MAP_EXPORT = """
result.update(mapped=0, failures=0)
for page in ExportFile(sys.argv[1]).invoices(page_size=25):
    result["mapped"] += len(page.records)
    result["failures"] += len(page.failures)
"""


@real
def test_a_20_mb_export_maps_in_a_few_mb(tmp_path):
    """The Day Book's first sale repeated with fresh GUIDs, in Tally's UTF-16."""
    text = (TALLY / "DayBook.xml").read_bytes().decode("utf-16")
    start = text.index("<TALLYMESSAGE")
    end = text.index("</TALLYMESSAGE>", start) + len("</TALLYMESSAGE>")
    guid = text[start:end].split("<GUID>", 1)[1].split("</GUID>", 1)[0]
    path = tmp_path / "big.xml"
    with path.open("wb") as file:
        file.write(("\ufeff" + text[:start]).encode("utf-16-le"))
        copies = 0
        while file.tell() < 20_000_000:
            file.write(text[start:end].replace(guid, f"copy-{copies:08d}").encode("utf-16-le"))
            copies += 1
        file.write(text[text.rindex("</REQUESTDATA>") :].encode("utf-16-le"))
    del text
    measured = traced_peak(MAPPING, MAP_EXPORT, str(path))
    assert measured["mapped"] == copies > 300 and measured["failures"] == 0
    peak = measured["peak"]
    assert peak < 3_000_000, f"peak {peak:,} B for a {path.stat().st_size:,} B file"
