-- Retention (docs/operations.md, "Retention and archive"): the daily `retention_job` moves sync
-- logs and resolved errors older than a year into these archive tables, in short batches, and
-- deletes archived rows older than two years (both ages configurable).
--
-- The archive tables have the live tables' columns (LIKE copies names, types and NOT NULL; not
-- defaults, checks or foreign keys: an archived row keeps what it said whatever later rules say),
-- plus when the row was archived. A later migration that adds a column to a live table adds it
-- here too: the job refuses to run while an archive lacks a column of its live table.

CREATE TABLE hub.accounting_sync_logs_archive (
    LIKE hub.accounting_sync_logs,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
COMMENT ON TABLE hub.accounting_sync_logs_archive IS
    'Sync logs moved out of hub.accounting_sync_logs by the retention job (same columns, same '
    'ids); deleted from here once older than the deletion age (started_at).';
COMMENT ON COLUMN hub.accounting_sync_logs_archive.archived_at IS
    'When the retention job moved the row here.';

CREATE TABLE hub.accounting_sync_errors_archive (
    LIKE hub.accounting_sync_errors,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
COMMENT ON TABLE hub.accounting_sync_errors_archive IS
    'Resolved errors moved out of hub.accounting_sync_errors by the retention job (same columns, '
    'same ids; sync_log_id names a row of the live or the archived sync logs); deleted from here '
    'once older than the deletion age (resolved_at, or created_at when that is empty).';
COMMENT ON COLUMN hub.accounting_sync_errors_archive.archived_at IS
    'When the retention job moved the row here.';

-- The batches pick the oldest candidates first: an index on each table's age.
CREATE INDEX accounting_sync_logs_finished_age
    ON hub.accounting_sync_logs (started_at) WHERE status <> 'running';
CREATE INDEX accounting_sync_errors_resolved_age
    ON hub.accounting_sync_errors ((coalesce(resolved_at, created_at))) WHERE resolved;
CREATE INDEX accounting_sync_logs_archive_age ON hub.accounting_sync_logs_archive (started_at);
CREATE INDEX accounting_sync_errors_archive_age
    ON hub.accounting_sync_errors_archive ((coalesce(resolved_at, created_at)));

-- "Is there a newer log of the same tenant, system, entity and outcome?": the newest of each
-- stays live whatever its age (freshness and the last-success figures read it).
CREATE INDEX accounting_sync_logs_newest_outcome
    ON hub.accounting_sync_logs
    (tenant_id, system, entity_type, status, (coalesce(completed_at, started_at)), id);

-- An archived log stays while an archived error names it; and the archive is read like the
-- live tables: by tenant and system, newest first.
CREATE INDEX accounting_sync_errors_archive_log ON hub.accounting_sync_errors_archive (sync_log_id);
CREATE INDEX accounting_sync_logs_archive_tenant
    ON hub.accounting_sync_logs_archive (tenant_id, system, started_at DESC);
CREATE INDEX accounting_sync_errors_archive_tenant
    ON hub.accounting_sync_errors_archive (tenant_id, system, created_at DESC);
