-- Files landed in the landing folder (`<system>/<tenant>/`: Tally exports dropped by an office,
-- later webhook notices), one row per distinct content per tenant: a file is imported once
-- whatever its name, and what became of it stays on record after it leaves the folder.
CREATE TABLE hub.landed_files (
    id              bigserial PRIMARY KEY,
    tenant_id       text        NOT NULL,
    system          text        NOT NULL,
    file_name       text        NOT NULL,
    sha256          text        NOT NULL,
    size_bytes      bigint      NOT NULL,
    status          text        NOT NULL DEFAULT 'requested'
        CHECK (status IN ('requested', 'processed', 'failed', 'duplicate')),
    attempts        integer     NOT NULL DEFAULT 1,  -- a failed file dropped again is tried again
    dagster_run_id  text,
    error_message   text,
    landed_at       timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (tenant_id, system, sha256)
);
COMMENT ON TABLE hub.landed_files IS
    'Files dropped into the landing folder and what became of them (processed/ or failed/).';

-- A file that could not be imported is an error of its own (no record, no run to retry).
ALTER TABLE hub.accounting_sync_errors DROP CONSTRAINT IF EXISTS accounting_sync_errors_scope_check;
ALTER TABLE hub.accounting_sync_errors
    ADD CONSTRAINT accounting_sync_errors_scope_check CHECK (scope IN ('record', 'run', 'file'));
