"""What the contract suite does not cover for Xero: the daily limit, pacing past a minute, the
concurrency limit, single-use refresh tokens, line items only when paging, tombstones, contacts
fetched because invoices name them, webhooks and replayed captures. Everything over real HTTP to
the simulator on loopback; imports through Dagster."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub_pipelines.connectors.errors import SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.oauth import InMemoryTokenStore, TokenSet
from hub_pipelines.connectors.ratelimit import TokenBucket
from hub_pipelines.simulation import books as generated
from hub_pipelines.simulation.replay import ReplayError
from hub_pipelines.tenants.models import XeroConfig
from hub_pipelines.xero import protocol
from hub_pipelines.xero.connector import XeroConnector, XeroResource
from hub_pipelines.xero.simulator import CLIENT_ID, CLIENT_SECRET, WEBHOOK_KEY, replay, simulate
from hub_pipelines.xero.webhooks import is_intent_to_receive, parse_notices, verify_signature
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import (
    AS_OF,
    TENANT,
    failed_checks,
    metadata,
    small_books,
    warehouse_matches_books,
)
from hub_pipelines_tests.xero.conftest import FAST, new_tenant_id

API = "/api.xro/2.0"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FakeClock:
    """Monotonic seconds moved by hand, or by the client's sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def connector(simulated, url: str, store=None, **options) -> XeroConnector:
    config = XeroConfig.model_validate(simulated.connection_config(url))
    token = config.refresh_token.get_secret_value()
    store = store or InMemoryTokenStore(TokenSet("", token, EPOCH))
    return XeroConnector(config, store, versions=lambda _entity, _ids: {}, **options)


def api_headers(simulated) -> dict[str, str]:
    sim = simulated.simulator
    token = sim.oauth.issue_access_token(sim.refresh_token)
    tenant = simulated.connection_config("http://x")["xero_tenant_id"]
    return {
        "Authorization": f"Bearer {token}",
        protocol.TENANT_HEADER: tenant,
        **protocol.JSON_HEADERS,
    }


def live_invoices(tenant) -> int:
    return tenant.query(
        "SELECT count(*) FROM accounting.invoices "
        "WHERE tenant_id = %s AND system = 'xero' AND deleted_at IS NULL",
        (TENANT,),
    )[0][0]


# --- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reserve_percent", "refused"), [(10.0, 0), (0.0, 1)])
def test_the_daily_limit_ends_the_run_until_after_the_reset_keeping_what_was_read(
    xero_of, reserve_percent, refused
):
    tenant = xero_of(small_books(), daily_limit=12)  # the config says 12 too: a tenth in reserve
    tenant.resources["xero"] = XeroResource(page_size=3, quota_reserve_percent=reserve_percent)

    result = tenant.materialize("invoices")

    sim = tenant.simulated.simulator
    assert not result.success
    assert sim.requests_throttled == refused  # a reserve stops before Xero has to refuse
    assert 0 < live_invoices(tenant) < len(tenant.books.live_sales())  # what was read is kept
    ((category, retry_after),) = tenant.query(
        "SELECT metadata->>'category', (metadata->>'retry_after')::numeric "
        "FROM hub.accounting_sync_logs WHERE system = 'xero' AND status = 'failed'"
    )
    key = tenant.simulated.connection_config("")["xero_tenant_id"]
    assert category == "RATE_LIMIT"
    assert retry_after >= sim.limiter.status(key).resets_in["day"]  # the simulator's new day


def test_more_than_a_minute_of_calls_never_meets_a_429_under_xeros_real_limits():
    clock = FakeClock()
    books = generated.generate(seed=7, parties=4, sales=110, as_of=AS_OF)
    simulated = simulate(books, tenant_id=new_tenant_id())  # 60 a minute, 5 at once
    simulated.simulator.timer = clock
    with LoopbackServer(simulated.app) as server:
        paced = TokenBucket(protocol.SAFE_REQUESTS_PER_MINUTE, clock=clock, sleep=clock.sleep)
        walk = connector(simulated, server.url, page_size=2, bucket=paced).invoices(None)
        loaded = [record for page in walk for record in page.records]

    calls = [entry for entry in simulated.request_log if entry.path.startswith(API)]
    assert len(loaded) == 110 and len(calls) > 60
    assert {entry.status for entry in calls} == {200}
    assert calls[-1].timestamp - calls[0].timestamp > 60
    assert max(sum(1 for c in calls if 0 <= c.timestamp - s.timestamp < 60) for s in calls) <= 60


def test_a_sixth_call_at_once_is_refused_and_the_connector_keeps_to_four():
    simulated = simulate(small_books(), tenant_id=new_tenant_id(), requests_per_minute=FAST)
    simulated.simulator.faults.latency = 0.3
    headers = api_headers(simulated)
    with LoopbackServer(simulated.app) as server, ThreadPoolExecutor(6) as pool:
        url = f"{server.url}{API}/TaxRates"
        answers = list(pool.map(lambda _: httpx.get(url, headers=headers, timeout=10), range(6)))
        refused = [answer for answer in answers if answer.status_code == 429]
        assert len(refused) == 1 and len(answers) == 6
        assert refused[0].headers[protocol.RATE_LIMIT_PROBLEM_HEADER] == "concurrent"
        assert int(refused[0].headers["Retry-After"]) >= 1

        counts = list(
            pool.map(lambda _: connector(simulated, server.url).count("invoices"), range(6))
        )
    assert counts == [40] * 6 and simulated.simulator.requests_throttled == 1


# --- tokens ---------------------------------------------------------------------------------------


def test_refresh_tokens_are_single_use_with_a_30_minute_grace_then_invalid_grant():
    clock = FakeClock()
    simulated = simulate(small_books(), tenant_id=new_tenant_id(), requests_per_minute=FAST)
    sim = simulated.simulator
    sim.timer = clock
    first = sim.refresh_token
    with LoopbackServer(simulated.app) as server:

        def refresh(token: str) -> httpx.Response:
            form = {"grant_type": "refresh_token", "refresh_token": token}
            return httpx.post(
                server.url + "/connect/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET)
            )

        # A refresh whose answer is lost: the run fails retryably and the stored token stays.
        sim.lose_token_answers = 1
        store = InMemoryTokenStore(TokenSet("", first, EPOCH))
        with pytest.raises(SyncError) as lost:
            connector(simulated, server.url, store).test_connection()
        assert lost.value.retryable and store.saved == [] and sim.refresh_token != first
        # Its re-run within the grace refreshes with the old token and saves the current one.
        clock.sleep(29 * 60)
        assert connector(simulated, server.url, store).test_connection().success
        assert store.load().refresh_token == sim.refresh_token != first

        clock.sleep(2 * 60)  # the grace is over
        assert (refresh(first).status_code, refresh(first).json()) == (
            400,
            {"error": "invalid_grant"},
        )
        newer = refresh(sim.refresh_token).json()["refresh_token"]
        clock.sleep(60 * 86_400)  # unused for 60 days
        assert refresh(newer).json() == {"error": "invalid_grant"}


# --- lists ----------------------------------------------------------------------------------------


def test_line_items_come_only_with_page_and_every_answer_says_what_is_left():
    simulated = simulate(small_books(), tenant_id=new_tenant_id())
    headers = api_headers(simulated)
    sales = {"where": 'Type=="ACCREC"'}
    with LoopbackServer(simulated.app) as server:
        unpaged = httpx.get(f"{server.url}{API}/Invoices", params=sales, headers=headers)
        paged = httpx.get(
            f"{server.url}{API}/Invoices",
            params={**sales, "page": 1, "pageSize": 100},
            headers=headers,
        )
        connections = httpx.get(f"{server.url}/connections", headers=headers)

    assert "pagination" not in unpaged.json() and len(unpaged.json()["Invoices"]) == 40
    assert not any("LineItems" in invoice for invoice in unpaged.json()["Invoices"])
    assert all(invoice["LineItems"] for invoice in paged.json()["Invoices"])
    assert paged.json()["pagination"] == {
        "page": 1,
        "pageSize": 100,
        "pageCount": 1,
        "itemCount": 40,
    }
    for answer in (unpaged, paged):
        left = protocol.remaining_limits(answer.headers)
        assert left.day == protocol.DAILY_REQUESTS - (1 if answer is unpaged else 2)
        assert None not in (left.minute, left.app_minute)
    assert protocol.remaining_limits(connections.headers).day is None  # tenantless
    assert protocol.remaining_limits(connections.headers).app_minute is not None


def test_a_change_between_two_list_pages_reaches_the_next_page():
    """A walk's pages are slices of one listing the simulator keeps between requests (it does
    not filter and sort every record for each): a Books change in between must still show."""
    simulated = simulate(small_books(), tenant_id=new_tenant_id())
    books, headers = simulated.books, api_headers(simulated)
    sales = {"where": 'Type=="ACCREC"', "order": "UpdatedDateUTC ASC", "page": 1}

    def numbers(size: int) -> tuple[list[str], int]:
        params = {**sales, "pageSize": size}
        answer = httpx.get(f"{server.url}{API}/Invoices", params=params, headers=headers).json()
        return [row["InvoiceNumber"] for row in answer["Invoices"]], answer["pagination"]

    with LoopbackServer(simulated.app) as server:
        (first, listed), by_number = numbers(5), {s.number: s for s in books.sales.values()}
        edited = books.edit_sale(by_number[first[0]].key)  # now the latest change
        added = books.add_sale(edited.party_key, [edited.lines[0]])
        (again, relisted), (everything, _) = numbers(5), numbers(100)

    assert again[:4] == first[1:] and edited.number not in again
    assert relisted["itemCount"] == listed["itemCount"] + 1 == len(everything)
    assert set(everything[-2:]) == {edited.number, added.number}  # a tie in time: by id


def test_pages_served_smaller_than_asked_stop_the_walk_naming_the_size_and_the_fix():
    """The walk places its overlapping windows by the pageSize it asks for: a Xero that served
    fewer rows a page (its documented 100 against the 1000 asked) would make it skip rows."""
    simulated = simulate(small_books(), tenant_id=new_tenant_id(), requests_per_minute=FAST)
    simulated.simulator.max_page_size = 10
    with LoopbackServer(simulated.app) as server:
        with pytest.raises(SyncError) as stopped:
            list(connector(simulated, server.url, page_size=20).invoices(None))
        kept_to_it = connector(simulated, server.url, page_size=10).invoices(None)
        read = [record for page in kept_to_it for record in page.records]

    assert stopped.value.category == "SOURCE_DATA" and stopped.value.code == "page_size"
    assert "pages of 10 rows where pageSize=20 was asked" in str(stopped.value)
    assert "page_size" in stopped.value.suggested_fix and not stopped.value.retryable
    assert len(read) == len(simulated.books.live_sales())


def test_a_tax_rate_created_after_the_rates_were_read_is_read_again_once_a_run():
    """Lines naming a tax type the connector has not read send it back to `GET /TaxRates`, once
    a run: a rate created since maps; a type that is still unknown is a record error."""
    simulated = simulate(small_books(), tenant_id=new_tenant_id(), requests_per_minute=FAST)
    org = next(iter(simulated.simulator.organisations.values()))
    taxed = [
        row
        for row in org.invoices.values()
        if row["Type"] == "ACCREC" and any(item.get("TaxAmount") for item in row["LineItems"])
    ]
    created, unknown = taxed[0], taxed[1]
    with LoopbackServer(simulated.app) as server:
        reading = connector(simulated, server.url)
        rates = {row["TaxType"]: row for row in org.tax_rates}
        first = {r.external_id: r for page in reading.invoices(None) for r in page.records}
        expected = first[created["InvoiceID"]]
        for item in created["LineItems"]:  # the same rate under a new type, created since
            org.tax_rates.append({**rates[item["TaxType"]], "TaxType": f"NEW{item['TaxType']}"})
            item["TaxType"] = f"NEW{item['TaxType']}"
        unknown["LineItems"][0]["TaxType"] = "NOWHERE"
        org.changed()
        simulated.request_log.clear()
        pages = list(reading.invoices(None))

    records = {record.external_id: record for page in pages for record in page.records}
    failures = [failure for page in pages for failure in page.failures]
    mapped = records[created["InvoiceID"]]
    assert [(m.cgst, m.sgst, m.igst) for m in (mapped, expected)] == [
        (expected.cgst, expected.sgst, expected.igst)
    ] * 2
    assert mapped.tax_total == expected.tax_total > 0
    assert [failure.entity_id for failure in failures] == [unknown["InvoiceID"]]
    assert "TaxType: 'NOWHERE' is not among the organisation's tax rates" in failures[0].message
    read_again = [e for e in simulated.request_log if e.path.endswith("/TaxRates")]
    assert len(read_again) == 1


def test_a_deleted_invoice_is_a_tombstone_in_an_incremental_run(xero_of):
    tenant = xero_of(small_books())
    assert tenant.materialize().success
    issued = [sale for sale in tenant.books.live_sales() if sale.status == "issued"]
    tenant.books.delete_sale(issued[0].key)
    tenant.books.void_sale(issued[1].key)

    result = tenant.materialize("invoices")

    assert result.success and metadata(result, "invoices")["listing"] == "changes"
    assert (metadata(result, "invoices")["records_deleted"], live_invoices(tenant)) == (1, 39)
    warehouse_matches_books(tenant)  # the void stays, as void


def test_a_supplier_invoiced_for_the_first_time_is_fetched_by_id(xero_of):
    books = small_books(seed=5)
    invoiced = {sale.party_key for sale in books.sales.values()}
    supplier = next(key for key in books.parties if key not in invoiced)
    tenant = xero_of(books, suppliers=frozenset({supplier}))
    assert tenant.materialize().success
    name = books.parties[supplier].name
    assert (name,) not in tenant.query("SELECT name FROM accounting.customers")
    # A later edit moves the customers cursor past the supplier's last change.
    books.edit_party(next(iter(invoiced)), email="accounts@example.com")
    assert tenant.materialize("customers").success
    contacts = next(iter(tenant.simulated.simulator.organisations.values())).contacts
    contact = next(c for c in contacts.values() if c["Name"] == name)
    stamp = contact["UpdatedDateUTC"]

    books.add_sale(supplier, [next(iter(books.sales.values())).lines[0]])
    tenant.simulated.request_log.clear()
    result = tenant.materialize()

    assert contact["IsCustomer"] and contact["UpdatedDateUTC"] == stamp  # Xero's own flag
    assert result.success
    warehouse_matches_books(tenant)
    by_id = [e.params.get("IDs") for e in tenant.simulated.request_log if e.params.get("IDs")]
    assert by_id == [contact["ContactID"]]


# --- webhooks and replays -------------------------------------------------------------------------


def test_books_changes_become_signed_webhooks_and_intent_to_receive_is_signed_both_ways():
    simulated = simulate(small_books(), tenant_id=new_tenant_id())
    books, sim = simulated.books, simulated.simulator
    sale = books.live_sales()[0]
    books.pay(sale.key, 100)
    books.add_sale(sale.party_key, sale.lines[:1])
    books.archive_party(sale.party_key)

    delivery = sim.webhook_delivery()

    body, headers = delivery
    assert verify_signature(WEBHOOK_KEY, body, headers[protocol.SIGNATURE_HEADER])
    notices = parse_notices(body)
    assert [(n.entity, n.operation) for n in notices] == [
        ("invoices", "updated"),
        ("invoices", "created"),
        ("customers", "updated"),
    ]
    tenant = simulated.connection_config("")["xero_tenant_id"]
    assert {notice.account_id for notice in notices} == {tenant} and sim.events == []

    async def receiver(request: Request) -> Response:
        signed = verify_signature(
            WEBHOOK_KEY, await request.body(), request.headers.get("x-xero-signature")
        )
        return Response(status_code=200 if signed else 401)

    good, bad = sim.intent_to_receive(signed=True), sim.intent_to_receive(signed=False)
    assert is_intent_to_receive(json.loads(good[0]))
    with LoopbackServer(Starlette(routes=[Route("/hook", receiver, methods=["POST"])])) as server:
        statuses = [sim.send_webhook(f"{server.url}/hook", d) for d in (good, bad, delivery)]
    assert statuses == [200, 401, 200]


def test_a_file_that_holds_no_xero_records_is_refused_naming_it(tmp_path):
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps({"Items": [{"ItemID": "1"}]}))
    with pytest.raises(ReplayError, match="stray.json: no Xero records"):
        replay([stray])
    broken = tmp_path / "broken.json"
    broken.write_text('{"Invoices": [{"InvoiceID": "1"}')
    with pytest.raises(ReplayError, match="broken.json: invalid JSON"):
        replay([broken])


@pytest.mark.real_fixtures
def test_the_recorded_organisation_replays_every_sales_invoice_with_implied_tax_rates(tenant_of):
    folder = REAL_FIXTURES / "xero"
    simulated = replay(sorted(folder.glob("*.json")), requests_per_minute=FAST)
    tenant = tenant_of("xero", simulated=simulated)

    result = tenant.materialize()

    assert result.success and failed_checks(result) == []
    recorded = json.loads((folder / "nango_invoices.test.json").read_text())
    sales = [
        invoice
        for invoice in recorded["api"]["get"][f"{API}/Invoices"]["response"]["Invoices"]
        if invoice["Type"] == "ACCREC" and invoice["Status"] != "DELETED"
    ]
    numbers = {
        number for (number,) in tenant.query("SELECT invoice_number FROM accounting.invoices")
    }
    assert {invoice["InvoiceNumber"] for invoice in sales} <= numbers
    # The vendor's list example lost its lines: served only unpaged, so never imported.
    assert live_invoices(tenant) == len(sales) + 1  # and the vendor's single-invoice example
    assert len(simulated.simulator.events) == 2  # the webhook examples, queued
