"""Every Tally mapping rule on small hand-written objects: reserved names behind renamed groups and
voucher types, tax heads in both spellings, round-off, balance, cancelled / optional / post-dated
vouchers, forex amounts, and the ERP 9 and TallyPrime ledger shapes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hub_pipelines.connectors.base import MappingError
from hub_pipelines.connectors.xml import objects
from hub_pipelines.tally.mapping import Masters, customer, invoice, is_invoice, parse_amount

D = Decimal
IST = timezone(timedelta(hours=5, minutes=30))


def element(xml: str):
    """The document's root element, read by the tolerant reader (so `&#4;` and raw control
    bytes are allowed); it stays whole because the reader is not asked for another."""
    tag = xml.lstrip()[1:].split(">", 1)[0].split()[0]
    return next(objects(xml.encode("utf-8"), (tag,)))


def masters_of(*xml: str) -> Masters:
    masters = Masters()
    for one in xml:
        masters.add(element(one))
    return masters


def group(name: str, parent: str = "&#4; Primary", reserved: str = "") -> str:
    return f'<GROUP NAME="{name}" RESERVEDNAME="{reserved}"><PARENT>{parent}</PARENT></GROUP>'


def voucher_type(name: str, parent: str, reserved: str = "") -> str:
    attributes = f'NAME="{name}" RESERVEDNAME="{reserved}"'
    return f"<VOUCHERTYPE {attributes}><PARENT>{parent}</PARENT></VOUCHERTYPE>"


def ledger(name: str, parent: str, *fields: str, guid: str | None = None) -> str:
    return (
        f'<LEDGER NAME="{name}" RESERVEDNAME=""><GUID>{guid or "g-" + name}</GUID>'
        f"<PARENT>{parent}</PARENT>{''.join(fields)}</LEDGER>"
    )


def entry(name: str, amount: str, *extra: str, party: bool = False) -> str:
    flag = "<ISPARTYLEDGER>Yes</ISPARTYLEDGER>" if party else ""
    return (
        f"<LEDGERENTRIES.LIST><LEDGERNAME>{name}</LEDGERNAME>{flag}{''.join(extra)}"
        f"<AMOUNT>{amount}</AMOUNT></LEDGERENTRIES.LIST>"
    )


def item(name: str, amount: str, qty: str, rate: str, *rates: tuple[str, str]) -> str:
    details = "".join(
        f"<RATEDETAILS.LIST><GSTRATEDUTYHEAD>{head}</GSTRATEDUTYHEAD><GSTRATE> {r}</GSTRATE>"
        "</RATEDETAILS.LIST>"
        for head, r in rates
    )
    return (
        f"<ALLINVENTORYENTRIES.LIST><STOCKITEMNAME>{name}</STOCKITEMNAME><RATE>{rate}</RATE>"
        f"<AMOUNT>{amount}</AMOUNT><BILLEDQTY>{qty}</BILLEDQTY><ACCOUNTINGALLOCATIONS.LIST>"
        f"<LEDGERNAME>Sales</LEDGERNAME><AMOUNT>{amount}</AMOUNT></ACCOUNTINGALLOCATIONS.LIST>"
        f"{details}</ALLINVENTORYENTRIES.LIST>"
    )


def voucher(*children: str, kind: str = "Sales", party: str = "Acme", flags: str = "") -> str:
    return (
        f'<VOUCHER VCHTYPE="{kind}"><DATE>20250308</DATE><GUID>v-1</GUID>'
        f"<VOUCHERTYPENAME>{kind}</VOUCHERTYPENAME><PARTYLEDGERNAME>{party}</PARTYLEDGERNAME>"
        f"<VOUCHERNUMBER>UP3/24-25/1319</VOUCHERNUMBER>{flags}{''.join(children)}</VOUCHER>"
    )


def add_up(record) -> None:
    heads = record.cgst + record.sgst + record.igst + record.cess + record.other_tax
    assert record.tax_total == heads
    assert record.total == record.taxable_amount + record.tax_total + record.round_off + (
        record.adjustment
    )
    for head in ("cgst", "sgst", "igst", "cess"):
        assert sum((getattr(line, head) for line in record.lines), D(0)) == getattr(record, head)


# --- masters ----------------------------------------------------------------------------------

RENAMED_GROUPS = (
    group("Current Assets", reserved="Current Assets"),
    group("Customers", "Current Assets", reserved="Sundry Debtors"),  # renamed reserved group
    group("Export Customers", "Customers"),
    group("Sundry Debtors", "Current Assets"),  # a user group that only bears the name
    group("Sundry Creditors", "Current Liabilities", reserved="Sundry Creditors"),
    group("Loop", "Loop"),
)


def test_debtor_groups_by_reserved_name_through_renames_and_subgroups():
    masters = masters_of(*RENAMED_GROUPS)
    assert masters.is_debtor_group("Customers")
    assert masters.is_debtor_group("Export Customers")
    assert not masters.is_debtor_group("Sundry Debtors")  # the display name alone is not it
    assert not masters.is_debtor_group("Sundry Creditors")
    assert not masters.is_debtor_group("Loop") and not masters.is_debtor_group(None)


def test_without_group_masters_the_name_sundry_debtors_counts():
    masters = Masters()
    assert masters.is_debtor_group("Sundry Debtors")
    assert not masters.is_debtor_group("Customers")


@pytest.mark.parametrize("marker", ["&#4; Primary", "; Primary", "4 Primary", "\x04 Primary", ""])
def test_primary_in_every_mangled_spelling_is_the_top(marker):
    masters = masters_of(group("Sundry Debtors", marker, reserved="Sundry Debtors"))
    assert masters.groups["Sundry Debtors"].parent is None
    assert masters.is_debtor_group("Sundry Debtors")


def test_sales_types_by_reserved_name():
    masters = masters_of(
        voucher_type("Sales", "Sales", reserved="Sales"),
        voucher_type("GST Sale Invoice", "&#4; Primary", reserved="Sales"),  # renamed
        voucher_type("Export Invoice", "GST Sale Invoice"),  # a type of one's own under it
        voucher_type("Purchase", "Purchase", reserved="Purchase"),
        voucher_type("Credit Note", "Credit Note", reserved="Credit Note"),
    )
    assert masters.is_sales_type("GST Sale Invoice")
    assert masters.is_sales_type("Export Invoice")
    assert not masters.is_sales_type("Purchase") and not masters.is_sales_type("Credit Note")
    assert Masters().is_sales_type("Sales") and not Masters().is_sales_type("GST Sale Invoice")


def test_objects_repeat_and_collections_name_them_by_child():
    masters = masters_of(
        ledger("Acme", "Sundry Debtors", guid="g-1"),
        ledger("Acme", "Sundry Debtors", guid="g-1"),
        "<LEDGER><NAME>Globex</NAME><GUID>g-2</GUID><PARENT>Sundry Debtors</PARENT></LEDGER>",
    )
    assert set(masters.ledgers) == {"Acme", "Globex"}
    assert masters.ledger_guid("Globex") == "g-2" and masters.ledger_guid("Nobody") is None


@pytest.mark.parametrize(
    ("duty", "head"),
    [
        ("CGST", "cgst"),
        ("SGST/UTGST", "sgst"),
        ("IGST", "igst"),
        ("Cess", "cess"),
        ("Central Tax", "cgst"),
        ("State Tax", "sgst"),
        ("Integrated Tax", "igst"),
    ],
)
def test_tax_heads_in_both_spellings(duty, head):
    masters = masters_of(
        ledger("Output Tax A", "Duties &amp; Taxes", f"<GSTDUTYHEAD>{duty}</GSTDUTYHEAD>")
    )
    assert masters.tax_head("Output Tax A") == head


def test_tax_head_by_name_only_when_the_masters_do_not_say():
    masters = masters_of(
        ledger("CGST Payable", "Current Liabilities", "<TAXTYPE>Others</TAXTYPE>"),
        ledger("Output SGST", "Duties &amp; Taxes", "<TAXTYPE>GST</TAXTYPE>"),
        ledger("Freight", "Indirect Incomes", "<GSTDUTYHEAD>&#4; Not Applicable</GSTDUTYHEAD>"),
    )
    assert masters.tax_head("CGST Payable") is None  # known, and not a duty ledger
    assert masters.tax_head("Output SGST") == "sgst"  # a GST ledger without a duty head
    assert masters.tax_head("Freight") is None
    assert masters.tax_head("Output IGST") == "igst"  # unknown: by name
    assert masters.tax_head("Integrated Tax @18%") == "igst"


def test_currencies_from_masters():
    masters = masters_of(
        '<CURRENCY NAME="\u20b9"><MAILINGNAME>INR</MAILINGNAME></CURRENCY>',
        '<CURRENCY NAME="$"><MAILINGNAME>AUD</MAILINGNAME><EXPANDEDSYMBOL>AUD</EXPANDEDSYMBOL>'
        "</CURRENCY>",
        '<CURRENCY NAME="AED"><MAILINGNAME>UAE Dirham</MAILINGNAME></CURRENCY>',
        '<CURRENCY NAME="?"><MAILINGNAME>INR</MAILINGNAME></CURRENCY>',
        '<CURRENCY NAME="?"><MAILINGNAME>USD</MAILINGNAME></CURRENCY>',  # ASCII: clashes
    )
    assert masters.currency_code("$") == "AUD"
    assert masters.currency_code("AED") == "AED"
    assert masters.currency_code("\u20b9") == "INR" and masters.base_currency == "INR"
    assert masters.currency_code("?") is None
    assert Masters().currency_code("$") is None and Masters().currency_code("\u20b9") == "INR"


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base", "foreign", "symbol", "rate"),
    [
        ("-48091.00", "-48091.00", None, None, None),
        (" 7335.90", "7335.90", None, None, None),
        ("-$448.44 @ \u20b9 82.99/$ = -\u20b9 37216.04", "-37216.04", "-448.44", "$", "82.99"),
        ("-$448.44@\u20b982.99/$=-\u20b937216.04", "-37216.04", "-448.44", "$", "82.99"),
        ("?448.44 @ ? 82.99/? = ? 37216.04", "37216.04", "448.44", "?", "82.99"),
        (
            "-1,000.00 AED @ \u20b9 22.50/AED = -\u20b9 22,500.00",
            "-22500.00",
            "-1000.00",
            "AED",
            "22.50",
        ),
    ],
)
def test_amounts_plain_and_forex(text, base, foreign, symbol, rate):
    amount = parse_amount(text, "AMOUNT")
    assert amount.base == D(base)
    assert amount.foreign == (D(foreign) if foreign else None)
    assert (amount.symbol, amount.rate) == (symbol, D(rate) if rate else None)


def test_a_bad_amount_names_its_field():
    with pytest.raises(MappingError, match="AMOUNT: not an amount"):
        parse_amount("n/a", "AMOUNT")


# --- invoices ---------------------------------------------------------------------------------

# The fact sheet's real TallyPrime voucher (inter-state, IGST 18 %), with its masters.
REAL_MASTERS = (
    voucher_type("GST Sale Invoice", "&#4; Primary", reserved="Sales"),
    ledger("L Artisan Products", "Sundry Debtors", guid="acbf-057b"),
    ledger("IGST", "GST", "<GSTDUTYHEAD>IGST</GSTDUTYHEAD><TAXTYPE>GST</TAXTYPE>"),
    ledger("Round Off", "Indirect Expenses", "<ROUNDINGMETHOD>Normal Rounding</ROUNDINGMETHOD>"),
)
REAL_VOUCHER = """
<VOUCHER REMOTEID="v-1" VCHTYPE="GST Sale Invoice" ACTION="Create">
 <DATE>20250308</DATE><GUID>v-1</GUID><STATENAME>Haryana</STATENAME>
 <PARTYGSTIN>06AFAPM5726L1ZB</PARTYGSTIN><PLACEOFSUPPLY>Haryana</PLACEOFSUPPLY>
 <CMPGSTSTATE>Uttar Pradesh</CMPGSTSTATE><VOUCHERTYPENAME>GST Sale Invoice</VOUCHERTYPENAME>
 <PARTYLEDGERNAME>L Artisan Products</PARTYLEDGERNAME><VOUCHERNUMBER>UP3/24-25/1319</VOUCHERNUMBER>
 <ISCANCELLED>No</ISCANCELLED><ISOPTIONAL>No</ISOPTIONAL><ALTERID> 22062</ALTERID>
 <UPDATEDDATETIME>20250308184233000</UPDATEDDATETIME>
 <ALLINVENTORYENTRIES.LIST>
  <BASICUSERDESCRIPTION.LIST TYPE="String"><BASICUSERDESCRIPTION>Color: Honey</BASICUSERDESCRIPTION>
  </BASICUSERDESCRIPTION.LIST>
  <STOCKITEMNAME>TPR Sole UPI-0014</STOCKITEMNAME><GSTHSNNAME>64062000</GSTHSNNAME>
  <RATE>57.00/Pair</RATE><AMOUNT>38190.00</AMOUNT><BILLEDQTY> 670 Pair</BILLEDQTY>
  <ACCOUNTINGALLOCATIONS.LIST><LEDGERNAME>Interstate Sale (IGST) @18%</LEDGERNAME>
   <AMOUNT>38190.00</AMOUNT></ACCOUNTINGALLOCATIONS.LIST>
  <RATEDETAILS.LIST><GSTRATEDUTYHEAD>CGST</GSTRATEDUTYHEAD><GSTRATE> 9</GSTRATE></RATEDETAILS.LIST>
  <RATEDETAILS.LIST><GSTRATEDUTYHEAD>SGST/UTGST</GSTRATEDUTYHEAD><GSTRATE> 9</GSTRATE>
  </RATEDETAILS.LIST>
  <RATEDETAILS.LIST><GSTRATEDUTYHEAD>IGST</GSTRATEDUTYHEAD><GSTRATE> 18</GSTRATE></RATEDETAILS.LIST>
  <RATEDETAILS.LIST><GSTRATEDUTYHEAD>Cess</GSTRATEDUTYHEAD></RATEDETAILS.LIST>
  <BATCHALLOCATIONS.LIST><GODOWNNAME>Finished  Goods Location</GODOWNNAME>
   <UDF:PKT.LIST DESC="`Pkt`" ISLIST="YES" TYPE="Number" INDEX="1007"><UDF:PKT DESC="`Pkt`"> 1</UDF:PKT>
   </UDF:PKT.LIST></BATCHALLOCATIONS.LIST>
 </ALLINVENTORYENTRIES.LIST>
 <ALLINVENTORYENTRIES.LIST>
  <STOCKITEMNAME>TPR Sole UPI-0015</STOCKITEMNAME><RATE>57.00/Pair</RATE><AMOUNT>2565.00</AMOUNT>
  <BILLEDQTY> 45 Pair</BILLEDQTY>
  <ACCOUNTINGALLOCATIONS.LIST><LEDGERNAME>Interstate Sale (IGST) @18%</LEDGERNAME>
   <AMOUNT>2565.00</AMOUNT></ACCOUNTINGALLOCATIONS.LIST>
  <RATEDETAILS.LIST><GSTRATEDUTYHEAD>IGST</GSTRATEDUTYHEAD><GSTRATE> 18</GSTRATE></RATEDETAILS.LIST>
 </ALLINVENTORYENTRIES.LIST>
 <LEDGERENTRIES.LIST><LEDGERNAME>L Artisan Products</LEDGERNAME><ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE>
  <ISPARTYLEDGER>Yes</ISPARTYLEDGER><AMOUNT>-48091.00</AMOUNT>
  <BILLALLOCATIONS.LIST><NAME>UP3/24-25/1319</NAME>
   <BILLCREDITPERIOD JD="45723" P="60 Days">60 Days</BILLCREDITPERIOD><BILLTYPE>New Ref</BILLTYPE>
   <AMOUNT>-48091.00</AMOUNT></BILLALLOCATIONS.LIST></LEDGERENTRIES.LIST>
 <LEDGERENTRIES.LIST><LEDGERNAME>IGST</LEDGERNAME><AMOUNT>7335.90</AMOUNT></LEDGERENTRIES.LIST>
 <LEDGERENTRIES.LIST><ROUNDTYPE>Normal Rounding</ROUNDTYPE><LEDGERNAME>Round Off</LEDGERNAME>
  <AMOUNT>0.10</AMOUNT></LEDGERENTRIES.LIST>
</VOUCHER>"""  # the fact sheet's excerpt (section 3), the second line written out


def test_the_real_tallyprime_voucher():
    masters = masters_of(*REAL_MASTERS)
    sale = element(REAL_VOUCHER)
    assert is_invoice(sale, masters)
    mapped = invoice(sale, masters)
    assert (mapped.external_id, mapped.invoice_number, mapped.status) == (
        "v-1",
        "UP3/24-25/1319",
        "open",
    )
    assert (mapped.customer_external_id, mapped.customer_name) == (
        "acbf-057b",
        "L Artisan Products",
    )
    assert (mapped.issue_date, mapped.due_date) == (date(2025, 3, 8), date(2025, 5, 7))
    assert mapped.taxable_amount == mapped.subtotal == D("40755.00")
    assert (mapped.cgst, mapped.sgst, mapped.igst) == (0, 0, D("7335.90"))
    assert (mapped.round_off, mapped.adjustment, mapped.total) == (D("0.10"), 0, D("48091.00"))
    assert mapped.balance_due == mapped.total and mapped.currency == "INR"
    assert mapped.place_of_supply == "06"
    assert mapped.source_updated_at == datetime(2025, 3, 8, 18, 42, 33, tzinfo=IST)
    first, second = mapped.lines
    assert (first.item_name, first.hsn_sac, first.description) == (
        "TPR Sole UPI-0014",
        "64062000",
        "Color: Honey",
    )
    assert (first.quantity, first.unit, first.rate, first.tax_rate) == (670, "Pair", 57, 18)
    assert (first.igst, second.igst) == (D("6874.20"), D("461.70"))  # 18 % of each
    assert first.line_total == D("45064.20")
    assert first.raw["BATCHALLOCATIONS.LIST"]["UDF:PKT.LIST"]["UDF:PKT"]["#text"] == " 1"
    add_up(mapped)


def test_without_masters_the_party_is_unknown_but_named():
    mapped = invoice(element(REAL_VOUCHER), Masters())
    assert mapped.customer_external_id is None
    assert mapped.customer_name == "L Artisan Products"
    assert mapped.igst == D("7335.90") and mapped.round_off == D("0.10")  # names and ROUNDTYPE


def test_intra_state_tax_shared_over_lines_and_reconciled_to_the_ledgers():
    sale = voucher(
        item("Shirt", "1000.00", " 1 Nos", "1000.00/Nos", ("Central Tax", "9"), ("State Tax", "9")),
        item(
            "Socks", "500.00", " 5 Nos", "100.00/Nos", ("Central Tax", "2.5"), ("State Tax", "2.5")
        ),
        entry("Acme", "-1705.00", party=True),
        entry("Output CGST", "102.51"),  # a paisa more than the lines' 90.00 + 12.50
        entry("Output SGST", "102.49"),
    )
    mapped = invoice(element(sale), Masters())
    assert (mapped.cgst, mapped.sgst, mapped.igst) == (D("102.51"), D("102.49"), 0)
    assert [line.tax_rate for line in mapped.lines] == [18, 5]
    assert [line.cgst for line in mapped.lines] == [D("90.01"), D("12.50")]
    add_up(mapped)


def test_accounting_mode_lines_are_the_credits_to_sales_ledgers():
    masters = masters_of(
        group("Sales Accounts", reserved="Sales Accounts"),
        group("Services", "Sales Accounts"),
        ledger("Consulting", "Services"),
        ledger("Freight Charged", "Indirect Incomes"),
    )
    sale = voucher(
        entry("Acme", "-1280.00", party=True).replace("LEDGERENTRIES", "ALLLEDGERENTRIES"),
        entry("Consulting", "1000.00").replace("LEDGERENTRIES", "ALLLEDGERENTRIES"),
        entry("Freight Charged", "100.00").replace("LEDGERENTRIES", "ALLLEDGERENTRIES"),
        entry("IGST", "180.00").replace("LEDGERENTRIES", "ALLLEDGERENTRIES"),
    )
    mapped = invoice(element(sale), masters)
    assert [(line.item_name, line.taxable_amount, line.igst) for line in mapped.lines] == [
        ("Consulting", D("1000.00"), D("180.00"))
    ]
    assert mapped.taxable_amount == D("1000.00") and mapped.adjustment == D("100.00")
    add_up(mapped)


def test_a_discount_apportioned_to_the_items_lowers_the_taxable_value():
    discounted = item(
        "Paste", "1520.00", " 19 Nos", "80.00/Nos", ("Central Tax", "2.5"), ("State Tax", "2.5")
    ).replace(
        "</ALLINVENTORYENTRIES.LIST>",
        "<EXPENSEALLOCATIONS.LIST><LEDGERNAME>Discount</LEDGERNAME></EXPENSEALLOCATIONS.LIST>"
        "</ALLINVENTORYENTRIES.LIST>",
    )
    sale = voucher(
        discounted,
        entry("Acme", "-1548.00", party=True),
        entry("Output CGST", "36.86"),
        entry("Output SGST", "36.86"),
        entry("Discount", "-45.60"),
        entry("Other Charges", "-0.12"),  # not apportioned: outside the taxable value
    )
    mapped = invoice(element(sale), Masters())
    assert (mapped.subtotal, mapped.discount_total) == (D("1520.00"), D("45.60"))
    assert mapped.taxable_amount == D("1474.40") and mapped.adjustment == D("-0.12")
    add_up(mapped)


def test_round_off_from_the_entry_or_the_ledger_master():
    masters = masters_of(
        ledger("Rounding", "Indirect Expenses", "<ROUNDINGMETHOD>Upward Rounding</ROUNDINGMETHOD>"),
        ledger("Misc", "Indirect Expenses", "<ROUNDINGMETHOD>&#4; Not Applicable</ROUNDINGMETHOD>"),
    )
    sale = voucher(
        item("Shirt", "99.70", " 1 Nos", "99.70/Nos"),
        entry("Acme", "-100.00", party=True),
        entry("Rounding", "0.20"),
        entry("Adjust", "0.05", "<ROUNDTYPE>Normal Rounding</ROUNDTYPE>"),
        entry("Misc", "0.05"),
    )
    mapped = invoice(element(sale), masters)
    assert (mapped.round_off, mapped.adjustment) == (D("0.25"), D("0.05"))
    add_up(mapped)


def test_an_unbalanced_voucher_is_refused_naming_the_difference():
    sale = voucher(
        item("Shirt", "1000.00", " 1 Nos", "1000.00/Nos"),
        entry("Acme", "-1180.00", party=True),
        entry("IGST", "179.00"),
    )
    with pytest.raises(MappingError, match=r"voucher does not balance: .*-1.00 off zero"):
        invoice(element(sale), Masters())


def test_a_voucher_without_a_party_line_is_refused():
    sale = voucher(entry("Cash", "-10.00"), entry("Sales", "10.00"))
    with pytest.raises(MappingError, match="party line"):
        invoice(element(sale), Masters())


def test_a_cancelled_voucher_without_lines_is_void():
    sale = voucher(flags="<ISCANCELLED>Yes</ISCANCELLED><ISOPTIONAL>No</ISOPTIONAL>")
    assert is_invoice(element(sale), Masters())
    mapped = invoice(element(sale), Masters())
    assert (mapped.status, mapped.lines, mapped.total, mapped.balance_due) == ("void", [], 0, 0)
    assert mapped.customer_name == "Acme" and mapped.invoice_number == "UP3/24-25/1319"


def test_optional_vouchers_and_other_types_are_not_invoices():
    lines = (entry("Acme", "-1.00", party=True), entry("Sales", "1.00"))
    optional = element(voucher(*lines, flags="<ISOPTIONAL>Yes</ISOPTIONAL>"))
    assert not is_invoice(optional, Masters())
    with pytest.raises(MappingError, match="ISOPTIONAL"):
        invoice(optional, Masters())
    assert not is_invoice(element(voucher(kind="Credit Note")), Masters())
    assert not is_invoice(element(voucher(kind="Purchase")), Masters())


def test_a_post_dated_voucher_is_an_open_invoice_with_its_future_date():
    sale = voucher(
        entry("Acme", "-100.00", party=True),
        entry("Sales", "100.00", "<GSTOVRDNNATURE>Sales Taxable</GSTOVRDNNATURE>"),
        flags="<ISPOSTDATED>Yes</ISPOSTDATED>",
    ).replace("20250308", "20990101")
    mapped = invoice(element(sale), Masters())
    assert (mapped.status, mapped.issue_date, mapped.balance_due) == (
        "open",
        date(2099, 1, 1),
        D("100.00"),
    )


FOREX = voucher(
    item("Sole", "$448.44 @ \u20b9 82.99/$ = \u20b9 37216.04", " 100 Pair", "$4.48/Pair"),
    entry("Globex", "-$448.44 @ \u20b9 82.99/$ = -\u20b9 37216.04", party=True),
    party="Globex",
)


def test_forex_amounts_in_the_invoice_currency():
    masters = masters_of('<CURRENCY NAME="$"><EXPANDEDSYMBOL>USD</EXPANDEDSYMBOL></CURRENCY>')
    mapped = invoice(element(FOREX), masters)
    assert (mapped.currency, mapped.exchange_rate) == ("USD", D("82.99"))
    assert mapped.total == mapped.taxable_amount == mapped.lines[0].taxable_amount == D("448.44")
    assert mapped.lines[0].rate == D("4.48")
    add_up(mapped)


def test_an_ascii_export_symbol_needs_masters_that_tell_it_apart():
    ascii_sale = FOREX.replace("$", "?").replace("\u20b9", "?")
    usd = masters_of('<CURRENCY NAME="?"><MAILINGNAME>USD</MAILINGNAME></CURRENCY>')
    assert invoice(element(ascii_sale), usd).currency == "USD"
    with pytest.raises(MappingError, match=r"currency: the symbol '\$'"):
        invoice(element(FOREX), Masters())


# --- customers --------------------------------------------------------------------------------

ERP9_LEDGER = ledger(
    "John Smith",
    "Sundry Debtors",
    '<ADDRESS.LIST TYPE="String"><ADDRESS>Thattekatt House</ADDRESS><ADDRESS>Calicut</ADDRESS>'
    "</ADDRESS.LIST><MAILINGNAME.LIST><MAILINGNAME>J. Smith</MAILINGNAME></MAILINGNAME.LIST>"
    "<CURRENCYNAME>\u20b9</CURRENCYNAME><PINCODE>673585</PINCODE>"
    "<INCOMETAXNUMBER>AAACV5492Q</INCOMETAXNUMBER><COUNTRYNAME>India</COUNTRYNAME>"
    "<GSTREGISTRATIONTYPE>Regular</GSTREGISTRATIONTYPE><LEDSTATENAME>Kerala</LEDSTATENAME>"
    "<PARTYGSTIN>32aaacv5492q1zr</PARTYGSTIN><SERVICECATEGORY>; Not Applicable</SERVICECATEGORY>"
    "<OPENINGBALANCE>-5000.00</OPENINGBALANCE><ALTEREDON>20240227</ALTEREDON>",
    guid="g-js",
)
PRIME_LEDGER = ledger(
    "L Artisan\x05 Products",
    "Sundry Debtors",
    "<INCOMETAXNUMBER>AFAPM5726L</INCOMETAXNUMBER><GSTTYPE>&#4; Not Applicable</GSTTYPE>"
    "<OPENINGBALANCE>-29292.00</OPENINGBALANCE><LEDGERMOBILE>98100 00000</LEDGERMOBILE>"
    "<LEDGERCOUNTRYISDCODE>+91</LEDGERCOUNTRYISDCODE>"
    "<LEDGSTREGDETAILS.LIST><APPLICABLEFROM>20170701</APPLICABLEFROM><GSTREGISTRATIONTYPE>"
    "Unregistered/Consumer</GSTREGISTRATIONTYPE><GSTIN></GSTIN></LEDGSTREGDETAILS.LIST>"
    "<LEDGSTREGDETAILS.LIST><APPLICABLEFROM>20220401</APPLICABLEFROM>"
    "<GSTREGISTRATIONTYPE>Regular</GSTREGISTRATIONTYPE><PLACEOFSUPPLY>Haryana</PLACEOFSUPPLY>"
    "<GSTIN>06AFAPM5726L1ZB</GSTIN></LEDGSTREGDETAILS.LIST>"
    '<LEDMAILINGDETAILS.LIST><ADDRESS.LIST TYPE="String"><ADDRESS>Plot No. 702, Pace City-II,'
    "</ADDRESS><ADDRESS>Sector-37</ADDRESS><ADDRESS>Gurgaon-122001</ADDRESS></ADDRESS.LIST>"
    "<PINCODE>122001</PINCODE><MAILINGNAME>L Artisan Products</MAILINGNAME>"
    "<STATE>Haryana</STATE><COUNTRY>India</COUNTRY></LEDMAILINGDETAILS.LIST>"
    "<UPDATEDDATETIME>20250301101500000</UPDATEDDATETIME>",
    guid="acbf-057b",
)


def test_an_erp9_ledger_with_flat_fields():
    mapped = customer(element(ERP9_LEDGER), Masters())
    assert (mapped.external_id, mapped.name, mapped.display_name) == (
        "g-js",
        "John Smith",
        "J. Smith",
    )
    assert (mapped.gstin, mapped.pan, mapped.gst_treatment) == (
        "32AAACV5492Q1ZR",
        "AAACV5492Q",
        "registered_regular",
    )
    assert (mapped.state_code, mapped.place_of_supply, mapped.billing_state) == (
        "32",
        "32",
        "Kerala",
    )
    assert (mapped.billing_line1, mapped.billing_line2) == ("Thattekatt House", "Calicut")
    assert (mapped.billing_postal_code, mapped.billing_country) == ("673585", "India")
    assert (mapped.currency, mapped.opening_balance, mapped.is_active) == (
        "INR",
        D("5000.00"),
        True,
    )
    assert mapped.source_updated_at == datetime(2024, 2, 27, tzinfo=IST)


def test_a_tallyprime_ledger_reads_its_last_registration_and_mailing_details():
    mapped = customer(element(PRIME_LEDGER), Masters())
    assert mapped.name == "L Artisan Products"  # the raw U+0005 is gone
    assert (mapped.gstin, mapped.gst_treatment, mapped.pan) == (
        "06AFAPM5726L1ZB",
        "registered_regular",
        "AFAPM5726L",
    )
    assert (mapped.state_code, mapped.place_of_supply) == ("06", "06")
    assert mapped.billing_line1 == "Plot No. 702, Pace City-II,"
    assert mapped.billing_line2 == "Sector-37, Gurgaon-122001"
    assert (mapped.billing_postal_code, mapped.phone) == ("122001", "+91 98100 00000")
    assert mapped.opening_balance == D("29292.00")
    assert mapped.source_updated_at == datetime(2025, 3, 1, 10, 15, tzinfo=IST)
    assert mapped.raw["LEDGSTREGDETAILS.LIST"][1]["GSTIN"] == "06AFAPM5726L1ZB"


@pytest.mark.parametrize(
    ("registration", "treatment"),
    [
        ("Unregistered/Consumer", "consumer"),
        ("Consumer", "consumer"),
        ("Unregistered", "unregistered_business"),
        ("Composition", "registered_composition"),
        ("Regular - SEZ", "sez"),
        ("", "unknown"),
    ],
)
def test_registration_types(registration, treatment):
    xml = ledger(
        "P", "Sundry Debtors", f"<GSTREGISTRATIONTYPE>{registration}</GSTREGISTRATIONTYPE>"
    )
    assert customer(element(xml), Masters()).gst_treatment == treatment


def test_a_ledger_without_guid_is_refused():
    with pytest.raises(MappingError, match="GUID: missing"):
        customer(element('<LEDGER NAME="X"><PARENT>Sundry Debtors</PARENT></LEDGER>'), Masters())
