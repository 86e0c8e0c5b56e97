"""Schedules: one per system and frequency (`<system>_imports_<frequency>`: a schedule launches
one job, and each system's assets have their own tenant partitions). Each imports every (enabled
config, entity) of its system whose sync_config asks for that frequency once per period (hourly,
every 6 hours, daily; defaults: customers daily, invoices every 6 hours), in
`HUB_SCHEDULE_TIMEZONE` (default Asia/Kolkata).

Staggered: every schedule ticks each minute, and a tenant's imports fall on a minute of each
period fixed by a stable hash of (system, tenant) (`import_time`; the same every period), so a
tick requests only the pairs due that minute: for N configs about N / 1,440 daily and N / 360
six-hourly runs a tick instead of N at the start of each period. Why: the Dagster daemon creates
and queues each run with about 50 queries to its storage (0.3-0.5 s a run on 2 cores with
PostgreSQL; `python -m bench.ticks`), so the midnight tick with 10,000 configs, 20,000 runs, held
the daemon for hours and then started every tenant's import at once against the sources' rate
limits and the run queue. Staggered, the busiest minute with 10,000 configs has 58 runs.

Catch-up: a tick also requests the pairs whose time fell after the previous tick that launched
runs (at most `CATCH_UP` back) and that have no run yet, so the minutes the daemon missed (it
evaluates only the latest missed tick of a schedule) or a tick that failed half-way are made up
by the next tick. Nothing is launched twice: the run key names the pair and its import time
(`<frequency>:<import time>:<system>:<tenant>:<entity>`, one per pair and period), the daemon
skips the keys a re-evaluated tick already launched, and earlier keys are looked up here.

Cost of an evaluation, whatever the number of tenants: one query of the system's configs in the
hub database, grouped by sync_config, and three instance queries (the schedule's latest run;
which of the due tenants have a partition, so a tenant the tenant sensor has not added yet is
skipped; the runs of the earlier keys, one more query per further 500). The run requests carry
their partition's tags resolved as Dagster resolves them, so Dagster does not look up each
request's partition in the instance: it did, one query per run request, 443 s of evaluation at
10,000 configs before; now 1.4-2.6 s for all fifteen schedules at 10,000 or 100,000 configs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from hub_pipelines.imports.assets import IMPORT_ASSETS, import_job, import_job_name
from hub_pipelines.partitions import asset_key, tenant_partitions
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.settings import schedule_timezone
from hub_pipelines.tenants.models import SyncConfig

STEP = timedelta(minutes=1)  # the schedules' tick; import times are whole steps into a period
CATCH_UP = timedelta(hours=1)  # how far back a tick makes up missed import times
PERIODS = {
    "hourly": timedelta(hours=1),
    "every_6_hours": timedelta(hours=6),
    "daily": timedelta(days=1),
}
CRONS = {frequency: "* * * * *" for frequency in PERIODS}
TIMEZONE = schedule_timezone()
LOOKUP_BATCH = 500  # run keys per instance query when catching up

# Tags Dagster puts on every run a schedule launches (shown in the UI, filterable).
SCHEDULE_NAME_TAG = "dagster/schedule_name"
RUN_KEY_TAG = "dagster/run_key"
TICK_TAG = "hub/tick"  # the tick that requested the run (its run key names the import time)


def schedule_name(system: str, frequency: str) -> str:
    return f"{system}_imports_{frequency}"


def period_start(at: datetime, frequency: str) -> datetime:
    """The start of the period of FREQUENCY holding AT, in the schedules' time zone."""
    local = at.astimezone(ZoneInfo(TIMEZONE))
    hour = {"hourly": local.hour, "every_6_hours": local.hour - local.hour % 6, "daily": 0}
    return local.replace(hour=hour[frequency], minute=0, second=0, microsecond=0)


def import_step(system: str, tenant: str, frequency: str) -> int:
    """Which step of each period the (system, tenant) pair imports in: a stable hash (the same in
    every process and release, unlike `hash()`), spread evenly over the period's steps."""
    digest = hashlib.blake2b(f"{system}/{tenant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * (PERIODS[frequency] // STEP) >> 64


def import_time(system: str, tenant: str, frequency: str, at: datetime) -> datetime:
    """When the tenant's FREQUENCY imports of SYSTEM run in the period holding AT."""
    return period_start(at, frequency) + import_step(system, tenant, frequency) * STEP


@dataclass(frozen=True)
class Window:
    """The steps of one period whose times fall in (since, until]."""

    start: datetime
    steps: range


def due_windows(frequency: str, since: datetime, until: datetime) -> list[Window]:
    """The import times in (since, until], as steps of the (at most two) periods they fall in."""
    windows = []
    start = period_start(until, frequency)
    while start + PERIODS[frequency] > since:
        first = max(0, (since - start) // STEP + 1)
        last = min(PERIODS[frequency] // STEP - 1, (until - start) // STEP)
        if first <= last:
            windows.insert(0, Window(start, range(first, last + 1)))
        start = period_start(start - STEP, frequency)
    return windows


@dataclass(frozen=True)
class DueImport:
    tenant: str
    entity: str
    at: datetime

    def run_key(self, system: str, frequency: str) -> str:
        return f"{frequency}:{self.at.isoformat()}:{system}:{self.tenant}:{self.entity}"


def enabled_configs(warehouse: WarehouseResource, system: str) -> list[tuple[SyncConfig, list]]:
    """The system's enabled, live configs as (sync config, tenants) groups: most configs share a
    few sync_configs, so each is parsed and matched against the frequency once."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT sync_config::text, array_agg(tenant_id ORDER BY tenant_id) "
            "FROM hub.accounting_configs WHERE system = %s AND is_enabled AND deleted_at IS NULL "
            "GROUP BY 1 ORDER BY 1",
            (system,),
        ).fetchall()
    return [(SyncConfig.model_validate_json(sync), tenants) for sync, tenants in rows]


def entities_at(sync: SyncConfig, frequency: str) -> list[str]:
    return [e for e in sync.entities if getattr(sync, f"{e}_frequency") == frequency]


def due_imports(
    groups: Iterable[tuple[SyncConfig, list]],
    system: str,
    frequency: str,
    windows: Sequence[Window],
) -> Iterator[DueImport]:
    for sync, tenants in groups:
        entities = entities_at(sync, frequency)
        for tenant in tenants if entities else ():
            step = import_step(system, tenant, frequency)
            for window in windows:
                if step in window.steps:
                    for entity in entities:
                        yield DueImport(tenant, entity, window.start + step * STEP)


def catch_up_since(instance: dg.DagsterInstance, name: str, tick: datetime) -> datetime:
    """Where the window of due import times starts: one step before the tick time of the
    schedule's latest run (a tick that failed half-way is finished), at most CATCH_UP back, and
    only this tick's time when the schedule has launched nothing (or only later ticks)."""
    latest = instance.get_runs(dg.RunsFilter(tags={SCHEDULE_NAME_TAG: name}), limit=1)
    stamp = latest[0].tags.get(TICK_TAG) if latest else None
    last_tick = min(datetime.fromisoformat(stamp), tick) if stamp else tick
    return max(last_tick.astimezone(tick.tzinfo) - STEP, tick - CATCH_UP)


def launched_run_keys(instance: dg.DagsterInstance, keys: Sequence[str]) -> set[str]:
    """Which of KEYS already have a run (of any status)."""
    found: set[str] = set()
    for offset in range(0, len(keys), LOOKUP_BATCH):
        batch = list(keys[offset : offset + LOOKUP_BATCH])
        runs = instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: batch}))
        found.update(run.tags[RUN_KEY_TAG] for run in runs)
    return found


def resolved_request(
    job, system: str, frequency: str, tick: datetime, due: DueImport
) -> dg.RunRequest:
    """A run request with its partition's tags and run config already set, as Dagster would
    resolve them: Dagster then skips its own per-request lookup of the partition in the instance
    (the tenant's partition was checked with all the others in one query)."""
    selection = [asset_key(system, due.entity)]
    return dg.RunRequest(
        run_key=due.run_key(system, frequency),
        partition_key=due.tenant,
        asset_selection=selection,
        tags={
            "hub/trigger": f"schedule:{frequency}",
            TICK_TAG: tick.isoformat(),
            **job.get_tags_for_partition_key(due.tenant, selection),
        },
        run_config=job.get_run_config_for_partition_key(due.tenant),
    )


def with_partitions(instance: dg.DagsterInstance, system: str, due: list) -> list[DueImport]:
    """The due imports whose tenant has a partition: the tenant sensor adds a new tenant's within
    a minute. One query for all of them."""
    if not due:
        return due
    tenants = sorted({item.tenant for item in due})
    present = instance.get_existing_dynamic_partitions(tenant_partitions(system).name, tenants)
    return [item for item in due if item.tenant in present]


def not_launched(
    instance: dg.DagsterInstance, system: str, frequency: str, tick: datetime, due: list
) -> list[DueImport]:
    """The due imports without a run yet. Those of this tick's own time need no lookup: the
    daemon skips a key it already launched for the same tick (a re-evaluated tick)."""
    earlier = [item.run_key(system, frequency) for item in due if item.at < tick]
    launched = launched_run_keys(instance, earlier)
    return [item for item in due if item.run_key(system, frequency) not in launched]


def run_requests(
    context: dg.ScheduleEvaluationContext,
    system: str,
    frequency: str,
    warehouse: WarehouseResource,
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    instance = context.instance
    tick = context.scheduled_execution_time.astimezone(ZoneInfo(TIMEZONE))
    tick = tick.replace(second=0, microsecond=0)
    since = catch_up_since(instance, schedule_name(system, frequency), tick)
    groups = enabled_configs(warehouse, system)
    due = list(due_imports(groups, system, frequency, due_windows(frequency, since, tick)))
    due = not_launched(instance, system, frequency, tick, with_partitions(instance, system, due))
    if not due:
        yield dg.SkipReason(nothing_due_reason(system, frequency, groups, tick))
        return
    job = context.repository_def.get_job(import_job_name(system))
    for item in due:
        yield resolved_request(job, system, frequency, tick, item)


def nothing_due_reason(
    system: str, frequency: str, groups: list[tuple[SyncConfig, list]], tick: datetime
) -> str:
    importing = sum(len(tenants) for sync, tenants in groups if entities_at(sync, frequency))
    if not importing:
        return f"no enabled {system} config imports anything {frequency}"
    return (
        f"none of the {importing} enabled {system} configs importing {frequency} is due at "
        f"{tick:%Y-%m-%d %H:%M %Z}"
    )


def _schedule(system: str, frequency: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=schedule_name(system, frequency),
        cron_schedule=CRONS[frequency],
        execution_timezone=TIMEZONE,
        job=import_job(system),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Imports every {system} (config, entity) whose sync_config frequency is "
        f"{frequency} once per period, each tenant at its own minute of the period.",
    )
    def import_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        yield from run_requests(context, system, frequency, warehouse)

    return import_schedule


import_schedules = [
    _schedule(system, frequency) for system in IMPORT_ASSETS for frequency in PERIODS
]
