"""The landing sensor: every complete file in the landing folder becomes one run of its tenant's
partition, and leaves the folder once that run has ended.

The file's content hash is its identity (`hub.landed_files`, unique per tenant and system), so a
file is imported once whatever it is called or however often it is dropped (a file that failed is
tried again when dropped again), and the run request's key is that row's id and attempt, so a
sensor tick that dies half-way never gets it imported twice. The sensor
alone moves files, and only after their run ended: to `processed/` on success, else to `failed/`
with the run's error (the failure sensor records the run's classified error; here the file's row
says which run). A file the hub cannot import at all (no such tenant, no reader for the system)
goes to `failed/` with an error row of scope `file` naming the fix. Nothing is deleted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import dagster as dg
from psycopg.types.json import Jsonb

from hub_pipelines import settings
from hub_pipelines.imports.assets import IMPORT_ASSETS, import_job, import_job_name, op_name
from hub_pipelines.imports.sensors import LANDED_FILE_TAG
from hub_pipelines.landing.file_import import FILE_READERS, reads_files
from hub_pipelines.landing.folder import LandedFile, landed_files, move, settle_seconds
from hub_pipelines.landing.notices import NOTICE_SYSTEMS, NoticeTick, takes_notices
from hub_pipelines.resources import WarehouseResource

FINISHED = {
    dg.DagsterRunStatus.SUCCESS: "processed",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}


@dataclass(frozen=True)
class Attempt:
    """One try at importing a landed file: its row and the how-many-th try this is."""

    file_id: int
    number: int = 1

    def __str__(self) -> str:
        return f"{self.file_id}.{self.number}"


def landed_file_request(attempt: Attempt, file: LandedFile, entities: list[str]) -> dg.RunRequest:
    ops = {op_name(file.system, e): {"config": {"landed_file": str(file.path)}} for e in entities}
    return dg.RunRequest(
        run_key=f"landed:{attempt}",
        job_name=import_job_name(file.system),
        partition_key=file.tenant,
        run_config={"ops": ops},
        tags={LANDED_FILE_TAG: str(attempt), "hub/trigger": f"landing:{file.path.name}"},
    )


class Landing:
    """One tick's work on the folder, against the warehouse's record of landed files."""

    FINISHED = FINISHED

    def __init__(self, context: dg.SensorEvaluationContext, conn) -> None:
        self.context, self.conn = context, conn

    def handle(self, file: LandedFile) -> dg.RunRequest | None:
        row = self.conn.execute(
            "SELECT id, status, attempts, dagster_run_id FROM hub.landed_files "
            "WHERE tenant_id = %s AND system = %s AND sha256 = %s",
            (file.tenant, file.system, file.sha256),
        ).fetchone()
        if row is None:
            return self._first_sight(file)
        file_id, status, attempts, run_id = row
        if status == "processed":  # the same content again: imported once is enough
            self._finish(file, file_id, "processed", None)
            return None
        if status == "failed":  # dropped again after a failure: a new attempt
            attempts = self._retry(file, file_id)
        return self._follow(file, Attempt(file_id, attempts), run_id)

    def _retry(self, file: LandedFile, file_id: int) -> int:
        (attempts,) = self.conn.execute(
            "UPDATE hub.landed_files SET status = 'requested', attempts = attempts + 1, "
            "file_name = %s, dagster_run_id = NULL, error_message = NULL, finished_at = NULL "
            "WHERE id = %s RETURNING attempts",
            (file.path.name, file_id),
        ).fetchone()
        return attempts

    def _first_sight(self, file: LandedFile) -> dg.RunRequest | None:
        problem, entities = self._importable(file)
        file_id = self._record(file, "requested" if problem is None else "failed", problem)
        if problem is not None:
            self._fail(file, file_id, problem)
            return None
        return landed_file_request(Attempt(file_id), file, entities)

    def _importable(self, file: LandedFile) -> tuple[str | None, list[str]]:
        if not reads_files(file.system):
            readers = ", ".join(sorted(FILE_READERS))
            return f"the hub does not import {file.system} files (it reads files of {readers})", []
        problem, entities = self._configured(file.system, file.tenant)
        return problem, sorted(entities)

    def _configured(self, system: str, tenant: str) -> tuple[str | None, set[str]]:
        """Why the tenant's files cannot be imported (None: they can), and its entities."""
        row = self.conn.execute(
            "SELECT is_enabled, sync_config FROM hub.accounting_configs "
            "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
            (tenant, system),
        ).fetchone()
        if row is None:
            how = "--file-drop" if reads_files(system) else "--config FILE"
            return (
                f"no {system} tenant {tenant!r} is registered: register it with "
                f"`hub tenants add {tenant} {system} {how}`, then drop the file again",
                set(),
            )
        if not row[0]:
            return f"{system} tenant {tenant!r} is disabled (paused)", set()
        return None, set(row[1].get("entities") or ["customers", "invoices"])

    def _follow(self, file: LandedFile, attempt: Attempt, run_id: str | None):
        file_id = attempt.file_id
        runs = self.context.instance.get_runs(
            dg.RunsFilter(tags={LANDED_FILE_TAG: str(attempt)}), limit=1
        )
        if not runs:  # not launched yet (or the tick that asked died): ask again, same key
            problem, entities = self._importable(file)
            if problem is not None:
                self._fail(file, file_id, problem)
                return None
            return landed_file_request(attempt, file, entities)
        run = runs[0]
        if run_id is None:
            self.conn.execute(
                "UPDATE hub.landed_files SET dagster_run_id = %s WHERE id = %s",
                (run.run_id, file_id),
            )
        outcome = FINISHED.get(run.status)
        if outcome is not None:
            error = None if outcome == "processed" else f"run {run.run_id} {run.status.value}"
            self._finish(file, file_id, outcome, error)
        return None

    def _record(self, file: LandedFile, status: str, error: str | None) -> int:
        (file_id,) = self.conn.execute(
            "INSERT INTO hub.landed_files (tenant_id, system, file_name, sha256, size_bytes, "
            "status, error_message, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "CASE WHEN %s = 'requested' THEN NULL ELSE now() END) RETURNING id",
            (
                file.tenant,
                file.system,
                file.path.name,
                file.sha256,
                file.size,
                status,
                error,
                status,
            ),
        ).fetchone()
        return file_id

    def _finish(self, file: LandedFile, file_id: int, outcome: str, error: str | None) -> None:
        """Move first, then record: a tick that dies between the two finds the file gone and
        the row still 'requested', and the next tick's look at the run records it."""
        target = move(file, outcome)
        self.conn.execute(
            "UPDATE hub.landed_files SET status = CASE WHEN status = 'requested' THEN %s "
            "ELSE status END, error_message = coalesce(%s, error_message), "
            "finished_at = coalesce(finished_at, now()) WHERE id = %s",
            (outcome, error, file_id),
        )
        self.context.log.info(f"{file.system}/{file.tenant}/{file.path.name} → {target}")

    def _fail(self, file: LandedFile, file_id: int, problem: str) -> None:
        self._file_error(file, problem)
        self._finish(file, file_id, "failed", problem)

    def _file_error(self, file: LandedFile, problem: str) -> None:
        config = self.conn.execute(
            "SELECT id FROM hub.accounting_configs WHERE tenant_id = %s AND system = %s "
            "AND deleted_at IS NULL",
            (file.tenant, file.system),
        ).fetchone()
        self.conn.execute(
            "INSERT INTO hub.accounting_sync_errors (config_id, tenant_id, system, category, "
            "error_message, suggested_fix, scope, raw_payload) "
            "VALUES (%s, %s, %s, 'CONFIG', %s, %s, 'file', %s)",
            (
                config[0] if config else None,
                file.tenant,
                file.system,
                f"landed file {file.path.name}: {problem}",
                "Fix the cause, then drop the file again (it was moved to failed/).",
                Jsonb({"file": file.path.name, "sha256": file.sha256, "size": file.size}),
            ),
        )


@dg.sensor(
    name="landing_sensor",
    jobs=[import_job(s) for s in (*FILE_READERS, *NOTICE_SYSTEMS) if s in IMPORT_ASSETS],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Imports the files landed in HUB_LANDING_DIR/<system>/<tenant>/ (Tally exports: "
    "one run each; webhook notices: one incremental run per tenant and tick) through runs of the "
    "tenant's partition, then moves each to processed/ or failed/.",
)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    root = settings.landing_dir()
    requested = 0
    with warehouse.connect() as conn:
        landing = Landing(context, conn)
        notices = defaultdict(list)
        for file in landed_files(root, settle_seconds()):
            if takes_notices(file.system):
                notices[file.system, file.tenant].append(file)
                continue
            request = landing.handle(file)
            conn.commit()  # each file's record stands on its own
            if request is not None:
                requested += 1
                yield request
        for (system, tenant), files in notices.items():
            for request in NoticeTick(landing, system, tenant).handle(files):
                conn.commit()
                requested += 1
                yield request
            conn.commit()
    if not requested:
        yield dg.SkipReason(f"no new complete file in {root}")
