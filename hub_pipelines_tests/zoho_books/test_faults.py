"""Faults, bad records, crashes and rate limits: the import still ends equal to the source."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from hub_pipelines.connectors.ratelimit import registered_bucket
from hub_pipelines.imports.run_health import (
    CANCELLED,
    last_sign_of_life,
    live_sessions,
    run_health_sensor,
)
from hub_pipelines.imports.sensors import import_failure_sensor
from hub_pipelines.partitions import run_partition
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import (
    TENANT,
    checks,
    customers,
    invoices,
    metadata,
    retry_requests,
    run_request,
)
from hub_pipelines_tests.zoho_books.test_import import warehouse_equals_source


def _retry_logs(zoho, result) -> list[str]:
    return [
        entry.user_message
        for entry in zoho.instance.all_logs(result.run_id)
        if "retrying" in (entry.user_message or "")
    ]


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda f: f.throttle_next(4, path="/books/v3/invoices"), id="429-burst"),
        pytest.param(lambda f: f.fail_next(4, status=503), id="5xx"),
        pytest.param(lambda f: f.drop_next(3, path="/books/v3/invoices"), id="dropped-connections"),
        pytest.param(lambda f: f.expire_tokens_after(25), id="token-expiry-mid-run"),
        pytest.param(
            lambda f: f.malformed_page("/books/v3/invoices", 1, truncated=True, times=2),
            id="truncated-json-body",
        ),
    ],
)
def test_import_survives_each_fault_and_logs_the_retries(zoho, inject):
    zoho.simulator.seed_generated(zoho.org_id, customers=15, invoices=60)
    assert zoho.materialize(customers).success
    inject(zoho.simulator.faults)
    result = zoho.materialize(invoices)
    assert result.success
    warehouse_equals_source(zoho)
    assert _retry_logs(zoho, result), "the run log shows no retry"
    assert metadata(result, "invoices")["retries"] >= 1


def test_a_malformed_record_lands_in_the_errors_table_and_the_rest_load(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=50)
    broken = zoho.simulator.invoice_ids(zoho.org_id)[7]
    zoho.simulator.faults.malformed_page(f"/books/v3/invoices/{broken}")
    result = zoho.materialize()
    assert result.success  # 1 of 50 is under the 5 % threshold
    assert metadata(result, "invoices")["records_failed"] == 1
    assert metadata(result, "invoices")["records_inserted"] == 49
    category, message, payload, fix, partition = zoho.query(
        "SELECT category, error_message, raw_payload, suggested_fix, partition_key "
        "FROM hub.accounting_sync_errors WHERE entity_id = %s",
        (broken,),
    )[0]
    assert category == "MAPPING"
    assert "rate" in message and "1,2O0.OO" in message
    assert payload["invoice_id"] == broken and payload["line_items"]
    assert fix and partition == TENANT
    status = zoho.scalar(
        "SELECT status FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "AND entity_type = 'invoices'",
        (result.run_id,),
    )
    assert status == "partial"

    # Once the source is fixed, the next incremental run picks the record up: nothing was lost.
    zoho.simulator.faults.clear()
    again = zoho.materialize(invoices)
    assert metadata(again, "invoices")["records_inserted"] == 1
    warehouse_equals_source(zoho)


def test_a_list_row_without_id_is_recorded_with_its_payload(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    zoho.simulator.faults.malformed_page("/books/v3/invoices", 1, record_index=3, times=1)
    result = zoho.materialize()
    assert metadata(result, "invoices")["records_failed"] == 1
    category, payload = zoho.query(
        "SELECT category, raw_payload FROM hub.accounting_sync_errors WHERE entity_type = 'invoices'"
    )[0]
    assert category == "SOURCE_DATA"
    assert "invoice_id" not in payload and payload["invoice_number"]


def test_past_the_error_threshold_the_run_fails_but_good_rows_stay(zoho):
    zoho.register(sync_config={"error_threshold": 0.0})
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=20)
    zoho.simulator.faults.malformed_page(
        f"/books/v3/invoices/{zoho.simulator.invoice_ids(zoho.org_id)[0]}"
    )
    result = zoho.materialize()
    assert not result.success
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices") == 19
    message = zoho.scalar(
        "SELECT error_message FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "AND entity_type = 'invoices'",
        (result.run_id,),
    )
    assert "1 of 20 records failed" in message and "error threshold" in message


CRASHING_RUN = """
import dagster as dg
from hub_pipelines.imports.assets import import_asset
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.zoho_books.connector import ZohoBooksResource
import os
import random
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions("zoho_books_tenants", ["acme"])
    dg.materialize(
        [import_asset("zoho_books", "customers"), import_asset("zoho_books", "invoices")],
        partition_key="acme",
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=os.environ["HUB_DATABASE_URL"]),
            "vault": VaultResource(encryption_key=os.environ["CREDENTIAL_ENCRYPTION_KEY"]),
            "zoho_books": ZohoBooksResource(page_size=20),
        },
    )
"""


def _kill_when(worker: subprocess.Popen, zoho, enough: int, how=signal.SIGKILL) -> int:
    """Signal the worker (SIGKILL) once `enough` invoices are committed and wait for it to end;
    the invoices then in the warehouse."""
    deadline = time.monotonic() + 120  # a bound on the wait, not a timing assertion
    loaded = 0
    while loaded < enough and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
        loaded = zoho.scalar("SELECT count(*) FROM accounting.invoices")
    worker.send_signal(how)
    worker.wait(timeout=60)
    return zoho.scalar("SELECT count(*) FROM accounting.invoices")


def _error_rows(zoho) -> list[tuple]:
    return zoho.query(
        "SELECT entity_id, error_message, dagster_run_id FROM hub.accounting_sync_errors "
        "WHERE NOT resolved AND scope = 'record'"
    )


def test_a_run_killed_mid_import_and_rerun_leaves_no_duplicates_and_loses_nothing(zoho):
    zoho.simulator.seed_generated(zoho.org_id, customers=20, invoices=200)
    # A list row without an id on page 1, on every run: each run meets the same record error.
    zoho.simulator.faults.malformed_page("/books/v3/invoices", 1, record_index=3)
    zoho.simulator.faults.latency = 0.01  # slow enough to be killed half-way
    env = {**os.environ, "HUB_DATABASE_URL": zoho.warehouse_url}
    worker = subprocess.Popen([sys.executable, "-c", CRASHING_RUN], env=env)
    loaded = _kill_when(worker, zoho, 40)
    assert 0 < loaded < 199, f"the worker was not killed mid-run ({loaded} invoices)"
    assert len(_error_rows(zoho)) == 1  # page 1 committed with its record error

    zoho.simulator.faults.latency = 0.0  # the bad row stays
    rerun = zoho.materialize(zoho_books=ZohoBooksResource(page_size=20))
    assert rerun.success  # 1 of 200 is under the error threshold
    (error,) = _error_rows(zoho)  # the killed run's row, refreshed, not a second one
    assert error[0] is None and "without invoice_id" in error[1] and error[2] == rerun.run_id
    assert zoho.scalar("SELECT count(*) FROM accounting.invoices") == 199

    zoho.simulator.faults.clear()  # the source fixes the row: the held-back cursor re-reads it
    healed = zoho.materialize(zoho_books=ZohoBooksResource(page_size=20))
    assert healed.success
    warehouse_equals_source(zoho)
    assert all(e.passed for e in checks(healed).values())


def _health_tick_until_failed(zoho, instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """Tick the run-health sensor, as the daemon does, until it has failed the killed run."""
    context = dg.build_sensor_context(
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    )
    deadline = time.monotonic() + 120  # the killed backend may linger a moment in pg_stat_activity
    while instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, _why_alive(zoho, instance, run_id)
        time.sleep(1.1)  # HUB_RUN_SILENCE_SECONDS=1 of silence
        run_health_sensor(context)
    return instance.get_run_by_id(run_id)


def _why_alive(zoho, instance: dg.DagsterInstance, run_id: str) -> str:
    """What the run-health sensor saw, for a failure message."""
    run = instance.get_run_by_id(run_id)
    with WarehouseResource(database_url=zoho.warehouse_url).connect() as conn:
        live = live_sessions(conn)
    return (
        f"the run-health sensor never failed the killed run: session open {run_id in live}, "
        f"partition {run_partition(instance, run)}, "
        f"silent for {time.time() - last_sign_of_life(instance, run):.1f} s"
    )


def _record_failure(zoho, instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """The failure sensor's tick on the failure the run-health sensor reported."""
    (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="import_failure_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
        resources={"warehouse": WarehouseResource(database_url=zoho.warehouse_url)},
    ).for_run_failure()
    import_failure_sensor(context)


def test_hub_sync_killed_mid_import_is_failed_recorded_and_its_retry_matches_the_source(
    zoho, tmp_path, monkeypatch
):
    """A real `hub sync` process, SIGKILLed while an invoices page is in flight."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("HUB_RUN_SILENCE_SECONDS", "1")
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=300)
    zoho.simulator.faults.latency = 0.02  # page 2 (100 detail calls) takes seconds
    hub = str(Path(sys.executable).with_name("hub"))
    worker = subprocess.Popen(
        [hub, "sync", TENANT, "zoho_books"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    loaded = _kill_when(worker, zoho, 200)  # the pages are 200 long: page 1 is committed
    assert loaded == 200, f"the worker was not killed between pages 1 and 2 ({loaded})"
    assert (
        zoho.scalar("SELECT status FROM hub.accounting_sync_logs WHERE entity_type = 'invoices'")
        == "running"
    )

    zoho.simulator.faults.latency = 0.0
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        (killed,) = instance.get_runs()
        run = _health_tick_until_failed(zoho, instance, killed.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        _record_failure(zoho, instance, run)
        assert zoho.query(
            "SELECT status, metadata->>'category', metadata->>'retryable' "
            "FROM hub.accounting_sync_logs WHERE entity_type = 'invoices'"
        ) == [("failed", "SERVER", "true")]
        zoho.query("UPDATE hub.accounting_sync_errors SET next_retry_at = now() RETURNING 1")
        (request,) = retry_requests(instance, zoho.warehouse_url)
    assert request.asset_selection == [dg.AssetKey(["zoho_books", "invoices"])]
    assert run_request(zoho, request).success
    warehouse_equals_source(zoho)
    assert (
        zoho.scalar("SELECT count(*) FROM hub.accounting_sync_logs WHERE status = 'running'") == 0
    )


def test_the_connector_stays_under_zohos_real_rate_limit(zoho):
    zoho.simulator.requests_per_minute = 100  # the real per-organisation limit
    zoho.simulator.seed_generated(zoho.org_id, customers=9, invoices=0)
    zoho.register(requests_per_minute=100)  # at the limit, not under it
    result = zoho.materialize(customers)
    assert result.success
    api = [e for e in zoho.simulator.request_log if "/books/v3/" in e.path]
    assert len(api) >= 10
    assert zoho.simulator.requests_throttled == 0
    # The configured limit reached the organisation's shared bucket; its spacing is tested on a
    # fake clock in test_ratelimit.py, and `make bench` measures the gaps on the wire.
    bucket = registered_bucket(f"zoho_books:{zoho.org_id}")
    assert (bucket.limit, bucket.burst, bucket.window) == (100, 1, 60.0)


def test_chaos_kills_at_random_points_each_followed_by_a_rerun_end_equal_to_the_source(
    zoho, tmp_path, monkeypatch
):
    """Three `hub sync` processes killed at random moments (start-up, customers, an invoices
    page), the source edited between them; after each, what the daemon would do (run-health and
    failure sensors) and a re-run."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("HUB_RUN_SILENCE_SECONDS", "1")
    zoho.simulator.seed_generated(zoho.org_id, customers=10, invoices=240)
    rng = random.Random(20261126)
    hub = str(Path(sys.executable).with_name("hub"))
    killed_mid_run = 0
    for round_number in range(3):
        for invoice_id in rng.sample(zoho.simulator.invoice_ids(zoho.org_id), 5):
            zoho.simulator.edit_invoice(
                zoho.org_id, invoice_id, reference_number=f"r{round_number}"
            )
        zoho.simulator.faults.latency = 0.01
        worker = subprocess.Popen(
            [hub, "sync", TENANT, "zoho_books"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 8.0))  # a random point of the import, not a timing assertion
        worker.kill()
        worker.wait()
        zoho.simulator.faults.latency = 0.0
        if (tmp_path / "dagster").exists():
            with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
                for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                    killed_mid_run += 1
                    _record_failure(
                        zoho, instance, _health_tick_until_failed(zoho, instance, run.run_id)
                    )
        assert zoho.materialize().success
    warehouse_equals_source(zoho)
    assert (
        zoho.scalar("SELECT count(*) FROM hub.accounting_sync_logs WHERE status = 'running'") == 0
    )
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) == []


def test_hub_sync_interrupted_closes_its_sync_log_without_a_daemon(zoho, tmp_path, monkeypatch):
    """Ctrl-C in `hub sync` (SIGINT) between pages: the committed page stays, the sync log is
    closed as failed by the step itself (no daemon, no run health sensor), and a re-run ends
    equal to the source."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    zoho.simulator.seed_generated(zoho.org_id, customers=5, invoices=300)
    zoho.simulator.faults.latency = 0.02  # page 2 (100 detail calls) takes seconds
    hub = str(Path(sys.executable).with_name("hub"))
    output = tmp_path / "hub-sync.txt"
    with output.open("w") as out:
        worker = subprocess.Popen([hub, "sync", TENANT, "zoho_books"], stdout=out, stderr=out)
        loaded = _kill_when(worker, zoho, 200, signal.SIGINT)
    assert worker.returncode == 1
    assert loaded == 200, f"the worker was not interrupted between pages 1 and 2 ({loaded})"
    said = output.read_text()
    assert "zoho_books__invoices interrupted" in said, said
    assert "Stack Trace" not in said and "Traceback" not in said, said

    assert zoho.query(
        "SELECT status, error_message, metadata->>'retryable', completed_at IS NOT NULL "
        "FROM hub.accounting_sync_logs WHERE entity_type = 'invoices'"
    ) == [("failed", CANCELLED, "false", True)]
    zoho.simulator.faults.latency = 0.0
    assert zoho.materialize().success
    warehouse_equals_source(zoho)
