"""Zoho Books imports end to end: simulator over loopback HTTP → Dagster assets → PostgreSQL."""

import gc
import threading
import time
from decimal import Decimal

from hub_pipelines.imports.collection import BULK_THRESHOLD
from hub_pipelines_tests.conftest import assert_failed_naming_the_upgrade, one_migration_behind
from hub_pipelines_tests.zoho_books.conftest import TENANT, checks, invoices, metadata


def warehouse_equals_source(zoho) -> None:
    """Every source invoice is in the warehouse with the same totals and lines, once."""
    source = {
        i: zoho.simulator.get_invoice(zoho.org_id, i)
        for i in zoho.simulator.invoice_ids(zoho.org_id)
    }
    rows = zoho.query(
        "SELECT external_id, total, status, balance_due, "
        "(SELECT count(*) FROM accounting.invoice_lines l WHERE l.tenant_id = i.tenant_id "
        " AND l.system = i.system AND l.invoice_external_id = i.external_id) "
        "FROM accounting.invoices i WHERE tenant_id = %s AND deleted_at IS NULL",
        (TENANT,),
    )
    warehouse = {
        external_id: (total, status, balance, lines)
        for external_id, total, status, balance, lines in rows
    }
    assert set(warehouse) == set(source)
    for external_id, invoice in source.items():
        total, _, balance, lines = warehouse[external_id]
        assert total == Decimal(str(invoice["total"])), external_id
        assert balance == Decimal(str(invoice["balance"])), external_id
        assert lines == len(invoice["line_items"]), external_id
    contacts = set(zoho.simulator.contact_ids(zoho.org_id))
    imported = {
        r[0]
        for r in zoho.query(
            "SELECT external_id FROM accounting.customers WHERE tenant_id = %s", (TENANT,)
        )
    }
    assert imported == contacts


def test_bulk_import_then_nothing_then_exactly_the_edits(zoho):
    zoho.simulator.seed_generated(
        zoho.org_id, customers=1000, invoices=5000, lines_per_invoice=3, seed=7
    )

    first = zoho.materialize()
    assert first.success
    assert metadata(first, "customers")["records_inserted"] == 1000
    assert metadata(first, "invoices")["records_inserted"] == 5000
    assert metadata(first, "invoices")["dagster/row_count"] == 5000
    warehouse_equals_source(zoho)
    assert all(e.passed for e in checks(first).values()), [
        (name, e.description) for name, e in checks(first).items() if not e.passed
    ]
    lines = zoho.scalar(
        "SELECT count(*) FROM accounting.invoice_lines WHERE tenant_id = %s", (TENANT,)
    )
    assert lines > 5000

    second = zoho.materialize()
    for asset in ("customers", "invoices"):
        meta = metadata(second, asset)
        assert (meta["records_inserted"], meta["records_updated"]) == (0, 0), asset
    assert metadata(second, "invoices")["api_calls"] < 40  # list calls only, no detail calls

    ids = zoho.simulator.invoice_ids(zoho.org_id)
    edited, voided = ids[100:110], ids[200:202]
    for invoice_id in edited:
        zoho.simulator.edit_invoice(zoho.org_id, invoice_id, reference_number="PO-EDITED")
    for invoice_id in voided:
        zoho.simulator.void_invoice(zoho.org_id, invoice_id)
    synced_before = dict(zoho.query("SELECT external_id, synced_at FROM accounting.invoices"))

    third = zoho.materialize(invoices)
    meta = metadata(third, "invoices")
    assert (meta["records_inserted"], meta["records_updated"]) == (0, 12)
    synced_after = dict(zoho.query("SELECT external_id, synced_at FROM accounting.invoices"))
    changed = {i for i in synced_after if synced_after[i] != synced_before[i]}
    assert changed == set(edited) | set(voided)
    statuses = dict(
        zoho.query(
            "SELECT external_id, status FROM accounting.invoices WHERE external_id = ANY(%s)",
            (voided,),
        )
    )
    assert set(statuses.values()) == {"void"}
    warehouse_equals_source(zoho)


def test_sync_log_and_cursor_are_recorded_per_run_and_entity(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=20, invoices=60)
    result = zoho.materialize()
    logs = zoho.query(
        "SELECT entity_type, status, records_inserted, api_calls, cursor_after, dagster_run_id "
        "FROM hub.accounting_sync_logs ORDER BY entity_type"
    )
    assert [(e, s, n) for e, s, n, *_ in logs] == [
        ("customers", "success", 20),
        ("invoices", "success", 60),
    ]
    assert all(row[3] > 0 and row[4] and row[5] == result.run_id for row in logs)
    cursors = dict(
        zoho.query("SELECT entity, cursor FROM hub.sync_state WHERE tenant_id = %s", (TENANT,))
    )
    assert cursors["invoices"] == metadata(result, "invoices")["cursor_after"]
    (synced_at, failures) = zoho.query(
        "SELECT last_sync_at, consecutive_failures FROM hub.accounting_configs WHERE tenant_id = %s",
        (TENANT,),
    )[0]
    assert synced_at is not None and failures == 0


def test_a_partition_without_an_enabled_config_fails_at_once(zoho):
    zoho.registry.set_enabled(TENANT, "zoho_books", False)
    result = zoho.materialize()
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "the config is disabled" in failure.step_failure_data.error.message
    assert zoho.simulator.requests_served == 0


def test_a_warehouse_behind_the_code_fails_at_once_naming_the_migration_and_the_fix(zoho):
    """Code upgraded without `hub db upgrade`: a clear CONFIG failure before any call, not an
    unexpected error on a missing column half-way."""
    with one_migration_behind(zoho.warehouse_url) as newest:
        result = zoho.materialize()
    assert_failed_naming_the_upgrade(result, newest)
    assert zoho.simulator.requests_served == 0


def test_full_refresh_soft_deletes_what_the_source_no_longer_has(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=40)
    assert zoho.materialize().success
    gone = zoho.simulator.invoice_ids(zoho.org_id)[:3]
    for invoice_id in gone:
        zoho.simulator.delete_invoice(zoho.org_id, invoice_id)

    incremental = zoho.materialize(invoices)
    assert not checks(incremental)["invoices.matches_source"].passed  # drift is reported
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices WHERE deleted_at IS NOT NULL") == 0

    full = zoho.materialize(invoices, full_refresh=True)
    assert metadata(full, "invoices")["records_deleted"] == 3
    deleted = {
        r[0]
        for r in zoho.query(
            "SELECT external_id FROM accounting.invoices WHERE deleted_at IS NOT NULL"
        )
    }
    assert deleted == set(gone)
    assert checks(full)["invoices.matches_source"].passed
    warehouse_equals_source(zoho)


def test_full_refresh_refuses_to_delete_everything_on_an_empty_answer(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=10)
    assert zoho.materialize().success
    for invoice_id in zoho.simulator.invoice_ids(zoho.org_id):
        zoho.simulator.delete_invoice(zoho.org_id, invoice_id)
    result = zoho.materialize(invoices, full_refresh=True)
    assert not result.success
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices WHERE deleted_at IS NULL") == 10
    (status, message) = zoho.query(
        "SELECT status, error_message FROM hub.accounting_sync_logs WHERE dagster_run_id = %s",
        (result.run_id,),
    )[0]
    assert status == "failed" and "refusing to mark 10 as deleted" in message


def test_backfill_runs_are_full_refreshes(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=10)
    assert zoho.materialize().success
    result = zoho.materialize(invoices, tags={"dagster/backfill": "abc123"})
    assert metadata(result, "invoices")["sync_type"] == "full"
    assert metadata(result, "invoices")["cursor_before"] == "none"


def test_an_import_collects_garbage_less_often_and_restores_the_collector_after(zoho):
    """Parsing and mapping pages allocate in bulk; the import raises the collector's threshold
    while it runs (imports/collection.py) and gives the process back as it found it."""
    zoho.simulator.seed_generated(zoho.org_id, customers=50, invoices=300, seed=7)
    seen, done = set(), threading.Event()

    def watch() -> None:  # the threshold is the process's: sample it while the run goes on
        while not done.is_set():
            seen.add(gc.get_threshold()[0])
            time.sleep(0.001)

    before = gc.get_threshold()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert zoho.materialize().success
    finally:
        done.set()
        watcher.join()
    assert seen == {before[0], BULK_THRESHOLD}
    assert gc.get_threshold() == before
