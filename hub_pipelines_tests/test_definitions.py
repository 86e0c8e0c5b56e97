import json

import dagster as dg
import psycopg

from hub_pipelines.definitions import defs
from hub_pipelines.partitions import TENANT_PARTITIONS, asset_key, tenant_partitions
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.settings import SYSTEMS
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.tenants.sensors import tenant_registry_sensor
from hub_pipelines.vault import Vault

BUSY = {"username": "u", "password": "p", "company_code": "Comp0001"}
ZOHO = {
    "organization_id": "600123",
    "client_id": "1000.X",
    "client_secret": "s",
    "refresh_token": "1000.r",
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_one_pair_of_assets_per_system_partitioned_by_that_systems_tenants():
    graph = defs.resolve_asset_graph()
    for system in AVAILABLE:
        for entity in ("customers", "invoices"):
            node = graph.get(asset_key(system, entity))
            assert node.partitions_def == tenant_partitions(system)
            assert node.group_name == system
            assert node.pools == {system}  # per-system concurrency, however the run is launched
            checks = graph.get_check_keys_for_assets({node.key})
            assert checks and all(
                graph.get(c).partitions_def == node.partitions_def for c in checks
            )
    assert graph.get(asset_key("zoho_books", "invoices")).parent_keys == {
        asset_key("zoho_books", "customers")
    }
    assert set(TENANT_PARTITIONS) == set(SYSTEMS)
    assert len({p.name for p in TENANT_PARTITIONS.values()}) == len(SYSTEMS)
    views = {dg.AssetKey("gst_sales_summary"), dg.AssetKey("customer_360")}
    for view in views:  # the analyst views depend on every system's imports
        assert {k.path[0] for k in graph.get(view).parent_keys} == set(AVAILABLE)


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with the requests of a tick."""
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def _tick(instance: dg.DagsterInstance, url: str, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=url)},
        cursor=cursor,
    )
    return tenant_registry_sensor(context)


def _partitions(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    return {
        system: sorted(instance.get_dynamic_partitions(p.name))
        for system, p in TENANT_PARTITIONS.items()
        if instance.get_dynamic_partitions(p.name)
    }


def test_partitions_are_exactly_the_configured_pairs_and_paused_ones_stay(
    warehouse, encryption_key
):
    registry = TenantRegistry(Vault.from_env())
    registry.add("acme", "zoho_books", ZOHO)
    registry.add("acme", "busy", BUSY)
    registry.add("globex", "busy", BUSY)
    registry.add("initech", "zoho_books", ZOHO)
    registry.set_enabled("initech", "zoho_books", False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("busy_tenants", ["stale-tenant"])
        result = _tick(instance, warehouse)
        _apply(instance, result)
        # two real pairs per system, no phantom (acme has no tally config, globex no zoho_books)
        assert _partitions(instance) == {
            "busy": ["acme", "globex"],
            "zoho_books": ["acme", "initech"],  # initech is paused, not gone
        }
        paused = [e for e in result.asset_events if e.metadata["config_state"].value == "paused"]
        assert {(e.asset_key, e.partition) for e in paused} == {
            (asset_key("zoho_books", "customers"), "initech"),
            (asset_key("zoho_books", "invoices"), "initech"),
        }
        assert json.loads(result.cursor) == [["initech", "zoho_books"]]

        assert isinstance(_tick(instance, warehouse, result.cursor), dg.SkipReason)  # in sync

        registry.remove("globex", "busy")
        registry.set_enabled("initech", "zoho_books", True)
        result = _tick(instance, warehouse, result.cursor)
        _apply(instance, result)
        assert _partitions(instance) == {"busy": ["acme"], "zoho_books": ["acme", "initech"]}
        assert {e.metadata["config_state"].value for e in result.asset_events} == {"enabled"}


def test_tenant_sensor_handles_thousands_of_tenants_in_one_tick(warehouse):
    with psycopg.connect(warehouse) as conn:
        conn.execute(
            "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
            "SELECT 'tenant-' || g, 'tally', '{}' FROM generate_series(1, 3000) g"
        )
    with dg.instance_for_test() as instance:
        result = _tick(instance, warehouse)
        assert len(result.dynamic_partitions_requests) == 1
        _apply(instance, result)
        assert len(instance.get_dynamic_partitions("tally_tenants")) == 3000


def test_encryption_key_reaches_dagster_only_through_envvar():
    vault = defs.resources["vault"]
    assert vault.encryption_key == dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY")


def test_each_system_has_its_schedules_launching_its_own_import_job():
    from hub_pipelines.imports.schedules import CRONS, import_schedules

    names = {schedule.name: schedule for schedule in import_schedules}
    assert set(names) == {f"{s}_imports_{f}" for s in AVAILABLE for f in CRONS}
    for name, schedule in names.items():
        system = name.split("_imports_")[0]
        assert schedule.job_name == f"{system}_import", name  # one job: one system's partitions
