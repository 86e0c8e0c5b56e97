"""Asset checks that fail where they should, schedules, the failure and retry sensors, and the
`hub errors` commands, all through Dagster against a simulated Zoho Books tenant."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from hub_pipelines import cli
from hub_pipelines.definitions import defs
from hub_pipelines.imports.schedules import import_schedules, import_time
from hub_pipelines.imports.sensors import import_failure_sensor
from hub_pipelines.resources import WarehouseResource
from hub_pipelines_tests.zoho_books.conftest import (
    TENANT,
    checks,
    customers,
    invoices,
    record_failure,
    retry_requests,
)


def test_corrupted_invoice_fails_the_arithmetic_and_gst_checks_naming_it(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    assert all(e.passed for e in checks(zoho.materialize()).values())
    number = zoho.scalar(
        "SELECT invoice_number FROM accounting.invoices WHERE cgst > 0 ORDER BY external_id LIMIT 1"
    )
    zoho.query(
        "UPDATE accounting.invoices SET cgst = cgst + 5 WHERE invoice_number = %s RETURNING 1",
        (number,),
    )
    result = zoho.materialize(invoices)  # incremental: nothing changed at the source
    found = checks(result)
    for name in ("invoices.invoice_totals_add_up", "invoices.gst_heads_match_supply_type"):
        assert not found[name].passed
        assert number in found[name].description
        assert found[name].severity == dg.AssetCheckSeverity.ERROR
    assert found["invoices.matches_source"].passed


def test_corrupted_gstin_and_missing_rows_fail_their_checks(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    assert zoho.materialize().success
    name = zoho.scalar("SELECT name FROM accounting.customers WHERE gstin IS NOT NULL LIMIT 1")
    zoho.query(
        "UPDATE accounting.customers SET gstin = overlay(gstin placing 'X' from 15) "
        "WHERE name = %s RETURNING 1",
        (name,),
    )
    customer_check = checks(zoho.materialize(customers))["customers.customer_gstins_valid"]
    assert not customer_check.passed and name in customer_check.description
    assert customer_check.severity == dg.AssetCheckSeverity.WARN

    zoho.query(
        "DELETE FROM accounting.customers WHERE external_id = "
        "(SELECT customer_external_id FROM accounting.invoices LIMIT 1) RETURNING 1"
    )
    # The oldest invoice: outside the incremental window, so the next run does not re-fetch it.
    zoho.query(
        "DELETE FROM accounting.invoices WHERE external_id = (SELECT external_id "
        "FROM accounting.invoices ORDER BY source_updated_at LIMIT 1) RETURNING 1"
    )
    found = checks(zoho.materialize(invoices))
    assert not found["invoices.invoice_customers_known"].passed
    reconciliation = found["invoices.matches_source"]
    assert not reconciliation.passed
    assert "warehouse 19, source 20" in reconciliation.description


def _schedule_tick(zoho, name: str, when: datetime):
    schedule = next(s for s in import_schedules if s.name == name)
    # As a context manager: the context opens its own instance, which must be closed again (left
    # open, it stays Dagster's current one after it is gone, and a later run in this thread fails).
    with dg.build_schedule_context(
        instance=zoho.instance,
        scheduled_execution_time=when,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
        repository_def=defs.get_repository_def(),
    ) as context:
        return schedule.evaluate_tick(context)


def _schedule_requests(zoho, name: str, when: datetime) -> list[dg.RunRequest]:
    return _schedule_tick(zoho, name, when).run_requests or []


def _due(frequency: str, day: datetime) -> datetime:
    """The minute the tenant's FREQUENCY imports are due in the period starting at DAY (the
    schedules stagger tenants over each period; test_schedules.py covers the stagger)."""
    return import_time("zoho_books", TENANT, frequency, day)


def test_schedules_request_one_run_per_enabled_config_and_entity(zoho):
    midnight = datetime(2026, 11, 21, 0, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    daily = _schedule_requests(zoho, "zoho_books_imports_daily", _due("daily", midnight))
    six_hourly = _schedule_requests(
        zoho, "zoho_books_imports_every_6_hours", _due("every_6_hours", midnight)
    )
    assert [(r.partition_key, r.asset_selection) for r in daily] == [
        (TENANT, [dg.AssetKey(["zoho_books", "customers"])])
    ]
    assert [(r.partition_key, r.asset_selection) for r in six_hourly] == [
        (TENANT, [dg.AssetKey(["zoho_books", "invoices"])])
    ]
    again = _schedule_requests(zoho, "zoho_books_imports_daily", _due("daily", midnight))
    assert [r.run_key for r in again] == [
        r.run_key for r in daily
    ]  # a re-evaluated tick is idempotent
    assert _schedule_requests(zoho, "zoho_books_imports_hourly", midnight) == []

    zoho.registry.set_enabled(TENANT, "zoho_books", False)
    assert _schedule_requests(zoho, "zoho_books_imports_daily", _due("daily", midnight)) == []
    schedule = next(s for s in import_schedules if s.name == "zoho_books_imports_every_6_hours")
    assert schedule.cron_schedule == "* * * * *" and schedule.execution_timezone == "Asia/Kolkata"


def test_each_tick_of_a_schedule_requests_runs_of_its_own(zoho):
    """Run keys name the period: a schedule whose keys repeated would launch once, ever."""
    ist = ZoneInfo("Asia/Kolkata")
    ticks = [
        _due("every_6_hours", datetime(2026, 11, 21, hour, 0, tzinfo=ist)) for hour in (0, 6, 12)
    ]
    keys = [
        [r.run_key for r in _schedule_requests(zoho, "zoho_books_imports_every_6_hours", tick)]
        for tick in ticks
    ]
    assert [len(k) for k in keys] == [1, 1, 1]
    assert len({k[0] for k in keys}) == 3
    assert all(f"zoho_books:{TENANT}:invoices" in k[0] for k in keys)
    days = [_due("daily", datetime(2026, 11, day, tzinfo=ist)) for day in (21, 22)]
    first, second = (_schedule_requests(zoho, "zoho_books_imports_daily", day) for day in days)
    assert first[0].run_key != second[0].run_key


def test_a_tick_skips_what_it_cannot_import_and_says_when_it_requests_nothing(zoho):
    midnight = datetime(2026, 11, 21, 0, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    # Listed before acme: another system's config is passed over by this system's schedule.
    busy = {"username": "u", "password": "p", "company_code": "Comp0001"}
    zoho.registry.add("aardvark", "busy", {"connection_config": busy, "sync_config": {}})
    (request,) = _schedule_requests(zoho, "zoho_books_imports_daily", _due("daily", midnight))
    assert (request.partition_key, request.tags["hub/trigger"]) == (TENANT, "schedule:daily")
    hourly = _schedule_tick(zoho, "zoho_books_imports_hourly", midnight)
    assert not hourly.run_requests
    assert hourly.skip_message == "no enabled zoho_books config imports anything hourly"


def _failed_run(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    zoho.simulator.faults.fail_next(100, status=503)
    result = zoho.materialize(customers)
    assert not result.success
    zoho.simulator.faults.clear()
    return zoho.instance.get_run_by_id(result.run_id), result


def test_failure_sensor_records_the_run_and_counts_failures_then_retry_sensor_reruns(zoho):
    run, result = _failed_run(zoho)
    warehouse = WarehouseResource(database_url=zoho.warehouse_url)
    context = dg.build_run_status_sensor_context(
        sensor_name="import_failure_sensor",
        dagster_instance=zoho.instance,
        dagster_run=run,
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": warehouse},
    ).for_run_failure()
    import_failure_sensor(context)
    import_failure_sensor(context)  # a sensor re-delivery must not double count
    error_id, category, retryable, next_retry, partition = zoho.query(
        "SELECT id, category, retryable, next_retry_at, partition_key "
        "FROM hub.accounting_sync_errors WHERE dagster_run_id = %s",
        (run.run_id,),
    )[0]
    assert (category, retryable, partition) == ("SERVER", True, TENANT)
    assert next_retry is not None
    assert zoho.scalar("SELECT consecutive_failures FROM hub.accounting_configs") == 1

    assert retry_requests(zoho.instance, zoho.warehouse_url) == []  # not due yet
    zoho.query(
        "UPDATE hub.accounting_sync_errors SET next_retry_at = now() - interval '1 second' RETURNING 1"
    )
    (request,) = retry_requests(zoho.instance, zoho.warehouse_url)
    assert request.run_key.startswith(f"retry:{error_id}:")
    assert request.partition_key == TENANT
    assert request.asset_selection == [dg.AssetKey(["zoho_books", "customers"])]
    assert request.tags["hub/retry_count"] == "1"

    retried = zoho.materialize(customers, tags=request.tags)
    assert retried.success
    assert zoho.scalar("SELECT consecutive_failures FROM hub.accounting_configs") == 0
    assert zoho.scalar("SELECT count(*) FROM hub.accounting_sync_errors WHERE NOT resolved") == 0


def test_errors_commands_list_show_resolve_and_retry(zoho, capsys):
    run, result = _failed_run(zoho)
    context = dg.build_run_status_sensor_context(
        sensor_name="import_failure_sensor",
        dagster_instance=zoho.instance,
        dagster_run=run,
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    ).for_run_failure()
    import_failure_sensor(context)
    error_id = zoho.scalar("SELECT id FROM hub.accounting_sync_errors")
    assert cli.main(["errors", "list"]) == 0
    assert f"zoho_books|{TENANT}" in capsys.readouterr().out  # hub errors shows system|tenant
    assert cli.main(["errors", "show", str(error_id)]) == 0
    assert '"category": "SERVER"' in capsys.readouterr().out
    assert cli.main(["errors", "resolve", str(error_id), "--note", "source was down"]) == 0
    assert (
        zoho.scalar("SELECT resolution_note FROM hub.accounting_sync_errors") == "source was down"
    )
    assert cli.main(["errors", "retry", str(error_id)]) == 0
    resolved, due = zoho.query(
        "SELECT resolved, next_retry_at <= now() FROM hub.accounting_sync_errors"
    )[0]
    assert resolved is False and due is True
    assert cli.main(["errors", "show", "999999"]) == 2
    assert "no error with id 999999" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("ist_time", "wait"),
    [
        pytest.param(time(12, 0), 12 * 3600, id="the-reset-at-midnight-ist-is-later"),
        pytest.param(time(23, 58), 300, id="the-5-minute-backoff-is-later"),
    ],
)
def test_daily_quota_stops_the_run_and_is_retried_after_the_reset(zoho, ist_time, wait):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    # The simulator's clock fixes X-Rate-Limit-Reset (seconds to midnight IST), whatever the hour.
    moment = datetime.combine(date(2026, 3, 15), ist_time, tzinfo=ZoneInfo("Asia/Kolkata"))
    zoho.simulator.clock = lambda: moment
    zoho.simulator.daily_limit = 2  # token + one list call, then the quota is gone
    result = zoho.materialize(customers)
    assert not result.success
    assert zoho.simulator.requests_throttled == 1  # no hammering a closed quota
    record_failure(zoho, result)
    category, retryable, seconds = zoho.query(
        "SELECT category, retryable, extract(epoch FROM next_retry_at - now()) "
        "FROM hub.accounting_sync_errors WHERE scope = 'run'"
    )[0]
    assert category == "RATE_LIMIT" and retryable is True
    # From the failure: the later of the reset and the backoff (less the test's own seconds).
    assert wait - 120 < seconds <= wait


def test_a_sync_log_the_step_could_not_close_gets_the_step_failure(zoho):
    run, result = _failed_run(zoho)
    zoho.query(  # what a step leaves when the warehouse went away as it failed
        "UPDATE hub.accounting_sync_logs SET status = 'running', metadata = '{}' "
        "WHERE dagster_run_id = %s RETURNING 1",
        (run.run_id,),
    )
    record_failure(zoho, result)
    status, message = zoho.query(
        "SELECT status, error_message FROM hub.accounting_sync_logs WHERE dagster_run_id = %s",
        (run.run_id,),
    )[0]
    assert status == "failed" and "503" in message
    category, retryable = zoho.query(
        "SELECT category, retryable FROM hub.accounting_sync_errors WHERE scope = 'run'"
    )[0]
    assert (category, retryable) == ("SERVER", True)


def test_a_customers_success_leaves_a_failed_invoices_run_pending(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    zoho.simulator.faults.fail_next(100, status=500, path="/books/v3/invoices")
    result = zoho.materialize(invoices)
    zoho.simulator.faults.clear()
    record_failure(zoho, result)
    assert zoho.materialize(customers).success
    assert (
        zoho.scalar(
            "SELECT count(*) FROM hub.accounting_sync_errors "
            "WHERE scope = 'run' AND entity_type = 'invoices' AND NOT resolved"
        )
        == 1
    )
