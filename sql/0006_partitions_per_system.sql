-- Partitions became one dynamic set of tenants per system (the asset key names the system), so a
-- partition key is the tenant slug alone. Rows written under the old "system|tenant" keys are
-- rewritten, so the retry sensor and `hub errors retry` launch valid partitions.
UPDATE hub.accounting_sync_errors SET partition_key = tenant_id
    WHERE partition_key = system || '|' || tenant_id;
UPDATE hub.accounting_sync_logs SET partition_key = tenant_id
    WHERE partition_key = system || '|' || tenant_id;

-- What a retry of a failed run must cover: the import assets that did not materialize (the one
-- that failed and those skipped because of it) and whether the run was a full refresh.
-- {"assets": ["zoho_books/customers", "zoho_books/invoices"], "full_refresh": true,
--  "backfill_id": "…" or null}
ALTER TABLE hub.accounting_sync_errors ADD COLUMN retry_plan jsonb;
