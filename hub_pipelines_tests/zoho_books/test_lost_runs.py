"""Every failure is recorded and classified, however the run was launched (issue 7, points 4–6):
a warehouse that goes away mid-run, a bad setting while the connector is built, and the run-health
sensor, which must fail dead runs and never a live one."""

from __future__ import annotations

import threading
import time

from hub_pipelines.imports.run_health import (
    SESSION_PREFIX,
    live_sessions,
    lost_runs,
    session_name,
)
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import customers, invoices, record_failure


def _sync_log(zoho, run_id: str, entity: str = "invoices") -> tuple:
    return zoho.query(
        "SELECT status, metadata->>'category', error_message FROM hub.accounting_sync_logs "
        "WHERE dagster_run_id = %s AND entity_type = %s",
        (run_id, entity),
    )[0]


def _when_importing(zoho, action) -> threading.Thread:
    """Run `action(run_id)` from another thread once an import step holds its named session."""

    def watch() -> None:
        deadline = time.monotonic() + 60  # a bound on the wait, not a timing assertion
        while time.monotonic() < deadline:
            rows = zoho.query(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
                (SESSION_PREFIX + "%",),
            )
            if rows and zoho.scalar("SELECT count(*) FROM accounting.invoices") >= 20:
                action(rows[0][0].removeprefix(SESSION_PREFIX))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_a_warehouse_connection_lost_mid_run_is_a_retryable_network_failure(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=60)
    zoho.simulator.faults.latency = 0.02

    def cut(run_id: str) -> None:  # what an outage does to the step's session
        zoho.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (session_name(run_id),),
        )

    watcher = _when_importing(zoho, cut)
    result = zoho.materialize(invoices, zoho_books=_small_pages())
    watcher.join()
    assert not result.success
    status, category, message = _sync_log(zoho, result.run_id)
    assert (status, category) == ("failed", "NETWORK")  # closed on a fresh connection
    assert "warehouse could not be reached" in message
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    user = failure.step_failure_data.user_failure_data
    assert user.metadata["category"].value == "NETWORK"
    record_failure(zoho, result)
    retryable, next_retry = zoho.query(
        "SELECT retryable, next_retry_at FROM hub.accounting_sync_errors WHERE scope = 'run'"
    )[0]
    assert retryable and next_retry is not None


def test_a_bad_setting_while_building_the_connector_closes_the_log_as_config(zoho, monkeypatch):
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "abc")
    result = zoho.materialize(customers)
    assert not result.success
    status, category, message = _sync_log(zoho, result.run_id, "customers")
    assert (status, category) == ("failed", "CONFIG")
    assert "RETRY_MAX_ATTEMPTS" in message
    record_failure(zoho, result)
    category, retryable = zoho.query(
        "SELECT category, retryable FROM hub.accounting_sync_errors WHERE scope = 'run'"
    )[0]
    assert (category, retryable) == ("CONFIG", False)


def test_a_working_import_is_never_taken_for_a_lost_run(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=60)
    zoho.simulator.faults.latency = 0.02
    verdicts: list[tuple[set[str], list]] = []

    def judge(run_id: str) -> None:  # a health tick with no patience at all, mid-import
        with WarehouseResource(database_url=zoho.warehouse_url).connect() as conn:
            live = live_sessions(conn)
        verdicts.append((live, lost_runs(zoho.instance, live, time.time() + 3600, 1)))

    watcher = _when_importing(zoho, judge)
    result = zoho.materialize(invoices, zoho_books=_small_pages())
    watcher.join()
    assert result.success
    ((live, lost),) = verdicts
    assert result.run_id in live and lost == []


def _small_pages() -> ZohoBooksResource:
    return ZohoBooksResource(page_size=10)
