-- Webhook notices landed as files are imported in batches: every notice of a (tenant, system)
-- seen in one landing-sensor tick becomes one incremental run; `batch` names it on each file's row.
ALTER TABLE hub.landed_files ADD COLUMN batch text;
CREATE INDEX landed_files_batch ON hub.landed_files (batch) WHERE batch IS NOT NULL;
