"""Loads canonical pages into the warehouse: idempotent and crash-safe.

Each page is one transaction. Every record is fingerprinted (`content_hash`: its mapped columns,
lines and raw payload) and the page's ids are looked up once: a record the warehouse does not hold
is COPYed straight into the canonical table with its lines, one whose fingerprint is unchanged is
skipped before it costs anything more, and only a changed (or revived) one goes through a
temporary staging table and `INSERT … ON CONFLICT … DO UPDATE`, its lines replaced. Then the
page's failed records are recorded and its cursor stored. Killed at any point, a re-run finds
either the whole page or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from itertools import chain

import psycopg
from psycopg.types.json import Jsonb

from hub_pipelines.canonical import (
    Customer,
    Entity,
    Invoice,
    Page,
    RecordFailure,
    storable_json,
    storage_problem,
)
from hub_pipelines.connectors.errors import SyncError
from hub_pipelines.warehouse.encoding import EncodedRecord, RecordEncoder

TABLES: dict[str, tuple[str, type]] = {
    "customers": ("accounting.customers", Customer),
    "invoices": ("accounting.invoices", Invoice),
}
LINES_TABLE = "accounting.invoice_lines"
Record = Customer | Invoice
# Rows the planner must know a table holds for its plans to use the keys (below it, any plan is
# fast enough).
STATISTICS_FLOOR = 1000
# Rows added, while the planner believes the table holds fewer than the floor, that make it worth
# analysing: a page of 1,000 invoices (QuickBooks, Xero) is analysed before its own lines go in.
ANALYZE_AFTER = STATISTICS_FLOOR // 4


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


@dataclass
class _Sorting:
    """A page's records as the loader sorts them while it encodes them."""

    new: list[EncodedRecord] = field(default_factory=list)
    changed: list[EncodedRecord] = field(default_factory=list)
    refused: list[RecordFailure] = field(default_factory=list)
    unchanged: int = 0


def _merge_sql(table: str, stage: str, columns: list[str], key: tuple[str, ...]) -> str:
    """Upsert from the staging table, touching only rows whose content changed (by fingerprint;
    a row written before fingerprints existed has none, so it is rewritten once).

    `deleted_at` is compared too: staging leaves it NULL, so a record that reappears in the
    source is revived.
    """
    compared = [c for c in columns if c not in key] + ["deleted_at"]
    assignments = [f"{c} = EXCLUDED.{c}" for c in compared] + [
        "synced_at = EXCLUDED.synced_at",
        "sync_run_id = EXCLUDED.sync_run_id",
    ]
    return (
        f"INSERT INTO {table} AS t ({', '.join(columns)}, synced_at, sync_run_id) "
        f"SELECT {', '.join(columns)}, now(), %(run_id)s FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(assignments)} "
        "WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash "
        "OR t.deleted_at IS NOT NULL "
        f"RETURNING t.{key[-1]}, (xmax = 0) AS inserted"
    )


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
        self.encoder = RecordEncoder(tenant_id, system, self.record_type)
        # As the COPY sends them (encoding.py): the record's columns and its fingerprint.
        self.columns = ["tenant_id", "system", *self.encoder.record.columns, "content_hash"]
        prefix = ["tenant_id", "system", "invoice_external_id"]
        self.line_columns = [*prefix, *self.encoder.line.columns, "sync_run_id"]
        self.planned_rows: int | None = None  # what the planner believes the table holds
        self.added_since_analyze = 0

    # --- reading ----------------------------------------------------------------------------

    def cursor(self) -> str | None:
        row = self.conn.execute(
            "SELECT cursor FROM hub.sync_state "
            "WHERE tenant_id = %s AND system = %s AND entity = %s",
            (self.tenant_id, self.system, self.entity),
        ).fetchone()
        self.conn.commit()
        return row[0] if row else None

    def versions(
        self, external_ids: list[str], conn: psycopg.Connection | None = None
    ) -> dict[str, datetime | None]:
        """source_updated_at of the live rows among these ids (what the warehouse already has),
        read on `conn` when given (a reader in another thread must not share the loader's)."""
        conn = conn or self.conn
        rows = conn.execute(
            f"SELECT external_id, source_updated_at FROM {self.table} "
            "WHERE tenant_id = %s AND system = %s AND external_id = ANY(%s) AND deleted_at IS NULL",
            (self.tenant_id, self.system, list(external_ids)),
        ).fetchall()
        conn.commit()
        return dict(rows)

    # --- writing ----------------------------------------------------------------------------

    def load_page(self, page: Page) -> LoadCounts:
        """One transaction for the page. A record the warehouse cannot store becomes a record
        error (checked first, with a message naming the field); should the database still refuse
        the page, it is loaded again record by record, so one bad record never stops the rest."""
        records = list({r.external_id: r for r in page.records}.values())  # last one wins
        counts = LoadCounts(fetched=len(page.records) + len(page.failures) + len(page.deleted))
        try:
            with self.conn.transaction():
                refused = self._write(records, counts)
                self._bury(page.deleted, counts)
                self._finish_page(page.failures + refused, page.cursor, counts)
        except (psycopg.DataError, psycopg.IntegrityError):
            counts, refused = LoadCounts(fetched=counts.fetched), []
            with self.conn.transaction():
                for record in records:
                    self._write_alone(record, counts, refused)
                self._bury(page.deleted, counts)
                self._finish_page(page.failures + refused, page.cursor, counts)
        return counts

    def _keep_statistics_current(self) -> None:
        """ANALYZE the tables once this loader has added more than ANALYZE_AFTER rows while the
        planner believes they hold fewer than STATISTICS_FLOOR (a first import into a fresh
        warehouse). Believing the invoices table (nearly) empty, PostgreSQL plans the lines'
        foreign-key check as a scan of the tenant's invoices and keeps that plan for the session:
        a first load of 10,000 invoices took 20 times longer. Once it knows of a thousand rows
        the check is an index lookup whatever the table's size; autovacuum keeps the statistics
        after that.

        Called between a page's records and its lines, in the page's transaction (ANALYZE
        counts the transaction's own rows), so the first page's own lines are checked with the
        right plan: analysed only between pages, a first QuickBooks page of 1,000 invoices
        checked each of its 2,000 lines against every invoice (0.6 s of a 2.4 s import of
        10,000)."""
        if self.planned_rows is None:
            self.planned_rows = self._planned_rows()
        if self.planned_rows >= STATISTICS_FLOOR or self.added_since_analyze <= ANALYZE_AFTER:
            return
        for table in [self.table, LINES_TABLE] if self.entity == "invoices" else [self.table]:
            self.conn.execute(f"ANALYZE {table}")
        self.planned_rows, self.added_since_analyze = self._planned_rows(), 0

    def _planned_rows(self) -> int:
        """The rows the planner believes the table holds (-1: never analysed)."""
        (rows,) = self.conn.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
            (self.table,),
        ).fetchone()
        return rows

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

    def _unstorable_failure(self, record) -> RecordFailure:
        problem = storage_problem(record) or "its raw payload cannot be stored as JSON"
        return _refused(record, f"{self.entity} {record.external_id}: {problem}")

    def _write(self, records: list[Record], counts: LoadCounts) -> list[RecordFailure]:
        """New records COPYed straight in, changed ones merged, unchanged ones skipped (the
        warehouse stored that very content, so it needs no screening either). Returns the
        records refused for a value the warehouse cannot store.

        The records are fingerprinted as the COPY goes: while the server writes one new record,
        the next is encoded, as in a plain COPY. Fingerprinting a page before its COPY left the
        server idle meanwhile, then the loader waiting on it: 15 % on a first load."""
        held = self._held_fingerprints([record.external_id for record in records])
        sorting = _Sorting()
        rows = self._new_rows(records, held, sorting)
        first = next(rows, None)  # no COPY (a round trip) for a page with nothing new
        if first is not None:
            self._copy(self.table, [*self.columns, "sync_run_id"], chain((first,), rows))
            counts.inserted += len(sorting.new)
            self.added_since_analyze += len(sorting.new)
            self._keep_statistics_current()
            self._copy_lines(sorting.new)
        counts.unchanged += sorting.unchanged
        if sorting.changed:
            merged = self._merge(sorting.changed, counts)
            self._replace_lines([e for e in sorting.changed if e.external_id in merged])
        return sorting.refused

    def _new_rows(
        self, records: list[Record], held: dict[str, bytes | None], sorting: _Sorting
    ) -> Iterator[tuple]:
        """Encode each record and sort it into `sorting`, yielding the rows of the new ones."""
        for record in records:
            encoded = self.encoder.encode(record)
            if encoded is None:
                sorting.refused.append(self._unstorable_failure(record))
                continue
            if held.get(encoded.external_id, b"") == encoded.fingerprint:
                sorting.unchanged += 1
                continue
            if not self.encoder.add_lines(encoded) or self._unstorable(encoded):
                sorting.refused.append(self._unstorable_failure(record))
            elif encoded.external_id in held:  # changed, or deleted (None) and back
                sorting.changed.append(encoded)
            else:
                sorting.new.append(encoded)
                yield encoded.row + (self.run_id,)

    def _unstorable(self, encoded: EncodedRecord) -> bool:
        return self.encoder.suspect(encoded) and storage_problem(encoded.record) is not None

    def _held_fingerprints(self, external_ids: list[str]) -> dict[str, bytes | None]:
        """The fingerprints of the rows the warehouse holds among these ids; a deleted row's is
        None (it must be revived, whatever its content)."""
        rows = self.conn.execute(
            f"SELECT external_id, CASE WHEN deleted_at IS NULL THEN content_hash END "
            f"FROM {self.table} "
            "WHERE tenant_id = %s AND system = %s AND external_id = ANY(%s)",
            (self.tenant_id, self.system, external_ids),
        ).fetchall()
        return dict(rows)

    def _write_alone(
        self, record: Record, counts: LoadCounts, failures: list[RecordFailure]
    ) -> None:
        alone = LoadCounts()
        try:
            with self.conn.transaction():  # a savepoint: a refusal undoes this record only
                failures.extend(self._write([record], alone))
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

    def _copy(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _stage(self, name: str, rows: list[EncodedRecord]) -> str:
        self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} (LIKE {self.table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        self.conn.execute(f"DELETE FROM {name}")  # a record-by-record reload stages one at a time
        self._copy(name, self.columns, (r.row for r in rows))
        return name

    def _merge(self, rows: list[EncodedRecord], counts: LoadCounts) -> set[str]:
        """Changed rows, through staging: what the merge returns is what it wrote (a row that
        changed under the same fingerprint since the lookup writes nothing)."""
        stage = self._stage(f"stage_{self.entity}", rows)
        key = ("tenant_id", "system", "external_id")
        returned = self.conn.execute(
            _merge_sql(self.table, stage, self.columns, key), {"run_id": self.run_id}
        ).fetchall()
        inserted = sum(1 for _, was_inserted in returned if was_inserted)
        counts.inserted += inserted
        counts.updated += len(returned) - inserted
        counts.unchanged += len(rows) - len(returned)
        return {external_id for external_id, _ in returned}

    def _copy_lines(self, rows: list[EncodedRecord]) -> None:
        if self.entity == "invoices":
            lines = (line + (self.run_id,) for r in rows for line in r.lines)
            self._copy(LINES_TABLE, self.line_columns, lines)

    def _replace_lines(self, rows: list[EncodedRecord]) -> None:
        """The invoice changed, so its lines are rewritten whole: straight COPY, no merge."""
        if self.entity != "invoices" or not rows:
            return
        self.conn.execute(
            f"DELETE FROM {LINES_TABLE} WHERE tenant_id = %s AND system = %s "
            "AND invoice_external_id = ANY(%s)",
            (self.tenant_id, self.system, [r.external_id for r in rows]),
        )
        self._copy_lines(rows)

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
            # Streamed as given (a listing of a million ids is never held in memory here), so an
            # id given twice is counted once below.
            self.conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS source_ids (external_id text) ON COMMIT DROP"
            )
            with self.conn.cursor().copy("COPY source_ids (external_id) FROM STDIN") as copy:
                for external_id in source_ids:
                    copy.write_row((external_id,))
            self.conn.execute("ANALYZE source_ids")  # its size, for the anti-joins below
            (source_count,) = self.conn.execute(
                "SELECT count(DISTINCT external_id) FROM source_ids"
            ).fetchone()
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
