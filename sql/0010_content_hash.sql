-- A fingerprint of each synced record as the hub wrote it (its mapped columns, its lines and its
-- raw payload), so a re-read record that has not changed is recognised before it is staged and
-- writes nothing (hub_pipelines/warehouse/loader.py). NULL on rows written before this migration:
-- the next time such a record is read it is compared column by column once and gets its hash.
ALTER TABLE accounting.customers ADD COLUMN content_hash bytea;
ALTER TABLE accounting.invoices ADD COLUMN content_hash bytea;
