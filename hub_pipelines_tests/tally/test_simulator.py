"""The simulator as a Tally: UTF-16 and UTF-8 over `POST /`, one request at a time, the inline
TDL it interprets, Tally's own quirks in what it renders, AlterIDs that move only on a change,
and replayed real exports. Over real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from datetime import date

import httpx
import pytest
from lxml import etree

from hub_pipelines.connectors import xml
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.simulation.replay import ReplayError, files_in
from hub_pipelines.tally import protocol
from hub_pipelines.tally.simulator import replay, simulate
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import small_books

EVER = (date(2000, 4, 1), protocol.FAR_FUTURE)
RICH = 5  # a seed whose small books hold overseas buyers, drafts and voids


@pytest.fixture
def served():
    simulated = simulate(small_books(seed=RICH))
    with LoopbackServer(simulated.app) as server:
        yield simulated, server


def ask(simulated, server, collection, *filters, company="", utf16=True, period=EVER):
    company = company or simulated.connection_config("")["company_name"]
    text = protocol.request(collection, company, filters, period)
    body = protocol.encode(text) if utf16 else text.encode()
    headers = protocol.HEADERS if utf16 else {"Content-Type": "text/xml;charset=utf-8"}
    return httpx.post(server.url + "/", content=body, headers=headers, timeout=30)


def objects(response, tag: str) -> list[dict]:
    answer = protocol.answer_bytes(response.content, response.headers["content-type"])
    return [xml.as_dict(element) for element in xml.objects(answer, {tag})]


def counters(simulated, server) -> protocol.Counters:
    answer = ask(simulated, server, protocol.COMPANY, protocol.IS_CURRENT)
    raw = protocol.answer_bytes(answer.content, answer.headers["content-type"])
    return protocol.Counters.of(next(xml.objects(raw, {"COMPANY"})))


def test_utf16_in_and_out_and_utf8_in_utf8_out(served):
    simulated, server = served
    wide = ask(simulated, server, protocol.GROUPS)
    narrow = ask(simulated, server, protocol.GROUPS, utf16=False)

    assert wide.content[:2] == b"\xff\xfe" and "charset=utf-16" in wide.headers["content-type"]
    assert narrow.content.startswith(b"<ENVELOPE>")
    assert "charset=utf-8" in narrow.headers["content-type"]
    assert objects(wide, "GROUP") == objects(narrow, "GROUP") != []


def test_a_second_request_waits_for_the_first(served):
    simulated, server = served
    simulated.faults.latency = 0.3
    answers: list[int] = []

    def call() -> None:
        answers.append(ask(simulated, server, protocol.COMPANY).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200, 200]  # neither refused: the second waited
    assert time.monotonic() - started >= 0.6


def test_what_the_simulator_cannot_interpret_is_an_error_in_tdl(served):
    simulated, server = served
    unknown_type = protocol.Collection("HubStock", "StockBatch", "STOCKBATCH", ("Name",))
    bad_formula = protocol.Formula("HubOdd", "$$NumItems:AllLedgerEntries > 2")
    undefined = protocol.request(protocol.COMPANY, None).replace("<ID>HubCompany", "<ID>Other")

    for answer in (
        ask(simulated, server, unknown_type),
        ask(simulated, server, protocol.SALES_LIST, bad_formula),
        httpx.post(server.url + "/", content=undefined.encode(), timeout=30),
    ):
        error = protocol.line_error(
            protocol.answer_bytes(answer.content, answer.headers["content-type"])
        )
        assert error is not None and error.startswith("Error in TDL"), error


def test_a_company_not_loaded_answers_line_error_or_an_empty_collection(served):
    simulated, server = served
    other = ask(simulated, server, protocol.COMPANY, company="Other & Co")
    assert protocol.line_error(other.content) == "Could not set 'SVCurrentCompany' to 'Other & Co'"

    simulated.simulator.close_company()
    closed = ask(simulated, server, protocol.GROUPS)
    assert protocol.line_error(closed.content).startswith("Could not set 'SVCurrentCompany'")
    simulated.simulator.close_company(False)

    with simulated.answer_empty():
        assert objects(ask(simulated, server, protocol.COMPANY), "COMPANY") == []
    assert len(objects(ask(simulated, server, protocol.COMPANY), "COMPANY")) == 1


def test_the_books_carry_tallys_quirks(served):
    simulated, server = served
    raw = ask(simulated, server, protocol.SALES, protocol.changed(0)).content.decode("utf-16")
    ledgers = ask(simulated, server, protocol.CUSTOMERS).content.decode("utf-16")

    with pytest.raises(etree.XMLSyntaxError):  # a strict parser refuses real Tally output
        etree.fromstring(ledgers.encode())
    assert "\x05" in ledgers  # a raw control byte in a name
    assert "<LEDGSTREGDETAILS.LIST>" in ledgers and "<LEDSTATENAME>" in ledgers  # Prime, ERP 9
    assert "<UDF:PKT" in raw and "<ALTERID> " in raw and " @ ₹ " in raw  # UDF, numbers, forex
    assert "<PLACEOFSUPPLY>&#4; Not Applicable</PLACEOFSUPPLY>" in raw  # exports
    assert "<PARENT>&#4; Primary</PARENT>" in ask(
        simulated, server, protocol.GROUPS
    ).content.decode("utf-16")
    assert "<GSTRATEDUTYHEAD>Central Tax</GSTRATEDUTYHEAD>" in raw  # older spelling too
    types = {
        t["@NAME"]: t
        for t in objects(ask(simulated, server, protocol.VOUCHER_TYPES), "VOUCHERTYPE")
    }
    assert types["GST Sale Invoice"]["@RESERVEDNAME"] == "Sales"
    assert types["Export Invoice"]["PARENT"] == "GST Sale Invoice"
    groups = {g["@NAME"]: g for g in objects(ask(simulated, server, protocol.GROUPS), "GROUP")}
    assert groups["Trade Receivables"]["@RESERVEDNAME"] == "Sundry Debtors"
    assert groups["Walk-in Retail"]["PARENT"] == "Retail Debtors"


def test_filters_select_by_alter_id_date_type_and_optional(served):
    simulated, server = served
    books = simulated.books
    sales = protocol.of_types(["GST Sale Invoice", "Export Invoice"])

    listed = objects(ask(simulated, server, protocol.SALES_LIST, protocol.NOT_OPTIONAL, sales),
                     "VOUCHER")  # fmt: skip
    assert len(listed) == len(books.live_sales(drafts=False))  # no receipts, no drafts
    first = min(sale.issue_date for sale in books.sales.values())
    one_day = (protocol.dated(first, first), sales)
    dated = objects(ask(simulated, server, protocol.SALES_LIST, *one_day), "VOUCHER")
    assert {v["DATE"] for v in dated} == {f"{first:%Y%m%d}"}
    newest = max(int(v["ALTERID"]) for v in listed)
    assert objects(ask(simulated, server, protocol.SALES_LIST, protocol.changed(newest)),
                   "VOUCHER") == []  # fmt: skip


def test_alter_ids_move_only_when_an_object_changes(served):
    simulated, server = served
    books = simulated.books
    issued = [s for s in books.live_sales(drafts=False) if s.status == "issued" and not s.paid]
    before = counters(simulated, server)

    books.archive_party(issued[0].party_key)  # Tally has no inactive flag: nothing changes
    assert counters(simulated, server) == before
    books.edit_sale(issued[0].key)
    edited = counters(simulated, server)
    assert (edited.masters, edited.vouchers) == (before.masters, before.vouchers + 1)
    (voucher,) = objects(ask(simulated, server, protocol.SALES, protocol.changed(before.vouchers)),
                         "VOUCHER")  # fmt: skip
    assert voucher["VOUCHERNUMBER"] == issued[0].number
    books.pay(issued[1].key, 50)  # a Receipt voucher; the sale itself stays as it was
    changed = objects(ask(simulated, server, protocol.SALES, protocol.changed(edited.vouchers)),
                      "VOUCHER")  # fmt: skip
    assert [v["VOUCHERTYPENAME"] for v in changed] == ["Receipt"]
    books.delete_sale(issued[2].key)  # gone, and the counter moves (unverified in Tally)
    listed = objects(ask(simulated, server, protocol.SALES_LIST), "VOUCHER")
    assert issued[2].number not in {v.get("VOUCHERNUMBER") for v in listed}
    assert counters(simulated, server).vouchers == edited.vouchers + 2


def test_masters_and_vouchers_number_apart_so_they_share_guids(served):
    simulated, server = served
    ledgers = {v["GUID"] for v in objects(ask(simulated, server, protocol.LEDGER_LIST), "LEDGER")}
    vouchers = {v["GUID"] for v in objects(ask(simulated, server, protocol.SALES_LIST), "VOUCHER")}
    assert ledgers & vouchers


@pytest.mark.real_fixtures
def test_real_exports_replay_as_a_tally_company():
    simulated = replay(files_in(REAL_FIXTURES / "tally"))
    with LoopbackServer(simulated.app) as server:
        company = counters(simulated, server)
        sales = objects(ask(simulated, server, protocol.SALES_LIST,
                            protocol.of_types(["Sales"])), "VOUCHER")  # fmt: skip

    assert company.name == "TKM Company" and company.guid == "103445e6-438b-4a19-9e77-1683ce655663"
    assert company.vouchers > 0 and company.masters > 0
    assert len(sales) == 27  # the Day Book's Sales vouchers


def test_a_file_without_tally_objects_is_refused(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<ENVELOPE><BODY><DATA/></BODY></ENVELOPE>")
    with pytest.raises(ReplayError, match="no Tally masters or vouchers"):
        replay([path])
