"""Books (the neutral generated company) rendered as a Zoho Books organisation, and kept in step
with its mutations, so the contract suite compares Zoho with the same truth as every system."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub_pipelines import gst
from hub_pipelines.simulation.books import Books, Party, Sale
from hub_pipelines.simulation.catalogue import PAYMENT_TERMS
from hub_pipelines.simulation.replay import records_by_kind
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.zoho_books.simulator import (
    DEFAULT_ORG_ID,
    GeneratedInvoice,
    GeneratedLine,
    ZohoBooksSimulator,
    zoho_time,
)

# Books' canonical status → Zoho's (an issued invoice with nothing paid is "sent").
ZOHO_STATUS = {
    "draft": "draft",
    "void": "void",
    "open": "sent",
    "partially_paid": "partially_paid",
    "paid": "paid",
}


def render_books(simulator: ZohoBooksSimulator, books: Books, org_id: str) -> dict[str, Any]:
    """Add `books` to the simulator as organisation `org_id` and follow its mutations. Returns
    the organisation. Taxes are rounded per line (`item_level`), as Books computes them."""
    org = simulator.add_organisation(org_id, books.seller_name, books.seller_state)
    org.tax_rounding = "item_level"
    contact_ids: dict[int, str] = {}
    invoice_ids: dict[int, str] = {}

    def put_party(party: Party) -> None:
        contact_id = contact_ids.setdefault(party.key, simulator.new_id())
        with simulator._lock:
            org.contacts[contact_id] = _contact(party, contact_id)
            org.changed()

    def put_sale(sale: Sale) -> None:
        invoice_id = invoice_ids.setdefault(sale.key, simulator.new_id())
        with simulator._lock:
            if sale.deleted:
                org.invoices.pop(invoice_id, None)
            else:
                contact = org.contacts[contact_ids[sale.party_key]]
                org.invoices[invoice_id] = _invoice(sale, invoice_id, contact)
            org.changed()

    for party in books.parties.values():
        put_party(party)
    for sale in books.sales.values():
        put_sale(sale)

    def follow(kind: str, key: int) -> None:
        if kind == "party":
            put_party(books.parties[key])
        else:
            put_sale(books.sales[key])

    books.listeners.append(follow)
    return org


def _contact(party: Party, contact_id: str) -> dict[str, Any]:
    state = party.state_code
    address = {
        "attention": "",
        "address": party.street,
        "street2": "",
        "city": party.city,
        "state": gst.STATE_CODES[state] if state else (party.region or ""),
        "state_code": gst.zoho_code_from_state_code(state) if state else "",
        "zip": party.postal_code,
        "country": party.country,
        "phone": party.phone,
    }
    first, _, last = party.contact_person.partition(" ")
    terms = PAYMENT_TERMS[party.key % len(PAYMENT_TERMS)]
    return {
        "contact_id": contact_id,
        "contact_name": party.name,
        "company_name": party.name,
        "first_name": "",
        "last_name": "",
        "customer_sub_type": "business",
        "gst_no": party.gstin or "",
        "gst_treatment": {"registered_regular": "business_gst"}.get(
            party.gst_treatment, party.gst_treatment if party.overseas else "business_none"
        ),
        "place_of_contact": address["state_code"],
        "pan_no": party.pan or "",
        "is_taxable": not party.overseas,
        "currency_code": party.currency,
        "_exchange_rate": float(party.exchange_rate),
        "email": party.email,
        "billing_address": address,
        "shipping_address": dict(address),
        "contact_type": "customer",
        "status": "active" if party.active else "inactive",
        "payment_terms": terms[0],
        "payment_terms_label": terms[1],
        "phone": party.phone,
        "mobile": "",
        "outstanding_receivable_amount": 0,
        "contact_persons": [
            {
                "contact_person_id": str(int(contact_id) + 2),
                "first_name": first,
                "last_name": last,
                "email": party.email,
                "phone": party.phone,
                "is_primary_contact": True,
            }
        ],
        "created_time": zoho_time(party.created_at),
        "last_modified_time": zoho_time(party.updated_at),
    }


def _invoice(sale: Sale, invoice_id: str, contact: dict[str, Any]) -> GeneratedInvoice:
    return GeneratedInvoice(
        invoice_id=invoice_id,
        invoice_number=sale.number,
        customer=contact,
        place_of_supply=contact["place_of_contact"],
        intra_state=sale.intra_state,
        date=sale.issue_date.isoformat(),
        due_date=sale.due_date.isoformat(),
        payment_terms=(sale.due_date - sale.issue_date).days,
        status=ZOHO_STATUS[sale.payment_status],
        paid_percent=sale.paid_percent,
        rounds_off=True,
        created_time=sale.created_at,
        last_modified_time=sale.updated_at,
        lines=tuple(
            GeneratedLine(line.item, line.quantity, line.unit_price, line.discount_percent)
            for line in sale.lines
        ),
        tax_rounding="item_level",
    )


def simulate(
    books: Books,
    *,
    org_id: str = DEFAULT_ORG_ID,
    requests_per_minute: int = 100,
    daily_limit: int = 10_000,
) -> Simulated:
    """A Zoho Books simulator serving `books` as one organisation."""
    simulator = ZohoBooksSimulator(requests_per_minute=requests_per_minute, daily_limit=daily_limit)
    org = render_books(simulator, books, org_id)

    def connection_config(base_url: str) -> dict[str, Any]:
        return {
            "organization_id": org_id,
            "client_id": simulator.client_id,
            "client_secret": simulator.client_secret,
            "refresh_token": simulator.refresh_token,
            "api_base_url": base_url,
            "accounts_url": base_url,
        }

    @contextmanager
    def answer_empty() -> Iterator[None]:
        with simulator._lock:
            kept = org.contacts, org.invoices
            org.contacts, org.invoices = {}, {}
            org.changed()
        try:
            yield
        finally:
            with simulator._lock:
                org.contacts, org.invoices = kept
                org.changed()

    def break_an_invoice() -> None:
        simulator.faults.malformed_page("/books/v3/invoices", 1, times=1)

    return Simulated(
        "zoho_books",
        simulator,
        books,
        connection_config,
        refresh_token=lambda: simulator.refresh_token,
        rotates_refresh_tokens=False,
        answer_empty=answer_empty,
        break_an_invoice=break_an_invoice,
    )


REPLAYED_KINDS = {"customers": ("contacts", "contact"), "invoices": ("invoices", "invoice")}


def replay(paths: list[Path], *, org_id: str = DEFAULT_ORG_ID, **limits: Any) -> Simulated:
    """A Zoho Books simulator serving the contacts and invoices found in `paths` (Zoho list or
    detail bodies, or recordings of them); a list row and a detail of one id are merged."""
    records_by_kind(
        paths,
        REPLAYED_KINDS,
        "Zoho Books",
        id_fields={"customers": "contact_id", "invoices": "invoice_id"},
    )
    simulated = simulate(Books("replayed", "29"), org_id=org_id, **limits)
    simulated.simulator.seed_from_files(org_id, contacts_path=paths, invoices_path=paths)
    simulated.books = None
    return simulated
