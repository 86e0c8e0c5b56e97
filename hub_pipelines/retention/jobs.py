"""`retention_job` and its daily schedule: the audit trail's archive and deletion (archive.py).

Settings come from the run config when given (the Launchpad), else from the run's environment
(HUB_RETENTION_ARCHIVE_AFTER_DAYS, HUB_RETENTION_DELETE_AFTER_DAYS, HUB_RETENTION_BATCH_SIZE), else
365, 730 and 5000. A bad value fails the run with the reason, not the code location.
"""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from hub_pipelines.imports.schedules import TIMEZONE
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.retention import archive

# Between the 00:00 daily imports and the 06:00 invoice imports.
RETENTION_CRON = "30 3 * * *"


class RetentionConfig(dg.Config):
    archive_after_days: int | None = Field(
        default=None,
        description="Move sync logs and resolved errors older than this many days to the "
        "archive tables. Empty: HUB_RETENTION_ARCHIVE_AFTER_DAYS, else 365.",
    )
    delete_after_days: int | None = Field(
        default=None,
        description="Delete archived rows older than this many days (at least "
        "archive_after_days). Empty: HUB_RETENTION_DELETE_AFTER_DAYS, else 730.",
    )
    batch_size: int | None = Field(
        default=None,
        description="Rows per transaction. Empty: HUB_RETENTION_BATCH_SIZE, else 5000.",
    )
    dry_run: bool = Field(
        default=False, description="Count what each step would take; move and delete nothing."
    )


def run_metadata(
    results: list[archive.StepResult], policy: archive.RetentionPolicy, dry_run: bool
) -> dict[str, int | str | bool]:
    """Rows and batches per step, and the settings the run used."""
    metadata: dict[str, int | str | bool] = {
        "archive_after_days": policy.archive_after_days,
        "delete_after_days": policy.delete_after_days,
        "batch_size": policy.batch_size,
        "dry_run": dry_run,
    }
    for result in results:
        metadata[result.step.name] = result.rows
        metadata[f"{result.step.name}_batches"] = result.batches
        metadata[f"{result.step.name}_before"] = result.cutoff.isoformat(timespec="seconds")
    return metadata


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Archives sync logs and resolved errors past the archive age and deletes "
    "archived rows past the deletion age, in short batches that skip rows a sync holds.",
)
def archive_and_delete_audit_rows(
    context: dg.OpExecutionContext, config: RetentionConfig, warehouse: WarehouseResource
):
    given = config.model_dump(include=set(archive.ENV_VARIABLES))
    try:
        policy = archive.resolve_policy(given)
    except ValueError as exc:
        raise dg.Failure(f"retention settings: {exc}") from None
    with archive.connect(warehouse.url()) as conn:
        try:
            results = archive.run_retention(
                conn, policy, datetime.now(UTC), dry_run=config.dry_run, log=context.log.info
            )
        except archive.RetentionError as exc:
            raise dg.Failure(str(exc)) from None
    return dg.Output(None, metadata=run_metadata(results, policy, config.dry_run))


@dg.job(
    name="retention_job",
    description="Archives sync logs and resolved errors older than a year and deletes archived "
    "ones older than two years (configurable; docs/operations.md, Retention and archive).",
)
def retention_job():
    archive_and_delete_audit_rows()


retention_daily = dg.ScheduleDefinition(
    name="retention_daily",
    job=retention_job,
    cron_schedule=RETENTION_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs retention_job every day at 03:30 (HUB_SCHEDULE_TIMEZONE, default "
    "Asia/Kolkata) with the default or HUB_RETENTION_* settings.",
)
