"""Notice import runs whose worker is gone, however they were launched, and close their books.

Dagster fails a run whose worker died only when its run launcher can check worker health (the
Kubernetes launcher can; the local default launcher, `dagster asset materialize` and `hub sync`
cannot), so a killed run would stay STARTED for ever, hold its queue slot and pool slot, and never
be retried. The hub's own signal of life works on every launcher: an import step holds a
warehouse session named after its run for as long as it works, and a run between steps or
waiting for its pool writes events (Dagster repeats "waiting for a concurrency slot" every five
minutes). A STARTED import run with neither for `silence()` seconds has no worker: the sensor
marks it failed (the failure sensor then records it and schedules the retry) and frees its slots.
"""

from __future__ import annotations

import time

import dagster as dg
from psycopg.types.json import Jsonb

from hub_pipelines.partitions import run_partition
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.settings import env_setting

SESSION_PREFIX = "hub run "
SILENCE_VARIABLE = "HUB_RUN_SILENCE_SECONDS"
DEFAULT_SILENCE_SECONDS = 600  # twice Dagster's "waiting for a concurrency slot" interval
WORKER_LOST_TAG = "hub/worker_lost"
WORKER_LOST = (
    "the run's worker is gone (killed, out of memory, or its machine restarted): no warehouse "
    "session and no event for {seconds} s"
)
CANCELLED = "the run was cancelled (terminated from the UI or the CLI) before this import finished"


def session_name(run_id: str) -> str:
    """The `application_name` of an import step's warehouse session: its sign of life."""
    return f"{SESSION_PREFIX}{run_id}"


def silence() -> int:
    """Seconds without a session or an event after which a started run counts as dead."""
    value = env_setting(SILENCE_VARIABLE, str(DEFAULT_SILENCE_SECONDS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SILENCE_VARIABLE} must be a whole number of seconds, got {value!r}")
    return int(value)


def live_sessions(conn) -> set[str]:
    """Run ids with a warehouse session open now."""
    rows = conn.execute(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
        (SESSION_PREFIX + "%",),
    ).fetchall()
    return {name.removeprefix(SESSION_PREFIX) for (name,) in rows}


def last_sign_of_life(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    """When the run last wrote an event (its start, when it wrote none)."""
    records = instance.get_records_for_run(run_id=run.run_id, ascending=False, limit=1).records
    if records:
        return records[0].event_log_entry.timestamp
    record = instance.get_run_record_by_id(run.run_id)
    return record.start_time or record.create_timestamp.timestamp() if record else time.time()


def lost_runs(
    instance: dg.DagsterInstance, live: set[str], now: float, quiet_for: int
) -> list[dg.DagsterRun]:
    """Started import runs without a warehouse session and silent for `quiet_for` seconds."""
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return [
        run
        for run in started
        if run.run_id not in live
        and run_partition(instance, run) is not None
        and now - last_sign_of_life(instance, run) >= quiet_for
    ]


def fail_lost_run(instance: dg.DagsterInstance, run: dg.DagsterRun, quiet_for: int) -> None:
    """Fail the run as its launcher would have, so the failure sensor records it and the retry
    sensor re-runs it; free its pool slots now rather than when Dagster gets to them."""
    instance.add_run_tags(run.run_id, {WORKER_LOST_TAG: "true"})
    instance.report_run_failed(run, WORKER_LOST.format(seconds=quiet_for))
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def close_cancelled_logs(instance: dg.DagsterInstance, conn) -> int:
    """Sync logs left 'running' by runs that were cancelled: no failure event records them."""
    running = conn.execute(
        "SELECT DISTINCT dagster_run_id FROM hub.accounting_sync_logs WHERE status = 'running'"
    ).fetchall()
    cancelled = [
        run_id
        for (run_id,) in running
        if (run := instance.get_run_by_id(run_id)) is not None
        and run.status == dg.DagsterRunStatus.CANCELED
    ]
    metadata = {"category": "SERVER", "severity": "warning", "retryable": False}
    closed = conn.execute(
        "UPDATE hub.accounting_sync_logs SET status = 'failed', completed_at = now(), "
        "error_message = %s, metadata = metadata || %s "
        "WHERE dagster_run_id = ANY(%s) AND status = 'running'",
        (CANCELLED, Jsonb(metadata), cancelled),
    ).rowcount
    conn.commit()
    return closed


@dg.sensor(
    name="run_health_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails started import runs whose worker is gone (no warehouse session, no event "
    "for HUB_RUN_SILENCE_SECONDS, default 600), whatever launched them, so their queue and pool "
    "slots are freed and the retry sensor re-runs them; closes sync logs of cancelled runs.",
)
def run_health_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    quiet_for = silence()
    with warehouse.connect() as conn:
        lost = lost_runs(context.instance, live_sessions(conn), time.time(), quiet_for)
        for run in lost:
            fail_lost_run(context.instance, run, quiet_for)
            context.log.warning(f"run {run.run_id} has no worker: marked failed")
        closed = close_cancelled_logs(context.instance, conn)
    return dg.SkipReason(f"{len(lost)} lost run(s) failed, {closed} cancelled sync log(s) closed")
