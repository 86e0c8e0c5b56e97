"""The wire: inline TDL generated from the field declarations, XML escaping, UTF-16 both ways,
LINEERROR and an unknown company as CONFIG errors, cursors, and batches sized from per-day
counts."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from lxml import etree

from hub_pipelines.connectors.errors import Category
from hub_pipelines.tally import protocol
from hub_pipelines.tally.protocol import Batch, Cursor, batches

APRIL = (date(2025, 4, 1), date(2025, 4, 30))


def test_the_tdl_is_generated_from_the_declaration():
    filters = (protocol.changed(21000), protocol.dated(*APRIL), protocol.NOT_OPTIONAL)
    root = etree.fromstring(protocol.request(protocol.SALES, "Acme", filters, APRIL))

    header = {child.tag: child.text for child in root.find("HEADER")}
    assert header == {"VERSION": "1", "TALLYREQUEST": "Export", "TYPE": "Collection",
                      "ID": "HubSales"}  # fmt: skip
    static = {child.tag: child.text for child in root.find("BODY/DESC/STATICVARIABLES")}
    assert static == {"SVEXPORTFORMAT": "$$SysName:XML", "SVCURRENTCOMPANY": "Acme",
                      "SVFROMDATE": "1-Apr-2025", "SVTODATE": "30-Apr-2025"}  # fmt: skip
    message = root.find("BODY/DESC/TDL/TDLMESSAGE")
    (collection,) = message.findall("COLLECTION")
    assert collection.get("NAME") == "HubSales"
    assert collection.findtext("TYPE") == "Voucher"
    assert collection.findtext("FETCH").split(",") == list(protocol.SALES.fetch)
    assert collection.findtext("FILTER") == "HubChanged,HubPeriod,HubNotOptional"
    formulas = {s.get("NAME"): s.text for s in message.iterfind("SYSTEM[@TYPE='Formulae']")}
    assert formulas == {
        "HubChanged": "$AlterID > 21000",
        "HubPeriod": '$Date >= $$Date:"20250401" AND $Date <= $$Date:"20250430"',
        "HubNotOptional": "NOT $IsOptional",
    }


def test_every_field_the_hub_reads_is_declared_once_per_collection():
    for collection in (protocol.COMPANY, protocol.GROUPS, protocol.VOUCHER_TYPES,
                       protocol.CURRENCIES, protocol.LEDGER_LIST, protocol.CUSTOMERS,
                       protocol.SALES_LIST, protocol.SALES):  # fmt: skip
        assert len(set(collection.fetch)) == len(collection.fetch), collection.name
    assert set(protocol.LEDGER_LIST.fetch) <= set(protocol.CUSTOMERS.fetch)
    assert set(protocol.SALES_LIST.fetch) <= set(protocol.SALES.fetch)
    assert protocol.COMPANY.fetch == ("Name", "Guid", "BooksFrom", "AltMstId", "AltVchId")


def test_company_names_and_filters_are_xml_escaped():
    company = "Sharma & Sons <Export> (P) Ltd"
    types = protocol.of_types(["Sales", "B2B <Sale>"])
    text = protocol.request(protocol.SALES_LIST, company, (protocol.changed(5, 9), types))

    assert "<SVCURRENTCOMPANY>Sharma &amp; Sons &lt;Export&gt; (P) Ltd</SVCURRENTCOMPANY>" in text
    assert "$AlterID &gt; 5 AND $AlterID &lt;= 9" in text
    root = etree.fromstring(text)
    assert root.findtext("BODY/DESC/STATICVARIABLES/SVCURRENTCOMPANY") == company
    formula = root.find("BODY/DESC/TDL/TDLMESSAGE/SYSTEM[@NAME='HubTypes']").text
    assert formula == '$VoucherTypeName = "B2B <Sale>" OR $VoucherTypeName = "Sales"'
    assert protocol.of_types(['Say "hi"']) is None  # TDL strings cannot hold a quote


def test_requests_travel_as_utf16_le_and_answers_are_read_by_bom_or_charset():
    body = protocol.encode(protocol.request(protocol.COMPANY, "₹ Traders"))
    assert body[:2] == "<".encode("utf-16-le")  # no BOM, as Tally's own clients send
    assert "₹ Traders" in body.decode("utf-16-le")
    assert protocol.HEADERS == {"Content-Type": "text/xml;charset=utf-16"}

    answer = "<ENVELOPE>₹</ENVELOPE>"
    little, big = answer.encode("utf-16-le"), answer.encode("utf-16-be")
    assert protocol.answer_bytes(little, "text/xml; charset=utf-16") == b"\xff\xfe" + little
    assert protocol.answer_bytes(big, "text/xml;charset=UTF-16") == b"\xfe\xff" + big
    assert protocol.answer_bytes(b"\xff\xfe" + little, "") == b"\xff\xfe" + little
    assert protocol.answer_bytes(answer.encode(), "text/xml") == answer.encode()


def tally_answer(inner: str) -> httpx.Response:
    body = "\ufeff<ENVELOPE><BODY>" + inner + "</BODY></ENVELOPE>"
    headers = {"content-type": "text/xml; charset=utf-16"}
    return httpx.Response(200, content=body.encode("utf-16-le"), headers=headers)


def test_a_company_tally_cannot_select_is_a_config_error_naming_it():
    said = "<LINEERROR>Could not set 'SVCurrentCompany' to 'Sharma &amp; Sons'</LINEERROR>"

    failure = protocol.response_check(tally_answer(said))

    assert failure.category is Category.CONFIG and not failure.should_retry
    assert "'Sharma & Sons'" in failure.message
    assert failure.suggested_fix == protocol.COMPANY_FIX
    empty = protocol.company_not_found("Sharma & Sons")
    assert empty.category is Category.CONFIG and "'Sharma & Sons'" in empty.message
    assert "nothing was read or deleted" in empty.message


def test_any_other_line_error_is_an_error_with_tallys_text():
    said = "<LINEERROR>Error in TDL: 'Collection: HubSales' Could not find method</LINEERROR>"

    failure = protocol.response_check(tally_answer(said))

    assert failure.category is Category.CONFIG and not failure.should_retry
    assert failure.message == "Tally: Error in TDL: 'Collection: HubSales' Could not find method"
    assert protocol.response_check(tally_answer("<DATA><COLLECTION/></DATA>")) is None


def test_the_cursor_is_the_company_and_its_counter():
    cursor = Cursor("guid-1", 70)

    assert Cursor.parse(cursor.text()) == cursor
    assert Cursor.parse(None) is None and Cursor.parse("2026-01-01T00:00:00+00:00") is None
    assert cursor.resumed_by(Cursor("guid-1", 90))
    assert not cursor.resumed_by(Cursor("guid-1", 69))  # a restored backup
    assert not cursor.resumed_by(Cursor("guid-2", 90))  # a new company


def test_batches_group_days_up_to_the_cap_and_split_a_day_over_it():
    per_day = {date(2025, 4, 1): 3, date(2025, 4, 2): 2, date(2025, 4, 3): 4, date(2025, 4, 5): 11}
    changes, alter_id = [], 100
    for day, count in per_day.items():
        for _ in range(count):
            alter_id += 1
            changes.append((day, alter_id))

    found = batches(changes, 100, cap=5)

    def size(batch: Batch) -> int:
        return sum(
            1
            for day, number in changes
            if batch.first <= day <= batch.last
            and number > batch.after
            and (batch.upto is None or number <= batch.upto)
        )

    assert [(b.first.day, b.last.day) for b in found] == [(1, 2), (3, 3), (5, 5), (5, 5), (5, 5)]
    assert [size(b) for b in found] == [5, 4, 5, 5, 1]
    assert sum(size(b) for b in found) == len(changes)  # every change in exactly one batch
    assert [b.upto for b in found if b.first.day == 5] == [114, 119, None]
    assert batches([], 100, cap=5) == []
    undated = batches([(None, n) for n in range(1, 8)], 0, cap=3)
    assert [(b.after, b.upto, b.period) for b in undated] == [(0, 3, None), (3, 6, None),
                                                                (6, None, None)]  # fmt: skip


@pytest.mark.parametrize("value", ["", " ", "abc"])
def test_numbers_that_are_not_numbers_read_as_zero(value):
    assert protocol.number(value) == 0
    assert protocol.number(" 22062") == 22062
