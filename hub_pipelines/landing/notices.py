"""Webhook notices landed as files (`hub serve` writes them into `<system>/<tenant>/`): each tick
coalesces the new notices of one tenant and system into ONE incremental run of the entities they
name, whatever their number, and files them away once that run ended.

A notice is a trigger, not data: the run re-reads what changed since its cursor, so a notice
that arrives during a run is caught by the next one, and a lost run is caught by the schedule.
Files of one run share a `batch` on their `hub.landed_files` rows; the run carries it in its
`hub/landed_notices` tag, which is how a later tick finds it. A notice that cannot be read goes to
`failed/` with an error of scope `file`; notices about nothing the hub imports (a payment) go
straight to `processed/`.
"""

from __future__ import annotations

import importlib
import uuid
from collections import defaultdict
from collections.abc import Iterator

import dagster as dg

from hub_pipelines.imports.assets import import_job_name
from hub_pipelines.landing.folder import LandedFile
from hub_pipelines.partitions import asset_key
from hub_pipelines.webhook_systems import WEBHOOKS

NOTICE_TAG = "hub/landed_notices"
# The systems whose webhooks land notices, and the reader of a landed notice file.
NOTICE_READER = "hub_pipelines.service.notices:read_notice"
NOTICE_SYSTEMS = tuple(WEBHOOKS)


def takes_notices(system: str) -> bool:
    return system in NOTICE_SYSTEMS


def read_notice(file: LandedFile) -> set[str]:
    """The entities a landed notice file names (empty: nothing the hub imports); ValueError when
    it cannot be read."""
    module, name = NOTICE_READER.split(":")
    notices = getattr(importlib.import_module(module), name)(file.path)
    return {notice.entity for notice in notices if notice.entity}


def notice_request(
    batch: str, system: str, tenant: str, entities: set[str], files: int
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"notices:{batch}",
        job_name=import_job_name(system),
        partition_key=tenant,
        asset_selection=[asset_key(system, entity) for entity in sorted(entities)],
        tags={NOTICE_TAG: batch, "hub/trigger": f"webhook:{files} notice(s)"},
    )


class NoticeTick:
    """One tick's work on one tenant's notices; `landing` is the tick's `Landing` (rows, moves,
    errors)."""

    def __init__(self, landing, system: str, tenant: str) -> None:
        self.landing, self.system, self.tenant = landing, system, tenant
        self.conn, self.context = landing.conn, landing.context

    def handle(self, files: list[LandedFile]) -> Iterator[dg.RunRequest]:
        fresh, batches = [], defaultdict(list)
        for file in files:
            row = self._row(file)
            if row is None or row[1] == "failed":
                fresh.append((file, row))
            elif row[1] == "processed":  # the same notice again: handled once is enough
                self.landing._finish(file, row[0], "processed", None)
            else:
                batches[row[2]].append((file, row[0]))
        for batch, members in batches.items():
            yield from self._follow(batch, members)
        if fresh:
            yield from self._start(fresh)

    def _row(self, file: LandedFile) -> tuple | None:
        return self.conn.execute(
            "SELECT id, status, batch FROM hub.landed_files "
            "WHERE tenant_id = %s AND system = %s AND sha256 = %s",
            (file.tenant, file.system, file.sha256),
        ).fetchone()

    def _start(self, fresh: list[tuple[LandedFile, tuple | None]]) -> Iterator[dg.RunRequest]:
        problem, configured = self.landing._configured(self.system, self.tenant)
        wanted: set[str] = set()
        batch = uuid.uuid4().hex[:16]
        members = []
        for file, row in fresh:
            file_id = row[0] if row else self.landing._record(file, "requested", None)
            try:
                entities = read_notice(file)
            except ValueError as exc:
                self.landing._fail(file, file_id, f"not a readable notice: {exc}")
                continue
            if problem is not None:
                self.landing._fail(file, file_id, problem)
            elif not entities & configured:  # about nothing this tenant imports
                self.landing._finish(file, file_id, "processed", None)
            else:
                wanted |= entities & configured
                members.append(file_id)
        if members:
            self.conn.execute(
                "UPDATE hub.landed_files SET status = 'requested', batch = %s, "
                "attempts = CASE WHEN status = 'failed' THEN attempts + 1 ELSE attempts END, "
                "error_message = NULL, finished_at = NULL WHERE id = ANY(%s)",
                (batch, members),
            )
            yield notice_request(batch, self.system, self.tenant, wanted, len(members))

    def _follow(self, batch: str, members: list[tuple[LandedFile, int]]):
        runs = self.context.instance.get_runs(dg.RunsFilter(tags={NOTICE_TAG: batch}), limit=1)
        if not runs:  # not launched yet, or the tick that asked died: ask again, same key
            entities = set().union(*(read_notice(file) for file, _ in members))
            configured = self.landing._configured(self.system, self.tenant)[1]
            if entities & configured:
                yield notice_request(
                    batch, self.system, self.tenant, entities & configured, len(members)
                )
            return
        run = runs[0]
        outcome = self.landing.FINISHED.get(run.status)
        if outcome is None:
            return
        error = None if outcome == "processed" else f"run {run.run_id} {run.status.value}"
        for file, file_id in members:
            self.conn.execute(
                "UPDATE hub.landed_files SET dagster_run_id = %s WHERE id = %s",
                (run.run_id, file_id),
            )
            self.landing._finish(file, file_id, outcome, error)
