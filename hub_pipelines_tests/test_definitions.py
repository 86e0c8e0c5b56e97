import dagster as dg
import psycopg

from hub_pipelines.definitions import defs
from hub_pipelines.partitions import (
    partition_dimensions,
    partition_key,
    tenant_system_partitions,
    tenants_partitions,
)
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.settings import SYSTEMS
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.tenants.sensors import tenant_registry_sensor
from hub_pipelines.vault import Vault

BUSY = {"username": "u", "password": "p", "company_code": "Comp0001"}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_partitions_are_tenant_by_system_with_the_five_systems():
    dims = {d.name: d.partitions_def for d in tenant_system_partitions.partitions_defs}
    assert dims["tenant"] == tenants_partitions
    assert tuple(dims["system"].get_partition_keys()) == SYSTEMS
    key = partition_key("acme", "zoho_books")
    assert str(key) == "zoho_books|acme"  # dimensions sort by name
    assert partition_dimensions(str(key)) == ("acme", "zoho_books")


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with the requests of a tick."""
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def _tick(instance: dg.DagsterInstance, url: str):
    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource(database_url=url)}
    )
    return tenant_registry_sensor(context)


def test_tenant_sensor_adds_and_removes_partitions(warehouse, encryption_key):
    registry = TenantRegistry(Vault.from_env())
    registry.add("acme", "busy", BUSY)
    registry.add("globex", "busy", BUSY)
    registry.add("initech", "busy", BUSY)
    registry.set_enabled("initech", "busy", False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["stale-tenant"])
        result = _tick(instance, warehouse)
        _apply(instance, result)
        assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "globex"]

        assert isinstance(_tick(instance, warehouse), dg.SkipReason)  # already in sync

        registry.remove("globex", "busy")
        registry.set_enabled("initech", "busy", True)
        _apply(instance, _tick(instance, warehouse))
        assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "initech"]


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
        assert len(instance.get_dynamic_partitions("tenants")) == 3000


def test_encryption_key_reaches_dagster_only_through_envvar():
    vault = defs.resources["vault"]
    assert vault.encryption_key == dg.EnvVar("CREDENTIAL_ENCRYPTION_KEY")
