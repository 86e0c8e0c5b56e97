"""The incremental walk over Zoho Books: where it starts (the cursor minus an overlap), what it
fetches (only changed records), and where it leaves the cursor (never past a failed record)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub_pipelines.connectors.base import parse_timestamp
from hub_pipelines.zoho_books.connector import zoho_timestamp
from hub_pipelines_tests.zoho_books.conftest import TENANT, customers, invoices, metadata


def stored_cursor(zoho, entity: str = "invoices") -> datetime:
    cursor = zoho.scalar(
        "SELECT cursor FROM hub.sync_state WHERE tenant_id = %s AND entity = %s", (TENANT, entity)
    )
    return parse_timestamp(cursor)


def edit_at(zoho, invoice_id: str, moment: datetime, **changes) -> None:
    """Edit an invoice as if Zoho stamped it at `moment` (a late commit or a skewed clock)."""
    clock = zoho.simulator.clock
    zoho.simulator.clock = lambda: moment
    try:
        zoho.simulator.edit_invoice(zoho.org_id, invoice_id, **changes)
    finally:
        zoho.simulator.clock = clock


def list_filters(zoho) -> list[str | None]:
    """The `last_modified_time` filter of each invoice list call, in order."""
    return [
        entry.params.get("last_modified_time")
        for entry in zoho.simulator.request_log
        if entry.path == "/books/v3/invoices"
    ]


def reference(zoho, invoice_id: str) -> str | None:
    return zoho.scalar(
        "SELECT raw->>'reference_number' FROM accounting.invoices WHERE external_id = %s",
        (invoice_id,),
    )


def test_an_edit_stamped_just_before_the_cursor_is_still_picked_up(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=20)
    assert zoho.materialize().success
    cursor = stored_cursor(zoho)
    late = zoho.simulator.invoice_ids(zoho.org_id)[5]
    edit_at(zoho, late, cursor - timedelta(minutes=2), reference_number="PO-LATE")

    result = zoho.materialize(invoices)
    assert metadata(result, "invoices")["records_updated"] == 1
    assert reference(zoho, late) == "PO-LATE"


def test_the_incremental_list_starts_five_minutes_before_the_cursor(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=20)
    assert zoho.materialize(customers, invoices).success
    cursor = stored_cursor(zoho)
    zoho.simulator.request_log.clear()

    assert zoho.materialize(invoices).success
    # The walk's list call, then the listing pass (reconciliation) without a filter.
    assert list_filters(zoho) == [zoho_timestamp(cursor - timedelta(minutes=5)), None]


def test_the_cursor_is_the_newest_version_read_and_a_first_run_lists_everything(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=20)
    result = zoho.materialize(invoices)
    assert list_filters(zoho)[0] is None
    newest = max(
        parse_timestamp(zoho.simulator.get_invoice(zoho.org_id, i)["last_modified_time"])
        for i in zoho.simulator.invoice_ids(zoho.org_id)
    )
    assert stored_cursor(zoho) == newest
    assert metadata(result, "invoices")["cursor_after"] == newest.isoformat()


def test_an_unchanged_walk_fetches_no_detail_and_keeps_the_cursor(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=20)
    assert zoho.materialize(invoices).success
    cursor = stored_cursor(zoho)
    zoho.simulator.request_log.clear()
    result = zoho.materialize(invoices)
    details = [e for e in zoho.simulator.request_log if e.path.startswith("/books/v3/invoices/")]
    assert details == []
    assert metadata(result, "invoices")["records_unchanged"] == 0  # not even fetched
    assert stored_cursor(zoho) == cursor


def in_list_order(zoho) -> list[str]:
    """Invoice ids in the order the walk lists them (oldest created first)."""
    ids = zoho.simulator.invoice_ids(zoho.org_id)
    return sorted(
        ids, key=lambda i: (zoho.simulator.get_invoice(zoho.org_id, i)["created_time"], i)
    )


def test_failed_records_hold_the_cursor_back_to_the_oldest_until_they_load(zoho):
    zoho.register(sync_config={"error_threshold": 0.9})  # 2 of the 3 changed records fail
    # Books as of yesterday: the edits below, hours after the cursor, are still in the past
    # (the walk never moves the cursor past its own start, whatever the hour of the run).
    yesterday = datetime.now(UTC) - timedelta(days=1)
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=20, as_of=yesterday)
    assert zoho.materialize(invoices).success
    cursor = stored_cursor(zoho)
    ids = in_list_order(zoho)
    # The older failure is listed first: the cursor must stay at it, not at the last one met.
    broken, broken_later, later = ids[3], ids[15], ids[8]
    edit_at(zoho, broken, cursor + timedelta(hours=1), reference_number="PO-BROKEN")
    edit_at(zoho, later, cursor + timedelta(hours=2), reference_number="PO-LATER")
    edit_at(zoho, broken_later, cursor + timedelta(hours=3), reference_number="PO-BROKEN-2")
    for invoice_id in (broken, broken_later):
        zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{invoice_id}")

    partial = zoho.materialize(invoices)
    assert metadata(partial, "invoices")["records_failed"] == 2
    assert reference(zoho, later) == "PO-LATER"
    assert stored_cursor(zoho) == cursor + timedelta(hours=1)  # not past the oldest failure

    zoho.simulator.faults.clear()
    healed = zoho.materialize(invoices)
    assert metadata(healed, "invoices")["records_updated"] == 2
    assert reference(zoho, broken) == "PO-BROKEN"
    assert stored_cursor(zoho) == cursor + timedelta(hours=3)


@pytest.mark.parametrize(("failing", "succeeds"), [(4, True), (5, False)])
def test_five_detail_calls_failing_in_a_row_fail_the_run_four_are_record_errors(
    zoho, failing, succeeds
):
    """A source failing detail after detail is down, not holding bad records."""
    zoho.register(sync_config={"error_threshold": 1.0})
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=failing)
    for invoice_id in zoho.simulator.invoice_ids(zoho.org_id):
        zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{invoice_id}", truncated=True)
    result = zoho.materialize(invoices)
    assert result.success is succeeds
    errors = zoho.scalar("SELECT count(*) FROM hub.accounting_sync_errors WHERE scope = 'record'")
    assert errors == (failing if succeeds else 0)


def test_the_cursor_never_passes_the_start_of_the_walk(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    future = datetime.now().astimezone() + timedelta(days=2)  # an edit stamped ahead of us
    edit_at(zoho, zoho.simulator.invoice_ids(zoho.org_id)[0], future)
    before = datetime.now().astimezone()
    assert zoho.materialize(invoices).success
    assert before <= stored_cursor(zoho) < future
