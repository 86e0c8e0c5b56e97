"""Retention of the audit trail (issue 13, point 4): through Dagster, against a real PostgreSQL.

Old sync logs and resolved errors move to the archive in batches of the configured size, archived
rows past the deletion age go, what the hub reads stays (running logs, open errors and the logs
they name, the newest log of each outcome, the newest complete listing), and a run during a real
Zoho Books import neither waits for it nor holds it up, nor loses a row.
"""

from __future__ import annotations

import math
import threading
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from hub_pipelines.imports.freshness import LAST_SUCCESS_SQL
from hub_pipelines.resources import WarehouseResource
from hub_pipelines.retention import archive
from hub_pipelines.retention.jobs import RETENTION_CRON, retention_daily, retention_job
from hub_pipelines.service.metrics import _LAST_SUCCESS
from hub_pipelines.warehouse import migrations
from hub_pipelines.zoho_books.connector import ZohoBooksResource
from hub_pipelines_tests.zoho_books.conftest import (  # noqa: F401 (the `zoho` fixture)
    TENANT,
    customers,
    invoices,
    metadata,
    zoho,
)

SYSTEM = "zoho_books"
OP = "archive_and_delete_audit_rows"
NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def no_retention_variables(monkeypatch):
    for variable in archive.ENV_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


# --- helpers -------------------------------------------------------------------------------------


def add_config(conn, tenant: str = TENANT, system: str = SYSTEM) -> int:
    (config_id,) = conn.execute(
        "INSERT INTO hub.accounting_configs (tenant_id, system, connection_config) "
        "VALUES (%s, %s, '{}') RETURNING id",
        (tenant, system),
    ).fetchone()
    return config_id


def add_log(
    conn,
    days_old: float,
    *,
    status: str = "success",
    entity: str = "invoices",
    config_id: int | None = None,
    tenant: str = TENANT,
    listing: str = "changes",
) -> int:
    started = NOW - timedelta(days=days_old)
    completed = None if status == "running" else started + timedelta(minutes=3)
    (log_id,) = conn.execute(
        "INSERT INTO hub.accounting_sync_logs (config_id, tenant_id, system, entity_type, status, "
        "started_at, completed_at, records_fetched, metadata, dagster_run_id, partition_key, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 7, %s, %s, %s, %s) RETURNING id",
        (
            config_id,
            tenant,
            SYSTEM,
            entity,
            status,
            started,
            completed,
            Jsonb({"listing": listing}),
            uuid.uuid4().hex,
            tenant,
            started,
        ),
    ).fetchone()
    return log_id


def add_error(
    conn,
    days_old: float,
    *,
    resolved_days_old: float | None = None,
    log_id: int | None = None,
    tenant: str = TENANT,
) -> int:
    """An open error, or one resolved `resolved_days_old` days ago."""
    resolved_at = None if resolved_days_old is None else NOW - timedelta(days=resolved_days_old)
    (error_id,) = conn.execute(
        "INSERT INTO hub.accounting_sync_errors (sync_log_id, tenant_id, system, entity_type, "
        "category, error_message, resolved, resolved_at, created_at) "
        "VALUES (%s, %s, %s, 'invoices', 'SOURCE_DATA', 'bad record', %s, %s, %s) RETURNING id",
        (
            log_id,
            tenant,
            SYSTEM,
            resolved_at is not None,
            resolved_at,
            NOW - timedelta(days=days_old),
        ),
    ).fetchone()
    return error_id


def ids(url: str, table: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {table}")}


def rows_by_id(url: str, table: str) -> dict[int, dict]:
    """Every column of every row, archived_at left out: what a row said."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id, to_jsonb(t) - 'archived_at' FROM {table} t").fetchall()
    return dict(rows)


def retain(url: str, instance: dg.DagsterInstance | None = None, **config):
    return retention_job.execute_in_process(
        run_config={"ops": {OP: {"config": config}}},
        resources={"warehouse": WarehouseResource(database_url=url)},
        instance=instance,
        raise_on_error=False,
    )


def run_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.step_output_data.metadata.items()}


def batch_messages(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.user_message.startswith(f"{step}: batch ")
    ]


def last_success_figures(url: str) -> dict[str, list]:
    """What the hub reads from old logs: the freshness sensor's last successes, the
    last-success metric, and the newest complete listing (`complete_listing_days`)."""
    with psycopg.connect(url) as conn:
        return {
            "freshness": conn.execute(LAST_SUCCESS_SQL, ([SYSTEM],)).fetchall(),
            "metric": conn.execute(_LAST_SUCCESS).fetchall(),
            "complete_listing": conn.execute(
                "SELECT tenant_id, entity_type, max(completed_at) FROM hub.accounting_sync_logs "
                "WHERE status IN ('success', 'partial') AND metadata->>'listing' = 'complete' "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall(),
        }


# --- what moves, in batches, and what stays -----------------------------------------------------


def test_old_logs_move_in_batches_of_the_configured_size_and_the_newest_of_each_outcome_stays(
    warehouse,
):
    with psycopg.connect(warehouse) as conn:
        config = add_config(conn)
        old_successes = [add_log(conn, 400 + day, config_id=config) for day in range(25)]
        old_failures = [
            add_log(conn, 500 + day, status="failed", config_id=config) for day in (0, 1)
        ]
        complete = add_log(conn, 450, config_id=config, listing="complete")
        stuck = add_log(conn, 600, status="running", config_id=config)  # never closed
        old_customers = add_log(conn, 420, entity="customers", config_id=config)
        recent_customers = add_log(conn, 3, entity="customers", config_id=config)
        other_tenant = add_log(conn, 700, tenant="globex")  # its only log: the newest
    before = rows_by_id(warehouse, archive.LOGS)
    figures = last_success_figures(warehouse)

    with dg.instance_for_test() as instance:
        result = retain(warehouse, instance, batch_size=10)
        assert result.success
        meta = run_metadata(result)
        messages = batch_messages(instance, result.run_id, "sync_logs_archived")

    # The newest success, the newest failure and the newest complete listing of
    # acme/invoices stay, the running log and each group's newest too.
    newest_success, newest_failure = old_successes[0], old_failures[0]
    staying = {newest_success, newest_failure, complete, stuck, recent_customers, other_tenant}
    moved = set(before) - staying
    assert moved == {*old_successes[1:], old_failures[1], old_customers}
    assert ids(warehouse, archive.LOGS) == staying
    assert ids(warehouse, archive.LOGS_ARCHIVE) == moved
    # Moved whole: every column as it was, under the same id.
    archived = rows_by_id(warehouse, archive.LOGS_ARCHIVE)
    assert archived == {log_id: before[log_id] for log_id in moved}

    assert meta["sync_logs_archived"] == len(moved) == 26
    assert meta["sync_logs_archived_batches"] == math.ceil(26 / 10) == 3
    assert [m.split(", ")[1] for m in messages] == ["10 row(s)", "10 row(s)", "6 row(s)"]
    assert meta["archived_sync_logs_deleted"] == 0  # nothing is two years old
    assert (meta["archive_after_days"], meta["delete_after_days"], meta["batch_size"]) == (
        365,
        730,
        10,
    )
    assert last_success_figures(warehouse) == figures


def test_of_overlapping_runs_the_last_started_and_the_last_finished_both_stay(warehouse):
    with psycopg.connect(warehouse) as conn:
        earlier = add_log(conn, 430)
        long_run = add_log(conn, 420)  # started first, finished last
        conn.execute(
            "UPDATE hub.accounting_sync_logs SET completed_at = now() - interval '390 days' "
            "WHERE id = %s",
            (long_run,),
        )
        short_run = add_log(conn, 400)  # started last
    assert retain(warehouse).success
    assert ids(warehouse, archive.LOGS) == {long_run, short_run}
    assert ids(warehouse, archive.LOGS_ARCHIVE) == {earlier}


def test_resolved_errors_move_open_ones_stay_and_logs_follow_their_errors(warehouse):
    with psycopg.connect(warehouse) as conn:
        newest = add_log(conn, 390)  # the newest success: stays whatever happens
        named_by_open = add_log(conn, 420)
        open_error = add_error(conn, 420, log_id=named_by_open)
        named_by_resolved = add_log(conn, 430)
        resolved_error = add_error(conn, 430, resolved_days_old=400, log_id=named_by_resolved)
        named_by_recent = add_log(conn, 440)
        recently_resolved = add_error(conn, 440, resolved_days_old=10, log_id=named_by_recent)
        ancient_open = add_error(conn, 900)  # open: stays however old
        # Resolved long ago, but the last error globex had: stays.
        last_of_globex = add_error(conn, 600, resolved_days_old=590, tenant="globex")
        unresolved_retryable = add_error(conn, 800)
        conn.execute(
            "UPDATE hub.accounting_sync_errors SET retryable = true, next_retry_at = now() "
            "WHERE id = %s",
            (unresolved_retryable,),
        )

    result = retain(warehouse)
    assert result.success
    meta = run_metadata(result)

    assert ids(warehouse, archive.ERRORS) == {
        open_error,
        recently_resolved,
        ancient_open,
        unresolved_retryable,
        last_of_globex,
    }
    assert ids(warehouse, archive.ERRORS_ARCHIVE) == {resolved_error}
    # The error went first, so the log it named followed in the same run; logs named by errors
    # still live stay (the foreign key), however old.
    assert ids(warehouse, archive.LOGS) == {newest, named_by_open, named_by_recent}
    assert ids(warehouse, archive.LOGS_ARCHIVE) == {named_by_resolved}
    assert (meta["sync_errors_archived"], meta["sync_logs_archived"]) == (1, 1)
    with psycopg.connect(warehouse) as conn:
        (link,) = conn.execute(
            "SELECT sync_log_id FROM hub.accounting_sync_errors_archive WHERE id = %s",
            (resolved_error,),
        ).fetchone()
    assert link == named_by_resolved


def test_archived_rows_past_the_deletion_age_are_deleted_and_a_second_run_finds_nothing(
    warehouse,
):
    with psycopg.connect(warehouse) as conn:
        add_log(conn, 10)  # the newest: everything below may go
        add_error(conn, 5, resolved_days_old=4)  # the newest error: likewise
        ancient = [add_log(conn, 800 + day) for day in range(7)]
        year_old = [add_log(conn, 400 + day) for day in range(3)]
        ancient_error = add_error(conn, 900, resolved_days_old=750)
        # A log past the deletion age, named by an archived error that is not: the log stays in
        # the archive as long as its error does.
        named = add_log(conn, 760)
        named_error = add_error(conn, 760, resolved_days_old=500, log_id=named)

    first = retain(warehouse, batch_size=3)
    assert first.success
    meta = run_metadata(first)
    assert meta["sync_errors_archived"] == 2
    assert meta["archived_sync_errors_deleted"] == 1
    assert meta["sync_logs_archived"] == 7 + 3 + 1
    assert (meta["sync_logs_archived_batches"], meta["archived_sync_logs_deleted_batches"]) == (
        4,
        3,
    )
    assert meta["archived_sync_logs_deleted"] == 7
    assert ids(warehouse, archive.LOGS_ARCHIVE) == {*year_old, named}
    assert ids(warehouse, archive.ERRORS_ARCHIVE) == {named_error}
    assert not ids(warehouse, archive.LOGS) & set(ancient)
    assert ancient_error not in ids(warehouse, archive.ERRORS) | ids(
        warehouse, archive.ERRORS_ARCHIVE
    )

    live, archived = (
        rows_by_id(warehouse, archive.LOGS),
        rows_by_id(warehouse, archive.LOGS_ARCHIVE),
    )
    second = retain(warehouse, batch_size=3)
    assert second.success
    assert all(run_metadata(second)[step.name] == 0 for step in archive.STEPS), run_metadata(second)
    assert rows_by_id(warehouse, archive.LOGS) == live
    assert rows_by_id(warehouse, archive.LOGS_ARCHIVE) == archived


def test_a_dry_run_counts_and_moves_nothing(warehouse):
    with psycopg.connect(warehouse) as conn:
        add_log(conn, 1)
        for day in range(12):
            add_log(conn, 400 + day)
        add_error(conn, 500, resolved_days_old=450)
        add_error(conn, 2)
    before = ids(warehouse, archive.LOGS), ids(warehouse, archive.ERRORS)

    result = retain(warehouse, dry_run=True, batch_size=5)
    assert result.success
    meta = run_metadata(result)
    assert (meta["sync_logs_archived"], meta["sync_logs_archived_batches"]) == (12, 3)
    assert meta["sync_errors_archived"] == 1
    assert meta["dry_run"] is True
    assert (ids(warehouse, archive.LOGS), ids(warehouse, archive.ERRORS)) == before
    assert not ids(warehouse, archive.LOGS_ARCHIVE)


def test_hub_retention_run_previews_with_dry_run_then_moves(warehouse, capsys):
    from hub_pipelines import cli

    with psycopg.connect(warehouse) as conn:
        add_log(conn, 1)
        old = {add_log(conn, 400 + day) for day in range(7)}

    assert cli.main(["retention", "run", "--dry-run", "--batch-size", "5"]) == 0
    preview = capsys.readouterr().out
    assert "sync_logs_archived: would take 7 row(s) older than" in preview
    assert "in 2 batch(es) of 5" in preview
    assert not ids(warehouse, archive.LOGS_ARCHIVE)

    assert cli.main(["retention", "run", "--batch-size", "5"]) == 0
    done = capsys.readouterr().out
    assert "sync_logs_archived: batch 2, 2 row(s), 7 so far" in done
    assert "sync_logs_archived: took 7 row(s)" in done
    assert ids(warehouse, archive.LOGS_ARCHIVE) == old

    assert (
        cli.main(["retention", "run", "--archive-after-days", "400", "--delete-after-days", "9"])
        == 2
    )
    assert "delete_after_days (9) must be at least archive_after_days (400)" in (
        capsys.readouterr().err
    )


# --- settings ------------------------------------------------------------------------------------


def test_settings_come_from_the_run_config_then_the_environment_then_the_defaults():
    environ = {"HUB_RETENTION_ARCHIVE_AFTER_DAYS": "90", "HUB_RETENTION_BATCH_SIZE": " 200 "}
    assert archive.resolve_policy({}, {}) == archive.RetentionPolicy(365, 730, 5000)
    assert archive.resolve_policy({}, environ) == archive.RetentionPolicy(90, 730, 200)
    given = {"archive_after_days": 30, "batch_size": None}
    assert archive.resolve_policy(given, environ) == archive.RetentionPolicy(30, 730, 200)
    with pytest.raises(ValueError, match="HUB_RETENTION_BATCH_SIZE must be a whole number"):
        archive.resolve_policy({}, {"HUB_RETENTION_BATCH_SIZE": "5k"})
    with pytest.raises(ValueError, match="delete_after_days .100. must be at least"):
        archive.RetentionPolicy(archive_after_days=365, delete_after_days=100)
    with pytest.raises(ValueError, match="batch_size must be 1 to"):
        archive.RetentionPolicy(batch_size=0)


def test_a_bad_setting_fails_the_run_with_the_reason(warehouse, monkeypatch):
    with psycopg.connect(warehouse) as conn:
        add_log(conn, 1)
        old = add_log(conn, 400)
    monkeypatch.setenv("HUB_RETENTION_DELETE_AFTER_DAYS", "30")
    result = retain(warehouse)
    assert not result.success
    failure = result.failure_data_for_node(OP)
    assert "delete_after_days (30) must be at least archive_after_days (365)" in str(
        failure.user_failure_data.description
    )
    assert old in ids(warehouse, archive.LOGS)


def test_an_archive_missing_a_live_column_stops_the_job_before_moving_anything(
    empty_database_url,
):
    migrations.upgrade(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        add_log(conn, 1)
        old = add_log(conn, 400)
        conn.execute("ALTER TABLE hub.accounting_sync_logs ADD COLUMN region text")
    result = retain(empty_database_url)
    assert not result.success
    message = str(result.failure_data_for_node(OP).user_failure_data.description)
    assert "hub.accounting_sync_logs_archive lacks column(s) region" in message
    assert old in ids(empty_database_url, archive.LOGS)


def test_the_daily_schedule_runs_the_job_at_a_quiet_hour_in_the_schedule_timezone():
    from hub_pipelines.definitions import defs

    job = defs.get_job_def("retention_job")  # bound to the code location's warehouse
    assert [node.name for node in job.nodes] == [OP]
    assert "warehouse" in job.resource_defs
    assert defs.resolve_schedule_def("retention_daily").job_name == retention_job.name
    assert retention_daily.cron_schedule == RETENTION_CRON == "30 3 * * *"
    assert retention_daily.execution_timezone == "Asia/Kolkata"  # HUB_SCHEDULE_TIMEZONE unset
    assert retention_daily.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 5, 3, 30, tzinfo=UTC)
    )
    (request,) = retention_daily.evaluate_tick(context).run_requests
    assert request.run_config == {}  # the defaults, or HUB_RETENTION_* where the run executes


# --- while an import runs ------------------------------------------------------------------------


def test_retention_during_an_import_neither_waits_nor_blocks_nor_loses_a_row(zoho):  # noqa: F811
    """Retention runs (batches of 10) between the first and the last invoice page of a real
    import, while another session holds an old log and an old error it would take. It finishes
    without waiting, skipping the held rows; the import finishes too; every row is in the live
    table or the archive, once. After the locks go, a second run takes what was held."""
    url = zoho.warehouse_url
    zoho.simulator.seed_generated(zoho.org_id, customers=3, invoices=60)
    assert zoho.materialize(customers).success
    with psycopg.connect(url) as conn:
        (config,) = conn.execute("SELECT id FROM hub.accounting_configs").fetchone()
        old_logs = [add_log(conn, 400 + day, config_id=config) for day in range(30)]
        old_errors = [add_error(conn, 450, resolved_days_old=400 + day) for day in range(12)]
        open_error = add_error(conn, 450)
    logs_before, errors_before = ids(url, archive.LOGS), ids(url, archive.ERRORS)
    held_log, held_error = old_logs[-1], old_errors[-1]  # the oldest: each batch's first pick

    locker = psycopg.connect(url)
    outcome: dict = {}

    def retention_in_background() -> None:
        outcome["result"] = retain(url, batch_size=10)
        outcome["metadata"] = run_metadata(outcome["result"])

    retention = threading.Thread(target=retention_in_background)

    def first_page_served(_body) -> None:
        # A session holds an old log and an old resolved error (an operator mid-update).
        locker.execute(
            "SELECT 1 FROM hub.accounting_sync_logs WHERE id = %s FOR UPDATE", (held_log,)
        )
        locker.execute(
            "SELECT 1 FROM hub.accounting_sync_errors WHERE id = %s FOR UPDATE", (held_error,)
        )
        retention.start()

    def last_page_served(_body) -> None:
        retention.join(timeout=120)
        with psycopg.connect(url) as conn:  # the import has one more page to load
            outcome["import_status"] = conn.execute(
                "SELECT status FROM hub.accounting_sync_logs WHERE entity_type = 'invoices' "
                "AND id <> ALL(%s)",
                (list(logs_before),),
            ).fetchall()
        locker.rollback()

    invoice_list = "/books/v3/invoices"
    zoho.simulator.faults.after_page(invoice_list, 1, first_page_served)
    zoho.simulator.faults.after_page(invoice_list, 3, last_page_served)
    try:
        imported = zoho.materialize(invoices, zoho_books=ZohoBooksResource(page_size=20))
    finally:
        locker.close()
        retention.join(timeout=120)

    # Retention finished while the import was mid-walk; both succeeded.
    assert outcome["import_status"] == [("running",)]
    assert outcome["result"].success
    assert imported.success
    assert metadata(imported, "invoices")["records_inserted"] == 60
    # It skipped the held rows rather than waiting for them (they were held until it finished:
    # waiting would have failed it after its lock timeouts), and moved the rest in batches of 10.
    meta = outcome["metadata"]
    assert meta["sync_logs_archived"] == 28  # 30 old, less the held one and the newest success
    assert meta["sync_logs_archived_batches"] == 3
    assert (meta["sync_errors_archived"], meta["sync_errors_archived_batches"]) == (11, 2)
    assert held_log in ids(url, archive.LOGS) and held_error in ids(url, archive.ERRORS)

    # Nothing lost, nothing twice: the rows of before are live or archived, exactly once.
    def accounted(live: str, archived: str, before: set[int]) -> None:
        live_ids, archived_ids = ids(url, live), ids(url, archived)
        assert not live_ids & archived_ids
        assert before <= live_ids | archived_ids

    accounted(archive.LOGS, archive.LOGS_ARCHIVE, logs_before)
    accounted(archive.ERRORS, archive.ERRORS_ARCHIVE, errors_before)
    assert open_error in ids(url, archive.ERRORS)

    # The locks are gone and the import's success is now the newest: a second run takes the
    # held rows and the old success that was the newest during the first.
    again = retain(url, batch_size=10)
    assert again.success
    assert run_metadata(again)["sync_logs_archived"] == 2
    assert run_metadata(again)["sync_errors_archived"] == 1
    assert set(old_logs) <= ids(url, archive.LOGS_ARCHIVE)
    assert set(old_errors) <= ids(url, archive.ERRORS_ARCHIVE)
    assert open_error in ids(url, archive.ERRORS)
