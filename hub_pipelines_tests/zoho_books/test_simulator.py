"""The Zoho Books simulator over real HTTP on loopback (no mocks): protocol shapes, limits, faults,
generated data and seeding from the real recorded fixtures."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub_pipelines import gst
from hub_pipelines.connectors.loopback import ForwardingApp, LoopbackServer
from hub_pipelines.zoho_books.simulator import (
    DEFAULT_ORG_ID,
    INVOICE_LIST_FIELDS,
    IST,
    ZohoBooksSimulator,
    send_webhook,
    zoho_time,
)
from hub_pipelines_tests.conftest import REAL_FIXTURES

ORG = DEFAULT_ORG_ID
FIXTURES = REAL_FIXTURES / "zoho_books"  # ../shared/fixtures/real, or $HUB_REAL_FIXTURES
NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=IST)
TOO_MANY_REQUESTS = (
    "You have made too many requests continuously. Please try again after some time."
)


class FakeTime:
    """Controllable `clock` (record timestamps) and `timer` (rate windows, token expiry)."""

    def __init__(self) -> None:
        self.now = NOW
        self.seconds = 1000.0

    def clock(self) -> datetime:
        return self.now

    def timer(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds

    def advance_clock(self, seconds: float) -> None:
        """Move record time only: access tokens and rate windows are unaffected."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="module")
def current() -> ForwardingApp:
    return ForwardingApp()


@pytest.fixture(scope="module")
def server(current: ForwardingApp):
    with LoopbackServer(current) as running:
        yield running


@pytest.fixture
def sim(fake_time: FakeTime, current: ForwardingApp, server) -> ZohoBooksSimulator:
    simulator = ZohoBooksSimulator(clock=fake_time.clock, timer=fake_time.timer)
    simulator.seed_generated(ORG, customers=40, invoices=450, seed=7)
    current.app = simulator.app
    return simulator


@pytest.fixture
def api(sim: ZohoBooksSimulator, server: LoopbackServer):
    """A client already holding an access token (the token endpoint has its own tests)."""
    headers = {"Authorization": f"Zoho-oauthtoken {sim.issue_access_token()}"}
    with httpx.Client(base_url=server.url + "/books/v3", headers=headers) as client:
        yield client


def get(api: httpx.Client, path: str, **params) -> httpx.Response:
    return api.get(path, params={"organization_id": ORG, **params})


def token_request(server: LoopbackServer, sim: ZohoBooksSimulator, **overrides) -> httpx.Response:
    params = {
        "refresh_token": sim.refresh_token,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "grant_type": "refresh_token",
    } | overrides
    return httpx.post(server.url + "/oauth/v2/token", params=params)


def all_pages(api: httpx.Client, path: str, key: str, **params) -> list[dict]:
    rows, page = [], 1
    while True:
        body = get(api, path, page=page, per_page=200, **params).json()
        rows += body[key]
        if not body["page_context"]["has_more_page"]:
            return rows
        page += 1


def money(value) -> Decimal:
    return Decimal(str(value))


# --- accounts server -----------------------------------------------------------------------------


def test_token_refresh_success_shape(sim, server):
    response = token_request(server, sim)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "expires_in", "api_domain", "token_type"}  # no rotation
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
    assert body["api_domain"] == server.url
    listed = httpx.get(
        body["api_domain"] + "/books/v3/organizations",
        headers={"Authorization": f"Zoho-oauthtoken {body['access_token']}"},
    )
    assert listed.status_code == 200
    assert listed.json()["organizations"][0]["organization_id"] == ORG


def test_token_errors_come_with_http_200(sim, server):
    bad_token = token_request(server, sim, refresh_token="1000.nope")
    assert (bad_token.status_code, bad_token.json()) == (200, {"error": "invalid_code"})
    bad_secret = token_request(server, sim, client_secret="wrong")
    assert (bad_secret.status_code, bad_secret.json()) == (200, {"error": "invalid_client"})


def test_ten_token_requests_per_window_per_refresh_token(sim, server, fake_time):
    for _ in range(10):
        assert "access_token" in token_request(server, sim).json()
    blocked = token_request(server, sim)
    assert blocked.status_code == 200
    assert blocked.json() == {"error": "Access Denied", "error_description": TOO_MANY_REQUESTS}
    fake_time.advance(600)
    assert "access_token" in token_request(server, sim).json()


def test_oldest_access_token_is_invalidated_past_the_active_cap(sim, api):
    first = sim.issue_access_token()
    for _ in range(sim.max_active_access_tokens):
        sim.issue_access_token()
    headers = {"Authorization": f"Zoho-oauthtoken {first}"}
    response = api.get("/organizations", headers=headers)
    assert response.status_code == 401


# --- API auth and errors -------------------------------------------------------------------------

UNAUTHORISED = {"code": 57, "message": "You are not authorized to perform this operation"}


@pytest.mark.parametrize("header", [None, "Zoho-oauthtoken 1000.bogus", "Bearer {token}"])
def test_bad_or_missing_token_is_401(sim, server, header):
    token = sim.issue_access_token()
    headers = {"Authorization": header.format(token=token)} if header else {}
    response = httpx.get(f"{server.url}/books/v3/invoices?organization_id={ORG}", headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHORISED)


def test_expired_tokens_are_401(sim, api, fake_time):
    assert get(api, "/invoices").status_code == 200
    sim.expire_access_tokens()
    assert get(api, "/invoices").status_code == 401
    api.headers["Authorization"] = f"Zoho-oauthtoken {sim.issue_access_token()}"
    fake_time.advance(3601)  # past the access token lifetime
    assert get(api, "/invoices").json() == UNAUTHORISED


@pytest.mark.parametrize("org_id", [None, "123"])
def test_organization_id_is_required(api, org_id):
    params = {} if org_id is None else {"organization_id": org_id}
    response = api.get("/invoices", params=params)
    body = response.json()
    assert response.status_code == 400
    assert body["code"] != 0 and "CompanyID" in body["message"]


def test_not_found_bodies(api):
    invoice = get(api, "/invoices/1")
    assert (invoice.status_code, invoice.json()) == (
        404,
        {"code": 1002, "message": "Invoice does not exist."},
    )
    assert get(api, "/contacts/1").json()["code"] == 1002
    assert get(api, "/nothing-here").json() == {"code": 5, "message": "Invalid URL Passed"}


# --- lists, pagination, filters ------------------------------------------------------------------


def test_pagination_caps_per_page_at_200(sim, api):
    first = get(api, "/invoices", per_page=500).json()
    assert first["code"] == 0 and first["message"] == "success"
    assert first["page_context"]["per_page"] == 200 and len(first["invoices"]) == 200
    assert first["page_context"]["has_more_page"] is True
    last = get(api, "/invoices", page=3, per_page=200).json()
    assert len(last["invoices"]) == 50 and last["page_context"]["has_more_page"] is False
    ids = [row["invoice_id"] for row in all_pages(api, "/invoices", "invoices")]
    assert len(ids) == len(set(ids)) == 450 and set(ids) == set(sim.invoice_ids(ORG))


def test_invoice_list_rows_carry_exactly_the_summary_fields(api):
    rows = get(api, "/invoices").json()["invoices"]
    for row in rows:
        assert set(row) == set(INVOICE_LIST_FIELDS)
        assert isinstance(row["invoice_id"], str) and row["invoice_id"].isdigit()
        assert isinstance(row["total"], int | float)
        assert zoho_time(datetime.fromisoformat(row["last_modified_time"])).endswith("+0530")


def test_last_modified_time_filter_is_inclusive_at_the_second(sim, api, fake_time):
    target = sim.invoice_ids(ORG)[0]
    fake_time.advance_clock(3600)  # later than every generated invoice
    sim.edit_invoice(ORG, target, reference_number="PO-77")
    stamp = zoho_time(fake_time.now)  # e.g. 2026-03-15T13:00:00+0530

    def modified_since(raw_value: str) -> list[str]:
        url = f"/invoices?organization_id={ORG}&last_modified_time={raw_value}"
        return [row["invoice_id"] for row in api.get(url).json()["invoices"]]

    assert modified_since(stamp.replace("+", "%2B")) == [target]
    # The same instant in another offset, as Zoho orgs in other time zones send it.
    new_york = fake_time.now.astimezone(timezone(timedelta(hours=-4)))
    assert modified_since(new_york.strftime("%Y-%m-%dT%H:%M:%S%z")) == [target]
    one_second_later = zoho_time(fake_time.now + timedelta(seconds=1)).replace("+", "%2B")
    assert modified_since(one_second_later) == []
    # httpx encodes "+" as %2B by itself when given params.
    rows = get(api, "/invoices", last_modified_time=stamp).json()["invoices"]
    assert [row["invoice_id"] for row in rows] == [target]


def test_unencoded_plus_in_last_modified_time_is_rejected(api):
    # A raw "+" decodes to a space; a client that forgets %2B must notice.
    response = api.get(
        f"/invoices?organization_id={ORG}&last_modified_time=2026-01-01T00:00:00+0530"
    )
    assert response.status_code == 400
    assert response.json() == {"code": 2, "message": "Invalid value passed for last_modified_time"}


def test_status_filter_and_sorting(api):
    voids = get(api, "/invoices", status="void").json()["invoices"]
    assert voids and {row["status"] for row in voids} == {"void"}
    by_date = all_pages(api, "/invoices", "invoices", sort_column="date", sort_order="A")
    dates = [row["date"] for row in by_date]
    assert dates == sorted(dates)
    assert get(api, "/invoices", sort_column="last_modified_time").status_code == 400


def test_contacts_default_filter_is_status_all_as_recorded(sim, api):
    # nango_contacts.test.json: no filter_by sent, `page_context.applied_filter` "Status.All".
    everyone = all_pages(api, "/contacts", "contacts", filter_by="Status.All")
    assert len(everyone) == 40
    inactive = [c for c in everyone if c["status"] == "inactive"]
    assert inactive, "seed 7 generates a few inactive customers"
    default = get(api, "/contacts").json()
    assert default["page_context"]["applied_filter"] == "Status.All"
    assert len(default["contacts"]) == 40
    only_inactive = get(api, "/contacts", filter_by="Status.Inactive").json()["contacts"]
    assert {c["contact_id"] for c in only_inactive} == {c["contact_id"] for c in inactive}
    active = get(api, "/contacts", filter_by="Status.Active").json()["contacts"]
    assert len(active) == 40 - len(inactive)
    sim.contacts_default_filter = "Status.Active"  # still a knob
    assert len(get(api, "/contacts").json()["contacts"]) == 40 - len(inactive)


def test_contacts_sorted_by_last_modified_time(api):
    rows = get(
        api, "/contacts", filter_by="Status.All", sort_column="last_modified_time", sort_order="A"
    ).json()["contacts"]
    stamps = [datetime.fromisoformat(row["last_modified_time"]) for row in rows]
    assert stamps == sorted(stamps)


def test_contact_list_has_no_gst_fields_but_detail_does(api):
    row = get(api, "/contacts", filter_by="Status.All").json()["contacts"][0]
    assert not {"gst_no", "gst_treatment", "place_of_contact", "billing_address"} & set(row)
    detail = get(api, f"/contacts/{row['contact_id']}").json()["contact"]
    assert {"gst_no", "gst_treatment", "place_of_contact", "billing_address"} <= set(detail)
    assert not [key for key in detail if key.startswith("_")]


# --- generated data ------------------------------------------------------------------------------


def test_generated_customers_are_realistic_and_gstins_valid(sim):
    contacts = [sim.get_contact(ORG, cid) for cid in sim.contact_ids(ORG)]
    treatments = {c["gst_treatment"] for c in contacts}
    assert {"business_gst", "consumer", "overseas"} <= treatments
    for contact in contacts:
        if contact["gst_treatment"] == "business_gst":
            assert gst.is_valid_gstin(contact["gst_no"]), contact["gst_no"]
            place = gst.state_code_from_zoho(contact["place_of_contact"])
            assert gst.state_code_of_gstin(contact["gst_no"]) == place
            assert contact["pan_no"] == gst.pan_from_gstin(contact["gst_no"])
        else:
            assert contact["gst_no"] == ""
        if contact["gst_treatment"] != "overseas":
            assert contact["billing_address"]["country"] == "India"
            assert len(contact["billing_address"]["zip"]) == 6
            assert contact["mobile"].startswith("+91-9")


def test_generated_invoice_arithmetic_is_exact(sim):
    statuses = set()
    for invoice_id in sim.invoice_ids(ORG):
        invoice = sim.get_invoice(ORG, invoice_id)
        statuses.add(invoice["status"])
        lines = invoice["line_items"]
        assert 1 <= len(lines) <= 3
        for line in lines:
            gross = (money(line["rate"]) * money(line["quantity"])).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            assert money(line["item_total"]) == gross - money(line["discount_amount"])
            assert line["hsn_or_sac"].isdigit()
        sub_total = sum(money(line["item_total"]) for line in lines)
        line_taxes = sum(money(t["tax_amount"]) for line in lines for t in line["line_item_taxes"])
        tax_total = sum(money(t["tax_amount"]) for t in invoice["taxes"])
        roundoff = money(invoice["roundoff_value"])
        total = money(invoice["total"])
        assert money(invoice["sub_total"]) == sub_total
        assert money(invoice["tax_total"]) == tax_total
        # Real India organisations round each tax on the invoice's total (entity_level): the
        # rounded line amounts may differ from it by a paisa per line.
        assert invoice["tax_rounding"] == "entity_level"
        assert abs(tax_total - line_taxes) <= Decimal("0.01") * len(lines)
        assert total == sub_total + tax_total + roundoff + money(invoice["shipping_charge"])
        assert money(invoice["adjustment"]) == 0 and abs(roundoff) <= Decimal("0.5")
        if roundoff:
            assert invoice["transaction_rounding_type"] != "no_rounding"
            assert total == total.to_integral()
        assert_balance_matches_status(invoice)
    assert statuses >= {"draft", "paid", "partially_paid", "void", "overdue"}


def assert_balance_matches_status(invoice: dict) -> None:
    total, balance = money(invoice["total"]), money(invoice["balance"])
    paid = money(invoice["payment_made"])
    assert balance == total - paid
    if invoice["status"] == "paid":
        assert balance == 0
    elif invoice["status"] == "partially_paid":
        assert 0 < balance < total
    else:  # draft, sent, overdue and void keep the full amount
        assert balance == total


def test_intra_state_is_cgst_plus_sgst_and_inter_state_is_igst(sim, api):
    heads = {
        t["tax_id"]: t["tax_specific_type"] for t in get(api, "/settings/taxes").json()["taxes"]
    }
    seller = gst.zoho_code_from_state_code("29")
    seen = {"intra": 0, "inter": 0}
    for invoice_id in sim.invoice_ids(ORG):
        invoice = sim.get_invoice(ORG, invoice_id)
        if not invoice["place_of_supply"]:
            assert invoice["taxes"] == [] and invoice["gst_treatment"] == "overseas"
            continue
        intra = invoice["place_of_supply"] == seller
        seen["intra" if intra else "inter"] += 1
        for line in invoice["line_items"]:
            amounts = {heads[t["tax_id"]]: money(t["tax_amount"]) for t in line["line_item_taxes"]}
            if intra:
                assert set(amounts) == {"cgst", "sgst"} and amounts["cgst"] == amounts["sgst"]
                assert line["tax_type"] == "tax_group" and line["tax_name"].startswith("GST")
            else:
                assert set(amounts) == {"igst"} and line["tax_name"].startswith("IGST")
            assert line["tax_percentage"] in (5, 12, 18, 28)
    assert seen["intra"] > 20 and seen["inter"] > 20


def test_tax_master_and_groups(api):
    taxes = get(api, "/settings/taxes").json()["taxes"]
    assert {t["tax_specific_type"] for t in taxes} >= {"igst", "cgst", "sgst", "cess"}
    group = next(t for t in taxes if t["tax_name"] == "GST18")
    members = get(api, f"/settings/taxgroups/{group['tax_id']}").json()["tax_group"]["taxes"]
    assert [(m["tax_name"], m["tax_specific_type"]) for m in members] == [
        ("CGST9", "cgst"),
        ("SGST9", "sgst"),
    ]


def test_invoice_detail_over_http_matches_the_fact_sheet_shape(sim, api):
    invoice_id = sim.invoice_ids(ORG)[0]
    invoice = get(api, f"/invoices/{invoice_id}").json()["invoice"]
    assert invoice == sim.get_invoice(ORG, invoice_id)
    for key in (
        "gst_no",
        "gst_treatment",
        "place_of_supply",
        "line_items",
        "taxes",
        "adjustment",
        "adjustment_description",
        "balance",
        "billing_address",
        "last_modified_time",
    ):
        assert key in invoice
    line = invoice["line_items"][0]
    for key in (
        "hsn_or_sac",
        "tax_id",
        "tax_name",
        "tax_percentage",
        "item_total",
        "line_item_taxes",
        "item_order",
        "discount_amount",
    ):
        assert key in line


def test_same_seed_gives_same_data():
    """(How fast 5,000 invoices generate is a figure of `make bench`, not an assertion.)"""

    def build(seed: int) -> ZohoBooksSimulator:
        simulator = ZohoBooksSimulator(clock=lambda: NOW)
        simulator.seed_generated(ORG, customers=500, invoices=5000, seed=seed, as_of=NOW)
        return simulator

    first, second, other = build(42), build(42), build(43)
    sample = first.invoice_ids(ORG)[::250]
    assert sample == second.invoice_ids(ORG)[::250]
    assert [first.get_invoice(ORG, i) for i in sample] == [
        second.get_invoice(ORG, i) for i in sample
    ]
    assert first.get_contact(ORG, first.contact_ids(ORG)[3]) == second.get_contact(
        ORG, second.contact_ids(ORG)[3]
    )
    assert first.get_invoice(ORG, sample[1]) != other.get_invoice(ORG, other.invoice_ids(ORG)[250])
    modified = [
        datetime.fromisoformat(first.get_invoice(ORG, i)["last_modified_time"]) for i in sample
    ]
    assert all(NOW - timedelta(days=400) < m <= NOW for m in modified)


# --- mutations -----------------------------------------------------------------------------------


def test_edit_void_delete_and_add(sim, api, fake_time):
    first, second, third = sim.invoice_ids(ORG)[:3]
    before = sim.get_invoice(ORG, second)
    fake_time.advance_clock(7200)
    edited = sim.edit_invoice(ORG, first, reference_number="PO-1")
    assert edited["last_modified_time"] == zoho_time(fake_time.now)
    voided = sim.void_invoice(ORG, second)
    assert voided["status"] == "void" and voided["total"] == before["total"]
    sim.delete_invoice(ORG, third)
    assert get(api, f"/invoices/{third}").status_code == 404
    new_id = sim.add_invoice(ORG, customer_id=sim.contact_ids(ORG)[0], seed=3)
    added = get(api, f"/invoices/{new_id}").json()["invoice"]
    assert added["date"] == fake_time.now.date().isoformat()
    changed = get(api, "/invoices", last_modified_time=zoho_time(fake_time.now)).json()["invoices"]
    assert {row["invoice_id"] for row in changed} == {first, second, new_id}
    contact_id = sim.add_contact(ORG, seed=5)
    sim.edit_contact(ORG, contact_id, status="inactive")
    assert get(api, f"/contacts/{contact_id}").json()["contact"]["status"] == "inactive"


def test_a_change_between_two_list_pages_reaches_the_next_page(sim, api, fake_time):
    """A walk's pages are slices of one listing the simulator keeps between requests (it does
    not filter and sort every invoice for each): a change in between must still show."""

    def listed(**params) -> list[str]:
        return [row["invoice_id"] for row in get(api, "/invoices", **params).json()["invoices"]]

    first, voids = listed(page=1, per_page=5), listed(status="void", per_page=200)
    fake_time.advance_clock(3600)  # the new invoice is the newest created
    new_id = sim.add_invoice(ORG, customer_id=sim.contact_ids(ORG)[0], seed=3)
    sim.delete_invoice(ORG, first[1])
    sim.void_invoice(ORG, first[2])

    assert listed(page=1, per_page=5) == [new_id, first[0], *first[2:]]
    assert set(listed(status="void", per_page=200)) == {*voids, first[2]}


# --- rate limits ---------------------------------------------------------------------------------


def test_the_101st_request_in_a_minute_is_throttled(sim, api, fake_time):
    remaining = []
    for _ in range(100):
        response = get(api, "/invoices", per_page=1)
        assert response.status_code == 200
        remaining.append(int(response.headers["X-Rate-Limit-Remaining"]))
    assert remaining == list(range(9999, 9899, -1))
    throttled = get(api, "/invoices", per_page=1)
    assert throttled.status_code == 429
    assert throttled.json() == {"code": 45, "message": TOO_MANY_REQUESTS}
    assert throttled.headers["X-Rate-Limit-Limit"] == "10000"
    assert throttled.headers["X-Rate-Limit-Remaining"] == "9900"
    assert 0 < int(throttled.headers["X-Rate-Limit-Reset"]) <= 86400
    assert "Retry-After" not in throttled.headers
    assert (sim.requests_served, sim.requests_throttled) == (100, 1)
    assert [sim.request_log[-2].status, sim.request_log[-1].status] == [200, 429]
    fake_time.advance(60)
    assert get(api, "/invoices", per_page=1).status_code == 200


def test_daily_quota(sim, api):
    sim.daily_limit = 3
    statuses = [get(api, "/contacts").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert get(api, "/contacts").headers["X-Rate-Limit-Remaining"] == "0"


@pytest.mark.real_fixtures
def test_every_api_answer_carries_the_daily_quota_headers_zoho_sends(sim, api, server):
    recorded = json.loads((FIXTURES / "nango_get-contact.test.json").read_text())
    (answer,) = recorded["api"]["get"].values()
    zoho_names = {name for name in answer["headers"] if name.startswith("x-rate-limit-")}
    assert zoho_names == {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"}
    sim.daily_limit = 1000  # Zoho's free plan, as in the recording
    contact, invoice = sim.contact_ids(ORG)[0], sim.invoice_ids(ORG)[0]
    answers = [
        get(api, "/organizations"),
        get(api, "/contacts", per_page=5),
        get(api, f"/contacts/{contact}"),
        get(api, "/invoices", per_page=5),
        get(api, f"/invoices/{invoice}"),
        get(api, "/settings/taxes"),
        get(api, "/invoices/1"),  # an error answer counts against the quota too
    ]
    assert [a.status_code for a in answers] == [200] * 6 + [404]
    for answer in answers:
        assert zoho_names <= set(answer.headers.keys())  # httpx lower-cases the names
        assert answer.headers["x-rate-limit-limit"] == "1000"
        assert 0 < int(answer.headers["x-rate-limit-reset"]) <= 86400  # seconds, not a date
    remaining = [int(a.headers["x-rate-limit-remaining"]) for a in answers]
    assert remaining == list(range(999, 992, -1))
    token = token_request(server, sim)  # the accounts host is not the Books API
    assert token.status_code == 200 and not zoho_names & set(token.headers.keys())


def test_rate_limit_is_per_organisation(sim, api):
    sim.seed_generated("60009999999", customers=2, invoices=2)
    sim.requests_per_minute = 2
    assert [get(api, "/contacts").status_code for _ in range(3)] == [200, 200, 429]
    other = api.get("/contacts", params={"organization_id": "60009999999"})
    assert other.status_code == 200


# --- faults --------------------------------------------------------------------------------------


def test_latency_delays_every_answer_until_a_client_times_out(sim, api):
    sim.faults.latency = 1.0
    with pytest.raises(httpx.TimeoutException):  # nothing can arrive in the first second
        api.get("/organizations", params={"organization_id": ORG}, timeout=0.1)
    sim.faults.clear()
    assert get(api, "/organizations").status_code == 200


def test_server_errors_then_recovery(sim, api):
    sim.faults.fail_next(2, status=503)
    for _ in range(2):
        failed = get(api, "/invoices")
        assert (failed.status_code, failed.json()) == (
            503,
            {"code": 1000, "message": "Internal error"},
        )
    assert get(api, "/invoices").status_code == 200


def test_throttle_burst(sim, api):
    sim.faults.throttle_next(2, path="/books/v3/invoices")
    assert get(api, "/contacts").status_code == 200  # other paths are not affected
    assert [get(api, "/invoices").status_code for _ in range(3)] == [429, 429, 200]
    assert sim.requests_throttled == 2


def test_dropped_connection_is_a_transport_error(sim, api):
    sim.faults.drop_next(1)
    with pytest.raises(httpx.TransportError):
        get(api, "/invoices")
    assert get(api, "/invoices").status_code == 200
    assert sim.requests_dropped == 1 and sim.request_log[-2].status is None


def test_tokens_expire_mid_run(sim, api):
    sim.faults.expire_tokens_after(2)
    assert [get(api, "/invoices").status_code for _ in range(3)] == [200, 200, 401]


def test_malformed_invoice_list_page(sim, api):
    sim.faults.malformed_page("/books/v3/invoices", page_number=2, record_index=5)
    assert all("invoice_id" in row for row in get(api, "/invoices", page=1).json()["invoices"])
    broken = get(api, "/invoices", page=2).json()["invoices"]
    assert "invoice_id" not in broken[5] and all("invoice_id" in r for r in broken[6:])


def test_malformed_contact_and_invoice_detail(sim, api):
    invoice_id, contact_id = sim.invoice_ids(ORG)[0], sim.contact_ids(ORG)[0]
    sim.faults.malformed_page("/books/v3/contacts")
    sim.faults.malformed_page(f"/books/v3/invoices/{invoice_id}", times=1)
    assert not isinstance(get(api, "/contacts").json()["contacts"][0]["contact_name"], str)
    rate = get(api, f"/invoices/{invoice_id}").json()["invoice"]["line_items"][0]["rate"]
    with pytest.raises(ValueError):
        float(rate)
    healed = get(api, f"/invoices/{invoice_id}").json()["invoice"]["line_items"][0]["rate"]
    assert isinstance(healed, int | float)
    assert isinstance(get(api, f"/contacts/{contact_id}").json()["contact"]["contact_name"], str)


def test_truncated_json_page(sim, api):
    sim.faults.malformed_page("/books/v3/invoices", truncated=True, times=1)
    response = get(api, "/invoices")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert get(api, "/invoices").json()["code"] == 0


# --- seeding from the real recorded fixtures -----------------------------------------------------


@pytest.mark.real_fixtures
def test_seed_from_real_fixtures(server, api):
    sim = ZohoBooksSimulator()
    sim.seed_from_files(
        "927270289",
        contacts_path=[
            FIXTURES / "nango_contacts.test.json",
            FIXTURES / "nango_get-contact.test.json",
        ],
        invoices_path=[
            FIXTURES / "nango_invoices.test.json",
            FIXTURES / "nango_get-invoice.test.json",
        ],
    )
    with (
        LoopbackServer(sim.app) as fixture_server,
        httpx.Client(
            base_url=fixture_server.url + "/books/v3",
            headers={"Authorization": f"Zoho-oauthtoken {sim.issue_access_token()}"},
            params={"organization_id": "927270289"},
        ) as client,
    ):
        contacts = client.get("/contacts", params={"filter_by": "Status.All"}).json()["contacts"]
        assert len(contacts) == 6
        customers = client.get("/contacts", params={"contact_type": "customer"}).json()
        assert len(customers["contacts"]) == 4
        acme = client.get("/contacts/260815000000097001").json()["contact"]
        assert acme["contact_name"] == "Acme Corp" and len(acme) >= 116
        invoices = client.get(
            "/invoices", params={"sort_column": "created_time", "sort_order": "A"}
        )
        rows = invoices.json()["invoices"]
        assert [r["invoice_number"] for r in rows][:3] == ["INV-000001", "INV-000002", "INV-000003"]
        assert len(rows) == 9 and not any("line_items" in r for r in rows)
        assert sum(r["status"] == "void" for r in rows) == 2
        detail = client.get("/invoices/260815000000103001").json()["invoice"]
        assert detail["line_items"][0]["item_total"] == 598 and detail["total"] == 598
        # -0400 timestamps compare as instants.
        since = client.get("/invoices", params={"last_modified_time": "2026-06-09T13:38:10-0400"})
        assert {r["invoice_number"] for r in since.json()["invoices"]} == {
            "INV-000003",
            "INV-000008",
            "INV-000009",
            "INV-000010",
            "INV-000011",
        }
    assert sim.add_invoice("927270289", {"customer_id": "260815000000097001"})
    assert sim.get_invoice("927270289", sim.invoice_ids("927270289")[-1])["invoice_number"] == (
        "INV-000012"
    )


@pytest.mark.real_fixtures
def test_seed_from_plain_openapi_bodies():
    sim = ZohoBooksSimulator()
    org = sim.seed_from_files(
        contacts_path=FIXTURES / "zoho_books_openapi_get_contact_200_example.json",
        invoices_path=FIXTURES / "zoho_books_openapi_get_invoice_200_example.json",
    )
    (contact,) = org.contacts.values()
    assert contact["gst_no"] == "22AAAAA0000A1Z5"
    (invoice_id,) = org.invoices
    assert sim.get_invoice(DEFAULT_ORG_ID, invoice_id)["place_of_supply"] == "TN"


# --- webhooks ------------------------------------------------------------------------------------


def test_webhook_is_signed_with_hmac_sha256_of_the_raw_body(sim):
    received = []

    async def receive(request):
        received.append((await request.body(), dict(request.headers)))
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hooks/zoho", receive, methods=["POST"])])
    invoice = sim.get_invoice(ORG, sim.invoice_ids(ORG)[0])
    with LoopbackServer(receiver) as hook_server:
        response = sim.send_webhook(
            hook_server.url + "/hooks/zoho", "invoice", invoice, "webhookSecret2026"
        )
    assert response.status_code == 200
    body, headers = received[0]
    expected = hmac.new(b"webhookSecret2026", body, hashlib.sha256).hexdigest()
    assert headers["x-zoho-webhook-signature"] == expected
    assert json.loads(body) == {"invoice": invoice}
    with pytest.raises(ValueError):
        send_webhook("http://127.0.0.1:9/", "invoice", invoice, "short")
