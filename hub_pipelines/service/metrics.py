"""`/metrics` in Prometheus text format, computed from the database at scrape time.

Syncs run in Dagster's run workers, not in this service, and several replicas may answer scrapes:
counters kept in memory would count only what one process saw. So every value is read, when
scraped, from the audit trail every sync writes (`hub.accounting_sync_logs`,
`hub.accounting_sync_errors`) and from the Dagster instance's run queue; any replica answers the
same. The counters follow the rows: a sync is counted once it has finished (a running sync
shows in `accounting_sync_running`), and deleting audit rows lowers them.
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

from hub_pipelines.service.health import queued_run_count
from hub_pipelines.service.security import log
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
        queue = self._queue()
        if queue is not None:
            yield queue

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
    def _queue() -> Metric | None:
        """Left out of the scrape (and logged) when the Dagster instance does not answer: a
        missing series alerts as absent, where a made-up 0 would read as an empty queue."""
        try:
            queued = queued_run_count()
        except Exception as exc:
            log.warning(
                "accounting_queue_size left out: Dagster instance unreachable (%s)",
                type(exc).__name__,
            )
            return None
        metric = GaugeMetricFamily(
            "accounting_queue_size", "Runs waiting to start in the Dagster instance."
        )
        metric.add_metric([], queued)
        return metric


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
