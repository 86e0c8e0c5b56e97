"""What the contract suite does not cover for Tally: the counters poll, re-syncs on a lower counter
or a new company GUID, batches under the cap, deletes by GUID diff per entity, a company that
is wrong, closed mid-run or answers no sales, slow answers, and the file-drop-only tenant.
Imports run through Dagster against the simulator over real HTTP on loopback."""

from __future__ import annotations

import threading

import pytest

from hub_pipelines.canonical import Page
from hub_pipelines.connectors import xml
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.tally.connector import TallyConnector
from hub_pipelines.tally.simulator import simulate
from hub_pipelines.tenants.models import TallyConfig
from hub_pipelines_tests.contract.conftest import (
    TENANT,
    failed_checks,
    metadata,
    small_books,
    warehouse_matches_books,
)
from hub_pipelines_tests.tally.conftest import connector

RICH = 5  # a seed whose small books hold overseas buyers, drafts and voids


def failure(tenant) -> tuple[str, str]:
    """(category, message) of the last failed import."""
    return tenant.query(
        "SELECT metadata->>'category', error_message FROM hub.accounting_sync_logs "
        "WHERE system = 'tally' AND status = 'failed' ORDER BY id DESC LIMIT 1"
    )[0]


def live(tenant, entity: str) -> set[str]:
    rows = tenant.query(
        f"SELECT external_id FROM accounting.{entity} "
        "WHERE tenant_id = %s AND system = 'tally' AND deleted_at IS NULL",
        (TENANT,),
    )
    return {external_id for (external_id,) in rows}


def test_unchanged_counters_are_one_request_and_nothing_else():
    simulated = simulate(small_books())
    with LoopbackServer(simulated.app) as server:
        tally = connector(simulated, server.url)
        cursor = list(tally.invoices(None))[-1].cursor
        before = len(simulated.request_log)

        pages = list(tally.invoices(cursor))

    assert len(simulated.request_log) - before == 1
    assert pages == [Page([], cursor=cursor)]


def test_a_first_import_and_a_run_without_changes_measured_in_calls(tally_of):
    tenant = tally_of()

    first = tenant.materialize()
    after_first = tenant.requests()
    again = tenant.materialize()

    assert first.success and again.success and failed_checks(again) == []
    sent = {entry.params["content_type"] for entry in tenant.simulated.request_log}
    assert sent == {"text/xml;charset=utf-16"}  # UTF-16 on the wire, every request
    names = {name for (name,) in tenant.query("SELECT name FROM accounting.customers")}
    assert tenant.books.parties[2].name in names  # its ledger name carries a raw U+0005
    # customers: counters, groups, currencies, ledgers, changed ledgers; invoices: counters,
    # groups, voucher types, currencies, ledgers, the sales GUID list, one batch of 40.
    assert after_first == 5 + 7
    # Per entity: the counters (nothing changed), then matches_source's count: two light lists.
    assert tenant.requests() - after_first == 2 * 3
    assert metadata(again, "invoices")["records_fetched"] == 0


def test_a_lower_counter_or_another_company_guid_reads_everything_again(tally_of):
    tenant = tally_of()
    assert tenant.materialize().success
    company, sales = tenant.simulated.simulator.company, len(tenant.live_sales())

    company.counters["vouchers"] -= 3  # a backup restored over newer work
    restored = tenant.materialize("invoices")
    company.guid = "7f6d0c3e-0000-4000-8000-000000000001"  # migrated to a new company
    migrated = tenant.materialize("invoices")

    for result in (restored, migrated):
        assert result.success
        assert metadata(result, "invoices")["records_fetched"] == sales
    assert metadata(migrated, "invoices")["cursor_after"].count(company.guid) == 1
    warehouse_matches_books(tenant)


def test_every_pull_comes_in_batches_under_the_cap_sized_from_per_day_counts(tally_of):
    tenant = tally_of(small_books(seed=RICH), page_size=7)
    sizes: list[int] = []
    batch = lambda body: sizes.append(len(list(xml.objects(body, {"VOUCHER"}))))  # noqa: E731
    tenant.simulated.faults.after_page("/", 1, batch, times=None)

    assert tenant.materialize().success
    first = list(sizes)
    books = tenant.books
    for sale in [s for s in books.live_sales() if s.status == "issued"][:9]:
        books.edit_sale(sale.key)
    assert tenant.materialize("invoices").success

    assert max(sizes) <= 7 and sum(first) == len(tenant.live_sales())
    assert len(first) >= len(tenant.live_sales()) // 7 and sum(sizes[len(first) :]) == 9
    warehouse_matches_books(tenant)


def test_a_batch_is_handed_to_the_loader_in_pages_as_it_is_read():
    simulated = simulate(small_books(seed=RICH))
    with LoopbackServer(simulated.app) as server:
        tally = connector(simulated, server.url, page_size=7, page_rows=3)
        batches: list[int] = []
        count = lambda body: batches.append(len(list(xml.objects(body, {"VOUCHER"}))))  # noqa: E731
        simulated.faults.after_page("/", 1, count, times=None)
        pages = [page for page in tally.invoices(None) if page.records or page.failures]
        pulled = [n for n in batches if n <= 7]  # not the GUID list's answer: every voucher
        everything = connector(simulated, server.url)  # one batch, pages of 1,000
        whole = [r.external_id for p in everything.invoices(None) for r in p.records]

    read = [len(page.records) + len(page.failures) for page in pages]
    assert max(read) == 3 and len(pages) == sum(-(-n // 3) for n in pulled) > len(pulled)
    assert sorted(r.external_id for p in pages for r in p.records) == sorted(whole)
    assert len(whole) == len(set(whole)) > 7


def test_the_next_batch_is_asked_for_while_this_one_is_read():
    simulated = simulate(small_books(seed=RICH))
    answered: list[int] = []
    second = threading.Event()

    def batch(body) -> None:
        answered.append(len(list(xml.objects(body, {"VOUCHER"}))))
        if len([n for n in answered if n <= 7]) == 2:  # the GUID list names every voucher
            second.set()

    simulated.faults.after_page("/", 1, batch, times=None)
    with LoopbackServer(simulated.app) as server:
        walk = connector(simulated, server.url, page_size=7).invoices(None)
        first = next(page for page in walk if page.records)
        asked_meanwhile = second.wait(timeout=30)  # while the first batch's page is held
        rest = [r.external_id for page in walk for r in page.records]
        whole = [
            r.external_id
            for p in connector(simulated, server.url).invoices(None)
            for r in p.records
        ]

    assert asked_meanwhile and len(first.records) <= 7
    assert sorted([*(r.external_id for r in first.records), *rest]) == sorted(whole)


def test_an_error_of_the_batch_read_ahead_comes_after_the_pages_before_it():
    simulated = simulate(small_books(seed=RICH))
    batches: list[int] = []

    def break_the_rest(body) -> None:
        batches.append(len(list(xml.objects(body, {"VOUCHER"}))))
        if batches[-1] <= 7:  # the first batch answered: Tally fails from now on
            simulated.faults.fail_next(10, status=500)

    simulated.faults.after_page("/", 1, break_the_rest, times=None)
    quick = HttpSettings(retry_max_attempts=2, retry_initial_delay_ms=1, retry_max_delay_ms=1)
    with LoopbackServer(simulated.app) as server:
        walk = connector(simulated, server.url, page_size=7, settings=quick).invoices(None)
        read: list[int] = []
        with pytest.raises(SyncError) as failed:
            for page in walk:
                read.append(len(page.records))

    assert failed.value.category == Category.SERVER
    assert sum(read) == batches[-1] == 7  # the first batch was handed over whole, then the error


def test_deletes_are_a_guid_diff_per_entity_and_a_shared_guid_is_not_confused(tally_of):
    tenant = tally_of()
    assert tenant.materialize().success
    shared = live(tenant, "customers") & live(tenant, "invoices")  # masters and vouchers alike
    assert shared
    guid = sorted(shared)[0]
    (number,) = tenant.query(
        "SELECT invoice_number FROM accounting.invoices WHERE external_id = %s", (guid,)
    )[0]
    tenant.books.delete_sale(next(s.key for s in tenant.live_sales() if s.number == number))

    result = tenant.materialize()  # an incremental run, not a full refresh

    assert result.success and metadata(result, "invoices")["records_deleted"] == 1
    assert guid not in live(tenant, "invoices") and guid in live(tenant, "customers")
    warehouse_matches_books(tenant)


def test_an_empty_sales_list_while_the_warehouse_holds_invoices_deletes_nothing(tally_of):
    tenant = tally_of()
    assert tenant.materialize("invoices").success
    held = live(tenant, "invoices")
    company = tenant.simulated.simulator.company
    for key in [key for key in company.objects if key[1][0] == "VOUCHERTYPE"]:
        del company.objects[key]  # no type resolves to Sales: the list answers no sales
    company.counters["vouchers"] += 1

    result = tenant.materialize("invoices")

    assert not result.success and live(tenant, "invoices") == held
    category, message = failure(tenant)
    # The sync's guard: a complete listing that would delete everything is refused.
    assert category == "SOURCE_DATA" and "refusing to mark" in message


def test_a_company_tally_has_not_loaded_is_a_config_error_naming_it(tenant_of):
    tenant = tenant_of("tally", simulated=simulate(small_books()), register=False)
    tenant.register(company_name="Sharma & Sons (P) Ltd")

    result = tenant.materialize("customers")

    assert not result.success and live(tenant, "customers") == set()
    category, message = failure(tenant)
    assert category == "CONFIG" and "'Sharma & Sons (P) Ltd'" in message
    config = TallyConfig.model_validate(tenant.registry.get(TENANT, "tally").connection)
    with pytest.raises(SyncError) as raised:
        TallyConnector(config, versions=lambda _e, _ids: {}).test_connection()
    assert raised.value.category is Category.CONFIG


def test_a_company_closed_mid_run_fails_and_the_rerun_completes(tally_of):
    tenant = tally_of(page_size=10)
    assert tenant.materialize("customers").success
    simulator = tenant.simulated.simulator
    tenant.simulated.faults.after_page("/", 1, lambda _body: simulator.close_company(), times=1)

    closed = tenant.materialize("invoices")

    assert not closed.success
    category, message = failure(tenant)
    assert category == "CONFIG" and simulator.company.name in message
    simulator.close_company(False)
    assert tenant.materialize("invoices").success
    warehouse_matches_books(tenant)


def test_slow_answers_are_waited_for_up_to_the_timeout(tenant_of, monkeypatch):
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "2")
    tenant = tenant_of("tally", simulated=simulate(small_books()), register=False)
    tenant.simulated.faults.latency = 0.3
    tenant.register(timeout_seconds=5)
    assert tenant.materialize("customers").success

    tenant.register(timeout_seconds=0.1)
    too_slow = tenant.materialize("invoices")

    assert not too_slow.success and failure(tenant)[0] == "NETWORK"  # retried by the next run


def test_a_file_drop_tenant_has_no_live_connection():
    with pytest.raises(SyncError) as raised:
        TallyConnector(TallyConfig(file_drop=True), versions=lambda _e, _ids: {})

    assert raised.value.category is Category.CONFIG
    assert "no live connection" in raised.value.message
