-- Tell run-level failures (one per failed run and entity, what the retry sensor works from) apart
-- from record-level failures (one per bad source record). Before this, a record without an id
-- and a run failure both had entity_id NULL.
ALTER TABLE hub.accounting_sync_errors
    ADD COLUMN scope text NOT NULL DEFAULT 'record' CHECK (scope IN ('record', 'run'));
UPDATE hub.accounting_sync_errors SET scope = 'run' WHERE entity_id IS NULL AND raw_payload IS NULL;
CREATE INDEX accounting_sync_errors_run ON hub.accounting_sync_errors (dagster_run_id) WHERE scope = 'run';
