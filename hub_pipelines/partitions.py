"""The partitions, defined once: one dynamic set of tenant slugs per system.

A (tenant, system) pair is a partition only when that tenant has a config for that system, so
the partitions that exist are exactly the configured pairs (no phantoms in the UI, nothing for a
backfill of "all" to fail on). The key of a partition is the tenant slug; the system is the
first part of the asset key (`zoho_books/invoices`), so everything that needs the pair derives it
from the partition key and the asset, never from run tags that some launch paths do not set.
"""

from __future__ import annotations

import dagster as dg

from hub_pipelines.settings import SYSTEMS

TENANT_PARTITIONS: dict[str, dg.DynamicPartitionsDefinition] = {
    system: dg.DynamicPartitionsDefinition(name=f"{system}_tenants") for system in SYSTEMS
}


def tenant_partitions(system: str) -> dg.DynamicPartitionsDefinition:
    return TENANT_PARTITIONS[system]


def asset_key(system: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([system, entity])


def system_of(key: dg.AssetKey) -> str | None:
    """The system an import asset or check belongs to (`zoho_books/invoices` → zoho_books)."""
    return key.path[0] if len(key.path) == 2 and key.path[0] in SYSTEMS else None


PLANNED = (
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
)


def planned_assets(instance: dg.DagsterInstance, run_id: str) -> tuple[set, set]:
    """The assets a run planned to materialize, and those whose checks it planned to run: its
    events say so whatever launched it (run.asset_selection is empty for a whole-job run)."""
    materialize, check = set(), set()
    for event_type, into in zip(PLANNED, (materialize, check), strict=True):
        for record in instance.get_records_for_run(run_id=run_id, of_type=event_type).records:
            event = record.event_log_entry.dagster_event
            into.add(event.asset_key if event.asset_key else event.event_specific_data.asset_key)
    return materialize, check


def run_partition(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> tuple[str, str, list[dg.AssetKey]] | None:
    """(tenant, system, import assets to materialize) of a single-partition import run, however
    it was launched: the tenant is the run's partition key, the system comes from the assets or
    checks it planned."""
    tenant = run.tags.get("dagster/partition")
    if not tenant:
        return None
    materialize, check = planned_assets(instance, run.run_id)
    systems = {system_of(key) for key in materialize | check} - {None}
    if len(systems) != 1:
        return None
    (system,) = systems
    return tenant, system, sorted((key for key in materialize if system_of(key)), key=str)
