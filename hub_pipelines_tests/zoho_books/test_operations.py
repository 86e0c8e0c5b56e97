"""What an operator relies on between imports, through Dagster against a simulated tenant:
checks run on their own, freshness judged without a run, failures before an import keep their
cause, a failed backfill's retry covers what it left undone, `hub sync`, and the analyst views
requested after a scheduled import."""

import multiprocessing
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from hub_pipelines import cli
from hub_pipelines.analytics.assets import ANALYTICS_ASSETS, analytics_refresh_sensor
from hub_pipelines.definitions import defs
from hub_pipelines.imports.freshness import freshness_sensor, staleness
from hub_pipelines.imports.schedules import import_schedules, import_time
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.vault import generate_key
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import (
    TENANT,
    customers,
    invoices,
    metadata,
    record_failure,
    retry_requests,
    run_request,
)

INVOICES = dg.AssetKey(["zoho_books", "invoices"])


def _check_job(*names: str):
    """What the UI runs when a person executes checks alone: a job selecting only them."""
    selection = dg.AssetSelection.checks(*(dg.AssetCheckKey(INVOICES, n) for n in names))
    return dg.define_asset_job("checks_only", selection=selection)


def _run_checks(zoho, *names: str) -> dg.ExecuteInProcessResult:
    job_defs = dg.Definitions(
        assets=[customers, invoices], jobs=[_check_job(*names)], resources=zoho.resources
    )
    return job_defs.resolve_job_def("checks_only").execute_in_process(
        instance=zoho.instance, tags={"dagster/partition": TENANT}, raise_on_error=False
    )


def test_checks_run_on_their_own_for_one_tenant_without_importing(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    assert zoho.materialize().success
    number = zoho.scalar("SELECT invoice_number FROM accounting.invoices ORDER BY 1 LIMIT 1")
    zoho.query(
        "UPDATE accounting.invoices SET total = total + 7 WHERE invoice_number = %s RETURNING 1",
        (number,),
    )
    logs_before = zoho.scalar("SELECT count(*) FROM hub.accounting_sync_logs")

    result = _run_checks(zoho, "invoice_totals_add_up", "matches_source")
    assert result.success
    found = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(found) == {"invoice_totals_add_up", "matches_source"}  # only those selected
    assert all(e.partition == TENANT for e in found.values())
    assert (
        not found["invoice_totals_add_up"].passed
        and number in found["invoice_totals_add_up"].description
    )
    assert not found["matches_source"].passed  # the sum of totals drifted from the source's
    assert "sum of totals" in found["matches_source"].description
    assert result.get_asset_materialization_events() == []
    assert zoho.scalar("SELECT count(*) FROM hub.accounting_sync_logs") == logs_before


def test_staleness_is_twice_the_interval_from_the_last_success_or_registration():
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert staleness(now - timedelta(hours=47), now, "daily", now) is None
    assert "over 2 × daily" in staleness(now - timedelta(hours=49), now, "daily", now)
    assert staleness(None, now - timedelta(hours=1), "every_6_hours", now) is None
    assert "never imported" in staleness(None, now - timedelta(hours=13), "every_6_hours", now)
    assert staleness(None, now - timedelta(days=30), "manual", now) is None  # no schedule


def _freshness_tick(zoho, cursor=None):
    context = dg.build_sensor_context(
        instance=zoho.instance,
        cursor=cursor,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    )
    return freshness_sensor(context)


def test_a_partition_whose_imports_stopped_turns_stale_without_a_run(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=3)
    assert zoho.materialize().success
    assert isinstance(_freshness_tick(zoho), dg.SkipReason)  # fresh: nothing to record

    zoho.query(  # the last imports were three days ago, and none ran since
        "UPDATE hub.accounting_sync_logs SET completed_at = now() - interval '3 days' RETURNING 1"
    )
    result = _freshness_tick(zoho)
    stale = {e.asset_key.path[-1]: e for e in result.asset_events}
    assert set(stale) == {"customers", "invoices"}
    assert all(not e.passed and e.partition == TENANT for e in stale.values())
    assert "over 2 × daily" in stale["customers"].description
    assert isinstance(_freshness_tick(zoho, result.cursor), dg.SkipReason)  # no repeat

    assert zoho.materialize(invoices).success
    recovered = _freshness_tick(zoho, result.cursor)
    assert [(e.asset_key.path[-1], e.passed) for e in recovered.asset_events] == [
        ("invoices", True)
    ]

    zoho.registry.set_enabled(TENANT, "zoho_books", False)  # paused configs are not judged
    assert isinstance(_freshness_tick(zoho, recovered.cursor), dg.SkipReason)


def _run_error(zoho, run_id: str) -> tuple:
    return zoho.query(
        "SELECT category, error_message, suggested_fix, retryable, system, tenant_id "
        "FROM hub.accounting_sync_errors WHERE dagster_run_id = %s AND scope = 'run'",
        (run_id,),
    )[0]


def test_a_failure_before_the_import_keeps_its_cause_and_fix(zoho):
    zoho.registry.remove(TENANT, "zoho_books")
    result = zoho.materialize(customers)
    assert not result.success
    record_failure(zoho, result)
    category, message, fix, retryable, system, tenant = _run_error(zoho, result.run_id)
    assert (category, retryable, system, tenant) == ("CONFIG", False, "zoho_books", TENANT)
    assert "no config for tenant 'acme'" in message and "Execution of run" not in message
    assert fix == "Register it: `hub tenants add acme zoho_books --config FILE`"


def test_credentials_that_the_key_cannot_open_are_reported_with_the_fix(zoho):
    wrong_key = generate_key()
    result = zoho.materialize(
        customers, vault=type(zoho.resources["vault"])(encryption_key=wrong_key)
    )
    assert not result.success
    record_failure(zoho, result)
    category, message, fix, *_ = _run_error(zoho, result.run_id)
    assert category == "CONFIG" and "credentials cannot be opened" in message
    assert "CREDENTIAL_ENCRYPTION_KEY" in fix
    assert wrong_key not in message + fix


def test_a_failed_backfill_run_is_retried_as_a_full_refresh_of_everything_it_left(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=4, invoices=6)
    zoho.simulator.faults.fail_next(100, status=500, path="/books/v3/contacts")
    failed = zoho.materialize(tags={"dagster/backfill": "bkfl0001"})  # how a backfill runs
    assert not failed.success
    zoho.simulator.faults.clear()
    record_failure(zoho, failed)
    zoho.query("UPDATE hub.accounting_sync_errors SET next_retry_at = now() RETURNING 1")
    (request,) = retry_requests(zoho.instance, zoho.warehouse_url)
    assert [k.path[-1] for k in request.asset_selection] == ["customers", "invoices"]
    assert request.tags["hub/retry_of_backfill"] == "bkfl0001"

    retried = run_request(zoho, request)
    assert retried.success
    assert metadata(retried, "customers")["sync_type"] == "full"
    assert metadata(retried, "invoices")["sync_type"] == "full"
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices") == 6


@pytest.fixture
def local_instance(zoho, tmp_path, monkeypatch):
    """`hub sync` runs on the local instance of $HUB_HOME/dagster."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path / "dagster"


def test_hub_sync_imports_through_dagster_and_exits_nonzero_on_failure(
    zoho, local_instance, capsys
):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    assert cli.main(["sync", TENANT, "zoho_books"]) == 0
    out = capsys.readouterr().out
    assert "zoho_books/invoices" in out and "inserted 5" in out and "checks:" in out
    with dg.DagsterInstance.from_config(str(local_instance)) as instance:
        # In the UI's run history (the import, then the refresh of the views), with its checks.
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": TENANT}))
        assert run.tags["hub/trigger"] == "hub sync"
        assert instance.get_latest_materialization_event(dg.AssetKey(["zoho_books", "invoices"]))
    assert zoho.scalar("SELECT count(*) FROM accounting.gst_sales_summary") > 0  # views too

    assert cli.main(["sync", TENANT, "zoho_books", "--entity", "invoices", "--full-refresh"]) == 0
    assert "zoho_books/customers" not in capsys.readouterr().out

    zoho.simulator.faults.fail_next(100, status=500)
    assert cli.main(["sync", TENANT, "zoho_books"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert cli.main(["sync", "nobody", "zoho_books"]) == 2
    assert "hub tenants add nobody zoho_books" in capsys.readouterr().err


def _views_tick(zoho, cursor):
    context = dg.build_sensor_context(instance=zoho.instance, cursor=cursor)
    return analytics_refresh_sensor(context)


def test_the_views_are_refreshed_after_a_scheduled_import_even_one_landing_mid_refresh(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=5)
    assert isinstance(_views_tick(zoho, None), dg.SkipReason)  # nothing imported yet
    schedule = next(s for s in import_schedules if s.name == "zoho_books_imports_daily")
    with dg.build_schedule_context(  # closed again: it opens an instance of its own
        instance=zoho.instance,
        scheduled_execution_time=import_time(  # the tenant's minute of the day
            "zoho_books", TENANT, "daily", datetime(2026, 11, 26, tzinfo=ZoneInfo("Asia/Kolkata"))
        ),
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
        repository_def=defs.get_repository_def(),
    ) as context:
        (request,) = schedule.evaluate_tick(context).run_requests  # customers, daily
    assert run_request(zoho, request).success
    tick = _views_tick(zoho, None)
    (refresh,) = tick.run_requests
    assert refresh.asset_selection == [  # what customers feed (sorted)
        dg.AssetKey(view)
        for view in ("customer_360", "gst_sales_summary", "receivables_ageing", "sync_health")
    ]

    assert zoho.materialize(invoices).success  # lands while that refresh would be running
    later = _views_tick(zoho, tick.cursor)
    (again,) = later.run_requests
    assert again.asset_selection == [
        dg.AssetKey(view) for view in ("gst_sales_summary", "receivables_ageing", "sync_health")
    ]
    assert isinstance(_views_tick(zoho, later.cursor), dg.SkipReason)  # each import once

    views = dg.materialize(
        ANALYTICS_ASSETS,
        selection=again.asset_selection,
        instance=zoho.instance,
        resources=zoho.resources,
    )
    assert views.success
    assert zoho.scalar("SELECT sum(taxable_amount) FROM accounting.gst_sales_summary") == (
        zoho.scalar("SELECT sum(taxable_amount) FROM accounting.invoices WHERE status <> 'void'")
    )
    sensor = next(s for s in defs.sensors if s.name == "analytics_refresh_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # nobody switches it on


def _import_customers(warehouse_url: str, encryption_key: str, start) -> None:
    """One `dagster asset materialize`-like import in its own process (two Dagster runs in one
    process can deadlock in Dagster's logging set-up); exits 0 when it succeeded."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("zoho_books_tenants", [TENANT])
        start.wait(timeout=120)  # both processes really start together
        result = dg.materialize(
            [customers],
            partition_key=TENANT,
            instance=instance,
            resources={
                "warehouse": WarehouseResource(database_url=warehouse_url),
                "vault": VaultResource(encryption_key=encryption_key),
                "zoho_books": ZohoBooksResource(),
            },
            raise_on_error=False,
        )
    sys.exit(0 if result.success else 1)


def test_two_imports_of_one_partition_never_run_together_however_launched(zoho, encryption_key):
    """`hub sync` or `dagster asset materialize` run outside the run queue: two imports of one
    partition and entity, started at the same moment by processes that know nothing of each
    other, run one after the other (the import's own lock)."""
    zoho.simulator.seed_generated(zoho.org_id, customers=30, invoices=0)
    zoho.simulator.faults.latency = 0.05  # each import takes seconds: they would overlap
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, this one's sys.path
    start = spawn.Barrier(2)
    workers = [
        spawn.Process(target=_import_customers, args=(zoho.warehouse_url, encryption_key, start))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert [w.exitcode for w in workers] == [0, 0]
    (first_start, first_end, inserted), (second_start, _, again) = zoho.query(
        "SELECT started_at, completed_at, records_inserted FROM hub.accounting_sync_logs "
        "ORDER BY started_at"
    )
    assert second_start >= first_end  # the second import began when the first had ended
    assert (inserted, again) == (30, 0)
    assert zoho.scalar("SELECT count(*) FROM accounting.customers") == 30


def test_a_failed_check_only_run_is_recorded_but_never_retried_as_an_import(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=2, invoices=2)
    assert zoho.materialize().success
    zoho.simulator.faults.fail_next(100, status=503)
    failed = _run_checks(zoho, "matches_source")  # lists the source, which is down
    zoho.simulator.faults.clear()
    assert not failed.success
    record_failure(zoho, failed)
    (plan,) = zoho.query(
        "SELECT retry_plan FROM hub.accounting_sync_errors WHERE dagster_run_id = %s",
        (failed.run_id,),
    )[0]
    assert plan["assets"] == []  # it planned no import
    zoho.query("UPDATE hub.accounting_sync_errors SET next_retry_at = now() RETURNING 1")
    assert retry_requests(zoho.instance, zoho.warehouse_url) == []
    note = zoho.scalar("SELECT resolution_note FROM hub.accounting_sync_errors")
    assert note.startswith("not retried: a check-only run")
