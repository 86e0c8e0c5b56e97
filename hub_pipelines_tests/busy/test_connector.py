"""What the contract suite does not cover for BUSY: the Sundry Debtors subtree, per-year keys and
deletes, the ModificationTime window and its keyset pages, a closed company, hung calls, a
voucher of another year, the calls an import costs, credentials out of the run's records, and
the replayed captures. Over real HTTP to the simulator on loopback; imports through Dagster."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from hub_pipelines.busy import protocol
from hub_pipelines.busy.connector import BusyResource
from hub_pipelines.busy.simulator import IST, OTHER_ACCOUNTS, replay, simulate
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.simulation import books as generated
from hub_pipelines.simulation.replay import files_in
from hub_pipelines_tests.busy.conftest import connector
from hub_pipelines_tests.conftest import REAL_FIXTURES
from hub_pipelines_tests.contract.conftest import (
    AS_OF,
    TENANT,
    failed_checks,
    metadata,
    small_books,
    warehouse_matches_books,
)


def held(tenant, entity: str = "invoices") -> dict[str, bool]:
    """external id -> live, for the tenant's BUSY rows."""
    rows = tenant.query(
        f"SELECT external_id, deleted_at IS NULL FROM accounting.{entity} "
        "WHERE tenant_id = %s AND system = 'busy'",
        (TENANT,),
    )
    return dict(rows)


def voucher_reads(simulated) -> int:
    return sum(1 for entry in simulated.request_log if entry.params.get("SC") == "8")


def sql_calls(simulated, template: str) -> list[str]:
    pattern = protocol.template_pattern(template)
    return [
        entry.params["Qry"]
        for entry in simulated.request_log
        if pattern.fullmatch(entry.params.get("Qry", ""))
    ]


# --- customers ------------------------------------------------------------------------------------


def test_customers_are_the_sundry_debtors_subtree_with_its_sub_groups(busy_of):
    tenant = busy_of(small_books())

    assert tenant.materialize("customers").success

    names = {name for (name,) in tenant.query("SELECT name FROM accounting.customers")}
    masters = tenant.simulated.simulator.masters
    groups = {int(masters[5000 + key]["ParentGrp"]) for key in tenant.books.parties}
    assert names == {party.name for party in tenant.books.parties.values()}
    assert {116, 1003} <= groups  # the group itself and a sub-group of a sub-group
    assert not names & {name for _code, name, _parent in OTHER_ACCOUNTS}  # supplier, cash


def test_an_archived_party_is_deactivated_and_imported_inactive(busy_of):
    tenant = busy_of(small_books())
    assert tenant.materialize("customers").success
    party = next(iter(tenant.books.parties.values()))

    tenant.books.archive_party(party.key)
    assert tenant.materialize("customers").success

    row = tenant.simulated.simulator.masters[5000 + party.key]
    assert row["DeactiveMaster"] == "True" and row["Stamp"] == "2"
    active = dict(tenant.query("SELECT name, is_active FROM accounting.customers"))
    assert active == {p.name: p.active for p in tenant.books.parties.values()}
    assert active[party.name] is False


# --- years, keys and deletes ----------------------------------------------------------------------


def test_each_year_keys_its_own_vouchers_and_a_delete_never_reaches_another_year(busy_of):
    tenant = busy_of(small_books())
    assert tenant.materialize().success
    first, *later = sorted(tenant.simulated.simulator.databases)
    assert {f"Comp0001:{year}:1" for year in (first, *later)} <= set(held(tenant))
    sim = tenant.simulated.simulator
    gone = next(key for key, place in sim.sale_codes.items() if place == (later[0], 1))

    tenant.books.delete_sale(gone)
    result = tenant.materialize("invoices")  # incremental: the key list shows it gone

    assert result.success and metadata(result, "invoices")["records_deleted"] == 1
    live = held(tenant)
    assert live[f"Comp0001:{later[0]}:1"] is False and live[f"Comp0001:{first}:1"] is True
    warehouse_matches_books(tenant)


def test_a_year_that_lists_no_sale_after_it_had_some_fails_and_deletes_nothing(busy_of):
    tenant = busy_of(small_books())
    assert tenant.materialize().success
    before = held(tenant)
    newest = tenant.simulated.simulator.databases[max(tenant.simulated.simulator.databases)]
    newest.tran1.clear()  # a database answering empty, e.g. being restored

    result = tenant.materialize("invoices")

    assert not result.success
    assert held(tenant) == before
    ((message,),) = tenant.query(
        "SELECT error_message FROM hub.accounting_sync_logs WHERE system = 'busy' "
        "AND status = 'failed'"
    )
    assert "lists no sale in FY" in message and "nothing was deleted" in message


def test_configured_years_must_exist_and_name_the_missing_one():
    simulated = simulate(small_books())
    with LoopbackServer(simulated.app) as server:
        busy = connector(simulated, server.url, first_financial_year=None, financial_years=[2019])
        with pytest.raises(SyncError) as raised:
            busy.test_connection()
        both = connector(simulated, server.url, first_financial_year=2025)
        assert both.years() == [2025, 2026]
    assert raised.value.category == Category.CONFIG and "FY 2019-20" in raised.value.message


# --- the change window ----------------------------------------------------------------------------


def test_changes_are_read_from_a_modification_time_window_with_overlap():
    books = small_books()
    simulated = simulate(books)
    warehouse: dict[str, datetime] = {}

    def versions(_entity, ids):
        return {key: warehouse[key] for key in ids if key in warehouse}

    with LoopbackServer(simulated.app) as server:
        first = list(connector(simulated, server.url, versions).invoices(None))
        warehouse.update({r.external_id: r.source_updated_at for p in first for r in p.records})
        cursor = first[-1].cursor
        edited = next(sale for sale in books.live_sales() if sale.status == "issued")
        books.edit_sale(edited.key)
        added = books.add_sale(edited.party_key, [edited.lines[0]])  # never edited: NULL
        reads = voucher_reads(simulated)
        again = list(connector(simulated, server.url, versions).invoices(cursor))

    changed = json.loads(cursor)["changed"]
    since = datetime.fromisoformat(changed) - timedelta(minutes=5)  # the overlap
    after = protocol.sql_time(since.astimezone(IST).replace(tzinfo=None))
    assert all(f"> '{after}'" in sql for sql in sql_calls(simulated, protocol.SALES)[-3:])
    read = sorted(r.invoice_number for p in again for r in p.records)
    assert read == sorted([edited.number, added.number])
    assert voucher_reads(simulated) - reads == 2
    year, code = simulated.simulator.sale_codes[added.key]
    new_row = simulated.simulator.databases[year].tran1[code]
    assert new_row["ModificationTime"] is None and new_row["Stamp"] == "1"


def test_keyset_pages_of_rows_sharing_one_time_read_every_row_once():
    books = generated.generate(seed=4, parties=3, sales=30, as_of=AS_OF, years=1)
    simulated = simulate(books)
    for db in simulated.simulator.databases.values():  # coarse times: one second for all
        for row in db.tran1.values():
            row["ModificationTime"] = "2026-04-02T10:00:00"
    with LoopbackServer(simulated.app) as server:
        busy = connector(simulated, server.url)
        busy.page_size = 4
        records = [r.external_id for p in busy.invoices(None) for r in p.records]

    assert len(records) == len(set(records)) == len(books.live_sales(drafts=False))
    assert len(sql_calls(simulated, protocol.SALES)) >= len(records) // 4


# --- faults ---------------------------------------------------------------------------------------


def test_a_company_closed_mid_run_is_retried_and_never_reads_as_empty(busy_of, monkeypatch):
    tenant = busy_of(small_books())
    assert tenant.materialize().success
    live = held(tenant)

    tenant.simulated.simulator.close_company(2)  # a dropped session, back on the third call
    assert tenant.materialize("invoices").success
    tenant.simulated.simulator.company_open = False
    closed = tenant.materialize("invoices", full_refresh=True)

    assert not closed.success and held(tenant) == live
    ((category, message),) = tenant.query(
        "SELECT metadata->>'category', error_message FROM hub.accounting_sync_logs "
        "WHERE system = 'busy' AND status = 'failed'"
    )
    assert category == "SERVER" and "no company open: Please open a company" in message


def test_a_hung_call_past_the_timeout_is_retried():
    simulated = simulate(small_books())
    simulated.simulator.hang_next(1, seconds=1.0)
    with LoopbackServer(simulated.app) as server:
        busy = connector(simulated, server.url, timeout_seconds=0.3)
        assert busy.years() == [2024, 2025, 2026]

    assert (busy.api_calls, busy.retries) == (2, 1)


def test_a_voucher_of_another_year_than_the_one_asked_for_stops_the_run():
    simulated = simulate(small_books())
    simulated.simulator.honours_year_header = False  # as real BUSY: the year open in the desktop
    with LoopbackServer(simulated.app) as server, pytest.raises(SyncError) as raised:
        list(connector(simulated, server.url).invoices(None))

    error = raised.value
    assert (error.category, error.code, error.retryable) == (
        Category.CONFIG,
        "other_year_open",
        True,
    )
    assert "FY 2026-27" in error.message and "BusyComp0001_db12024" in error.message


def test_the_password_stays_out_of_the_runs_records(busy_of):
    tenant = busy_of(small_books(), register=False)
    tenant.register(password="not-the-password-42")

    result = tenant.materialize("customers")

    assert not result.success
    logs = tenant.query("SELECT * FROM hub.accounting_sync_logs WHERE system = 'busy'")
    events = tenant.instance.all_logs(result.run_id)  # Dagster's: step failure, its metadata
    texts = [json.dumps(row, default=str) for row in logs] + [repr(e) for e in events]
    assert any("BUSY refused the sign-in" in text for text in texts)
    assert not any("not-the-password-42" in text for text in texts)


# --- costs and captures ---------------------------------------------------------------------------


def test_a_first_import_and_a_no_change_run_of_small_books_cost_few_calls(busy_of):
    tenant = busy_of(small_books())

    first = tenant.materialize()
    calls_first = tenant.requests()
    again = tenant.materialize()
    calls_again = tenant.requests() - calls_first

    assert first.success and again.success and failed_checks(again) == []
    sales = len(tenant.live_sales())
    # customers: years, groups, keys, a page; invoices: years, per year (3) keys and a page,
    # the item masters once, and a voucher per sale
    assert calls_first == 4 + 1 + 3 * 2 + 1 + sales
    assert calls_again == 4 + 1 + 3 * 2  # and no voucher read


def test_a_small_page_size_from_the_resource_still_reads_everything(busy_of):
    tenant = busy_of(small_books())
    tenant.resources["busy"] = BusyResource(page_size=5)

    assert tenant.materialize().success
    warehouse_matches_books(tenant)


@pytest.mark.real_fixtures
def test_replayed_captures_import_the_captured_accounts(tenant_of):
    simulated = replay(files_in(REAL_FIXTURES / "busy"))
    tenant = tenant_of("busy", simulated=simulated)

    result = tenant.materialize()

    assert result.success and failed_checks(result) == []
    customers = dict(tenant.query("SELECT name, is_active FROM accounting.customers"))
    assert customers == {
        "'ENAIBE L C (MRS)": True,
        "O'Brien Chukwu": True,
        "Discontinued Supplier Ltd": False,
    }
    assert held(tenant) == {}  # the captures hold no sale voucher
