"""Every Zoho mapping decision checked against real published payloads (shared/fixtures/real)."""

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hub_pipelines import gst
from hub_pipelines.zoho_books.connector import (
    INVOICE_STATUSES,
    _page_context,
    map_contact,
    map_invoice,
)
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.zoho_books.conftest import TENANT, checks

ZOHO = REAL_FIXTURES / "zoho_books"


def recorded(name: str) -> list:
    """The response bodies of a nango recording (`api.get.<path>.response`, one or a list)."""
    api = json.loads((ZOHO / name).read_text())["api"]["get"]
    bodies = []
    for recording in api.values():
        for item in recording if isinstance(recording, list) else [recording]:
            bodies.append(item.get("response", item))
    return bodies


def example(name: str) -> dict:
    return json.loads((ZOHO / name).read_text())


@pytest.mark.real_fixtures
def test_recorded_paid_usd_invoice_maps_exactly():
    (body,) = recorded("nango_get-invoice.test.json")
    invoice = map_invoice(body["invoice"], heads={})
    assert invoice.external_id == "260815000000103001"
    assert invoice.invoice_number == "INV-000001"
    assert invoice.status == "paid"
    assert invoice.customer_external_id == "260815000000097001"
    assert invoice.customer_name == "Acme Corp"
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 6, 9), date(2026, 7, 9))
    assert invoice.currency == "USD" and invoice.exchange_rate == Decimal("1")
    assert (invoice.subtotal, invoice.taxable_amount, invoice.tax_total) == (
        Decimal("598.00"),
        Decimal("598.00"),
        Decimal("0.00"),
    )
    assert (invoice.total, invoice.balance_due, invoice.round_off) == (
        Decimal("598.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert invoice.source_updated_at == datetime(
        2026, 6, 9, 9, 47, 43, tzinfo=timezone(-timedelta(hours=4))
    )
    assert invoice.gst_treatment == "unknown" and invoice.place_of_supply is None
    (line,) = invoice.lines
    assert (line.line_number, line.item_name, line.unit) == (1, "Software License", "license")
    assert (line.quantity, line.rate, line.taxable_amount) == (
        Decimal("2"),
        Decimal("299"),
        Decimal("598.00"),
    )
    assert line.tax_rate == 0 and line.cgst == line.sgst == line.igst == 0
    assert line.external_id == "260815000000103006"
    assert invoice.raw is body["invoice"]  # the source record as received


@pytest.mark.real_fixtures
def test_every_recorded_list_status_has_a_canonical_status():
    (body,) = recorded("nango_invoices.test.json")
    statuses = {row["status"] for row in body["invoices"]}
    assert statuses == {"paid", "draft", "void", "sent"}
    assert {INVOICE_STATUSES[s] for s in statuses} == {"paid", "draft", "void", "open"}


@pytest.mark.real_fixtures
def test_openapi_india_contact_maps_gst_fields_and_numeric_ids():
    contact = map_contact(example("zoho_books_openapi_get_contact_200_example.json")["contact"])
    assert contact.external_id == "460000000026049"  # the spec's numeric id, stored as text
    assert contact.name == "Bowman and Co" and contact.display_name == "Bowman and Co"
    assert contact.gstin == "22AAAAA0000A1Z5" and contact.pan == "AAAAA0000A"
    assert contact.gst_treatment == "registered_regular"  # business_gst
    assert contact.state_code == "33" and contact.place_of_supply == "33"  # place_of_contact TN
    assert (contact.billing_city, contact.billing_postal_code) == ("Pleasanton", "94588")
    assert contact.outstanding_balance == Decimal("250.00")
    assert contact.is_active and contact.currency == "USD"
    # The documented example's GSTIN fails its checksum: the check must warn about it.
    assert "check" in gst.gstin_problem(contact.gstin)


@pytest.mark.real_fixtures
def test_recorded_contact_list_rows_map_without_detail_fields():
    (body,) = recorded("nango_contacts.test.json")
    mapped = [map_contact(row) for row in body["contacts"]]
    assert len(mapped) == 6
    assert all(c.external_id.isdigit() and c.name for c in mapped)
    assert all(c.gst_treatment == "unknown" and c.gstin is None for c in mapped)
    assert all(c.source_updated_at.tzinfo is not None for c in mapped)


@pytest.mark.real_fixtures
def test_openapi_invoice_with_a_vat_tax_keeps_it_as_other_tax():
    # A tax that is not GST is kept, never refused (issue 8, point 6): the documented example
    # is a VAT invoice (its amounts are not consistent with each other, see the fixtures README).
    invoice = map_invoice(example("zoho_books_openapi_get_invoice_200_example.json")["invoice"], {})
    assert invoice.other_tax == Decimal("19.13")  # the `taxes` summary's VAT
    assert invoice.cgst == invoice.sgst == invoice.igst == invoice.cess == 0
    assert invoice.tax_total == Decimal("22.60")  # as Zoho states it
    (line,) = invoice.lines
    assert (line.taxable_amount, line.tax_rate) == (Decimal("120.00"), Decimal("12.5000"))
    assert line.other_tax == Decimal("15.00") and line.igst == 0  # 12.5 % of 120, computed
    assert line.line_total == Decimal("135.00")


@pytest.mark.real_fixtures
def test_page_context_as_array_in_the_openapi_example_is_read():
    body = example("zoho_books_openapi_list_invoices_200_example.json")
    assert isinstance(body["page_context"], list)
    assert _page_context(body)["has_more_page"] is False


def test_intra_state_invoice_splits_lines_into_equal_cgst_and_sgst():
    invoice = {
        "invoice_id": "1",
        "customer_id": "c1",
        "status": "sent",
        "sub_total": 2000.0,
        "tax_total": 360.0,
        "total": 2360.0,
        "line_items": [
            {
                "item_order": 1,
                "item_total": 2000.0,
                "tax_id": "g18",
                "tax_percentage": 18,
                "rate": 1000,
                "quantity": 2,
            }
        ],
        "taxes": [
            {"tax_name": "CGST9 (9%)", "tax_amount": 180.0},
            {"tax_name": "SGST9 (9%)", "tax_amount": 180.0},
        ],
    }
    mapped = map_invoice(invoice, heads={"g18": "group"})
    assert (mapped.cgst, mapped.sgst, mapped.igst) == (Decimal("180.00"), Decimal("180.00"), 0)
    (line,) = mapped.lines
    assert (line.cgst, line.sgst, line.igst, line.line_total) == (
        Decimal("180.00"),
        Decimal("180.00"),
        0,
        Decimal("2360.00"),
    )


@pytest.mark.real_fixtures
def test_recorded_payloads_import_end_to_end(zoho):
    zoho.simulator.seed_from_files(
        zoho.org_id,
        contacts_path=ZOHO / "nango_get-contact.test.json",
        invoices_path=ZOHO / "nango_get-invoice.test.json",
    )
    result = zoho.materialize()
    assert result.success
    (number, total, status, customer) = zoho.query(
        "SELECT invoice_number, total, status, customer_name FROM accounting.invoices WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    assert (number, total, status, customer) == (
        "INV-000001",
        Decimal("598.00"),
        "paid",
        "Acme Corp",
    )
    assert zoho.scalar("SELECT name FROM accounting.customers") == "Acme Corp"
    assert checks(result)["invoices.invoice_customers_known"].passed


@pytest.mark.real_fixtures
def test_the_gstin_check_warns_about_the_documented_example(zoho):
    zoho.simulator.seed_from_files(
        zoho.org_id, contacts_path=ZOHO / "zoho_books_openapi_get_contact_200_example.json"
    )
    zoho.simulator.edit_contact(zoho.org_id, "460000000026049", contact_type="customer")
    result = zoho.materialize(*[])
    evaluation = checks(result)["customers.customer_gstins_valid"]
    assert not evaluation.passed
    assert "Bowman and Co" in evaluation.description and "22AAAAA0000A1Z5" in evaluation.description


def test_summary_tax_names_with_rates_match_the_tax_master():
    from hub_pipelines.zoho_books.connector import _head_for

    heads = {"t1": "cgst", "state levy": "sgst"}
    assert _head_for({"tax_name": "State Levy (9%)"}, heads) == "sgst"
    assert _head_for({"tax_id": "t1", "tax_name": "whatever"}, heads) == "cgst"
    assert _head_for({"tax_name": "IGST18 (18%)"}, {}) == "igst"
    assert _head_for({"tax_name": "VAT"}, {}) is None


def test_repeated_item_order_still_gives_unique_line_numbers():
    line = {"item_total": 100, "tax_percentage": 0, "item_order": 1}
    invoice = {
        "invoice_id": "9",
        "customer_id": "c9",
        "status": "paid",
        "sub_total": 200,
        "total": 200,
        "line_items": [line, dict(line)],
    }
    assert [entry.line_number for entry in map_invoice(invoice, heads={}).lines] == [1, 2]
