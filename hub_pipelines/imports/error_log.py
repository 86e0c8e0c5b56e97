"""Reading and acting on `hub.accounting_sync_errors` (behind `hub errors …`)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from hub_pipelines.warehouse.db import connect

LIST_COLUMNS = (
    "id, created_at, scope, tenant_id, system, entity_type, entity_id, category, severity, "
    "retryable, "
    "retry_count, next_retry_at, resolved, left(error_message, 120) AS message"
)


class ErrorNotFound(LookupError):
    pass


def list_errors(
    *,
    tenant: str | None = None,
    system: str | None = None,
    include_resolved: bool = False,
    limit: int = 50,
) -> list[dict[str, Any]]:
    conditions, params = [], []
    if not include_resolved:
        conditions.append("NOT resolved")
    for column, value in (("tenant_id", tenant), ("system", system)):
        if value:
            conditions.append(f"{column} = %s")
            params.append(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with connect(row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT {LIST_COLUMNS} FROM hub.accounting_sync_errors {where} "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            (*params, limit),
        ).fetchall()


def get_error(error_id: int) -> dict[str, Any]:
    with connect(row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT * FROM hub.accounting_sync_errors WHERE id = %s", (error_id,)
        ).fetchone()
    if row is None:
        raise ErrorNotFound(f"no error with id {error_id}; see `hub errors list --all`")
    return row


def resolve_error(error_id: int, note: str) -> None:
    _update(error_id, "resolved = true, resolved_at = now(), resolution_note = %s", (note,))


def schedule_retry(error_id: int) -> None:
    """Make the retry sensor re-run this error's partition (and entity) at its next tick."""
    row = get_error(error_id)
    if not row["partition_key"]:
        raise ErrorNotFound(f"error {error_id} has no partition to re-run")
    _update(
        error_id,
        "retryable = true, resolved = false, resolved_at = NULL, next_retry_at = now(), "
        "max_retries = greatest(max_retries, retry_count + 1)",
        (),
    )


def _update(error_id: int, assignment: str, params: tuple) -> None:
    with connect() as conn:
        updated = conn.execute(
            f"UPDATE hub.accounting_sync_errors SET {assignment}, updated_at = now() WHERE id = %s",
            (*params, error_id),
        ).rowcount
    if not updated:
        raise ErrorNotFound(f"no error with id {error_id}; see `hub errors list --all`")
