"""Imports run now, in this process, through Dagster on the local instance (`hub sync`, `hub demo`).

The run is recorded on `$HUB_HOME/dagster` like any other, so the UI shows it with its metadata
and checks; the analyst views are refreshed after it, as `analytics_refresh_sensor` would.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg

from hub_pipelines import settings
from hub_pipelines.canonical import Entity

# The summary printed by the caller tells the story (a failure with its message and fix); the
# full event log, stack traces included, is in the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
INTERRUPTED = "DagsterExecutionInterruptedError"


class _InterruptedClose(logging.Filter):
    """Drops what SQLAlchemy logs when Ctrl-C lands while Dagster's storage closes a connection
    ("Exception closing connection", with the interrupt's traceback): the interrupt goes on, and
    the run's summary reports it in its own words (`describe`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, KeyboardInterrupt | dg.DagsterExecutionInterruptedError)


class _Stderr(logging.StreamHandler):
    """To whatever `sys.stderr` is when a record comes, as Python's last-resort handler writes
    (a stream taken once would outlive a redirection of stderr, and be closed by then)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.WARNING)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def quiet_interrupted_closes() -> None:
    """Route SQLAlchemy's pool log through a handler that drops `_InterruptedClose`: to stderr
    from WARNING, as Python's last-resort handler printed it (once per process)."""
    pool = logging.getLogger("sqlalchemy.pool")
    if any(isinstance(f, _InterruptedClose) for h in pool.handlers for f in h.filters):
        return
    handler = _Stderr()
    handler.addFilter(_InterruptedClose())
    pool.addHandler(handler)
    pool.propagate = False


def _asset_job() -> dg.JobDefinition:
    """The code location's own asset job (the one the UI launches), with its resources."""
    from hub_pipelines.definitions import defs

    return defs.resolve_implicit_global_asset_job_def()


def import_partition(
    instance: dg.DagsterInstance,
    tenant: str,
    system: str,
    entities: list[Entity],
    *,
    full_refresh: bool = False,
    landed_file: str = "",
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    from hub_pipelines.imports.assets import import_asset, op_name
    from hub_pipelines.partitions import tenant_partitions

    quiet_interrupted_closes()
    partitions = tenant_partitions(system)
    if not instance.has_dynamic_partition(partitions.name, tenant):
        instance.add_dynamic_partitions(partitions.name, [tenant])  # as the tenant sensor would
    config = {"full_refresh": full_refresh, "landed_file": landed_file}
    ops = {op_name(system, e): {"config": config} for e in entities}
    return _asset_job().execute_in_process(
        instance=instance,
        partition_key=tenant,
        asset_selection=[import_asset(system, entity).key for entity in entities],
        run_config={**QUIET_LOGS, "ops": ops},
        tags=tags,
        raise_on_error=False,
    )


def refresh_views(instance: dg.DagsterInstance, tags: dict[str, str] | None = None):
    from hub_pipelines.analytics.assets import VIEWS

    return _asset_job().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(view) for view in VIEWS],
        run_config=QUIET_LOGS,
        tags=tags,
        raise_on_error=False,
    )


def import_now(
    tenant: str,
    system: str,
    entities: list[Entity],
    *,
    full_refresh: bool = False,
    landed_file: str = "",
    tags: dict[str, str] | None = None,
) -> tuple[dg.ExecuteInProcessResult, dg.ExecuteInProcessResult | None]:
    """Import on the local instance ($HUB_HOME/dagster), then refresh the analyst views when the
    import succeeded (None otherwise)."""
    settings.ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        result = import_partition(
            instance,
            tenant,
            system,
            entities,
            full_refresh=full_refresh,
            landed_file=landed_file,
            tags=tags,
        )
        views = refresh_views(instance, tags) if result.success else None
    return result, views


def describe(result: dg.ExecuteInProcessResult) -> list[str]:
    """What a run did, one line per asset and per failed check, and why it failed if it did."""
    lines = [f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}"]
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        lines.append(
            f"  {event.asset_key.to_user_string():22} fetched {meta['records_fetched']}, "
            f"inserted {meta['records_inserted']}, updated {meta['records_updated']}, "
            f"unchanged {meta['records_unchanged']}, failed {meta['records_failed']}, "
            f"deleted {meta['records_deleted']}, API calls {meta['api_calls']}, "
            f"{meta['duration_seconds']} s"
        )
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.error.cls_name == INTERRUPTED:
                lines.append(
                    f"  {event.step_key} interrupted: its sync log is closed, the pages loaded "
                    "before stay; run it again to go on from the last committed page"
                )
                continue
            user = data.user_failure_data
            message = (user.description if user else None) or data.error.message.strip()
            lines.append(f"  {event.step_key} failed: {message}")
            fix = user.metadata.get("suggested_fix") if user else None
            if fix is not None:
                lines.append(f"    fix: {fix.value}")
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    lines.append(f"  checks: {len(evaluations) - len(failed)} passed, {len(failed)} failed")
    for evaluation in failed:
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        lines.append(f"    {name} ({evaluation.severity.value}): {evaluation.description}")
    return lines
