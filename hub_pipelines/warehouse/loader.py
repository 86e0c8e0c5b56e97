"""Loads canonical pages into the warehouse: idempotent and crash-safe.

Each page is one transaction: COPY into a temporary staging table, merge into the canonical table
with `INSERT … ON CONFLICT … DO UPDATE … WHERE` the row changed (so an unchanged record writes
nothing), replace the lines of invoices that changed, record the page's failed records, and store
the page's cursor. Killed at any point, a re-run finds either the whole page or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from hub_pipelines.canonical import (
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    Page,
    RecordFailure,
    column_names,
    storable_json,
    storage_problem,
)
from hub_pipelines.connectors.errors import SyncError

TABLES: dict[str, tuple[str, type]] = {
    "customers": ("accounting.customers", Customer),
    "invoices": ("accounting.invoices", Invoice),
}
LINES_TABLE = "accounting.invoice_lines"


@dataclass
class LoadCounts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    deleted: int = 0

    def add(self, other: LoadCounts) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def _copy_value(value):
    return Jsonb(value) if isinstance(value, dict | list) else value


def _merge_sql(table: str, stage: str, columns: list[str], key: tuple[str, ...]) -> str:
    """Upsert from the staging table, touching only rows whose content changed.

    `deleted_at` is compared too: staging leaves it NULL, so a record that reappears in the
    source is revived.
    """
    compared = [c for c in columns if c not in key] + ["deleted_at"]
    assignments = [f"{c} = EXCLUDED.{c}" for c in compared] + [
        "synced_at = EXCLUDED.synced_at",
        "sync_run_id = EXCLUDED.sync_run_id",
    ]
    old = ", ".join(f"t.{c}" for c in compared)
    new = ", ".join(f"EXCLUDED.{c}" for c in compared)
    return (
        f"INSERT INTO {table} AS t ({', '.join(columns)}, synced_at, sync_run_id) "
        f"SELECT {', '.join(columns)}, now(), %(run_id)s FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(assignments)} "
        f"WHERE ({old}) IS DISTINCT FROM ({new}) "
        f"RETURNING t.{key[-1]}, (xmax = 0) AS inserted"
    )


def _values(record, columns: list[str]) -> tuple:
    return tuple(getattr(record, column) for column in columns)


class PartitionLoader:
    """Writes one (tenant, system, entity) of one run. Owns its connection (temp tables live on
    it), so use one loader per run and entity."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        tenant_id: str,
        system: str,
        entity: Entity,
        run_id: str,
        partition_key: str,
        sync_log_id: int | None = None,
    ) -> None:
        self.conn = conn
        self.tenant_id, self.system, self.entity = tenant_id, system, entity
        self.run_id, self.partition_key, self.sync_log_id = run_id, partition_key, sync_log_id
        self.table, self.record_type = TABLES[entity]
        self.columns = ["tenant_id", "system", *column_names(self.record_type)]
        self.line_columns = [
            "tenant_id",
            "system",
            "invoice_external_id",
            *column_names(InvoiceLine),
        ]

    # --- reading ----------------------------------------------------------------------------

    def cursor(self) -> str | None:
        row = self.conn.execute(
            "SELECT cursor FROM hub.sync_state "
            "WHERE tenant_id = %s AND system = %s AND entity = %s",
            (self.tenant_id, self.system, self.entity),
        ).fetchone()
        self.conn.commit()
        return row[0] if row else None

    def versions(self, external_ids: list[str]) -> dict[str, datetime | None]:
        """source_updated_at of the live rows among these ids (what the warehouse already has)."""
        rows = self.conn.execute(
            f"SELECT external_id, source_updated_at FROM {self.table} "
            "WHERE tenant_id = %s AND system = %s AND external_id = ANY(%s) AND deleted_at IS NULL",
            (self.tenant_id, self.system, list(external_ids)),
        ).fetchall()
        self.conn.commit()
        return dict(rows)

    # --- writing ----------------------------------------------------------------------------

    def load_page(self, page: Page) -> LoadCounts:
        """One transaction for the page. A record the warehouse cannot store becomes a record
        error (checked first, with a message naming the field); should the database still refuse
        the page, it is loaded again record by record, so one bad record never stops the rest."""
        records, failures = self._storable(page)
        counts = LoadCounts(fetched=len(page.records) + len(page.failures) + len(page.deleted))
        try:
            with self.conn.transaction():
                self._write(records, counts)
                self._bury(page.deleted, counts)
                self._finish_page(failures, page.cursor, counts)
        except (psycopg.DataError, psycopg.IntegrityError):
            counts = LoadCounts(fetched=counts.fetched)
            with self.conn.transaction():
                for record in records:
                    self._write_alone(record, counts, failures)
                self._bury(page.deleted, counts)
                self._finish_page(failures, page.cursor, counts)
        return counts

    def _bury(self, external_ids: list[str], counts: LoadCounts) -> None:
        """Mark the source's tombstones deleted (once: a repeated tombstone changes nothing)."""
        if not external_ids:
            return
        counts.deleted += self.conn.execute(
            f"UPDATE {self.table} SET deleted_at = now(), sync_run_id = %s "
            "WHERE tenant_id = %s AND system = %s AND external_id = ANY(%s) "
            "AND deleted_at IS NULL",
            (self.run_id, self.tenant_id, self.system, list(set(external_ids))),
        ).rowcount

    def _storable(self, page: Page) -> tuple[list, list[RecordFailure]]:
        records, failures = [], list(page.failures)
        for record in {r.external_id: r for r in page.records}.values():  # last one wins
            problem = storage_problem(record)
            if problem is None:
                records.append(record)
            else:
                failures.append(_refused(record, f"{self.entity} {record.external_id}: {problem}"))
        return records, failures

    def _write(self, records: list, counts: LoadCounts) -> None:
        changed = self._merge(records, counts)
        if self.entity == "invoices" and changed:
            self._replace_lines([r for r in records if r.external_id in changed])

    def _write_alone(self, record, counts: LoadCounts, failures: list[RecordFailure]) -> None:
        alone = LoadCounts()
        try:
            with self.conn.transaction():  # a savepoint: a refusal undoes this record only
                self._write([record], alone)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            reason = exc.diag.message_primary or str(exc)
            message = f"{self.entity} {record.external_id}: the warehouse refused it: {reason}"
            failures.append(_refused(record, message))
            return
        counts.add(alone)

    def _finish_page(self, failures: list[RecordFailure], cursor, counts: LoadCounts) -> None:
        self.record_failures(failures)
        counts.failed = len(failures)
        if cursor is not None:
            self._save_cursor(cursor)

    def _stage(self, name: str, table: str, columns: list[str], rows: Iterable[tuple]) -> str:
        self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        self.conn.execute(f"DELETE FROM {name}")  # a record-by-record reload stages one at a time
        with self.conn.cursor().copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copy_value(v) for v in row])
        return name

    def _merge(self, records: list, counts: LoadCounts) -> set[str]:
        fields_ = self.columns[2:]
        rows = ((self.tenant_id, self.system, *_values(r, fields_)) for r in records)
        stage = self._stage(f"stage_{self.entity}", self.table, self.columns, rows)
        key = ("tenant_id", "system", "external_id")
        returned = self.conn.execute(
            _merge_sql(self.table, stage, self.columns, key), {"run_id": self.run_id}
        ).fetchall()
        counts.inserted = sum(1 for _, inserted in returned if inserted)
        counts.updated = len(returned) - counts.inserted
        counts.unchanged = len(records) - len(returned)
        return {external_id for external_id, _ in returned}

    def _replace_lines(self, invoices: list[Invoice]) -> None:
        ids = [invoice.external_id for invoice in invoices]
        self.conn.execute(
            f"DELETE FROM {LINES_TABLE} WHERE tenant_id = %s AND system = %s "
            "AND invoice_external_id = ANY(%s)",
            (self.tenant_id, self.system, ids),
        )
        # The invoice changed, so its lines are rewritten whole: straight COPY, no merge needed.
        columns = [*self.line_columns, "sync_run_id"]
        with self.conn.cursor().copy(
            f"COPY {LINES_TABLE} ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for invoice in invoices:
                for line in invoice.lines:
                    values = _values(line, self.line_columns[3:])
                    copy.write_row(
                        [self.tenant_id, self.system, invoice.external_id]
                        + [_copy_value(v) for v in values]
                        + [self.run_id]
                    )

    def _save_cursor(self, cursor: str) -> None:
        self.conn.execute(
            "INSERT INTO hub.sync_state (tenant_id, system, entity, cursor) "
            "VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, system, entity) DO UPDATE "
            "SET cursor = EXCLUDED.cursor, updated_at = now()",
            (self.tenant_id, self.system, self.entity, cursor),
        )

    def record_failures(self, failures: list[RecordFailure]) -> None:
        """One open error row per failed record; a re-run that meets the same failure again
        refreshes that row instead of adding a duplicate."""
        for failure in failures:
            error = SyncError(
                failure.category, failure.message, suggested_fix=failure.suggested_fix
            )
            params = {
                "tenant": self.tenant_id,
                "system": self.system,
                "entity": self.entity,
                "entity_id": failure.entity_id,
                "category": str(error.category),
                "message": error.message,
                "severity": error.severity,
                "fix": error.suggested_fix,
                "raw": Jsonb(storable_json(failure.raw)),
                "run_id": self.run_id,
                "partition": self.partition_key,
                "log_id": self.sync_log_id,
            }
            self.conn.execute(_RECORD_FAILURE_SQL, params)

    def soft_delete_missing(self, source_ids: Iterable[str], max_fraction: float = 0.5) -> int:
        """After a full refresh: mark rows the source no longer has. Refuses an empty or
        suspiciously small source answer (wrong company, stub response) instead of deleting."""
        with self.conn.transaction():
            self.conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS source_ids (external_id text PRIMARY KEY) "
                "ON COMMIT DROP"
            )
            with self.conn.cursor().copy("COPY source_ids (external_id) FROM STDIN") as copy:
                for external_id in set(source_ids):
                    copy.write_row((external_id,))
            (source_count,) = self.conn.execute("SELECT count(*) FROM source_ids").fetchone()
            (live,) = self.conn.execute(
                f"SELECT count(*) FROM {self.table} "
                "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
                (self.tenant_id, self.system),
            ).fetchone()
            missing = self._count_missing()
            if live and (source_count == 0 or missing > live * max_fraction):
                raise SyncError(
                    "SOURCE_DATA",
                    f"the source lists {source_count} {self.entity} but the warehouse has {live}; "
                    f"refusing to mark {missing} as deleted",
                    suggested_fix="Check that the connection points at the right company / "
                    "organisation. If the deletions are real, run a full refresh with "
                    "max_delete_fraction raised.",
                )
            return self.conn.execute(
                f"UPDATE {self.table} t SET deleted_at = now(), sync_run_id = %s "
                "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM source_ids s WHERE s.external_id = t.external_id)",
                (self.run_id, self.tenant_id, self.system),
            ).rowcount

    def _count_missing(self) -> int:
        (missing,) = self.conn.execute(
            f"SELECT count(*) FROM {self.table} t WHERE tenant_id = %s AND system = %s "
            "AND deleted_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM source_ids s WHERE s.external_id = t.external_id)",
            (self.tenant_id, self.system),
        ).fetchone()
        return missing


def _refused(record, message: str) -> RecordFailure:
    return RecordFailure(
        record.external_id,
        "MAPPING",
        message,
        record.raw,
        suggested_fix="Correct the field named in the message in the source system; the raw "
        "payload (`hub errors show ID`) has every character PostgreSQL cannot store replaced "
        "by U+FFFD.",
    )


_RECORD_FAILURE_SQL = """
WITH log AS (SELECT config_id FROM hub.accounting_sync_logs WHERE id = %(log_id)s),
refreshed AS (
    UPDATE hub.accounting_sync_errors
    SET updated_at = now(), dagster_run_id = %(run_id)s, raw_payload = %(raw)s,
        sync_log_id = %(log_id)s, config_id = (SELECT config_id FROM log)
    WHERE tenant_id = %(tenant)s AND system = %(system)s AND entity_type = %(entity)s
      AND entity_id IS NOT DISTINCT FROM %(entity_id)s AND error_message = %(message)s
      AND scope = 'record' AND NOT resolved
    RETURNING id
)
INSERT INTO hub.accounting_sync_errors
    (tenant_id, system, entity_type, entity_id, category, error_message, severity, retryable,
     suggested_fix, raw_payload, dagster_run_id, partition_key, sync_log_id, config_id)
SELECT %(tenant)s, %(system)s, %(entity)s, %(entity_id)s, %(category)s, %(message)s,
       %(severity)s, false, %(fix)s, %(raw)s, %(run_id)s, %(partition)s, %(log_id)s,
       (SELECT config_id FROM log)
WHERE NOT EXISTS (SELECT 1 FROM refreshed)
"""
