"""Sensors of the error surface: record failed runs, and re-run retryable failures when due."""

import dagster as dg
from psycopg.types.json import Jsonb

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.imports import audit
from hub_pipelines.imports.assets import import_job
from hub_pipelines.resources import WarehouseResource

RETRY_COUNT_TAG = "hub/retry_count"


DIED_MESSAGE = (
    "the run ended before this import finished (its process was killed, ran out of memory, "
    "or the machine restarted)"
)


def _close_abandoned_logs(conn, run_id: str) -> None:
    """A run whose process died leaves its sync log 'running': close it as a retryable failure.
    Each committed page is whole, so re-running the partition is all the recovery needed."""
    metadata = {
        "category": "SERVER",
        "severity": "error",
        "retryable": True,
        "suggested_fix": "Nothing was half-written (every page commits atomically); the retry "
        "sensor re-runs the partition. If it repeats, check the run worker's memory and logs.",
    }
    conn.execute(
        "UPDATE hub.accounting_sync_logs SET status = 'failed', completed_at = now(), "
        "error_message = %s, metadata = metadata || %s "
        "WHERE dagster_run_id = %s AND status = 'running'",
        (DIED_MESSAGE, Jsonb(metadata), run_id),
    )


def _failure_from_logs(conn, run_id: str) -> list[tuple[str, SyncError]]:
    """The classified failures the import assets wrote into their sync logs."""
    _close_abandoned_logs(conn, run_id)
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


def _unclassified(context: dg.RunFailureSensorContext) -> SyncError:
    """A run that failed before an import could classify it (e.g. a missing variable)."""
    message = context.failure_event.message or "the run failed"
    return SyncError(
        Category.CONFIG,
        message,
        severity="critical",
        retryable=False,
        suggested_fix="Read the run's log in the Dagster UI; this failure happened before the "
        "import started (configuration or deployment).",
    )


@dg.run_failure_sensor(
    # Every job of this code location: imports launched from the asset graph or a backfill run
    # as Dagster's implicit asset job, not as import_job. Runs without a partition are skipped.
    name="import_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records failed import runs in hub.accounting_sync_errors and counts "
    "consecutive failures per config.",
)
def import_failure_sensor(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    tenant = run.tags.get("dagster/partition/tenant")
    system = run.tags.get("dagster/partition/system")
    if not tenant or not system:
        return
    retry_count = int(run.tags.get(RETRY_COUNT_TAG, "0"))
    with warehouse.connect() as conn:
        failures = _failure_from_logs(conn, run.run_id) or [(None, _unclassified(context))]
        for entity, error in failures:
            audit.record_run_failure(
                conn,
                run_id=run.run_id,
                partition_key=run.tags.get("dagster/partition"),
                tenant_id=tenant,
                system=system,
                error=error,
                entity=entity,
                retry_count=retry_count,
            )
            context.log.info(f"recorded {error.category} failure of {system}|{tenant} {entity}")


DUE_RETRIES_SQL = """
SELECT id, partition_key, entity_type, retry_count, next_retry_at
FROM hub.accounting_sync_errors
WHERE retryable AND NOT resolved AND partition_key IS NOT NULL
  AND next_retry_at <= now() AND retry_count < max_retries
ORDER BY next_retry_at
LIMIT 100
"""


@dg.sensor(
    name="import_retry_sensor",
    job=import_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs imports whose failure was retryable once next_retry_at has passed; "
    "each failed retry is recorded again with a longer backoff.",
)
def import_retry_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    with warehouse.connect() as conn:
        due = conn.execute(DUE_RETRIES_SQL).fetchall()
        for error_id, key, entity, retry_count, due_at in due:
            selection = [dg.AssetKey(entity)] if entity else None
            yield dg.RunRequest(
                # Unique per scheduling: `hub errors retry` on the same error must launch again.
                run_key=f"retry:{error_id}:{due_at.timestamp():.0f}",
                partition_key=key,
                asset_selection=selection,
                tags={RETRY_COUNT_TAG: str(retry_count + 1), "hub/retry_of_error": str(error_id)},
            )
            conn.execute(
                "UPDATE hub.accounting_sync_errors SET resolved = true, resolved_at = now(), "
                "resolution_note = %s, updated_at = now() WHERE id = %s",
                (f"re-run requested (attempt {retry_count + 1})", error_id),
            )
    if not due:
        yield dg.SkipReason("no retryable failure is due")
