"""Schedules: one per system and frequency (`<system>_imports_<frequency>`: a schedule launches
one job, and each system's assets have their own tenant partitions), each yielding one RunRequest
per (enabled config, entity) of its system whose sync_config asks for that frequency. Defaults:
customers daily at 00:00, invoices every 6 hours, in Asia/Kolkata (`HUB_SCHEDULE_TIMEZONE`
overrides)."""

import os
from collections.abc import Iterator

import dagster as dg

from hub_pipelines.imports.assets import IMPORT_ASSETS, import_job
from hub_pipelines.partitions import asset_key, tenant_partitions
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.tenants.models import SyncConfig

CRONS = {"hourly": "0 * * * *", "every_6_hours": "0 */6 * * *", "daily": "0 0 * * *"}
TIMEZONE = os.environ.get("HUB_SCHEDULE_TIMEZONE", "Asia/Kolkata")


def enabled_configs(warehouse: WarehouseResource) -> list[tuple[str, str, SyncConfig]]:
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT tenant_id, system, sync_config FROM hub.accounting_configs "
            "WHERE is_enabled AND deleted_at IS NULL ORDER BY tenant_id, system"
        ).fetchall()
    return [(tenant, system, SyncConfig.model_validate(sync)) for tenant, system, sync in rows]


def run_requests(
    context: dg.ScheduleEvaluationContext,
    system: str,
    frequency: str,
    warehouse: WarehouseResource,
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    known = set(context.instance.get_dynamic_partitions(tenant_partitions(system).name))
    tick = context.scheduled_execution_time.isoformat()
    requested = 0
    for tenant, config_system, sync in enabled_configs(warehouse):
        if config_system != system or tenant not in known:
            continue  # another system's, or the tenant sensor has not added the partition yet
        for entity in sync.entities:
            if getattr(sync, f"{entity}_frequency") != frequency:
                continue
            requested += 1
            yield dg.RunRequest(
                run_key=f"{frequency}:{tick}:{system}:{tenant}:{entity}",  # a re-evaluated tick
                partition_key=tenant,
                asset_selection=[asset_key(system, entity)],
                tags={"hub/trigger": f"schedule:{frequency}"},
            )
    if not requested:
        yield dg.SkipReason(f"no enabled {system} config imports anything {frequency}")


def _schedule(system: str, frequency: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{system}_imports_{frequency}",
        cron_schedule=CRONS[frequency],
        execution_timezone=TIMEZONE,
        job=import_job(system),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Imports every {system} (config, entity) whose sync_config frequency is "
        f"{frequency}.",
    )
    def import_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        yield from run_requests(context, system, frequency, warehouse)

    return import_schedule


import_schedules = [_schedule(system, frequency) for system in IMPORT_ASSETS for frequency in CRONS]
