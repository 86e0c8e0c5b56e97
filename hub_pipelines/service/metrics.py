"""`/metrics` in Prometheus text format, computed from the database at scrape time.

Syncs run in Dagster's run workers, not in this service, and several replicas may answer scrapes:
counters kept in memory would count only what one process saw. So every value is read, when
scraped, from the audit trail every sync writes (`hub.accounting_sync_logs`,
`hub.accounting_sync_errors`), from the tenant configs (`hub.accounting_configs`) and from the
Dagster instance's run queue; any replica answers the same. The counters follow the rows: a sync
is counted once it has finished (a running sync shows in `accounting_sync_running`), and deleting
audit rows lowers them.

What `deploy/prometheus/alerts.yml` and `deploy/grafana/accounting-hub.json` query is exported
here (hub_pipelines_tests/service/test_dashboards.py checks every name against a scrape).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub_pipelines.imports.checks import FREQUENCY_INTERVALS
from hub_pipelines.service.health import dagster_instance, queued_run_count
from hub_pipelines.service.security import log
from hub_pipelines.tenants.models import SyncConfig
from hub_pipelines.warehouse import db

# Imports take seconds to an hour: finer buckets below a second would be empty.
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)
SCRAPE_TIMEOUT_MS = 5000
FINISHED = "status <> 'running' AND completed_at IS NOT NULL"

_SYNCS = f"""
    SELECT system, entity_type, status, count(*) FROM hub.accounting_sync_logs
    WHERE {FINISHED} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
_RUNNING = """
    SELECT system, entity_type, count(*) FROM hub.accounting_sync_logs
    WHERE status = 'running' GROUP BY 1, 2 ORDER BY 1, 2
"""
_ERRORS = "SELECT category, count(*) FROM hub.accounting_sync_errors GROUP BY 1 ORDER BY 1"
_RECORDS = """
    SELECT entity_type, sum(records_inserted + records_updated) FROM hub.accounting_sync_logs
    GROUP BY 1 ORDER BY 1
"""
_LAST_SUCCESS = """
    SELECT tenant_id, system, extract(epoch FROM max(completed_at)) FROM hub.accounting_sync_logs
    WHERE status = 'success' GROUP BY 1, 2 ORDER BY 1, 2
"""


# Only enabled configs: a paused or removed tenant is neither failing nor stale.
_LIVE_CONFIG = "c.is_enabled AND c.deleted_at IS NULL"
_CONSECUTIVE_FAILURES = f"""
    SELECT tenant_id, system, consecutive_failures FROM hub.accounting_configs c
    WHERE {_LIVE_CONFIG} ORDER BY 1, 2
"""
# An open run-level AUTH failure that no passing connection test has followed: the stored
# credentials were rejected, and neither `hub tenants add` nor the browser reconnection (both
# test the new credentials) has replaced them since. A later success resolves the error too.
_RECONNECT_NEEDED = f"""
    SELECT c.tenant_id, c.system, EXISTS (
        SELECT 1 FROM hub.accounting_sync_errors e
        WHERE e.config_id = c.id AND e.scope = 'run' AND e.category = 'AUTH' AND NOT e.resolved
          AND (c.last_connection_status IS DISTINCT FROM 'ok'
               OR c.last_connection_test IS NULL OR c.last_connection_test < e.updated_at))
    FROM hub.accounting_configs c WHERE {_LIVE_CONFIG} ORDER BY 1, 2
"""
# What the `fresh` check measures (imports/freshness.py): the last successful or partial sync of
# each entity of an enabled config, else its registration. One pass over the logs, not one per
# config: a scrape comes every 30-60 s.
_IMPORT_AGES = f"""
    WITH last AS (
        SELECT config_id, entity_type, max(completed_at) AS finished
        FROM hub.accounting_sync_logs WHERE status IN ('success', 'partial') GROUP BY 1, 2
    )
    SELECT c.tenant_id, c.system, c.sync_config, e.entity,
           extract(epoch FROM now() - coalesce(last.finished, c.created_at))
    FROM hub.accounting_configs c
    CROSS JOIN (VALUES ('customers'), ('invoices')) AS e (entity)
    LEFT JOIN last ON last.config_id = c.id AND last.entity_type = e.entity
    WHERE {_LIVE_CONFIG} ORDER BY 1, 2, 4
"""


def _durations_sql(buckets: tuple[float, ...]) -> str:
    """One row: the cumulative count at each bucket's upper bound, then the sum and the count."""
    seconds = "extract(epoch FROM completed_at - started_at)"
    at_most = ", ".join(f"count(*) FILTER (WHERE {seconds} <= {float(b)})" for b in buckets)
    return (
        f"SELECT {at_most}, coalesce(sum({seconds}), 0), count(*) "
        f"FROM hub.accounting_sync_logs WHERE {FINISHED}"
    )


class SyncLogCollector(Collector):
    """Reads the metrics from the warehouse (and the Dagster queue) each time it is collected."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def collect(self) -> Iterator[Metric]:
        with db.connect(
            self.url or db.database_url(),
            connect_timeout=5,
            options=f"-c statement_timeout={SCRAPE_TIMEOUT_MS}",
        ) as conn:
            # One snapshot for every query: the counters agree with one another.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            yield self._syncs(conn.execute(_SYNCS).fetchall())
            yield self._running(conn.execute(_RUNNING).fetchall())
            yield self._errors(conn.execute(_ERRORS).fetchall())
            yield self._durations(conn.execute(_durations_sql(DURATION_BUCKETS)).fetchone())
            yield self._records(conn.execute(_RECORDS).fetchall())
            yield self._last_success(conn.execute(_LAST_SUCCESS).fetchall())
            yield self._consecutive_failures(conn.execute(_CONSECUTIVE_FAILURES).fetchall())
            yield self._reconnect_needed(conn.execute(_RECONNECT_NEEDED).fetchall())
            yield from self._import_ages(conn.execute(_IMPORT_AGES).fetchall())
        yield from self._dagster()

    @staticmethod
    def _syncs(rows) -> Metric:
        metric = CounterMetricFamily(
            "accounting_sync",
            "Finished syncs (one per Dagster run and entity), by system, entity and outcome.",
            labels=["system", "entity", "status"],
        )
        for system, entity, status, count in rows:
            metric.add_metric([system, entity, status], count)
        return metric

    @staticmethod
    def _running(rows) -> Metric:
        metric = GaugeMetricFamily(
            "accounting_sync_running",
            "Syncs started and not yet finished, by system and entity.",
            labels=["system", "entity"],
        )
        for system, entity, count in rows:
            metric.add_metric([system, entity], count)
        return metric

    @staticmethod
    def _errors(rows) -> Metric:
        metric = CounterMetricFamily(
            "accounting_sync_errors",
            "Rows of hub.accounting_sync_errors (failed records and failed runs), by category.",
            labels=["category"],
        )
        for category, count in rows:
            metric.add_metric([category], count)
        return metric

    @staticmethod
    def _durations(row) -> Metric:
        *cumulative, total_seconds, count = row
        buckets = [(_bound(b), n) for b, n in zip(DURATION_BUCKETS, cumulative, strict=True)] + [
            ("+Inf", count)
        ]
        metric = HistogramMetricFamily(
            "accounting_sync_duration_seconds",
            "Wall time of finished syncs (completed_at - started_at of the sync logs).",
        )
        metric.add_metric([], buckets, float(total_seconds))
        return metric

    @staticmethod
    def _records(rows) -> Metric:
        metric = CounterMetricFamily(
            "accounting_records_synced",
            "Records inserted or updated in the warehouse by syncs, by entity.",
            labels=["entity"],
        )
        for entity, synced in rows:
            metric.add_metric([entity], int(synced or 0))
        return metric

    @staticmethod
    def _last_success(rows) -> Metric:
        metric = GaugeMetricFamily(
            "accounting_last_success_timestamp",
            "Unix time at which the last successful sync of a tenant's system finished.",
            labels=["tenant", "system"],
        )
        for tenant, system, epoch in rows:
            metric.add_metric([tenant, system], float(epoch))
        return metric

    @staticmethod
    def _consecutive_failures(rows) -> Metric:
        metric = GaugeMetricFamily(
            "accounting_consecutive_failures",
            "Failed import runs of an enabled config since its last success (reset by a success).",
            labels=["tenant", "system"],
        )
        for tenant, system, failures in rows:
            metric.add_metric([tenant, system], failures)
        return metric

    @staticmethod
    def _reconnect_needed(rows) -> Metric:
        metric = GaugeMetricFamily(
            "accounting_reconnect_needed",
            "1 while an enabled config's credentials were rejected (an open AUTH failure) and "
            "no passing connection test followed; 0 otherwise.",
            labels=["tenant", "system"],
        )
        for tenant, system, needed in rows:
            metric.add_metric([tenant, system], int(needed))
        return metric

    @staticmethod
    def _import_ages(rows) -> Iterator[Metric]:
        labels = ["tenant", "system", "entity"]
        ages = GaugeMetricFamily(
            "accounting_import_age_seconds",
            "Seconds since the last successful (or partial) import of an enabled config's entity "
            "finished; since the config was registered while there has been none.",
            labels=labels,
        )
        intervals = GaugeMetricFamily(
            "accounting_import_interval_seconds",
            "The schedule period of an enabled config's entity (sync_config "
            "<entity>_frequency); absent for manual.",
            labels=labels,
        )
        for tenant, system, sync_config, entity, age in rows:
            sync = SyncConfig.model_validate(sync_config)
            if entity not in sync.entities:
                continue
            ages.add_metric([tenant, system, entity], float(age))
            interval = FREQUENCY_INTERVALS.get(getattr(sync, f"{entity}_frequency"))
            if interval is not None:
                intervals.add_metric([tenant, system, entity], interval.total_seconds())
        yield ages
        yield intervals

    @staticmethod
    def _dagster() -> Iterator[Metric]:
        """The run queue and the daemon's heartbeats, left out of the scrape (and logged) when
        the Dagster instance does not answer: a missing series alerts as absent, where a made-up
        0 would read as an empty queue. A queue read from an instance no daemon has ever beaten
        in (a DAGSTER_HOME that is not the deployment's) has no heartbeat series beside it."""
        try:
            queued = queued_run_count()
            heartbeats = dagster_instance().get_daemon_heartbeats()
        except Exception as exc:
            log.warning(
                "accounting_queue_size and the daemon heartbeats left out: Dagster instance "
                "unreachable (%s)",
                type(exc).__name__,
            )
            return
        queue = GaugeMetricFamily(
            "accounting_queue_size", "Runs waiting to start in the Dagster instance."
        )
        queue.add_metric([], queued)
        yield queue
        beats = GaugeMetricFamily(
            "accounting_dagster_daemon_heartbeat_timestamp",
            "Unix time of the last heartbeat of each Dagster daemon in the instance read.",
            labels=["daemon"],
        )
        for daemon, heartbeat in sorted(heartbeats.items()):
            beats.add_metric([daemon], heartbeat.timestamp)
        yield beats


def _bound(bucket: float) -> str:
    return str(float(bucket))


def scrape(url: str | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncLogCollector(url))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    try:
        body = await run_in_threadpool(scrape)
    except Exception as exc:
        log.warning("metrics scrape failed: %s", type(exc).__name__)
        return PlainTextResponse(
            "# the metrics could not be read from the database; see /ready\n", status_code=503
        )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"])]
