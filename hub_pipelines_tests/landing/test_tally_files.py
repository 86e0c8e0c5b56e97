"""Every real Tally export in ../shared/fixtures/real/tally imports through the file drop (sensor →
run → warehouse) with the right counts, parties, GSTINs, totals and tax split; the expected
figures are read here from the files' own ledger entries, independently of the mapping."""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.landing.test_landing import TENANT, landing  # noqa: F401 - fixture

pytestmark = pytest.mark.real_fixtures
TALLY = REAL_FIXTURES / "tally"
DEBTORS_OF_NEW_MASTER = {
    "Ethan": "33GSPTN0371G1ZD",
    "Mr. Jabu Ran": "33GSPTN0371G1ZD",
    "Mrs. Ponny": "32AAACV5492Q1ZR",
    "VIRAT KOHLI": "32AACCJ3176B1Z3",
    "Ram": "33GSPTN0372G1ZD",
}


def expected_sales(path: Path) -> dict[str, dict[str, Decimal]]:
    """Per sales voucher GUID: its total (minus the party lines) and its Output CGST/SGST/IGST
    lines, straight from the file (stdlib-free of the hub's reader: lxml in recover mode)."""
    root = etree.fromstring(path.read_bytes(), etree.XMLParser(recover=True, huge_tree=True))
    sales = {}
    for voucher in root.iter("VOUCHER"):
        if voucher.get("VCHTYPE") != "Sales" or voucher.findtext("ISOPTIONAL") == "Yes":
            continue
        figures: dict[str, Decimal] = defaultdict(Decimal)
        for entry in voucher.iter("LEDGERENTRIES.LIST"):
            amount = Decimal(entry.findtext("AMOUNT").strip())
            name = entry.findtext("LEDGERNAME")
            if entry.findtext("ISPARTYLEDGER") == "Yes":
                figures["total"] -= amount
            elif name.startswith("Output "):
                figures[name.removeprefix("Output ").lower()] += amount
        sales[voucher.findtext("GUID")] = figures
    return sales


def drop(landing, name: str, tenant: str = TENANT) -> None:  # noqa: F811
    folder = landing.root / "tally" / tenant
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TALLY / name, folder / name)
    old = time.time() - 60
    os.utime(folder / name, (old, old))


def import_landed(landing) -> list:  # noqa: F811
    """Tick, run what it asks (oldest file first), tick again to file the outcome."""
    results = [landing.run(request) for request in landing.tick()]
    landing.tick()
    return results


def test_the_masters_then_the_day_book_of_one_company_import_in_full(landing):  # noqa: F811
    landing.register(company="TKM Company")
    for name in ("TKMmaster.xml", "new_master.xml"):
        drop(landing, name)
        assert all(result.success for result in import_landed(landing))
    drop(landing, "DayBook.xml")
    assert all(result.success for result in import_landed(landing))

    assert landing.files("processed") == ["DayBook.xml", "TKMmaster.xml", "new_master.xml"]
    customers = dict(
        landing.query(
            "SELECT name, gstin FROM accounting.customers WHERE tenant_id = %s", (TENANT,)
        )
    )
    assert len(customers) == 11 and {"John Smith", "Kesu"} <= set(customers)
    assert {name: customers[name] for name in DEBTORS_OF_NEW_MASTER} == DEBTORS_OF_NEW_MASTER

    want = expected_sales(TALLY / "DayBook.xml")
    held = {
        guid: {"total": total, "cgst": cgst, "sgst": sgst, "igst": igst}
        for guid, total, cgst, sgst, igst in landing.query(
            "SELECT external_id, total, cgst, sgst, igst FROM accounting.invoices "
            "WHERE tenant_id = %s",
            (TENANT,),
        )
    }
    assert len(held) == len(want) == 27
    for guid, figures in want.items():
        assert held[guid] == {k: figures[k] for k in ("total", "cgst", "sgst", "igst")}, guid
    unlinked = landing.query(  # the Day Book has no masters: the warehouse's parties link them
        "SELECT count(*) FROM accounting.invoices i WHERE tenant_id = %s AND NOT EXISTS (SELECT 1 "
        "FROM accounting.customers c WHERE c.tenant_id = i.tenant_id AND c.system = i.system "
        "AND c.external_id = i.customer_external_id AND c.name = i.customer_name)",
        (TENANT,),
    )
    assert unlinked == [(0,)]
    errors = landing.query("SELECT count(*) FROM hub.accounting_sync_errors")
    assert errors == [(0,)]  # every voucher balanced and mapped


def test_another_companys_file_fails_and_a_file_drop_tenant_without_company_takes_it(landing):  # noqa: F811
    landing.register(company="TKM Company")
    drop(landing, "Master_from_tally.xml")  # "Test Company": no ledgers, units and stock items

    (result,) = import_landed(landing)

    assert not result.success
    assert landing.files("failed") == ["Master_from_tally.xml"]
    landing.register()  # the same tenant, now accepting any company's file
    drop(landing, "Master_from_tally.xml")
    (result,) = import_landed(landing)  # the same content failed before: a new attempt

    assert result.success
    assert landing.query("SELECT status, attempts FROM hub.landed_files") == [("processed", 2)]
