"""QuickBooks mapping: the real US sandbox answers (shared/fixtures/real/quickbooks) and synthetic
India records built from the fact sheet's field names (no real QBO India payload exists)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hub_pipelines import gst
from hub_pipelines.canonical import Customer
from hub_pipelines.quickbooks.mapping import (
    MappingError,
    TaxRateInfo,
    allocate,
    invoice_status,
    is_void,
    map_customer,
    map_invoice,
    tax_rate_info,
    tax_rates_by_id,
)
from hub_pipelines_tests.quickbooks.recordings import (
    real_customers,
    real_invoice_ids,
    real_invoices,
    recorded,
)

D = Decimal
PACIFIC_DST = timezone(-timedelta(hours=7))
HEADS = ("cgst", "sgst", "igst", "cess", "other_tax")
# The sandbox company's rates as `SELECT * FROM TaxRate` would give them (not recorded): US
# sales taxes, none of them GST.
US_RATES = tax_rates_by_id(
    [
        {"Id": "1", "Name": "Tucson City", "RateValue": 7.1, "AgencyRef": {"value": "1"}},
        {"Id": "2", "Name": "AZ State tax", "RateValue": 2, "AgencyRef": {"value": "2"}},
        {"Id": "3", "Name": "California", "RateValue": 8, "AgencyRef": {"value": "3"}},
    ]
)


def assert_adds_up(invoice):
    """The canonical rules: the header adds up, and the lines add up to the header."""
    assert invoice.total == (
        invoice.taxable_amount + invoice.tax_total + invoice.round_off + invoice.adjustment
    )
    assert invoice.tax_total == sum(getattr(invoice, head) for head in HEADS)
    if invoice.lines:
        assert sum(line.taxable_amount for line in invoice.lines) == invoice.taxable_amount
        for head in HEADS:
            assert sum(getattr(line, head) for line in invoice.lines) == getattr(invoice, head)
        for line in invoice.lines:
            assert line.line_total == line.taxable_amount + sum(
                getattr(line, head) for head in HEADS
            )


# --- real answers --------------------------------------------------------------------------------


@pytest.mark.real_fixtures
def test_recorded_invoice_130_maps_exactly():
    (body,) = recorded("nango_get-invoice.test.json")
    record = body["Invoice"]
    invoice = map_invoice(record, US_RATES)
    assert (invoice.external_id, invoice.invoice_number, invoice.status) == ("130", "1037", "open")
    assert (invoice.customer_external_id, invoice.customer_name) == (
        "24",
        "Sonnenschein Family Store",
    )
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 4, 8), date(2026, 5, 8))
    assert invoice.currency == "USD" and invoice.exchange_rate is None
    assert (invoice.subtotal, invoice.taxable_amount, invoice.discount_total) == (
        D("335.25"),
        D("335.25"),
        D("0"),
    )
    assert (invoice.tax_total, invoice.other_tax, invoice.total, invoice.balance_due) == (
        D("26.82"),
        D("26.82"),
        D("362.07"),
        D("362.07"),
    )
    assert invoice.cgst == invoice.sgst == invoice.igst == invoice.cess == 0  # US sales tax
    assert invoice.place_of_supply is None and invoice.gst_treatment is None
    assert invoice.source_updated_at == datetime(2026, 5, 5, 3, 13, 29, tzinfo=PACIFIC_DST)
    assert invoice.raw is record
    assert [
        (line.line_number, line.external_id, line.item_name, line.description)
        for line in invoice.lines
    ] == [
        (1, "1", "Rock Fountain", "Rock Fountain"),
        (2, "2", "Pump", "Fountain Pump"),
        (3, "3", "Concrete", "Concrete for fountain installation"),
    ]
    assert [(line.quantity, line.rate, line.taxable_amount) for line in invoice.lines] == [
        (D("1"), D("275"), D("275.00")),
        (D("1"), D("12.75"), D("12.75")),
        (D("5"), D("9.5"), D("47.50")),
    ]
    # 8 % of each line: QuickBooks states only the invoice's 26.82.
    assert [line.other_tax for line in invoice.lines] == [D("22.00"), D("1.02"), D("3.80")]
    assert {line.tax_rate for line in invoice.lines} == {D("8")}
    assert invoice.lines[0].raw is record["Line"][0]
    assert_adds_up(invoice)


@pytest.mark.real_fixtures
@pytest.mark.parametrize("invoice_id", real_invoice_ids())
def test_every_recorded_invoice_adds_up_and_its_lines_match_the_header(invoice_id):
    record = real_invoices()[invoice_id]
    invoice = map_invoice(record, US_RATES)
    assert invoice.total == D(str(record["TotalAmt"]))
    assert invoice.tax_total == D(str(record["TxnTaxDetail"]["TotalTax"]))
    assert_adds_up(invoice)


@pytest.mark.real_fixtures
def test_two_recorded_tax_lines_give_each_taxed_line_their_combined_rate():
    invoice = map_invoice(real_invoices()["93"], US_RATES)  # Tucson City 7.1 % + AZ State 2 %
    assert invoice.other_tax == D("38.40")
    assert {line.tax_rate for line in invoice.lines} == {D("9.1")}
    assert [line.other_tax for line in invoice.lines] == [D("6.83"), D("6.55"), D("25.02")]


@pytest.mark.real_fixtures
def test_a_non_taxable_line_bears_no_tax_unless_the_tax_was_computed_on_it():
    # 106: the NON line is outside NetAmountTaxable (45): untaxed.
    invoice = map_invoice(real_invoices()["106"], US_RATES)
    assert [(line.taxable_amount, line.other_tax) for line in invoice.lines] == [
        (D("30.00"), D("0")),
        (D("45.00"), D("3.60")),
    ]
    assert invoice.lines[0].tax_rate == 0
    # 103: the NON line is inside NetAmountTaxable (582.50, every line; it was marked NON after
    # the tax was computed): the tax is shared the way QuickBooks computed it.
    invoice = map_invoice(real_invoices()["103"], US_RATES)
    assert [line.other_tax for line in invoice.lines] == [D("22.00"), D("21.00"), D("3.60")]


@pytest.mark.real_fixtures
def test_a_recorded_discount_after_tax_comes_off_the_total_not_the_lines():
    record = real_invoices()["49"]  # 5 % off 1,005.00, ApplyTaxAfterDiscount false
    invoice = map_invoice(record, US_RATES)
    assert (invoice.subtotal, invoice.discount_total) == (D("1005.00"), D("50.25"))
    assert (invoice.taxable_amount, invoice.adjustment, invoice.total) == (
        D("1005.00"),
        D("-50.25"),
        D("954.75"),
    )
    assert [line.taxable_amount for line in invoice.lines] == [D(300), D(250), D(275), D(180)]
    assert all(line.discount == 0 for line in invoice.lines)
    assert len(invoice.lines) == 4  # the subtotal and discount lines are no lines
    assert_adds_up(invoice)


@pytest.mark.real_fixtures
def test_a_recorded_invoice_with_only_its_subtotal_line_keeps_its_amounts_on_the_header():
    invoice = map_invoice(real_invoices()["42"], US_RATES)
    assert invoice.lines == []
    assert (invoice.subtotal, invoice.taxable_amount, invoice.tax_total, invoice.total) == (
        D("75.00"),
        D("75.00"),
        D("6.00"),
        D("81.00"),
    )
    assert invoice.status == "paid"


@pytest.mark.real_fixtures
def test_recorded_statuses_follow_balance_and_total():
    invoices = real_invoices()
    assert invoice_status(invoices["130"]) == "open"  # 362.07 of 362.07 due
    assert invoice_status(invoices["13"]) == "partially_paid"  # 4 of 54 due
    assert invoice_status(invoices["96"]) == "paid"  # 0 of 387 due
    statuses = {invoice_status(record) for record in invoices.values()}
    assert statuses == {"open", "partially_paid", "paid"}


@pytest.mark.real_fixtures
def test_recorded_customer_maps_exactly():
    record = real_customers()["3"]
    customer = map_customer(record)
    assert (customer.external_id, customer.name, customer.display_name) == (
        "3",
        "Cool Cars",
        "Cool Cars",
    )
    assert (customer.email, customer.phone) == ("Cool_Cars@intuit.com", "(415) 555-9933")
    assert (customer.billing_line1, customer.billing_city, customer.billing_state) == (
        "65 Ocean Dr.",
        "Half Moon Bay",
        "CA",
    )
    assert (customer.billing_postal_code, customer.currency) == ("94213", "USD")
    assert customer.is_active and customer.outstanding_balance == 0
    # A US company: no GST fields, and "CA" is California, not an Indian state.
    assert customer.gstin is None and customer.pan is None
    assert customer.gst_treatment == "unknown" and customer.state_code is None
    assert customer.place_of_supply is None
    assert customer.source_updated_at == datetime(2026, 4, 8, 12, 59, 21, tzinfo=PACIFIC_DST)
    assert customer.raw is record


@pytest.mark.real_fixtures
def test_every_recorded_customer_maps_including_jobs_and_credit_balances():
    customers = {key: map_customer(record) for key, record in real_customers().items()}
    assert len(customers) == 33
    assert customers["2"].outstanding_balance == D("-15.00")  # a credit
    job = real_customers()["8"]
    assert job["Job"] is True and job["ParentRef"]
    assert customers["8"].name == "0969 Ocean View Road"
    assert all(c.state_code is None and c.gst_treatment == "unknown" for c in customers.values())
    (body,) = recorded("nango_get-customer.test.json")
    detail = map_customer(body["Customer"])
    assert (detail.name, detail.display_name) == (
        "Test Customer Updated Final",
        "Amy's Bird Sanctuary",
    )


# --- India (synthetic, field names from Intuit's docs) ----------------------------------------

IN_RATES = tax_rates_by_id(
    [
        {"Id": "11", "Name": "CGST 9%", "RateValue": 9, "AgencyRef": {"value": "4"}},
        {"Id": "12", "Name": "SGST 9%", "RateValue": 9, "AgencyRef": {"value": "5"}},
        {"Id": "13", "Name": "CGST 2.5%", "RateValue": 2.5, "AgencyRef": {"value": "4"}},
        {"Id": "14", "Name": "SGST 2.5%", "RateValue": 2.5, "AgencyRef": {"value": "5"}},
        {"Id": "15", "Name": "IGST 18%", "RateValue": 18, "AgencyRef": {"value": "4"}},
        {"Id": "16", "Name": "Compensation Cess 12%", "RateValue": 12},
    ]
)
GSTIN = gst.make_gstin("27", "ABCDE1234F")


def india_customer(**changes) -> dict:
    record = {
        "Id": "58",
        "SyncToken": "0",
        "DisplayName": "Sharma Traders",
        "GSTIN": GSTIN,
        "GSTRegistrationType": "GST_REG_REG",
        "BusinessNumber": "ABCDE1234F",
        "PrimaryTaxIdentifier": "XXXXXX1Z5",
        "CurrencyRef": {"value": "INR"},
        "BillAddr": {
            "Line1": "12 MG Road",
            "City": "Pune",
            "CountrySubDivisionCode": "MH",
            "PostalCode": "411001",
            "Country": "India",
        },
        "Active": True,
        "MetaData": {"LastUpdatedTime": "2025-03-01T10:00:00+05:30"},
    }
    record.update(changes)
    return record


def sales_line(number: int, amount, code: str, qty=1) -> dict:
    return {
        "Id": str(number),
        "LineNum": number,
        "Description": f"item {number}",
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": str(number), "name": f"Item {number}"},
            "UnitPrice": amount / qty,
            "Qty": qty,
            "TaxCodeRef": {"value": code},
        },
    }


def tax_line(rate_id: str, amount, percent, net) -> dict:
    return {
        "Amount": amount,
        "DetailType": "TaxLineDetail",
        "TaxLineDetail": {
            "TaxRateRef": {"value": rate_id},
            "PercentBased": True,
            "TaxPercent": percent,
            "NetAmountTaxable": net,
        },
    }


def india_invoice(lines, taxes, total, **changes) -> dict:
    record = {
        "Id": "501",
        "SyncToken": "0",
        "DocNumber": "INV-501",
        "TxnDate": "2025-03-01",
        "CurrencyRef": {"value": "INR"},
        "CustomerRef": {"value": "58", "name": "Sharma Traders"},
        "Line": [*lines, {"Amount": 0, "DetailType": "SubTotalLineDetail"}],
        "TxnTaxDetail": {"TotalTax": sum(t["Amount"] for t in taxes), "TaxLine": taxes},
        "TotalAmt": total,
        "Balance": total,
        "GlobalTaxCalculation": "TaxExcluded",
        "MetaData": {"LastUpdatedTime": "2025-03-01T10:00:00+05:30"},
    }
    record.update(changes)
    return record


def test_tax_rates_are_classified_into_gst_heads_by_name():
    assert {key: info.head for key, info in IN_RATES.items()} == {
        "11": "cgst",
        "12": "sgst",
        "13": "cgst",
        "14": "sgst",
        "15": "igst",
        "16": "cess",
    }
    info = tax_rate_info(
        {"Id": "7", "Name": "VAT 20%", "RateValue": 20, "AgencyRef": {"value": "9"}}
    )
    assert info == TaxRateInfo("7", "VAT 20%", D("20"), "9", None)  # not GST: other_tax
    by_agency = tax_rate_info(
        {"Id": "8", "Name": "9%", "AgencyRef": {"value": "4", "name": "UTGST"}}
    )
    assert by_agency.head == "sgst"


def test_india_customer_reads_gstin_treatment_pan_and_state():
    customer = map_customer(india_customer())
    assert (customer.gstin, customer.pan, customer.gst_treatment) == (
        GSTIN,
        "ABCDE1234F",
        "registered_regular",
    )
    assert (customer.state_code, customer.place_of_supply) == ("27", "27")
    assert (customer.billing_state, customer.billing_country, customer.currency) == (
        "MH",
        "India",
        "INR",
    )


@pytest.mark.parametrize(
    ("registration", "treatment"),
    [
        ("GST_REG_REG", "registered_regular"),
        ("GST_REG_COMP", "registered_composition"),
        ("GST_UNREG", "unregistered_business"),
        ("CONSUMER", "consumer"),
        ("OVERSEAS", "overseas"),
        ("SEZ", "sez"),
        ("DEEMED", "deemed_export"),
        ("SOMETHING_NEW", "unknown"),
    ],
)
def test_gst_registration_types_map_to_treatments(registration, treatment):
    assert map_customer(india_customer(GSTRegistrationType=registration)).gst_treatment == treatment


def test_an_indian_customer_without_gstin_takes_its_state_from_the_address():
    for written in ("KA", "Karnataka", "29"):
        record = india_customer(GSTRegistrationType="CONSUMER", BusinessNumber=None)
        del record["GSTIN"]
        record["BillAddr"]["CountrySubDivisionCode"] = written
        customer = map_customer(record)
        assert (customer.state_code, customer.gstin, customer.pan) == ("29", None, None)


def test_a_us_state_code_is_never_read_as_an_indian_state():
    record = india_customer(BusinessNumber="123456789RT0001")  # a Canadian-style BN: not a PAN
    for field in ("GSTIN", "GSTRegistrationType"):
        del record[field]
    record["BillAddr"] = {"City": "Nashville", "CountrySubDivisionCode": "TN", "Country": "USA"}
    customer = map_customer(record)
    assert customer.state_code is None and customer.place_of_supply is None
    assert customer.pan is None and customer.gst_treatment == "unknown"


def test_customer_fields_absent_as_quickbooks_omits_them():
    customer = map_customer(
        {"Id": "9", "DisplayName": "Bare", "Mobile": {"FreeFormNumber": "98200 00000"}}
    )
    assert customer.phone == "98200 00000"  # no PrimaryPhone: the mobile
    assert customer.email is None and customer.currency is None and customer.is_active
    assert customer.outstanding_balance is None and customer.source_updated_at is None
    assert not map_customer({"Id": "9", "DisplayName": "Gone", "Active": False}).is_active
    with pytest.raises(MappingError, match="DisplayName"):
        map_customer({"Id": "9"})


def test_intra_state_invoice_shares_each_rate_over_its_own_lines():
    lines = [sales_line(1, 1000, "5"), sales_line(2, 500, "5"), sales_line(3, 200, "6")]
    taxes = [
        tax_line("11", 135, 9, 1500),
        tax_line("12", 135, 9, 1500),
        tax_line("13", 5, 2.5, 200),
        tax_line("14", 5, 2.5, 200),
    ]
    customer = map_customer(india_customer())
    invoice = map_invoice(india_invoice(lines, taxes, 1980), IN_RATES, customer)
    assert (invoice.cgst, invoice.sgst, invoice.igst, invoice.other_tax) == (
        D("140.00"),
        D("140.00"),
        D("0"),
        D("0"),
    )
    assert [(line.cgst, line.sgst, line.tax_rate) for line in invoice.lines] == [
        (D("90.00"), D("90.00"), D("18")),
        (D("45.00"), D("45.00"), D("18")),
        (D("5.00"), D("5.00"), D("5")),
    ]
    assert (invoice.place_of_supply, invoice.gst_treatment) == ("27", "registered_regular")
    assert (invoice.taxable_amount, invoice.tax_total, invoice.total) == (
        D("1700.00"),
        D("280.00"),
        D("1980.00"),
    )
    assert_adds_up(invoice)


def test_inter_state_igst_is_shared_in_whole_paise_that_add_up_exactly():
    lines = [sales_line(1, 100.01, "7"), sales_line(2, 200.02, "7"), sales_line(3, 33.33, "7")]
    invoice = map_invoice(
        india_invoice(lines, [tax_line("15", 60.0, 18, 333.36)], 393.36), IN_RATES
    )
    assert invoice.igst == D("60.00") and invoice.cgst == invoice.sgst == 0
    shares = [line.igst for line in invoice.lines]
    assert sum(shares) == D("60.00")
    exact = [
        D("100.01") * 60 / D("333.36"),
        D("200.02") * 60 / D("333.36"),
        D("33.33") * 60 / D("333.36"),
    ]
    assert all(abs(share - value) < D("0.01") for share, value in zip(shares, exact, strict=True))
    assert_adds_up(invoice)


def test_cess_is_its_own_head():
    lines = [sales_line(1, 1000, "8")]
    taxes = [tax_line("15", 280, 28, 1000), tax_line("16", 120, 12, 1000)]
    invoice = map_invoice(india_invoice(lines, taxes, 1400), IN_RATES)
    assert (invoice.igst, invoice.cess, invoice.lines[0].tax_rate) == (D(280), D(120), D(40))


def test_a_discount_before_tax_is_spread_over_the_lines_it_lowers():
    lines = [sales_line(1, 1000, "5"), sales_line(2, 500, "5")]
    discount = {
        "Amount": 150,
        "DetailType": "DiscountLineDetail",
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
    }
    taxes = [tax_line("11", 121.5, 9, 1350), tax_line("12", 121.5, 9, 1350)]
    record = india_invoice([*lines, discount], taxes, 1593, ApplyTaxAfterDiscount=True)
    invoice = map_invoice(record, IN_RATES)
    assert [(line.discount, line.taxable_amount, line.cgst) for line in invoice.lines] == [
        (D("100.00"), D("900.00"), D("81.00")),
        (D("50.00"), D("450.00"), D("40.50")),
    ]
    assert (invoice.subtotal, invoice.discount_total, invoice.taxable_amount) == (
        D("1500.00"),
        D("150.00"),
        D("1350.00"),
    )
    assert invoice.adjustment == 0
    assert_adds_up(invoice)


def test_group_lines_are_flattened_and_description_lines_skipped():
    bundle = {
        "Id": "2",
        "Amount": 300,
        "DetailType": "GroupLineDetail",
        "GroupLineDetail": {
            "GroupItemRef": {"value": "40", "name": "Kit"},
            "Quantity": 1,
            "Line": [sales_line(21, 100, "5"), sales_line(22, 200, "5")],
        },
    }
    note = {"Id": "3", "Description": "Thank you", "DetailType": "DescriptionOnly"}
    taxes = [tax_line("15", 72, 18, 400)]
    record = india_invoice([sales_line(1, 100, "5"), bundle, note], taxes, 472)
    invoice = map_invoice(record, IN_RATES)
    assert [(line.line_number, line.external_id) for line in invoice.lines] == [
        (1, "1"),
        (2, "21"),
        (3, "22"),
    ]
    assert [line.igst for line in invoice.lines] == [D(18), D(18), D(36)]
    assert invoice.lines[1].raw is bundle["GroupLineDetail"]["Line"][0]
    assert_adds_up(invoice)


def test_place_of_supply_without_the_customer_comes_from_the_ship_to_state_of_a_gst_invoice():
    record = india_invoice([sales_line(1, 100, "5")], [tax_line("15", 18, 18, 100)], 118)
    record["ShipAddr"] = {"City": "Bengaluru", "CountrySubDivisionCode": "KA"}
    assert map_invoice(record, IN_RATES).place_of_supply == "29"
    # Without GST heads (the rates unknown: other_tax) an address is no place of supply.
    assert map_invoice(record, {}).place_of_supply is None


def test_a_tax_rate_the_hub_does_not_know_is_other_tax_never_refused():
    record = india_invoice([sales_line(1, 100, "5")], [tax_line("99", 18, 18, 100)], 118)
    invoice = map_invoice(record, IN_RATES)
    assert (invoice.other_tax, invoice.igst, invoice.lines[0].other_tax) == (D(18), D(0), D(18))


def test_tax_without_tax_lines_is_other_tax_on_the_taxed_lines():
    record = india_invoice([sales_line(1, 60, "TAX"), sales_line(2, 40, "NON")], [], 110)
    record["TxnTaxDetail"] = {"TotalTax": 10}
    invoice = map_invoice(record, IN_RATES)
    assert invoice.other_tax == invoice.tax_total == D(10)
    assert [line.other_tax for line in invoice.lines] == [D(10), D(0)]
    assert invoice.lines[0].tax_rate is None  # a flat amount: no rate to state
    assert_adds_up(invoice)


# --- voids and refusals --------------------------------------------------------------------------


def voided(record: dict) -> dict:
    """What QuickBooks makes of a voided invoice: amounts zeroed, "Voided" in the private note."""
    record = copy.deepcopy(record)
    for line in record["Line"]:
        line["Amount"] = 0
        if "SalesItemLineDetail" in line:
            line["SalesItemLineDetail"]["Qty"] = 0
    record["TxnTaxDetail"] = {"TotalTax": 0}
    record.update(TotalAmt=0, Balance=0, PrivateNote="Voided")
    return record


@pytest.mark.real_fixtures
def test_a_voided_invoice_is_void_with_zero_amounts():
    record = voided(real_invoices()["130"])
    assert is_void(record)
    invoice = map_invoice(record, US_RATES)
    assert invoice.status == "void"
    assert invoice.total == invoice.tax_total == invoice.taxable_amount == 0
    assert len(invoice.lines) == 3 and all(line.line_total == 0 for line in invoice.lines)
    assert_adds_up(invoice)
    # A zero total without the note is an ordinary (open) invoice; a note alone voids nothing.
    record["PrivateNote"] = "no charge"
    assert not is_void(record) and invoice_status(record) == "open"
    assert not is_void({**real_invoices()["130"], "PrivateNote": "Voided"})


def test_a_missing_customer_or_line_list_is_refused_naming_the_field():
    record = india_invoice([sales_line(1, 100, "5")], [], 100)
    with pytest.raises(MappingError, match="CustomerRef"):
        map_invoice({k: v for k, v in record.items() if k != "CustomerRef"}, {})
    with pytest.raises(MappingError, match="^Line"):
        map_invoice({k: v for k, v in record.items() if k != "Line"}, {})
    with pytest.raises(MappingError, match="TotalAmt"):
        map_invoice({k: v for k, v in record.items() if k != "TotalAmt"}, {})


def test_a_bad_line_is_refused_naming_the_line_and_field():
    bad_amount = sales_line(1, 100, "5")
    bad_amount["Amount"] = "lots"
    with pytest.raises(MappingError, match=r"Line\[0\]\.Amount: not a number"):
        map_invoice(india_invoice([bad_amount], [], 100), {})
    odd = {"Amount": 5, "DetailType": "SomethingNewLineDetail"}
    with pytest.raises(MappingError, match=r"Line\[1\]\.DetailType: unknown line type"):
        map_invoice(india_invoice([sales_line(1, 100, "5"), odd], [], 105), {})


def test_invoice_takes_gst_treatment_only_from_a_customer_that_has_one():
    record = india_invoice([sales_line(1, 100, "5")], [], 100)
    us = Customer(external_id="58", name="US", raw={})
    assert map_invoice(record, {}, us).gst_treatment is None
    assert map_invoice(record, {}, map_customer(india_customer())).gst_treatment == (
        "registered_regular"
    )


# --- allocation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "weights", "parts"),
    [
        ("0.10", ["1", "1", "1"], ["0.04", "0.03", "0.03"]),
        ("10.00", ["1", "2", "3"], ["1.67", "3.33", "5.00"]),
        ("-0.05", ["1", "1"], ["-0.03", "-0.02"]),
        ("0.03", ["0", "0", "0"], ["0.01", "0.01", "0.01"]),
        ("1.00", [], []),
        ("-1.50", ["3"], ["-1.50"]),  # one line takes all of it
        ("2.00", ["0"], ["2.00"]),
    ],
)
def test_allocate_splits_in_whole_paise_that_add_up(amount, weights, parts):
    result = allocate(D(amount), [D(w) for w in weights])
    assert result == [D(p) for p in parts]
    if weights:
        assert sum(result) == D(amount)
