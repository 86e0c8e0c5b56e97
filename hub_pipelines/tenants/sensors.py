"""Keeps each system's tenant partitions equal to the registry's configured (tenant, system) pairs.

A disabled config keeps its partition and its history; the sensor records the pause (and the
resumption) as an observation on that partition of the system's import assets, so the UI shows
it. Only removal takes a partition away.
"""

from __future__ import annotations

import json

import dagster as dg

from hub_pipelines.canonical import ENTITIES
from hub_pipelines.partitions import TENANT_PARTITIONS, asset_key
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.registry import configured_pairs


def _partition_requests(instance: dg.DagsterInstance, pairs) -> list:
    requests = []
    for system, partitions in TENANT_PARTITIONS.items():
        wanted = {tenant for tenant, of_system in pairs if of_system == system}
        present = set(instance.get_dynamic_partitions(partitions.name))
        if wanted - present:
            requests.append(partitions.build_add_request(sorted(wanted - present)))
        if present - wanted:
            requests.append(partitions.build_delete_request(sorted(present - wanted)))
    return requests


def _state_metadata(tenant: str, system: str, is_paused: bool) -> dict[str, str]:
    if is_paused:
        return {"config_state": "paused", "resume_with": f"hub tenants enable {tenant} {system}"}
    return {"config_state": "enabled", "pause_with": f"hub tenants disable {tenant} {system}"}


def _state_observations(paused: set, before: set, pairs) -> list[dg.AssetObservation]:
    """An observation per import asset of each pair whose paused state changed."""
    changed = sorted((paused ^ before) & set(pairs))
    return [
        dg.AssetObservation(
            asset_key=asset_key(system, entity),
            partition=tenant,
            metadata=_state_metadata(tenant, system, (tenant, system) in paused),
        )
        for tenant, system in changed
        if system in AVAILABLE
        for entity in ENTITIES
    ]


@dg.sensor(
    name="tenant_registry_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each configured (tenant, system) pair, removes those of "
    "removed configs, and marks paused configs. One tick, whatever the number of tenants.",
)
def tenant_registry_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    pairs = configured_pairs(warehouse.url())
    paused = {pair for pair, enabled in pairs.items() if not enabled}
    before = {tuple(pair) for pair in json.loads(context.cursor or "[]")}
    requests = _partition_requests(context.instance, pairs)
    observations = _state_observations(paused, before, pairs)
    if not requests and not observations:
        return dg.SkipReason(f"partitions already match the registry ({len(pairs)} configs)")
    for request in requests:
        verb = "adding" if isinstance(request, dg.AddDynamicPartitionsRequest) else "removing"
        context.log.info(f"{request.partitions_def_name}: {verb} {len(request.partition_keys)}")
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        asset_events=observations,
        cursor=json.dumps(sorted(paused)),
    )
