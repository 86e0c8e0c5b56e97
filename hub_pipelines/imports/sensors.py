"""Sensors of the error surface: record failed runs, and re-run retryable failures when due.

A run's (tenant, system) comes from its partition key and the assets it targets, so runs launched
any way (UI, backfill, schedule, sensor, GraphQL, `dagster asset materialize`) are recorded.
A retry covers what the failed run did not materialize (the failed asset and those skipped
because of it) with the same full-refresh intent.
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg
from psycopg.types.json import Jsonb

from hub_pipelines.canonical import ENTITIES
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.imports import audit
from hub_pipelines.imports.assets import IMPORT_JOBS, import_job_name, op_name
from hub_pipelines.imports.run_health import WORKER_LOST_TAG
from hub_pipelines.partitions import run_partition, system_of
from hub_pipelines.resources import WarehouseResource

# Set on a run importing a landed file (hub_pipelines.landing.sensors).
LANDED_FILE_TAG = "hub/landed_file"
RETRY_COUNT_TAG = "hub/retry_count"
RETRY_OF_RUN_TAG = "hub/retry_of_run"
RETRY_OF_BACKFILL_TAG = "hub/retry_of_backfill"
BACKFILL_TAG = "dagster/backfill"


DIED_MESSAGE = (
    "the run ended before this import finished (its process was killed, ran out of memory, "
    "or the machine restarted)"
)
DIED_FIX = (
    "Nothing was half-written (every page commits atomically); the retry sensor re-runs the "
    "partition. If it repeats, check the run worker's memory and logs."
)


def _died() -> SyncError:
    return SyncError(Category.SERVER, DIED_MESSAGE, retryable=True, suggested_fix=DIED_FIX)


def _close_abandoned_logs(conn, run_id: str, causes: dict[str | None, SyncError]) -> None:
    """Sync logs a failed run left 'running': its process died, or the step failed while the
    warehouse was away and could not write them. Close each with its step's classified failure
    when there is one, else as a retryable death."""
    running = conn.execute(
        "SELECT id, entity_type FROM hub.accounting_sync_logs "
        "WHERE dagster_run_id = %s AND status = 'running'",
        (run_id,),
    ).fetchall()
    for log_id, entity in running:
        error = causes.get(entity) or _died()
        conn.execute(
            "UPDATE hub.accounting_sync_logs SET status = 'failed', completed_at = now(), "
            "error_message = %s, metadata = metadata || %s WHERE id = %s",
            (error.message, Jsonb(audit.error_metadata(error)), log_id),
        )


def _failure_from_logs(conn, run_id: str) -> list[tuple[str, SyncError]]:
    """The classified failures the import assets wrote into their sync logs."""
    rows = conn.execute(
        "SELECT entity_type, error_message, metadata FROM hub.accounting_sync_logs "
        "WHERE dagster_run_id = %s AND status = 'failed'",
        (run_id,),
    ).fetchall()
    failures = []
    for entity, message, metadata in rows:
        error = SyncError(
            metadata.get("category", "SERVER"),
            message or "the import failed",
            severity=metadata.get("severity"),
            retryable=metadata.get("retryable"),
            suggested_fix=metadata.get("suggested_fix"),
            code=metadata.get("code"),
            retry_after=metadata.get("retry_after"),
        )
        failures.append((entity, error))
    return failures


GENERIC_FIX = (
    "Read the run's log in the Dagster UI; this failure happened before the import started "
    "(configuration or deployment)."
)


def _step_failures(context: dg.RunFailureSensorContext) -> list[tuple[str | None, SyncError]]:
    """Failures before an import could write its sync log (a missing config, a key that cannot
    open the credentials): the step's own message and, for the hub's classified failures, its
    category and fix."""
    failures = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        metadata = {k: v.value for k, v in (user.metadata if user else {}).items()}
        message = (user.description if user else None) or (
            data.error.message.strip() if data.error else "the step failed"
        )
        category = metadata.get("category", str(Category.CONFIG))
        prefix = f"{category}: "
        error = SyncError(
            category,
            message.removeprefix(prefix),
            severity="critical" if category == Category.CONFIG else None,
            retryable=False if category == Category.CONFIG else None,
            suggested_fix=metadata.get("suggested_fix") or GENERIC_FIX,
        )
        entity = event.step_key.split("__")[-1] if event.step_key else None
        failures.append((entity, error))
    return failures


def _unclassified(context: dg.RunFailureSensorContext) -> SyncError:
    """A run that failed without a failed step: its worker was lost (retried), or it could not
    start (a deployment problem, not retried)."""
    message = context.failure_event.message or "the run failed"
    if context.dagster_run.tags.get(WORKER_LOST_TAG):
        return SyncError(Category.SERVER, message, retryable=True, suggested_fix=DIED_FIX)
    return SyncError(
        Category.CONFIG, message, severity="critical", retryable=False, suggested_fix=GENERIC_FIX
    )


def retry_plan(instance: dg.DagsterInstance, run: dg.DagsterRun, assets: list) -> dict:
    """What a retry of this run must cover: its import assets that did not materialize."""
    records = instance.get_records_for_run(
        run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    done = {record.event_log_entry.dagster_event.asset_key for record in records}
    ops = (run.run_config or {}).get("ops", {})
    full = BACKFILL_TAG in run.tags or any(
        op.get("config", {}).get("full_refresh") for op in ops.values()
    )
    return {
        "assets": [key.to_user_string() for key in assets if key not in done],
        "full_refresh": bool(full),
        "backfill_id": run.tags.get(BACKFILL_TAG) or run.tags.get(RETRY_OF_BACKFILL_TAG),
    }


@dg.run_failure_sensor(
    # Every job of this code location: imports launched from the asset graph or a backfill run
    # as Dagster's implicit asset job. Runs that are not a single import partition are skipped.
    name="import_failure_sensor",
    # Also runs without a code location origin (`dagster asset materialize`, `hub sync`).
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records failed import runs in hub.accounting_sync_errors (with the cause and "
    "what a retry must cover) and counts consecutive failures per config.",
)
def import_failure_sensor(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    found = run_partition(context.instance, run)
    if found is None:
        return
    tenant, system, assets = found
    plan = retry_plan(context.instance, run, assets)
    retry_count = int(run.tags.get(RETRY_COUNT_TAG, "0"))
    with warehouse.connect() as conn:
        steps = _step_failures(context)
        _close_abandoned_logs(conn, run.run_id, dict(steps))
        failures = _failure_from_logs(conn, run.run_id) or steps or [(None, _unclassified(context))]
        for entity, error in failures:
            if LANDED_FILE_TAG in run.tags:  # its file moves to failed/: a re-drop re-imports it
                error.retryable = False
            audit.record_run_failure(
                conn,
                run_id=run.run_id,
                partition_key=tenant,
                tenant_id=tenant,
                system=system,
                error=error,
                entity=entity,
                retry_count=retry_count,
                retry_plan=plan,
            )
            context.log.info(f"recorded {error.category} failure of {system} {tenant} {entity}")


DUE_RETRIES_SQL = """
SELECT id, system, partition_key, entity_type, retry_count, next_retry_at, retry_plan,
       dagster_run_id
FROM hub.accounting_sync_errors
WHERE retryable AND NOT resolved AND partition_key IS NOT NULL
  AND next_retry_at <= now() AND retry_count < max_retries
ORDER BY next_retry_at
LIMIT 100
"""


def _retry_request(rows: list[tuple]) -> dg.RunRequest | None:
    """One run for the due errors of one failed run: what it left undone. None when it left no
    import undone (a check-only run): re-running checks is a person's call, not an import."""
    error_id, system, tenant, entity, retry_count, due_at, plan, run_id = rows[0]
    if plan is not None and not plan["assets"]:
        return None
    plan = plan or {"assets": [f"{system}/{entity}"] if entity else [], "full_refresh": False}
    keys = [dg.AssetKey.from_user_string(key) for key in plan["assets"]]
    keys = [key for key in keys if system_of(key) == system] or None
    full = plan.get("full_refresh", False)
    tags = {RETRY_COUNT_TAG: str(retry_count + 1), "hub/retry_of_error": str(error_id)}
    if run_id:
        tags[RETRY_OF_RUN_TAG] = run_id
    if plan.get("backfill_id"):
        tags[RETRY_OF_BACKFILL_TAG] = plan["backfill_id"]
    ops = [key.path[1] for key in keys] if keys else list(ENTITIES)
    return dg.RunRequest(
        # Unique per scheduling: `hub errors retry` on the same error must launch again.
        run_key=f"retry:{error_id}:{due_at.timestamp():.0f}",
        job_name=import_job_name(system),
        partition_key=tenant,
        asset_selection=keys,
        run_config={"ops": {op_name(system, op): {"config": {"full_refresh": full}} for op in ops}},
        tags=tags,
    )


@dg.sensor(
    name="import_retry_sensor",
    jobs=IMPORT_JOBS,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs what a failed import left undone (same full-refresh intent) once a "
    "retryable failure's next_retry_at has passed; each failed retry backs off further.",
)
def import_retry_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    with warehouse.connect() as conn:
        due = conn.execute(DUE_RETRIES_SQL).fetchall()
        by_run: dict[str, list[tuple]] = defaultdict(list)
        for row in due:
            by_run[row[-1] or f"error:{row[0]}"].append(row)
        for rows in by_run.values():
            request = _retry_request(rows)
            if request is None:
                note = "not retried: a check-only run imports nothing; run the check again"
            else:
                yield request
                note = f"re-run requested (attempt {request.tags[RETRY_COUNT_TAG]})"
            conn.execute(
                "UPDATE hub.accounting_sync_errors SET resolved = true, resolved_at = now(), "
                "resolution_note = %s, updated_at = now() WHERE id = ANY(%s)",
                (note, [row[0] for row in rows]),
            )
    if not due:
        yield dg.SkipReason("no retryable failure is due")
