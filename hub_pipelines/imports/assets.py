"""The partitioned import assets, one pair per system: `<system>/customers`, `<system>/invoices`.

Each is partitioned by its system's tenants (only configured pairs exist), runs in its system's
concurrency pool (limits hold however a run is launched), and carries its checks, which can also
run on their own (a check-only run reads the warehouse, and the source for `matches_source`).
All systems land in the same `accounting.*` tables; lines load with their invoice.
"""

from collections.abc import Iterator

import dagster as dg

from hub_pipelines.canonical import ENTITIES, Entity
from hub_pipelines.imports.checks import check_specs
from hub_pipelines.imports.sync import ImportConfig, run_checks_only, run_sync
from hub_pipelines.partitions import asset_key, tenant_partitions
from hub_pipelines.systems import AVAILABLE

DESCRIPTIONS = {
    "customers": "Customers of each {label} tenant (accounting.customers).",
    "invoices": "Sales invoices of each {label} tenant, with lines and GST heads "
    "(accounting.invoices, accounting.invoice_lines).",
}


def op_name(system: str, entity: str) -> str:
    """The op behind an import asset: run config goes under `ops: {op_name: {config: …}}`."""
    return f"{system}__{entity}"


def _import_asset(system: str, entity: Entity) -> dg.AssetsDefinition:
    key = asset_key(system, entity)
    partitions = tenant_partitions(system)
    spec = dg.AssetSpec(
        key,
        partitions_def=partitions,
        deps=[asset_key(system, "customers")] if entity == "invoices" else [],
        group_name=system,
        kinds={"postgres"},
        tags={"hub/system": system, "hub/entity": entity},
        description=DESCRIPTIONS[entity].format(label=AVAILABLE[system].label),
    )

    @dg.multi_asset(
        name=op_name(system, entity),
        specs=[spec],
        check_specs=check_specs(key, entity, partitions),
        can_subset=True,
        pool=system,
        required_resource_keys={"warehouse", "vault", system},
    )
    def import_entity(context: dg.AssetExecutionContext, config: ImportConfig) -> Iterator:
        tenant = context.partition_key
        if key in context.selected_asset_keys:
            yield run_sync(context, entity, config, tenant, system)
        else:
            yield from run_checks_only(context, entity, tenant, system)

    return import_entity


IMPORT_ASSETS: dict[str, dict[str, dg.AssetsDefinition]] = {
    system: {entity: _import_asset(system, entity) for entity in ENTITIES} for system in AVAILABLE
}


def import_asset(system: str, entity: str) -> dg.AssetsDefinition:
    return IMPORT_ASSETS[system][entity]


def all_import_assets() -> list[dg.AssetsDefinition]:
    return [asset for pair in IMPORT_ASSETS.values() for asset in pair.values()]


def import_job_name(system: str) -> str:
    return f"{system}_import"


IMPORT_JOBS = [
    dg.define_asset_job(
        import_job_name(system),
        selection=dg.AssetSelection.assets(*pair.values()),
        description=f"Import customers and invoices for one {AVAILABLE[system].label} tenant.",
    )
    for system, pair in IMPORT_ASSETS.items()
]


def import_job(system: str):
    """The system's import job: what its schedules and sensor run requests launch (one job per
    system, since each system's assets are partitioned by its own tenants)."""
    return next(job for job in IMPORT_JOBS if job.name == import_job_name(system))
