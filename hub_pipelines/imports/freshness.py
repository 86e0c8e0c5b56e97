"""Freshness on its own schedule: a partition whose imports stopped turns stale without a run.

The `fresh` check also runs with every import; this sensor evaluates it for every enabled config
in one query per tick and records a check result only when a partition turns stale or recovers,
so a tick costs the same whatever the number of tenants and the event log does not grow idle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg

from hub_pipelines.imports.checks import FREQUENCY_INTERVALS, FRESHNESS
from hub_pipelines.partitions import asset_key
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.models import SyncConfig

LAST_SUCCESS_SQL = """
SELECT c.tenant_id, c.system, c.sync_config, c.created_at, e.entity,
       (SELECT max(l.completed_at) FROM hub.accounting_sync_logs l
        WHERE l.config_id = c.id AND l.entity_type = e.entity
          AND l.status IN ('success', 'partial')) AS last_success
FROM hub.accounting_configs c
CROSS JOIN (VALUES ('customers'), ('invoices')) AS e (entity)
WHERE c.is_enabled AND c.deleted_at IS NULL AND c.system = ANY(%s)
"""


def staleness(
    last_success: datetime | None, since: datetime, frequency: str, now: datetime
) -> str | None:
    """Why a partition is stale (no successful import within twice its interval), or None."""
    interval = FREQUENCY_INTERVALS.get(frequency)
    reference = last_success or since
    if interval is None or now - reference <= 2 * interval:
        return None
    if last_success is None:
        return f"never imported successfully, registered {since.isoformat(timespec='minutes')}"
    return (
        f"last successful import {last_success.isoformat(timespec='minutes')}, over 2 × {frequency}"
    )


def _evaluation(system: str, tenant: str, entity: str, problem: str | None):
    return dg.AssetCheckEvaluation(
        asset_key=asset_key(system, entity),
        check_name=FRESHNESS.name,
        passed=problem is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=problem or FRESHNESS.description,
        metadata={"evaluated_by": "freshness_sensor"},
        partition=tenant,
    )


@dg.sensor(
    name="freshness_sensor",
    minimum_interval_seconds=15 * 60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the `fresh` check of every enabled config every 15 minutes, without "
    "a run; records a result when a partition turns stale or recovers.",
)
def freshness_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    now = datetime.now(UTC)
    with warehouse.connect() as conn:
        rows = conn.execute(LAST_SUCCESS_SQL, (list(AVAILABLE),)).fetchall()
    stale: dict[str, tuple] = {}
    watched = set()
    for tenant, system, sync, created, entity, last in rows:
        sync = SyncConfig.model_validate(sync)
        if entity not in sync.entities:
            continue
        watched.add(f"{system}/{tenant}/{entity}")
        problem = staleness(last, created, getattr(sync, f"{entity}_frequency"), now)
        if problem:
            stale[f"{system}/{tenant}/{entity}"] = (system, tenant, entity, problem)
    before = set(json.loads(context.cursor or "[]"))
    events = [_evaluation(*stale[key]) for key in sorted(stale.keys() - before)]
    recovered = (before - stale.keys()) & watched  # paused or removed configs are not judged
    events += [_evaluation(*key.split("/"), None) for key in sorted(recovered)]
    if not events:
        return dg.SkipReason(f"{len(stale)} stale partition(s), unchanged since the last tick")
    return dg.SensorResult(asset_events=events, cursor=json.dumps(sorted(stale)))
