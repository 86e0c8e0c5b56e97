"""Keeps the `tenants` dynamic partitions equal to the tenants with an enabled config."""

from __future__ import annotations

import dagster as dg

from hub_pipelines.partitions import tenants_partitions
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.tenants.registry import enabled_tenants


@dg.sensor(
    name="tenant_registry_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `tenants` partition for each tenant with an enabled config and removes "
    "partitions of tenants that no longer have one. One tick, whatever the number of tenants.",
)
def tenant_registry_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    wanted = enabled_tenants(warehouse.url())
    present = set(context.instance.get_dynamic_partitions(tenants_partitions.name))
    to_add, to_remove = sorted(wanted - present), sorted(present - wanted)
    if not to_add and not to_remove:
        return dg.SkipReason(f"tenants partitions already match the registry ({len(wanted)})")
    context.log.info(f"tenants: adding {len(to_add)}, removing {len(to_remove)}")
    requests = []
    if to_add:
        requests.append(tenants_partitions.build_add_request(to_add))
    if to_remove:
        requests.append(tenants_partitions.build_delete_request(to_remove))
    return dg.SensorResult(dynamic_partitions_requests=requests)
