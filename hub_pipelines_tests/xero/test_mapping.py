"""Every Xero mapping decision: against the real recorded organisation (Xero's US demo company) and
the OpenAPI examples, then synthetic Indian GST rates, a New Zealand organisation, statuses and
refusals."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from hub_pipelines import gst
from hub_pipelines.canonical import storage_problem
from hub_pipelines.xero.mapping import (
    MappingError,
    TaxRateInfo,
    is_customer,
    is_deleted,
    is_sales_invoice,
    largest_remainder,
    map_contact,
    map_invoice,
    missing_tax_types,
    referenced_contact_ids,
    should_import_contact,
    split_tax,
    tax_rates_by_type,
)
from hub_pipelines_tests.xero.real import (
    US_DEMO_TAX_RATES,
    document,
    recorded_contacts,
    recorded_invoices,
    responses,
)

D = Decimal
US_RATES = tax_rates_by_type(US_DEMO_TAX_RATES)


def by_number(invoices: list[dict], number: str) -> dict:
    return next(invoice for invoice in invoices if invoice["InvoiceNumber"] == number)


def add_up(invoice) -> None:
    """The canonical invariants, on the invoice and each line."""
    heads = invoice.cgst + invoice.sgst + invoice.igst + invoice.cess + invoice.other_tax
    assert invoice.tax_total == heads
    assert invoice.total == (
        invoice.taxable_amount + invoice.tax_total + invoice.round_off + invoice.adjustment
    )
    for line in invoice.lines:
        line_heads = line.cgst + line.sgst + line.igst + line.cess + line.other_tax
        assert line.line_total == line.taxable_amount + line_heads
    assert storage_problem(invoice) is None


# --- the recorded organisation -------------------------------------------------------------------


@pytest.mark.real_fixtures
def test_every_recorded_sales_invoice_maps_and_adds_up():
    invoices = recorded_invoices()
    assert len(invoices) == 77 and all(invoice["LineItems"] for invoice in invoices)
    sales = [invoice for invoice in invoices if is_sales_invoice(invoice)]
    mapped = [map_invoice(invoice, US_RATES) for invoice in sales]
    assert len(mapped) == 36 and sum(len(invoice.lines) for invoice in mapped) == 44
    for invoice, raw in zip(mapped, sales, strict=True):
        add_up(invoice)
        assert invoice.adjustment == 0  # Xero's Total is exactly SubTotal + TotalTax
        assert invoice.taxable_amount == invoice.subtotal
        assert invoice.tax_total == invoice.other_tax  # US sales tax: never a GST head
        assert invoice.raw is raw
    assert Counter(invoice.status for invoice in mapped) == {
        "paid": 16,
        "open": 9,
        "partially_paid": 2,  # INV-0006 and INV-0016
        "draft": 9,
    }


@pytest.mark.real_fixtures
def test_a_recorded_tax_inclusive_invoice_maps_exactly():
    raw = by_number(recorded_invoices(), "INV-0025")
    invoice = map_invoice(raw, US_RATES)
    assert invoice.external_id == "3f887d04-cbd9-4853-b594-bc1ab207558c"
    assert invoice.customer_external_id == "65a44264-dea0-481a-b49d-18a334a72334"
    assert invoice.customer_name == "Ridgeway University"
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 3, 29), date(2026, 4, 19))
    assert (invoice.status, invoice.currency, invoice.exchange_rate) == ("open", "USD", None)
    assert (invoice.subtotal, invoice.taxable_amount) == (D("5715.94"), D("5715.94"))
    assert (invoice.other_tax, invoice.tax_total) == (D("471.56"), D("471.56"))
    assert (invoice.total, invoice.balance_due) == (D("6187.50"), D("6187.50"))
    # UpdatedDateUTC /Date(1229821850963+0000)/: the demo company's creation stamp.
    assert invoice.source_updated_at == datetime(2008, 12, 21, 1, 10, 50, 963000, tzinfo=UTC)
    (line,) = invoice.lines
    assert line.external_id == "70fc275c-284f-45d7-a577-7d8977adb0e3"
    assert line.description == "Onsite project management for CRM Project 3 days/week"
    assert (line.quantity, line.rate) == (D("1"), D("6187.5"))  # UnitAmount includes tax
    assert (line.taxable_amount, line.other_tax, line.line_total) == (
        D("5715.94"),
        D("471.56"),
        D("6187.50"),
    )
    assert line.tax_rate == D("8.25") and line.cgst == line.sgst == line.igst == 0
    assert line.raw is raw["LineItems"][0]


@pytest.mark.real_fixtures
def test_a_recorded_invoice_with_two_tax_rates_and_a_credit():
    invoice = map_invoice(by_number(recorded_invoices(), "INV-0022"), US_RATES)
    assert invoice.status == "paid" and invoice.balance_due == 0
    assert [line.tax_rate for line in invoice.lines] == [D("8.75"), D("8.25")]
    assert sum(line.other_tax for line in invoice.lines) == invoice.tax_total == D("18.25")
    assert (invoice.taxable_amount, invoice.total) == (D("219.95"), D("238.20"))
    three = map_invoice(by_number(recorded_invoices(), "INV-0008"), US_RATES)
    assert [line.line_number for line in three.lines] == [1, 2, 3]
    assert (three.taxable_amount, three.tax_total, three.total) == (D("1200"), D("99"), D("1299"))


@pytest.mark.real_fixtures
def test_recorded_settlements_decide_partially_paid():
    invoices = recorded_invoices()
    paid_two = map_invoice(by_number(invoices, "INV-0006"), US_RATES)
    assert (paid_two.status, paid_two.balance_due) == ("partially_paid", D("248.00"))
    part = map_invoice(by_number(invoices, "INV-0016"), US_RATES)
    assert (part.status, part.balance_due) == ("partially_paid", D("270.63"))
    # PAID by a credit note alone: AmountPaid 0, AmountCredited = Total.
    credited = by_number(invoices, "INV-0010")
    assert (credited["AmountPaid"], credited["AmountCredited"]) == (0, 541.25)
    assert map_invoice(credited, US_RATES).status == "paid"
    open_again = copy.deepcopy(credited) | {"Status": "AUTHORISED", "AmountCredited": 100}
    assert map_invoice(open_again, US_RATES).status == "partially_paid"


@pytest.mark.real_fixtures
def test_untaxed_recorded_lines_need_no_tax_rate():
    draft = map_invoice(by_number(recorded_invoices(), "INV-0036"), {})
    (line,) = draft.lines
    assert "TaxType" not in line.raw and line.tax_rate is None
    assert (draft.status, draft.tax_total, draft.total) == ("draft", D("0"), D("100"))
    mixed = map_invoice(by_number(recorded_invoices(), "INV-0028"), US_RATES)
    assert [line.tax_rate for line in mixed.lines] == [D("8.25"), D("0")]  # OUTPUT, NONE


@pytest.mark.real_fixtures
def test_recorded_bills_and_deletions_are_never_imported():
    invoices = recorded_invoices()
    bills = [invoice for invoice in invoices if not is_sales_invoice(invoice)]
    assert len(bills) == 41 and {bill["Type"] for bill in bills} == {"ACCPAY"}
    deleted = [invoice for invoice in invoices if is_deleted(invoice)]
    assert len(deleted) == 4 and all(invoice["Type"] == "ACCPAY" for invoice in deleted)
    with pytest.raises(MappingError, match=r"^Type: 'ACCPAY' is not a sales invoice"):
        map_invoice(bills[0], US_RATES)
    (single,) = responses(
        "nango_get-invoice.test.json",
        "/api.xro/2.0/Invoices/" + ("8a3fdcc9-83eb-4fdd-83e0-52ec1b40b072"),
    )
    with pytest.raises(MappingError, match="Type"):
        map_invoice(single["Invoices"][0], US_RATES)


@pytest.mark.real_fixtures
def test_recorded_contacts_map():
    contacts = recorded_contacts()
    customers = {contact["ContactID"]: map_contact(contact) for contact in contacts}
    assert len(customers) == 63 and all(c.is_active for c in customers.values())
    rite = customers["c67e563c-17ee-40dd-ad95-4f8c143bf740"]
    assert (rite.name, rite.outstanding_balance, rite.phone, rite.email) == (
        "RITE Agency",
        D("216.50"),
        None,
        None,
    )
    assert rite.billing_line1 is rite.billing_city is None  # both addresses are empty
    assert rite.source_updated_at == datetime(2026, 4, 20, 10, 55, 21, 490000, tzinfo=UTC)
    hamilton = next(c for c in customers.values() if c.name == "Hamilton Smith Ltd")
    assert (hamilton.billing_line1, hamilton.billing_city, hamilton.billing_postal_code) == (
        "3 Park Street Industrial Village",  # "…Village\n" in the answer
        "Oaktown",
        "1234",
    )
    assert (hamilton.phone, hamilton.email) == ("01 2345678", "info@hsg.co")
    espresso = next(c for c in customers.values() if c.name == "Espresso 31")
    assert espresso.phone == "+64 4 23241290"
    taxed = next(c for c in contacts if c.get("TaxNumber"))
    assert taxed["TaxNumber"] == "90 9877899"  # a foreign tax number, not a GSTIN
    assert customers[taxed["ContactID"]].gstin is None
    assert customers[taxed["ContactID"]].gst_treatment == "unknown"
    assert all(storage_problem(c) is None for c in customers.values())
    assert customers[contacts[0]["ContactID"]].raw is contacts[0]


@pytest.mark.real_fixtures
def test_recorded_customers_are_those_flagged_or_invoiced():
    contacts, invoices = recorded_contacts(), recorded_invoices()
    referenced = referenced_contact_ids(invoices)
    assert len(referenced) == 17
    assert sum(is_customer(contact) for contact in contacts) == 17
    imported = [contact for contact in contacts if should_import_contact(contact, referenced)]
    assert {contact["ContactID"] for contact in imported} == referenced
    # A contact Xero has not flagged yet is still imported once a sales invoice names it.
    fresh = copy.deepcopy(imported[0]) | {"IsCustomer": False}
    assert should_import_contact(fresh, referenced) and not is_customer(fresh)
    supplier = next(c for c in contacts if c["IsSupplier"] and not c["IsCustomer"])
    assert not should_import_contact(supplier, referenced)


@pytest.mark.real_fixtures
def test_the_recorded_single_contact_matches_its_list_row():
    (body,) = responses(
        "nango_get-contact.test.json", "/api.xro/2.0/Contacts/c67e563c-17ee-40dd-ad95-4f8c143bf740"
    )
    (contact,) = body["Contacts"]
    listed = next(c for c in recorded_contacts() if c["ContactID"] == contact["ContactID"])
    single, row = map_contact(contact), map_contact(listed)
    assert (single.name, single.outstanding_balance) == (row.name, row.outstanding_balance)


@pytest.mark.real_fixtures
def test_the_openapi_contact_examples():
    (acme,) = document("xero_accounting_openapi_GET_Contact_200_example.json")["Contacts"]
    customer = map_contact(acme)
    assert (customer.external_id, customer.name) == (
        "8138a266-fb42-49b2-a104-014b7045753d",
        "Acme Parts Co.",
    )
    assert customer.billing_line1 == "1234 Fake Street"  # POBOX before STREET
    assert (customer.billing_city, customer.billing_state) == ("Vancouver", "British Columbia")
    assert customer.state_code is None and customer.gstin is None  # "123-22-3456"
    assert customer.phone == "1 604 408-0914"  # DEFAULT, not DDI, FAX or MOBILE
    warren, *_ = document("xero_accounting_openapi_GET_Contacts_200_example.json")["Contacts"]
    mapped = map_contact(warren)
    assert (mapped.billing_city, mapped.billing_state, mapped.billing_postal_code) == (
        "Palo Alto",
        "CA",
        "94020",
    )
    assert mapped.billing_country == "United States" and mapped.billing_line1 is None
    assert mapped.phone == "(626) 847-1294" and mapped.email == "kat.warren@clampett.com"


@pytest.mark.real_fixtures
def test_the_openapi_invoice_examples():
    (paid,) = document("xero_accounting_openapi_GET_Invoice_200_example.json")["Invoices"]
    invoice = map_invoice(paid, {})  # TaxType NONE with no tax: no rate needed
    assert (invoice.status, invoice.currency, invoice.total) == ("paid", "NZD", D("148062.76"))
    assert (invoice.issue_date, invoice.due_date) == (date(2019, 3, 7), date(2019, 3, 13))
    add_up(invoice)
    listed = document("xero_accounting_openapi_GET_Invoices_200_example.json")["Invoices"]
    voided = listed[0]
    assert (voided["Status"], voided["LineItems"], voided["Total"]) == ("VOIDED", [], 40.0)
    # The vendor's list example shows no lines: an answer that lost them is refused.
    with pytest.raises(MappingError, match=r"^LineItems: none on an invoice whose Total is 40"):
        map_invoice(voided, {})


# --- synthetic Indian organisation -----------------------------------------------------------------

INDIAN_TAX_RATES = [
    {
        "Name": "GST 18%",
        "TaxType": "TAX002",
        "EffectiveRate": 18.0,
        "TaxComponents": [
            {"Name": "CGST", "Rate": 9.0, "IsCompound": False},
            {"Name": "SGST", "Rate": 9.0, "IsCompound": False},
        ],
    },
    {
        "Name": "IGST 18%",
        "TaxType": "TAX003",
        "EffectiveRate": 18.0,
        "TaxComponents": [{"Name": "IGST", "Rate": 18.0, "IsCompound": False}],
    },
    {
        "Name": "GST 28% + Cess 12%",
        "TaxType": "TAX004",
        "EffectiveRate": 40.0,
        "TaxComponents": [
            {"Name": "CGST 14%", "Rate": 14.0, "IsCompound": False},
            {"Name": "UTGST 14%", "Rate": 14.0, "IsCompound": False},
            {"Name": "Compensation Cess", "Rate": 12.0, "IsCompound": False},
        ],
    },
    {
        "Name": "GST 0%",
        "TaxType": "TAX005",
        "EffectiveRate": 0.0,
        "TaxComponents": [{"Name": "IGST", "Rate": 0.0}],
    },
]
INDIAN_RATES = tax_rates_by_type(INDIAN_TAX_RATES)
GSTIN = gst.make_gstin("29", "AAACR5055K")


def indian_invoice(*lines: dict, amount_types: str = "Exclusive", **fields) -> dict:
    """A sales invoice as Xero would send it for an Indian organisation's custom rates."""
    items = [{"LineItemID": f"line-{n}", "Quantity": 1, **line} for n, line in enumerate(lines)]
    amounts = [D(str(line["LineAmount"])) for line in lines]
    taxes = [D(str(line.get("TaxAmount", 0))) for line in lines]
    inclusive = amount_types == "Inclusive"
    subtotal = sum(amounts) - (sum(taxes) if inclusive else 0)
    return {
        "Type": "ACCREC",
        "InvoiceID": "inv-1",
        "InvoiceNumber": "INV/25-26/001",
        "Contact": {"ContactID": "cust-1", "Name": "Reliance Retail"},
        "Date": "/Date(1743465600000+0000)/",
        "DueDate": "/Date(1746057600000+0000)/",
        "Status": "AUTHORISED",
        "LineAmountTypes": amount_types,
        "LineItems": items,
        "SubTotal": float(subtotal),
        "TotalTax": float(sum(taxes)),
        "Total": float(subtotal + sum(taxes)),
        "AmountDue": float(subtotal + sum(taxes)),
        "AmountPaid": 0,
        "CurrencyCode": "INR",
        "UpdatedDateUTC": "/Date(1743500000000+0000)/",
        **fields,
    }


def test_indian_component_names_become_gst_heads():
    gst18 = INDIAN_RATES["TAX002"]
    assert [c.head for c in gst18.components] == ["cgst", "sgst"] and gst18.is_gst
    assert [c.head for c in INDIAN_RATES["TAX004"].components] == ["cgst", "sgst", "cess"]
    assert INDIAN_RATES["TAX003"].effective_rate == D("18")


def test_an_intra_state_invoice_splits_cgst_and_sgst_to_the_paisa():
    raw = indian_invoice(
        {
            "Description": "Steel rods",
            "LineAmount": 1000.00,
            "TaxAmount": 180.00,
            "TaxType": "TAX002",
        },
        {"Description": "Bolts", "LineAmount": 100.05, "TaxAmount": 18.01, "TaxType": "TAX002"},
    )
    invoice = map_invoice(raw, INDIAN_RATES)
    first, odd = invoice.lines
    assert (first.cgst, first.sgst, first.igst, first.tax_rate) == (
        D("90.00"),
        D("90.00"),
        D("0"),
        D("18"),
    )
    assert (odd.cgst, odd.sgst) == (D("9.01"), D("9.00"))  # the odd paisa: the first component
    assert (invoice.cgst, invoice.sgst, invoice.tax_total) == (D("99.01"), D("99.00"), D("198.01"))
    assert (invoice.taxable_amount, invoice.total, invoice.other_tax) == (
        D("1100.05"),
        D("1298.06"),
        D("0"),
    )
    assert (invoice.issue_date, invoice.due_date) == (date(2025, 4, 1), date(2025, 5, 1))
    add_up(invoice)


def test_an_inter_state_inclusive_invoice_with_cess():
    raw = indian_invoice(
        {"Description": "Car", "LineAmount": 1400.01, "TaxAmount": 400.01, "TaxType": "TAX004"},
        {"Description": "Service", "LineAmount": 1180, "TaxAmount": 180, "TaxType": "TAX003"},
        amount_types="Inclusive",
    )
    invoice = map_invoice(raw, INDIAN_RATES)
    car, service = invoice.lines
    # 400.01 in 14 : 14 : 12 → 140.0035, 140.0035, 120.003 → the spare paisa to the first.
    assert (car.cgst, car.sgst, car.cess) == (D("140.01"), D("140.00"), D("120.00"))
    assert car.taxable_amount == D("1000.00") and car.line_total == D("1400.01")
    assert (service.igst, service.taxable_amount) == (D("180.00"), D("1000.00"))
    assert (invoice.cgst, invoice.sgst, invoice.igst, invoice.cess) == (
        D("140.01"),
        D("140.00"),
        D("180.00"),
        D("120.00"),
    )
    assert invoice.taxable_amount == invoice.subtotal == D("2000.00")
    add_up(invoice)


def test_line_discounts_and_item_names():
    raw = indian_invoice(
        {
            "ItemCode": "ROD-12",
            "Item": {"ItemID": "i1", "Code": "ROD-12", "Name": "Steel rod 12 mm"},
            "Quantity": 2,
            "UnitAmount": 100,
            "DiscountRate": 10,
            "LineAmount": 180,
            "TaxAmount": 32.40,
            "TaxType": "TAX002",
        },
        {"ItemCode": "BOLT", "UnitAmount": 50, "DiscountAmount": 5, "LineAmount": 45},
    )
    rod, bolt = map_invoice(raw, INDIAN_RATES).lines
    assert (rod.item_name, rod.quantity, rod.rate, rod.discount) == (
        "Steel rod 12 mm",
        D("2"),
        D("100"),
        D("20.00"),
    )
    assert (bolt.item_name, bolt.discount, bolt.tax_rate) == ("BOLT", D("5"), None)


def test_no_tax_lines_are_taxable_at_their_amount():
    raw = indian_invoice({"LineAmount": 500, "TaxType": "TAX005"}, amount_types="NoTax")
    invoice = map_invoice(raw, INDIAN_RATES)
    assert (invoice.taxable_amount, invoice.tax_total, invoice.lines[0].tax_rate) == (
        D("500"),
        D("0"),
        D("0"),
    )


def test_a_customer_with_a_valid_gstin():
    contact = {
        "ContactID": "cust-1",
        "ContactStatus": "ACTIVE",
        "Name": "Reliance Retail",
        "TaxNumber": f" {GSTIN[:2]} {GSTIN[2:].lower()} ",
        "EmailAddress": "",
        "Addresses": [
            {"AddressType": "STREET", "AddressLine1": "", "City": ""},
            {
                "AddressType": "POBOX",
                "AddressLine1": "12 MG Road",
                "AddressLine2": "Floor 3",
                "AddressLine3": "",
                "City": "Bengaluru",
                "Region": "Karnataka",
                "PostalCode": "560001",
                "Country": "India",
            },
        ],
        "Phones": [
            {"PhoneType": "DEFAULT", "PhoneNumber": "", "PhoneAreaCode": "80"},
            {"PhoneType": "MOBILE", "PhoneNumber": "98450 12345", "PhoneCountryCode": "+91"},
        ],
        "DefaultCurrency": "INR",
        "IsCustomer": True,
        "UpdatedDateUTC": "/Date(1743500000000+0000)/",
    }
    customer = map_contact(contact)
    assert (customer.gstin, customer.pan, customer.gst_treatment) == (
        GSTIN,
        "AAACR5055K",
        "registered_regular",
    )
    assert customer.state_code == customer.place_of_supply == "29"
    assert (customer.billing_line1, customer.billing_line2) == ("12 MG Road", "Floor 3")
    assert (customer.email, customer.phone, customer.currency) == (None, "+91 98450 12345", "INR")
    assert customer.source_updated_at == datetime(2025, 4, 1, 9, 33, 20, tzinfo=UTC)
    assert customer.raw is contact


@pytest.mark.parametrize(
    ("tax_number", "region", "country", "state"),
    [
        (GSTIN[:-1] + ("0" if GSTIN[-1] != "0" else "1"), "Tamil Nadu", "India", "33"),
        ("", "Tamil Nadu", "", "33"),
        ("", "Punjab", "Pakistan", None),  # not state 03
        ("GB123456789", "London", "United Kingdom", None),
    ],
)
def test_without_a_valid_gstin_the_state_comes_from_an_indian_address(
    tax_number, region, country, state
):
    contact = {
        "ContactID": "c",
        "Name": "N",
        "TaxNumber": tax_number,
        "Addresses": [{"AddressType": "STREET", "Region": region, "Country": country}],
    }
    customer = map_contact(contact)
    assert customer.gstin is None and customer.gst_treatment == "unknown"
    assert customer.state_code == state and customer.billing_state == region


@pytest.mark.parametrize(
    ("status", "active"), [("ACTIVE", True), ("ARCHIVED", False), ("GDPRREQUEST", False)]
)
def test_archived_contacts_are_inactive_not_deleted(status, active):
    customer = map_contact({"ContactID": "c", "Name": "N", "ContactStatus": status})
    assert customer.is_active is active


def test_a_contact_without_id_or_name_is_refused():
    with pytest.raises(MappingError, match="^ContactID: missing"):
        map_contact({"Name": "N"})
    with pytest.raises(MappingError, match="^Name: missing"):
        map_contact({"ContactID": "c", "Name": "  "})
    with pytest.raises(MappingError, match="^UpdatedDateUTC: not an MS-JSON"):
        map_contact({"ContactID": "c", "Name": "N", "UpdatedDateUTC": "2025-04-01"})


# --- a non-Indian organisation -------------------------------------------------------------------

NZ_TAX_RATES = [
    {
        "Name": "15% GST on Income",
        "TaxType": "OUTPUT2",
        "ReportTaxType": "OUTPUT",
        "EffectiveRate": 15.0,
        "DisplayTaxRate": 15.0,
        "Status": "ACTIVE",
        "TaxComponents": [
            {"Name": "GST", "Rate": 15.0, "IsCompound": False, "IsNonRecoverable": False}
        ],
    }
]


def test_a_component_named_plain_gst_is_not_indian_gst():
    rates = tax_rates_by_type(NZ_TAX_RATES)
    assert not rates["OUTPUT2"].is_gst and rates["OUTPUT2"].components[0].head is None
    raw = indian_invoice(
        {"LineAmount": 100, "TaxAmount": 15, "TaxType": "OUTPUT2"}, CurrencyCode="NZD"
    )
    invoice = map_invoice(raw, rates)
    assert (invoice.other_tax, invoice.cgst, invoice.sgst, invoice.igst) == (
        D("15"),
        D("0"),
        D("0"),
        D("0"),
    )
    assert invoice.lines[0].tax_rate == D("15")
    add_up(invoice)


def test_a_us_state_tax_is_not_sgst_and_a_known_foreign_org_is_never_gst():
    assert not US_RATES["OUTPUT"].is_gst  # "State Tax" + "City Tax"
    outside = tax_rates_by_type(INDIAN_TAX_RATES, indian_gst=False)
    assert not any(rate.is_gst for rate in outside.values())
    taxes = split_tax(D("180"), outside["TAX002"])
    assert taxes["other_tax"] == D("180") and taxes["cgst"] == 0


def test_compound_components_weigh_what_they_charge():
    rate = TaxRateInfo.from_row(
        {
            "TaxType": "T",
            "Name": "IGST + compound cess",
            "TaxComponents": [
                {"Name": "IGST", "Rate": 10, "IsCompound": False},
                {"Name": "Cess", "Rate": 10, "IsCompound": True},  # on amount + IGST
            ],
        }
    )
    assert rate.effective_rate == D("21")  # 10 + 10 × 1.10
    # On 100.00: IGST 10.00 and cess 11.00, not halves.
    taxes = split_tax(D("21.00"), rate)
    assert (taxes["igst"], taxes["cess"], taxes["other_tax"]) == (D("10.00"), D("11.00"), D("0"))


def test_largest_remainder_adds_up_exactly():
    assert largest_remainder(D("0.01"), [D(9), D(9)]) == [D("0.01"), D("0.00")]
    assert largest_remainder(D("-18.01"), [D(9), D(9)]) == [D("-9.01"), D("-9.00")]
    assert largest_remainder(D("10.00"), [D(0), D(0)]) == [D("5.00"), D("5.00")]
    for amount in ("0.07", "123.45", "99999.99"):
        parts = largest_remainder(D(amount), [D(14), D(14), D(12)])
        assert sum(parts) == D(amount)
    assert split_tax(D("0"), INDIAN_RATES["TAX002"]) == split_tax(D("0.00"), US_RATES["NONE"])


def test_a_rate_without_components_is_one_component_with_its_name():
    rate = TaxRateInfo.from_row({"TaxType": "T", "Name": "IGST 5%", "EffectiveRate": 5})
    assert [(c.name, c.rate, c.head) for c in rate.components] == [("IGST 5%", D("5"), "igst")]
    with pytest.raises(MappingError, match="TaxType: missing"):
        TaxRateInfo.from_row({"Name": "no type"})
    with pytest.raises(MappingError, match=r"TaxComponents\[0\].Rate"):
        TaxRateInfo.from_row({"TaxType": "T", "TaxComponents": [{"Name": "X", "Rate": "abc"}]})


# --- statuses and refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "paid", "expected"),
    [
        ("DRAFT", 0, "draft"),
        ("SUBMITTED", 0, "draft"),
        ("AUTHORISED", 0, "open"),
        ("AUTHORISED", 100, "partially_paid"),
        ("PAID", 1180, "paid"),
        ("VOIDED", 0, "void"),
    ],
)
def test_statuses(status, paid, expected):
    raw = indian_invoice(
        {"LineAmount": 1000, "TaxAmount": 180, "TaxType": "TAX002"},
        Status=status,
        AmountPaid=paid,
    )
    assert map_invoice(raw, INDIAN_RATES).status == expected


def test_a_voided_invoice_keeps_its_total_with_nothing_due():
    raw = indian_invoice(
        {"LineAmount": 1000, "TaxAmount": 180, "TaxType": "TAX002"}, Status="VOIDED", AmountDue=0
    )
    invoice = map_invoice(raw, INDIAN_RATES)
    assert (invoice.status, invoice.total, invoice.balance_due) == ("void", D("1180"), D("0"))


def test_a_deleted_invoice_is_a_tombstone_for_the_connector():
    raw = indian_invoice(
        {"LineAmount": 10, "TaxAmount": 1.8, "TaxType": "TAX002"}, Status="DELETED"
    )
    assert is_deleted(raw)
    with pytest.raises(MappingError, match="^Status: DELETED.*is_deleted"):
        map_invoice(raw, INDIAN_RATES)
    # Its customer is not counted as referenced by it.
    assert referenced_contact_ids([raw]) == set()
    assert referenced_contact_ids([raw | {"Status": "DRAFT"}]) == {"cust-1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Type": "ACCPAY"}, r"^Type: 'ACCPAY' is not a sales invoice"),
        ({"Contact": {"Name": "No id"}}, r"^Contact\.ContactID: missing"),
        ({"Contact": None}, r"^Contact\.ContactID: missing"),
        ({"LineItems": None}, r"^LineItems: missing"),
        ({"InvoiceID": ""}, r"^InvoiceID: missing"),
        ({"Status": "PENDING"}, r"^Status: unknown Xero invoice status 'PENDING'"),
        ({"LineAmountTypes": "Gross"}, r"^LineAmountTypes: expected one of"),
        ({"TotalTax": 181}, r"^TotalTax: Xero states 181.00, the lines' TaxAmount add up to 180"),
        ({"Total": None}, r"^Total: missing"),
        ({"Date": "2025-04-01"}, r"^Date: not an MS-JSON date"),
    ],
)
def test_refusals_name_the_field(change, message):
    raw = indian_invoice({"LineAmount": 1000, "TaxAmount": 180, "TaxType": "TAX002"}) | change
    with pytest.raises(MappingError, match=message):
        map_invoice(raw, INDIAN_RATES)


def test_a_taxed_line_with_an_unknown_rate_is_refused_and_named():
    raw = indian_invoice(
        {"LineAmount": 1000, "TaxAmount": 180, "TaxType": "TAX002"},
        {"LineAmount": 100, "TaxAmount": 12, "TaxType": "TAX099"},
        {"LineAmount": 100, "TaxAmount": 0, "TaxType": "TAX098"},  # untaxed: no rate needed
    )
    assert missing_tax_types(raw, INDIAN_RATES) == {"TAX099"}
    with pytest.raises(MappingError, match=r"^LineItems\[1\]\.TaxType: 'TAX099' is not among"):
        map_invoice(raw, INDIAN_RATES)
    untyped = indian_invoice({"LineAmount": 100, "TaxAmount": 12})
    with pytest.raises(MappingError, match=r"^LineItems\[0\]\.TaxType: missing on a line"):
        map_invoice(untyped, INDIAN_RATES)


def test_an_empty_draft_without_lines_maps():
    raw = indian_invoice({"LineAmount": 0}) | {"LineItems": [], "Status": "DRAFT"}
    invoice = map_invoice(raw, INDIAN_RATES)
    assert invoice.lines == [] and invoice.total == 0 and invoice.status == "draft"


def test_date_strings_stand_in_for_missing_dates():
    raw = indian_invoice({"LineAmount": 10}) | {"Date": None, "DateString": "2025-04-01T00:00:00"}
    del raw["DueDate"]
    invoice = map_invoice(raw, INDIAN_RATES)
    assert (invoice.issue_date, invoice.due_date) == (date(2025, 4, 1), None)


def test_a_rounding_line_is_the_round_off_not_a_line():
    raw = indian_invoice(
        {"LineAmount": 1000.50, "TaxAmount": 180.09, "TaxType": "TAX002"},
        {"Description": "Rounding", "LineAmount": 0.41, "TaxType": "NONE", "AccountCode": "860"},
    )
    invoice = map_invoice(raw, INDIAN_RATES)
    assert [line.line_number for line in invoice.lines] == [1]
    assert (invoice.taxable_amount, invoice.round_off, invoice.total) == (
        D("1000.50"),
        D("0.41"),
        D("1181.00"),
    )
    assert (invoice.subtotal, invoice.adjustment) == (D("1000.50"), D("0"))
    add_up(invoice)
    # A taxed line on that account is a supply; another organisation's account can be named.
    assert len(map_invoice(raw, INDIAN_RATES, rounding_account=None).lines) == 2


def test_a_draft_owes_nothing_and_currency_rates_are_base_per_unit():
    draft = map_invoice(indian_invoice({"LineAmount": 100}, Status="DRAFT"), INDIAN_RATES)
    assert (draft.total, draft.balance_due) == (D("100"), D("0"))
    usd = indian_invoice({"LineAmount": 100}, CurrencyCode="USD", CurrencyRate=0.012)
    assert map_invoice(usd, INDIAN_RATES).exchange_rate == D("83.333333")


def test_a_contact_set_up_for_sales_is_a_customer_before_its_first_invoice():
    bare = {"ContactID": "c-1", "Name": "New Buyer", "IsCustomer": False, "IsSupplier": False}
    assert not should_import_contact(bare, set())
    assert should_import_contact(bare | {"AccountsReceivableTaxType": "TAX002"}, set())
    assert should_import_contact(bare | {"SalesDefaultAccountCode": "200"}, set())
