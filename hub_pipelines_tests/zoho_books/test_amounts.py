"""Zoho Books amounts as the real API states them (issue 8, points 1–7 and 12).

Each case is one row of a table: an invoice the simulator produces the way a real organisation's
books do (tax-inclusive prices, rounding to the rupee, invoice-level discounts, shipping, IRN,
approvals, nil-rated and non-GST taxes, entity-level tax rounding), imported over loopback HTTP
through Dagster, and the warehouse row compared with what the Zoho JSON says, in this file's
own arithmetic. Pure mapping tables follow, then the simulator's own defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import dagster as dg
import httpx
import pytest

from hub_pipelines.analytics.assets import gst_sales_summary
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.tenants.models import ZohoBooksConfig
from hub_pipelines.zoho_books.connector import (
    ACCOUNTS_HOSTS,
    API_HOSTS,
    MappingError,
    map_invoice,
)
from hub_pipelines.zoho_books.simulator import REALISTIC_MIX, ZohoBooksSimulator
from hub_pipelines_tests.zoho_books.conftest import TENANT, checks, metadata

PAISA = Decimal("0.01")
INVOICE_COLUMNS = (
    "status", "subtotal", "discount_total", "taxable_amount", "cgst", "sgst", "igst", "cess",
    "other_tax", "tax_total", "round_off", "adjustment", "total", "balance_due", "irn",
)  # fmt: skip
LINE_COLUMNS = ("taxable_amount", "tax_rate", "cgst", "sgst", "igst", "cess", "other_tax")


def money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(PAISA)


def heads_of(taxes: list[dict]) -> dict[str, Decimal]:
    """A Zoho `taxes` summary by GST head, read from the names the simulator gives them."""
    found = dict.fromkeys(("cgst", "sgst", "igst", "other_tax"), Decimal("0.00"))
    for tax in taxes:
        name = tax["tax_name"].upper()
        head = next((h for h in ("cgst", "sgst", "igst") if name.startswith(h.upper())), None)
        if head or money(tax["tax_amount"]):
            found[head or "other_tax"] += money(tax["tax_amount"])
    return found


def line_tax(line: dict) -> Decimal:
    return sum((money(t["tax_amount"]) for t in line["line_item_taxes"]), Decimal("0.00"))


# --- through the simulator, over HTTP, through Dagster -----------------------------------------


def customers_by_kind(zoho) -> dict[str, str]:
    """Seed 42's customers: registered businesses in the seller's state (Karnataka) and
    elsewhere, and an overseas one."""
    sim = zoho.simulator
    sim.seed_generated(zoho.org_id, customers=30, invoices=0, seed=42)
    contacts = [sim.get_contact(zoho.org_id, cid) for cid in sim.contact_ids(zoho.org_id)]
    b2b = [c for c in contacts if c["gst_treatment"] == "business_gst"]
    return {
        "intra": next(c["contact_id"] for c in b2b if c["place_of_contact"] == "KA"),
        "inter": next(c["contact_id"] for c in b2b if c["place_of_contact"] != "KA"),
        "export": next(c["contact_id"] for c in contacts if c["gst_treatment"] == "overseas"),
    }


def warehouse_invoice(zoho, external_id: str) -> tuple[dict, list[dict]]:
    (row,) = zoho.query(
        f"SELECT {', '.join(INVOICE_COLUMNS)} FROM accounting.invoices "
        "WHERE tenant_id = %s AND external_id = %s",
        (TENANT, external_id),
    )
    lines = zoho.query(
        f"SELECT {', '.join(LINE_COLUMNS)} FROM accounting.invoice_lines "
        "WHERE tenant_id = %s AND invoice_external_id = %s ORDER BY line_number",
        (TENANT, external_id),
    )
    return dict(zip(INVOICE_COLUMNS, row, strict=True)), [
        dict(zip(LINE_COLUMNS, line, strict=True)) for line in lines
    ]


def tax_inclusive(detail: dict) -> dict:
    # Lines priced with GST in them: the taxable value is Zoho's own total_taxable_amount (every
    # line is taxed here), not the inclusive sub total; the tax is counted once.
    assert detail["is_inclusive_tax"] is True
    taxable = money(detail["total_taxable_amount"])  # with taxed shipping, if any
    gross = money(detail["sub_total_inclusive_of_tax"])
    gross += money(detail["shipping_charge_inclusive_of_tax"])
    assert taxable + money(detail["tax_total"]) == gross
    assert taxable < money(detail["sub_total"])  # what the mapping read before
    return {"taxable_amount": taxable, "tax_total": money(detail["tax_total"])}


def rounding_and_adjustment(detail: dict) -> dict:
    assert money(detail["roundoff_value"]) != 0  # this seed's total has paise
    return {
        "round_off": money(detail["roundoff_value"]),
        "adjustment": money(detail["adjustment"]),
        "taxable_amount": money(detail["sub_total"]),
    }


def discount_before_tax(detail: dict) -> dict:
    discount = money(detail["discount_total"])
    assert detail["discount_type"] == "entity_level" and discount > 0
    item_discounts = sum((money(line["discount_amount"]) for line in detail["line_items"]), 0)
    return {
        "taxable_amount": money(detail["sub_total"]) - discount,
        "discount_total": discount + item_discounts,  # the invoice's and the lines' own
        "subtotal": money(detail["sub_total"]),
        "adjustment": Decimal("0.00"),
    }


def discount_after_tax(detail: dict) -> dict:
    assert detail["is_discount_before_tax"] is False
    return {
        "taxable_amount": money(detail["sub_total"]),  # the discount does not reduce it
        "adjustment": -money(detail["discount_total"]),
    }


def shipping_untaxed(detail: dict) -> dict:
    assert detail["shipping_charge_taxes"] == []
    return {
        "taxable_amount": money(detail["sub_total"]),
        "adjustment": money(detail["shipping_charge"]),
    }


def shipping_taxed(detail: dict) -> dict:
    assert detail["shipping_charge_taxes"]
    return {
        "taxable_amount": money(detail["sub_total"]) + money(detail["shipping_charge"]),
        "adjustment": Decimal("0.00"),
        "tax_total": money(detail["tax_total"]),
    }


def e_invoiced(detail: dict) -> dict:
    irn = detail["einvoice_details"]["inv_ref_num"]
    assert len(irn) == 64 and "irn" not in detail
    return {"irn": irn}


def approval(status: str) -> Callable[[dict], dict]:
    return lambda detail: {"status": status, "balance_due": money(detail["total"])}


def nil_rated(detail: dict) -> dict:
    nil = detail["line_items"][-1]
    assert nil["tax_percentage"] == 0 and nil["line_item_taxes"][0]["tax_amount"] == 0
    assert any(t["tax_amount"] == 0 for t in detail["taxes"])  # a zero entry in the summary
    return {"taxable_amount": money(detail["sub_total"]), "tax_total": money(detail["tax_total"])}


def non_gst(detail: dict) -> dict:
    return {
        "other_tax": money(detail["tax_total"]),
        "cgst": Decimal("0.00"),
        "igst": Decimal("0.00"),
        "tax_total": money(detail["tax_total"]),
    }


def taxes_as_summarised(detail: dict) -> dict:
    # Entity-level rounding: each tax rounded once on the invoice, so the rounded line amounts
    # add up to a paisa more than Zoho's summary here; the invoice's heads are the summary's.
    assert detail["tax_rounding"] == "entity_level" and detail["tax_specification"] == "intra"
    lines = sum((line_tax(line) for line in detail["line_items"]), Decimal(0))
    assert lines != money(detail["tax_total"])
    return {**heads_of(detail["taxes"]), "tax_total": money(detail["tax_total"])}


def item_level_taxes(detail: dict) -> dict:
    assert detail["tax_rounding"] == "item_level"
    lines = detail["line_items"]
    assert money(detail["tax_total"]) == sum((line_tax(line) for line in lines), Decimal(0))
    return heads_of(detail["taxes"])


# (customer, add_invoice options, expected warehouse values from the Zoho JSON)
IMPORT_CASES = [
    pytest.param("intra", {"tax_inclusive": True}, tax_inclusive, id="1-inclusive-intra"),
    pytest.param(
        "inter", {"tax_inclusive": True, "seed": 3}, tax_inclusive, id="1-inclusive-inter"
    ),
    pytest.param(
        "intra",
        {"rounds_off": True, "adjustment": 250, "adjustment_description": "Handling charges"},
        rounding_and_adjustment,
        id="2-roundoff-and-adjustment",
    ),
    pytest.param("inter", {"rounds_off": True}, rounding_and_adjustment, id="2-roundoff-only"),
    pytest.param("intra", {"discount_percent": 10}, discount_before_tax, id="3-discount-before"),
    pytest.param(
        "inter",
        {"discount_percent": 5, "discount_before_tax": False},
        discount_after_tax,
        id="3-discount-after-tax",
    ),
    pytest.param("intra", {"shipping": 250}, shipping_untaxed, id="3-shipping-untaxed"),
    pytest.param(
        "intra", {"shipping": 500, "shipping_taxed": True}, shipping_taxed, id="3-shipping-taxed"
    ),
    pytest.param(
        "inter",
        {"shipping": 590, "shipping_taxed": True, "tax_inclusive": True},
        tax_inclusive,
        id="3-shipping-taxed-inclusive",
    ),
    pytest.param("inter", {"einvoiced": True}, e_invoiced, id="4-irn"),
    *[
        pytest.param("intra", {"status": s}, approval(s), id=f"5-{s}")
        for s in ("pending_approval", "approved", "rejected")
    ],
    pytest.param("intra", {"nil_rated": True}, nil_rated, id="6-nil-rated-zero-entry"),
    pytest.param(
        "export",
        {"non_gst_tax": "VAT", "non_gst_rate": 5},
        non_gst,
        id="6-non-gst-vat",
    ),
    pytest.param("intra", {"lines": 6, "seed": 17}, taxes_as_summarised, id="7-entity-level"),
    pytest.param(
        "inter", {"lines": 6, "tax_rounding": "item_level"}, item_level_taxes, id="7-item-level"
    ),
]


@pytest.mark.parametrize(("kind", "options", "expect"), IMPORT_CASES)
def test_imported_amounts_are_what_zoho_states(zoho, kind, options, expect):
    customer = customers_by_kind(zoho)[kind]
    options = {"seed": 1, "lines": 3, **options}
    invoice_id = zoho.simulator.add_invoice(zoho.org_id, customer_id=customer, **options)
    detail = zoho.simulator.get_invoice(zoho.org_id, invoice_id)
    expected = expect(detail)

    result = zoho.materialize()
    assert result.success
    assert metadata(result, "invoices")["records_failed"] == 0
    failed = {name: e.description for name, e in checks(result).items() if not e.passed}
    assert not failed

    row, lines = warehouse_invoice(zoho, invoice_id)
    assert {name: row[name] for name in expected} == expected
    assert row["total"] == money(detail["total"])
    # Totals add up, GST or not, and the lines carry the invoice's taxable value.
    assert row["total"] == (
        row["taxable_amount"] + row["tax_total"] + row["round_off"] + row["adjustment"]
    )
    heads = row["cgst"] + row["sgst"] + row["igst"] + row["cess"] + row["other_tax"]
    assert row["tax_total"] == heads
    shipped = (
        money(detail["shipping_charge_exclusive_of_tax"]) if detail["shipping_charge_taxes"] else 0
    )
    assert sum(line["taxable_amount"] for line in lines) + shipped == row["taxable_amount"]
    for line, source in zip(lines, detail["line_items"], strict=True):
        # a line's tax is on its own taxable value (its share of a discount before tax taken
        # off); tax-inclusive lines split into value and tax within a paisa of rounding
        if detail["is_inclusive_tax"]:
            value = line["taxable_amount"] + line_tax(source)
            assert abs(value - money(source["item_total_inclusive_of_tax"])) <= PAISA
        rate = Decimal(str(source["tax_percentage"]))
        if rate and not detail["is_inclusive_tax"]:
            assert abs(line_tax(source) - line["taxable_amount"] * rate / 100) <= PAISA


def test_a_realistic_organisation_imports_without_errors_and_every_check_passes(zoho):
    """Every case at once, as an organisation's year of books: tax-inclusive invoices,
    discounts, shipping, adjustments, approvals, nil-rated lines, IRNs and entity-level rounding."""
    zoho.simulator.seed_generated(
        zoho.org_id, customers=40, invoices=400, seed=5, mix=REALISTIC_MIX
    )
    details = [
        zoho.simulator.get_invoice(zoho.org_id, i) for i in zoho.simulator.invoice_ids(zoho.org_id)
    ]
    assert {d["status"] for d in details} >= {"pending_approval", "paid", "void"}
    assert any(d["is_inclusive_tax"] for d in details)
    assert any(d["discount_type"] == "entity_level" for d in details)
    assert any(d["shipping_charge_taxes"] for d in details)
    assert any(money(d["adjustment"]) for d in details)
    assert any("einvoice_details" in d for d in details)
    result = zoho.materialize()
    assert result.success
    assert metadata(result, "invoices")["records_failed"] == 0
    failed = {name: e.description for name, e in checks(result).items() if not e.passed}
    assert not failed
    warehouse = dict(zoho.query("SELECT external_id, total FROM accounting.invoices"))
    assert warehouse == {d["invoice_id"]: money(d["total"]) for d in details}
    statuses = {s for (s,) in zoho.query("SELECT DISTINCT status FROM accounting.invoices")}
    assert statuses >= {"pending_approval", "open", "paid", "void"}


def test_non_gst_tax_is_summed_apart_in_the_gst_summary(zoho):
    customer = customers_by_kind(zoho)["export"]
    zoho.simulator.add_invoice(
        zoho.org_id, customer_id=customer, non_gst_tax="VAT", non_gst_rate=5, seed=2
    )
    zoho.simulator.add_invoice(zoho.org_id, customer_id=customers_by_kind(zoho)["intra"], seed=4)
    assert zoho.materialize().success
    refreshed = dg.materialize(
        [gst_sales_summary],
        instance=zoho.instance,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    )
    assert refreshed.success
    summary = zoho.query(
        "SELECT supply_type, sum(other_tax), sum(tax_total), sum(cgst) "
        "FROM accounting.gst_sales_summary WHERE tenant_id = %s GROUP BY 1 ORDER BY 1",
        (TENANT,),
    )
    invoices = zoho.query(
        "SELECT sum(other_tax), sum(tax_total) FROM accounting.invoices WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    by_type = {kind: rest for kind, *rest in summary}
    assert by_type["no_gst"][0] == by_type["no_gst"][1] > 0  # the VAT invoice: no GST heads
    assert by_type["intra_state"][0] == 0 and by_type["intra_state"][2] > 0
    assert (sum(r[0] for r in by_type.values()), sum(r[1] for r in by_type.values())) == invoices


# --- mapping alone --------------------------------------------------------------------------

HEADS = {"t-igst18": "igst", "t-cgst9": "cgst", "t-sgst9": "sgst", "t-gst18": "group"}


def zoho_invoice(lines: list[dict], **fields) -> dict:
    return {
        "invoice_id": "9001",
        "customer_id": "c1",
        "status": "sent",
        "date": "2025-06-01",
        "line_items": lines,
        **fields,
    }


def line(total, rate=18, **fields) -> dict:
    return {"item_total": total, "tax_percentage": rate, "quantity": 1, "rate": total, **fields}


MAPPING_CASES = [
    pytest.param(
        # Inclusive price, no per-line taxes: tax = 1180 × 18 ÷ 118, split in halves.
        zoho_invoice(
            [line(1180, item_total_inclusive_of_tax=1180, tax_id="t-gst18")],
            is_inclusive_tax=True,
            tax_specification="intra",
            sub_total=1180,
            tax_total=180,
            total=1180,
            taxes=[
                {"tax_name": "CGST9", "tax_amount": 90},
                {"tax_name": "SGST9", "tax_amount": 90},
            ],
        ),
        {
            "taxable_amount": Decimal("1000.00"),
            "cgst": Decimal("90.00"),
            "subtotal": Decimal("1000.00"),
        },
        {"taxable_amount": Decimal("1000.00"), "cgst": Decimal("90.00"), "sgst": Decimal("90.00")},
        id="1-inclusive-computed",
    ),
    pytest.param(
        # Zoho says intra-state: a bare 18 % without a tax the master knows is CGST + SGST.
        zoho_invoice(
            [line(1000)], tax_specification="intra", tax_total=180, total=1180, sub_total=1000
        ),
        {"cgst": Decimal("90.00"), "sgst": Decimal("90.00"), "igst": 0},
        {"cgst": Decimal("90.00"), "sgst": Decimal("90.00"), "igst": 0},
        id="7-tax-specification-intra",
    ),
    pytest.param(
        zoho_invoice(
            [line(1000, rate=0)],
            sub_total=1000,
            total=1000,
            roundoff_value=0.4,
            adjustment=-0.4,
            adjustment_description="Rounding",
        ),
        {"round_off": Decimal("0.40"), "adjustment": Decimal("-0.40")},
        None,
        id="2-roundoff-value-and-adjustment",
    ),
    pytest.param(
        zoho_invoice(
            [line(1000, rate=0)],
            sub_total=1000,
            total=1000,
            einvoice_details={"inv_ref_num": "a" * 64, "status": "pushed"},
        ),
        {"irn": "a" * 64},
        None,
        id="4-irn-from-einvoice-details",
    ),
    *[
        pytest.param(
            zoho_invoice([line(100, rate=0)], status=status, sub_total=100, total=100),
            {"status": status},
            None,
            id=f"5-{status}",
        )
        for status in ("pending_approval", "approved", "rejected")
    ],
    pytest.param(
        zoho_invoice(
            [line(100, rate=0, line_item_taxes=[{"tax_name": "Exempt (0%)", "tax_amount": 0}])],
            sub_total=100,
            total=100,
            taxes=[{"tax_name": "Exempt (0%)", "tax_amount": 0}],
        ),
        {"tax_total": 0, "other_tax": 0, "taxable_amount": Decimal("100.00")},
        {"other_tax": 0},
        id="6-zero-entry",
    ),
    pytest.param(
        zoho_invoice(
            [
                line(
                    200,
                    rate=8.875,
                    line_item_taxes=[{"tax_name": "NY Sales Tax", "tax_amount": 17.75}],
                )
            ],
            sub_total=200,
            tax_total=17.75,
            total=217.75,
            taxes=[{"tax_name": "NY Sales Tax (8.875%)", "tax_amount": 17.75}],
        ),
        {"other_tax": Decimal("17.75"), "igst": 0, "tax_total": Decimal("17.75")},
        {"other_tax": Decimal("17.75")},
        id="6-us-sales-tax",
    ),
    pytest.param(
        # 10 % before tax over 600 + 400: the lines carry 540 and 360.
        zoho_invoice(
            [
                line(600, line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 97.2}]),
                line(400, line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 64.8}]),
            ],
            discount_type="entity_level",
            discount_total=100,
            is_discount_before_tax=True,
            sub_total=1000,
            total_taxable_amount=900,
            tax_total=162,
            total=1062,
            taxes=[{"tax_name": "IGST18", "tax_amount": 162}],
        ),
        {
            "taxable_amount": Decimal("900.00"),
            "subtotal": Decimal("1000.00"),
            "igst": Decimal("162.00"),
        },
        {"taxable_amount": Decimal("540.00"), "discount": Decimal("60.00")},
        id="3-discount-before-tax-spread",
    ),
    pytest.param(
        zoho_invoice(
            [line(1000, line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 180}])],
            discount_type="entity_level",
            discount_total=50,
            is_discount_before_tax=False,
            sub_total=1000,
            tax_total=180,
            total=1130,
            taxes=[{"tax_name": "IGST18", "tax_amount": 180}],
        ),
        {"taxable_amount": Decimal("1000.00"), "adjustment": Decimal("-50.00")},
        {"taxable_amount": Decimal("1000.00")},
        id="3-discount-after-tax",
    ),
    pytest.param(
        zoho_invoice(
            [line(1000, line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 180}])],
            sub_total=1000,
            shipping_charge=100,
            shipping_charge_tax_id="t-igst18",
            shipping_charge_taxes=[{"tax_id": "t-igst18", "tax_amount": 18}],
            tax_total=198,
            total=1298,
            taxes=[{"tax_name": "IGST18", "tax_amount": 198}],
        ),
        {"taxable_amount": Decimal("1100.00"), "adjustment": 0, "igst": Decimal("198.00")},
        None,
        id="3-shipping-taxed",
    ),
    pytest.param(
        zoho_invoice(
            [line(1000, rate=0)], sub_total=1000, shipping_charge=100, total=1100, tax_total=0
        ),
        {"taxable_amount": Decimal("1000.00"), "adjustment": Decimal("100.00")},
        None,
        id="3-shipping-untaxed",
    ),
    pytest.param(
        # A summary entry the master knows as a group (GST18) is CGST and SGST in halves.
        zoho_invoice(
            [line(1000, tax_id="t-gst18")],
            tax_specification="intra",
            sub_total=1000,
            tax_total=180,
            total=1180,
            taxes=[{"tax_id": "t-gst18", "tax_name": "GST18 (18%)", "tax_amount": 180}],
        ),
        {"cgst": Decimal("90.00"), "sgst": Decimal("90.00")},
        None,
        id="7-group-summary",
    ),
]


@pytest.mark.parametrize(("invoice", "expected", "first_line"), MAPPING_CASES)
def test_mapping(invoice, expected, first_line):
    mapped = map_invoice(invoice, HEADS)
    assert {name: getattr(mapped, name) for name in expected} == expected
    if first_line:
        assert {name: getattr(mapped.lines[0], name) for name in first_line} == first_line
    assert mapped.total == (
        mapped.taxable_amount + mapped.tax_total + mapped.round_off + mapped.adjustment
    )
    heads = mapped.cgst + mapped.sgst + mapped.igst + mapped.cess + mapped.other_tax
    assert mapped.tax_total == heads


def test_lines_that_contradict_zohos_taxable_value_are_refused_naming_both():
    invoice = zoho_invoice(
        [line(1000, line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 180}])],
        sub_total=1000,
        total_taxable_amount=800,  # e.g. a discount this mapping does not know about
        tax_total=180,
        total=1180,
    )
    with pytest.raises(MappingError, match="total_taxable_amount: Zoho states 800.00.*1000.00"):
        map_invoice(invoice, HEADS)


def test_entity_level_rounding_differences_are_absorbed_into_the_largest_line():
    # Inclusive, entity-level: per-line taxes round to 15.25 + 15.25 + 15.25, the invoice's
    # tax on the total to 45.76; Zoho's taxable value settles which paisa goes where.
    lines = [
        line(
            100,
            rate=18,
            item_total_inclusive_of_tax=100,
            line_item_taxes=[{"tax_id": "t-igst18", "tax_amount": 15.25}],
        )
        for _ in range(3)
    ]
    invoice = zoho_invoice(
        lines,
        is_inclusive_tax=True,
        tax_rounding="entity_level",
        total_taxable_amount=254.24,
        tax_total=45.76,
        total=300,
        taxes=[{"tax_name": "IGST18", "tax_amount": 45.76}],
    )
    mapped = map_invoice(invoice, HEADS)
    assert mapped.taxable_amount == Decimal("254.24")
    assert sorted(line.taxable_amount for line in mapped.lines) == [
        Decimal("84.74"),
        Decimal("84.75"),
        Decimal("84.75"),
    ]
    assert mapped.igst == Decimal("45.76") and mapped.total == Decimal("300.00")


# --- the simulator's defaults and the data centres (point 7 and 12) -------------------------


def test_generated_india_invoices_are_entity_level_with_a_tax_specification():
    sim = ZohoBooksSimulator()
    org = sim.seed_generated("1", customers=20, invoices=60, seed=8)
    seller = "KA"
    for invoice_id in sim.invoice_ids("1"):
        detail = sim.get_invoice("1", invoice_id)
        assert detail["tax_rounding"] == "entity_level"
        if detail["place_of_supply"]:
            intra = detail["place_of_supply"] == seller
            assert detail["tax_specification"] == ("intra" if intra else "inter")
        assert "roundoff_value" in detail and money(detail["adjustment"]) == 0
    assert org.tax_rounding == "entity_level"
    item_level = ZohoBooksSimulator()
    item_level.seed_generated("1", customers=5, invoices=5, tax_rounding="item_level")
    assert {
        item_level.get_invoice("1", i)["tax_rounding"] for i in item_level.invoice_ids("1")
    } == {"item_level"}


def test_uk_data_centre():
    # Zoho Accounts' multi-DC list names United Kingdom (UK): https://accounts.zoho.uk
    assert ACCOUNTS_HOSTS["uk"] == "https://accounts.zoho.uk"
    assert API_HOSTS["uk"] == "https://www.zohoapis.uk"
    config = ZohoBooksConfig.model_validate(
        {
            "region": "uk",
            "organization_id": "20012345678",
            "client_id": "1000.CLIENT",
            "client_secret": "secret0secret0secret",
            "refresh_token": "1000.refresh.token0000000000",
        }
    )
    assert config.region == "uk"


def test_simulator_defaults_follow_the_recordings(zoho):
    sim = zoho.simulator
    sim.seed_generated(zoho.org_id, customers=40, invoices=0, seed=7)
    api = f"{zoho.server.url}/books/v3"
    first = sim.issue_access_token()
    for _ in range(14):  # 15 live access tokens per refresh token (Zoho CRM v8 token validity)
        sim.issue_access_token()

    def get(path: str, token: str, **params) -> httpx.Response:
        headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        params = {"organization_id": zoho.org_id, **params}
        return httpx.get(f"{api}{path}", headers=headers, params=params)

    contacts = get("/contacts", first, per_page=200)
    assert contacts.status_code == 200
    # nango_contacts.test.json: without filter_by the applied filter is Status.All
    assert contacts.json()["page_context"]["applied_filter"] == "Status.All"
    assert len(contacts.json()["contacts"]) == 40
    sim.issue_access_token()  # the 16th invalidates the oldest
    assert get("/contacts", first).status_code == 401
