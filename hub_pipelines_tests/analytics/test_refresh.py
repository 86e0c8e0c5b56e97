"""The analyst assets in Dagster: what the refresh sensor requests (after imports, and after failed
imports for sync_health), sync_health after a failure, and a check failing in Dagster when a view's
definition is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg
import psycopg
import pytest

from hub_pipelines.analytics.assets import (
    ANALYST_VIEWS,
    VIEWS,
    analytics_refresh_sensor,
    gst_sales_summary,
)
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.definitions import defs
from hub_pipelines.imports.sensors import import_failure_sensor
from hub_pipelines.partitions import asset_key
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import KEY_VARIABLE, OLD_KEYS_VARIABLE, Vault, generate_key
from hub_pipelines.warehouse import migrations
from hub_pipelines_tests.analytics.conftest import (
    business,
    import_entities,
    refresh_views,
    simulate,
)

VIEW_KEYS = [dg.AssetKey(view.name) for view in ANALYST_VIEWS]


def tick(instance: dg.DagsterInstance, cursor: str | None):
    return analytics_refresh_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_every_view_is_requested_once_after_imports_land(imported):
    first = tick(imported.instance, None)
    (request,) = first.run_requests
    assert sorted(request.asset_selection) == sorted(VIEW_KEYS)
    assert isinstance(tick(imported.instance, first.cursor), dg.SkipReason)
    # A cursor from before this migration (customer_directory) is read as it is.
    legacy = tick(imported.instance, '{"gst_sales_summary": 0, "customer_directory": 0}')
    (again,) = legacy.run_requests
    assert sorted(again.asset_selection) == sorted(VIEW_KEYS)


def test_the_assets_read_every_systems_imports_and_are_registered():
    graph = defs.resolve_asset_graph()
    for view in ANALYST_VIEWS:
        node = graph.get(dg.AssetKey(view.name))
        imports = {asset_key(system, e) for system in AVAILABLE for e in view.entities}
        upstream = {dg.AssetKey(name) for name in view.upstream_views}
        assert node.parent_keys == imports | upstream, view.name
        assert node.group_name == "analytics"
        checks = graph.get_check_keys_for_assets({node.key})
        assert {c.name for c in checks} == set(view.checks)
    assert dg.AssetKey("customer_directory") not in graph.get_all_asset_keys()
    sensor = next(s for s in defs.sensors if s.name == "analytics_refresh_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert set(VIEWS) == {key.path[0] for key in VIEW_KEYS}


# --- a tenant of its own, whose import then fails --------------------------------------------


@dataclass
class Failing:
    url: str
    instance: dg.DagsterInstance
    simulated: Simulated


@pytest.fixture
def failing(empty_database_url) -> Iterator[Failing]:
    """A database of its own (not the package's) with one Tally tenant imported once."""
    migrations.upgrade(empty_database_url)
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv(KEY_VARIABLE, generate_key())
        patch.delenv(OLD_KEYS_VARIABLE, raising=False)
        patch.setenv("RETRY_INITIAL_DELAY", "5")
        patch.setenv("RETRY_MAX_DELAY", "50")
        simulated = simulate("tally", business(21))
        with LoopbackServer(simulated.app) as server:
            instance.add_dynamic_partitions("tally_tenants", ["delta"])
            document = {"connection_config": simulated.connection_config(server.url)}
            TenantRegistry(Vault.from_env(), empty_database_url).add("delta", "tally", document)
            assert import_entities(instance, empty_database_url, "delta", "tally").success
            yield Failing(empty_database_url, instance, simulated)


def record_failure(failing: Failing, result: dg.ExecuteInProcessResult) -> None:
    """What the daemon does with a failed run: evaluate the failure sensor on it."""
    context = dg.build_run_status_sensor_context(
        sensor_name="import_failure_sensor",
        dagster_instance=failing.instance,
        dagster_run=failing.instance.get_run_by_id(result.run_id),
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": WarehouseResource(database_url=failing.url)},
    ).for_run_failure()
    import_failure_sensor(context)


def health(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT entity_type, last_run_status, consecutive_failures, last_error_category, "
            "open_errors, last_success_at, freshness FROM accounting.sync_health "
            "WHERE tenant_id = 'delta' AND system = 'tally'"
        ).fetchall()
    return {entity: tuple(rest) for entity, *rest in rows}


def test_a_failed_import_refreshes_sync_health_with_the_failure(failing):
    first = tick(failing.instance, None)
    assert refresh_views(failing.instance, failing.url).success
    before = health(failing.url)
    assert {entity: row[:4] for entity, row in before.items()} == {
        "customers": ("success", 0, None, 0),
        "invoices": ("success", 0, None, 0),
    }

    failing.simulated.faults.fail_next(1000, status=503)  # every request, retries included
    failed = import_entities(failing.instance, failing.url, "delta", "tally", ("invoices",))
    assert not failed.success
    record_failure(failing, failed)

    (request,) = tick(failing.instance, first.cursor).run_requests
    assert request.asset_selection == [dg.AssetKey("sync_health")]  # nothing else changed
    assert refresh_views(failing.instance, failing.url, selection=request.asset_selection).success
    after = health(failing.url)
    assert after["customers"][:4] == ("success", 0, None, 0)
    status, failures, category, open_errors, last_success, freshness = after["invoices"]
    assert (status, failures, category) == ("failed", 1, "SERVER")
    assert open_errors >= 1
    assert last_success == before["invoices"][4]  # the data is as fresh as the last success
    assert freshness > before["invoices"][5] >= timedelta(0)  # and ages when read


def test_a_check_fails_in_dagster_when_a_views_definition_is_wrong(empty_database_url):
    """A summary redefined to forget the status filter (it counts a void): the asset still
    refreshes, and its check reports the difference."""
    migrations.upgrade(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        conn.execute(
            "INSERT INTO accounting.invoices (tenant_id, system, external_id, status, "
            "issue_date, currency, taxable_amount, igst, tax_total, total, raw) VALUES "
            "('t', 'xero', '1', 'paid', DATE '2026-05-10', 'INR', 1000, 180, 180, 1180, '{}'), "
            "('t', 'xero', '2', 'void', DATE '2026-05-11', 'INR', 500, 90, 90, 590, '{}')"
        )
        conn.execute("DROP VIEW accounting.gst_sales_summary")
        conn.execute("DROP MATERIALIZED VIEW analytics_store.gst_sales_summary")
        conn.execute(
            "CREATE MATERIALIZED VIEW analytics_store.gst_sales_summary AS "
            "SELECT tenant_id, system, currency::text AS currency, NULL::numeric(9,4) AS tax_rate, "
            "sum(taxable_amount) AS taxable_amount, sum(cgst) AS cgst, sum(sgst) AS sgst, "
            "sum(igst) AS igst, sum(cess) AS cess, sum(other_tax) AS other_tax, "
            "sum(tax_total) AS tax_total FROM accounting.invoices WHERE deleted_at IS NULL "
            "GROUP BY 1, 2, 3"
        )
        conn.execute(
            "CREATE UNIQUE INDEX ON analytics_store.gst_sales_summary (tenant_id, system, currency)"
        )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [gst_sales_summary],
            instance=instance,
            resources={"warehouse": WarehouseResource(database_url=empty_database_url)},
        )
    assert result.success
    outcome = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert outcome["rates_match_lines"].passed
    totals = outcome["totals_match_invoices"]
    assert not totals.passed
    assert "t/xero/INR taxable_amount: view 1500.00, tables 1000.00" in totals.description
