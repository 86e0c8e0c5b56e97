"""The hub as an operator meets it: the README's commands in the order "demo, demo again (its
simulators still serving)", then the Dagster UI (a real `dagster dev`, driven through its GraphQL API) with only
the defaults running: backfills, runs launched with nothing but a partition key, checks run on
their own, the failure sensor, and the analyst views refreshed after imports."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import dagster as dg
import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.analytics.assets import VIEWS
from hub_pipelines.demo import simulators
from hub_pipelines.demo.plan import DEMO_LIMITS, PAIRS, port_of
from hub_pipelines_tests.dagster_webserver import (
    DagsterDev,
    backfill_status,
    free_port,
    launch_backfill,
    launch_run,
    wait_for,
)
from hub_pipelines_tests.demo_hub import demo_hub
from hub_pipelines_tests.zoho_books.conftest import retry_requests

ZOHO_PAIR = next(pair for pair in PAIRS if pair.system == "zoho_books")
DEMO = ZOHO_PAIR.tenant
BROKEN = "broken-books"  # a configured zoho_books pair whose source cannot be reached
ZOHO_ASSETS = [["zoho_books", "customers"], ["zoho_books", "invoices"]]
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.fixture(scope="module")
def hub(warehouse_url, tmp_path_factory):
    """A hub set up the README's way: the demo, the demo again; then the UI."""
    from hub_pipelines.demo.run import run_demo

    home = tmp_path_factory.mktemp("operator-hub")
    with demo_hub(warehouse_url, home) as base_port:
        assert run_demo(base_port=base_port).success  # starts the simulators, which stay
        assert run_demo(base_port=base_port).success  # again, with them serving
        env = {**os.environ, "RETRY_MAX_ATTEMPTS": "2", "RETRY_INITIAL_DELAY": "10"}
        env.pop("CREDENTIAL_ENCRYPTION_KEY")  # the code location must find it in hub.env
        busy = home / "busy.json"  # a pair of another system: no zoho_books partition
        busy.write_text('{"username": "u", "password": "p", "company_code": "Comp0001"}')
        add = ["tenants", "add", "globex", "busy", "--no-test", "--config", str(busy)]
        assert cli.main(add) == 0
        _add_broken_tenant(base_port)
        with DagsterDev(env, cwd=home, log=home / "dagster-dev.log") as dev:
            instance = dg.DagsterInstance.from_config(str(home / "dagster"))
            yield SimpleNamespace(
                dev=dev, instance=instance, base_port=base_port, home=home, url=warehouse_url
            )
            instance.dispose()


def _add_broken_tenant(base_port: int, reachable: bool = False) -> None:
    """A zoho_books tenant with the demo organisation's credentials, whose source cannot be
    reached (or, `reachable`, can again)."""
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault

    config = dict(simulators.running(base_port)["pairs"][ZOHO_PAIR.key]["config"])
    port = port_of(ZOHO_PAIR, base_port) if reachable else free_port()
    config["api_base_url"] = config["accounts_url"] = f"http://127.0.0.1:{port}"
    TenantRegistry(Vault.from_env()).add(BROKEN, "zoho_books", config)


def _run(hub, run_id: str) -> dg.DagsterRun:
    return hub.instance.get_run_by_id(run_id)


def _finished(hub, run_id: str):
    run = _run(hub, run_id)
    return run if run and run.is_finished else None


def _query(hub, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(hub.url) as conn:
        return conn.execute(sql, params).fetchall()


def test_the_demo_tenant_points_at_the_simulator_port_and_its_pace(hub):
    config = cli._registry().get(DEMO, "zoho_books").connection
    port = port_of(ZOHO_PAIR, hub.base_port)
    assert str(config.api_base_url).rstrip("/") == f"http://127.0.0.1:{port}"
    assert config.requests_per_minute == DEMO_LIMITS["requests_per_minute"]  # as it serves


def test_a_backfill_of_all_partitions_touches_only_configured_pairs_and_its_failure_is_retried_whole(
    hub,
):
    partitions = "zoho_books_tenants"
    wait_for(  # the tenant sensor, running by default, made the partitions
        lambda: sorted(hub.instance.get_dynamic_partitions(partitions)) == [BROKEN, DEMO],
        90,
        "the tenant registry sensor",
    )
    backfill = launch_backfill(hub.dev, ZOHO_ASSETS, allPartitions=True)
    status = wait_for(
        lambda: (s := backfill_status(hub.dev, backfill)) in DONE and s, 240, "the backfill"
    )
    runs = hub.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == [BROKEN, DEMO]  # no phantoms
    outcome = {r.tags["dagster/partition"]: r.status for r in runs}
    assert outcome == {DEMO: dg.DagsterRunStatus.SUCCESS, BROKEN: dg.DagsterRunStatus.FAILURE}
    assert status in {"COMPLETED_FAILED", "FAILED"}
    demo_run = next(r for r in runs if r.tags["dagster/partition"] == DEMO)
    sync_types = _query(
        hub,
        "SELECT entity_type, sync_type FROM hub.accounting_sync_logs WHERE dagster_run_id = %s "
        "ORDER BY 1",
        (demo_run.run_id,),
    )
    assert sync_types == [("customers", "full"), ("invoices", "full")]  # backfills re-read all

    # The failure sensor (running by default) recorded what the retry must cover.
    broken_run = next(r for r in runs if r.tags["dagster/partition"] == BROKEN)
    (plan, category, system, tenant) = wait_for(
        lambda: _query(
            hub,
            "SELECT retry_plan, category, system, tenant_id FROM hub.accounting_sync_errors "
            "WHERE dagster_run_id = %s AND scope = 'run'",
            (broken_run.run_id,),
        ),
        120,
        "the failure sensor to record the failed backfill run",
    )[0]
    assert (category, system, tenant) == ("NETWORK", "zoho_books", BROKEN)
    assert plan == {
        "assets": ["zoho_books/customers", "zoho_books/invoices"],  # failed + skipped
        "full_refresh": True,
        "backfill_id": backfill,
    }

    # The source is back: the retry sensor's request covers both assets, as a full refresh.
    _add_broken_tenant(hub.base_port, reachable=True)
    _query(hub, "UPDATE hub.accounting_sync_errors SET next_retry_at = now() RETURNING 1")
    (request,) = retry_requests(hub.instance, hub.url)
    assert request.partition_key == BROKEN
    assert sorted(k.to_user_string() for k in request.asset_selection) == [
        "zoho_books/customers",
        "zoho_books/invoices",
    ]
    assert request.tags["hub/retry_of_backfill"] == backfill
    ops = request.run_config["ops"]
    assert {op: c["config"]["full_refresh"] for op, c in ops.items()} == {
        "zoho_books__customers": True,
        "zoho_books__invoices": True,
    }


def test_a_run_launched_with_only_a_partition_key_waits_for_its_systems_pool(hub):
    hub.instance.event_log_storage.set_concurrency_slots("zoho_books", 0)
    try:
        run_id = launch_run(
            hub.dev, {"dagster/partition": DEMO}, assets=[["zoho_books", "customers"]]
        )
        wait_for(lambda: _run(hub, run_id), 10, "the run to be created")
        assert _run(hub, run_id).status == dg.DagsterRunStatus.QUEUED
        assert set(_run(hub, run_id).tags) >= {"dagster/partition"}
        time.sleep(8)  # several passes of the run queue: no slot in the pool, no start
        assert _run(hub, run_id).status == dg.DagsterRunStatus.QUEUED
    finally:
        hub.instance.event_log_storage.set_concurrency_slots("zoho_books", 1)
    run = wait_for(lambda: _finished(hub, run_id), 120, "the run to finish once a slot exists")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    (tenant, system) = _query(
        hub,
        "SELECT tenant_id, system FROM hub.accounting_sync_logs WHERE dagster_run_id = %s",
        (run_id,),
    )[0]
    assert (tenant, system) == (DEMO, "zoho_books")  # derived from the key and the asset


def test_a_check_runs_on_its_own_from_the_ui(hub):
    check = (["zoho_books", "invoices"], "invoice_totals_add_up")
    run_id = launch_run(hub.dev, {"dagster/partition": DEMO}, checks=[check])
    run = wait_for(lambda: _finished(hub, run_id), 120, "the check-only run")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    key = dg.AssetCheckKey(dg.AssetKey(check[0]), check[1])
    (record,) = hub.instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    assert record.run_id == run_id
    assert record.event.dagster_event.event_specific_data.partition == DEMO
    assert record.event.dagster_event.event_specific_data.passed
    imports = _query(
        hub, "SELECT count(*) FROM hub.accounting_sync_logs WHERE dagster_run_id = %s", (run_id,)
    )
    assert imports == [(0,)]  # checked the warehouse, imported nothing


def test_the_analyst_views_refresh_after_imports_with_only_the_defaults_running(hub):
    run_id = launch_run(hub.dev, {"dagster/partition": DEMO}, assets=[["zoho_books", "invoices"]])
    imported = wait_for(lambda: _finished(hub, run_id), 120, "the import")
    assert imported.status == dg.DagsterRunStatus.SUCCESS
    import_end = hub.instance.get_run_record_by_id(run_id).end_time

    summary = dg.AssetKey("gst_sales_summary")

    def refreshed_after_the_import() -> list:
        # A refresh of another view that an earlier import requested may also start after this
        # import ended: wait for the one that covers the invoices' view.
        return [
            record
            for record in _view_run_records(hub)
            if record.start_time
            and record.start_time >= import_end
            and record.end_time
            and summary in record.dagster_run.asset_selection
        ]

    refreshes = wait_for(
        refreshed_after_the_import, 150, "the refresh sensor to refresh the views", every=2
    )
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in refreshes)
    rows = _query(
        hub, "SELECT count(*) FROM accounting.gst_sales_summary WHERE tenant_id = %s", (DEMO,)
    )
    assert rows[0][0] > 0


def _view_run_records(hub) -> list:
    """Runs that refreshed the views and that no person or command launched."""
    views = {dg.AssetKey(view) for view in VIEWS}
    return [
        record
        for record in hub.instance.get_run_records(limit=200)
        if (run := record.dagster_run).asset_selection
        and run.asset_selection <= views
        and "hub/trigger" not in run.tags
    ]
