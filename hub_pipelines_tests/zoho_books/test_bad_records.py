"""A bad source record is a record error, never a stopped tenant (issue 7, points 1–3).

Each case breaks one invoice of 40 in the simulator the way a real organisation's data or a
faulty answer can, then imports through Dagster: the other 39 load, the run ends `partial`, and
the bad record waits in the errors table with the raw payload PostgreSQL can store. Adding a case
is one line in a table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from hub_pipelines.canonical import Customer, storable_json, storage_problem
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines.zoho_books.simulator import IST
from hub_pipelines_tests.zoho_books.conftest import checks, customers, invoices, metadata

INVOICES = 40

# (changes to one invoice's Zoho detail, fragment of its record error) — refused records
REFUSED = [
    pytest.param(
        {"customer_name": "Acme\x00 Traders"}, "customer_name holds a character", id="nul"
    ),
    pytest.param({"notes": "see\x00attached"}, "raw.notes holds a character", id="nul-in-raw"),
    pytest.param({"total": 1e30}, "total: out of range", id="total-1e30"),
    pytest.param({"total": 1e17}, "total = 1.000000E+17 is beyond", id="total-beyond-numeric"),
    pytest.param({"total": "12,OO0.50"}, "total: not a number", id="non-numeric-total"),
    pytest.param({"customer_id": None}, "customer_id: expected", id="null-customer"),
    pytest.param({"line_items": None}, "line_items: expected at least one", id="null-lines"),
    pytest.param({"line_items": []}, "line_items: expected at least one", id="empty-lines"),
    pytest.param({"currency_code": 356}, "ISO 4217", id="numeric-currency"),
    pytest.param({"place_of_supply": "ZZ"}, "place_of_supply: 'ZZ'", id="unknown-place"),
]
# (changes, the check that flags the loaded row) — loaded, and named by a check
FLAGGED = [
    pytest.param({"invoice_number": None}, "invoice_numbers_present", id="null-number"),
    pytest.param({"invoice_number": ""}, "invoice_numbers_present", id="empty-number"),
    pytest.param(
        {"total": -100.0, "sub_total": -100.0, "tax_total": 0, "taxes": []},
        "invoice_amounts_not_negative",
        id="negative-total",
    ),
]


def _seeded(zoho) -> str:
    """A tenant with 40 imported invoices; returns the id of the one the case will break."""
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=INVOICES)
    assert zoho.materialize(customers, invoices).success
    return sorted(zoho.simulator.invoice_ids(zoho.org_id))[7]


def _open_errors(zoho, entity_id: str) -> list[tuple]:
    return zoho.query(
        "SELECT error_message, raw_payload FROM hub.accounting_sync_errors "
        "WHERE scope = 'record' AND entity_id = %s AND NOT resolved",
        (entity_id,),
    )


def _last_status(zoho) -> str:
    return zoho.scalar(
        "SELECT status FROM hub.accounting_sync_logs WHERE entity_type = 'invoices' "
        "ORDER BY id DESC LIMIT 1"
    )


@pytest.mark.parametrize(("changes", "message"), REFUSED)
def test_a_bad_record_is_a_record_error_and_the_rest_load(zoho, changes, message):
    bad = _seeded(zoho)
    good = sorted(zoho.simulator.invoice_ids(zoho.org_id))[8]
    zoho.simulator.edit_invoice(zoho.org_id, bad, **changes)
    zoho.simulator.edit_invoice(zoho.org_id, good, reference_number="PO-77")
    for _ in range(2):  # the next incremental run meets it again: still partial, one error row
        result = zoho.materialize(invoices)
        assert result.success
        assert _last_status(zoho) == "partial"
        ((error, raw),) = _open_errors(zoho, bad)
        assert message in error
    assert metadata(result, "invoices")["records_failed"] == 1
    assert (
        zoho.scalar(
            "SELECT raw->>'reference_number' FROM accounting.invoices WHERE external_id = %s",
            (good,),
        )
        == "PO-77"
    )
    assert raw["invoice_id"] == bad and "\x00" not in str(raw)


def test_nul_characters_are_replaced_in_the_stored_raw_payload(zoho):
    bad = _seeded(zoho)
    zoho.simulator.edit_invoice(zoho.org_id, bad, customer_name="Acme\x00 Traders")
    assert zoho.materialize(invoices).success
    ((_, raw),) = _open_errors(zoho, bad)
    assert raw["customer_name"] == "Acme\ufffd Traders"


@pytest.mark.parametrize(("changes", "check"), FLAGGED)
def test_a_questionable_record_loads_and_its_check_names_it(zoho, changes, check):
    bad = _seeded(zoho)
    zoho.simulator.edit_invoice(zoho.org_id, bad, **changes)
    result = zoho.materialize(invoices)
    assert result.success and _last_status(zoho) == "success"
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices WHERE external_id = %s", (bad,))
    evaluation = checks(result)[f"invoices.{check}"]
    assert not evaluation.passed
    assert evaluation.metadata["failing_rows"].value == 1


def test_a_permanently_truncated_detail_is_a_record_error(zoho):
    bad = _seeded(zoho)
    zoho.simulator.edit_invoice(zoho.org_id, bad, reference_number="changed")
    zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{bad}", truncated=True)
    result = zoho.materialize(invoices)
    assert result.success and _last_status(zoho) == "partial"
    ((error, raw),) = _open_errors(zoho, bad)
    assert "not JSON" in error and raw["invoice_id"] == bad  # the list row: all there was
    zoho.simulator.faults.clear()  # the source heals: the held-back cursor reads it again
    assert zoho.materialize(invoices).success and _last_status(zoho) == "success"
    assert (
        zoho.scalar(
            "SELECT raw->>'reference_number' FROM accounting.invoices WHERE external_id = %s",
            (bad,),
        )
        == "changed"
    )


def test_a_source_failing_every_detail_fails_the_run_instead(zoho):
    _seeded(zoho)
    for invoice_id in zoho.simulator.invoice_ids(zoho.org_id)[:10]:
        zoho.simulator.edit_invoice(zoho.org_id, invoice_id, reference_number="changed")
        zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{invoice_id}", truncated=True)
    result = zoho.materialize(invoices)
    assert not result.success and _last_status(zoho) == "failed"


def test_a_list_row_without_id_holds_the_cursor_until_it_is_read(zoho):
    now = datetime.now(IST)
    zoho.simulator.clock = lambda: now - timedelta(hours=2)
    _seeded(zoho)
    ids = zoho.simulator.invoice_ids(zoho.org_id)
    zoho.simulator.clock = lambda: now - timedelta(minutes=20)  # well before the newest edit
    for invoice_id in ids:
        zoho.simulator.edit_invoice(zoho.org_id, invoice_id, reference_number="v2")
    # One record (the newest created, on the last page) is edited later, so a cursor that ignores
    # the failed row would pass every other edit by more than the walk's overlap.
    first = max(ids, key=lambda i: (zoho.simulator.get_invoice(zoho.org_id, i)["created_time"], i))
    zoho.simulator.clock = lambda: now - timedelta(minutes=1)
    zoho.simulator.edit_invoice(zoho.org_id, first, reference_number="v2")
    # Page 2 of the next listing loses one row's invoice_id, once: a row past the first, which
    # the window shares with page 1 (a shared row is recognised and read again instead).
    zoho.simulator.faults.malformed_page(
        "/books/v3/invoices", page_number=2, record_index=3, times=1
    )
    small_pages = ZohoBooksResource(page_size=10)
    assert zoho.materialize(invoices, zoho_books=small_pages).success
    assert _last_status(zoho) == "partial"
    # The fault cleared: the next incremental run reads the row it could not identify.
    assert zoho.materialize(invoices, zoho_books=small_pages).success
    assert zoho.scalar(
        "SELECT count(*) FROM accounting.invoices WHERE raw->>'reference_number' = 'v2'"
    ) == len(ids)


def test_a_non_numeric_total_in_a_list_row_does_not_stop_the_listing(zoho):
    bad = _seeded(zoho)
    zoho.simulator.edit_invoice(zoho.org_id, bad, total="N/A")
    result = zoho.materialize(invoices)
    assert result.success  # the listing pass for reconciliation counted it with no total
    evaluation = checks(result)["invoices.matches_source"]
    assert evaluation.metadata["source_count"].value == INVOICES


# --- the storage check itself (pure) ---------------------------------------------------------


def _customer(**fields) -> Customer:
    return Customer(external_id="c1", name="Acme", raw={"contact_id": "c1"}, **fields)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (_customer(email="a\x00@b.in"), "email holds a character"),
        (_customer(billing_city="Pune\ud800"), "billing_city holds a character"),
        (Customer("c1", "Acme", {"x": ["ok", {"y\x00": 1}]}), "raw.x[1].y\x00 holds"),
        (_customer(outstanding_balance=Decimal("1E+16")), "outstanding_balance = 1.000000E+16"),
        (_customer(currency="inr"), "ISO 4217"),
        (_customer(outstanding_balance=Decimal("9999999999999999.99"), currency="INR"), None),
    ],
)
def test_storage_problem_names_the_field(record, problem):
    found = storage_problem(record)
    assert (found is None) if problem is None else (problem in found)


def test_storable_json_keeps_everything_but_the_unstorable_characters():
    raw = {"name": "A\x00B\ud800C", "lines": [{"k\x00": 1.5}], "n": None}
    assert storable_json(raw) == {"name": "A\ufffdB\ufffdC", "lines": [{"k\ufffd": 1.5}], "n": None}
