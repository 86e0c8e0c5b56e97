-- Analyst views across systems, refreshed by the Dagster assets of the same names
-- (hub_pipelines/analytics). Void and deleted invoices are left out of sales.

CREATE MATERIALIZED VIEW accounting.gst_sales_summary AS
SELECT
    i.tenant_id,
    i.system,
    -- India's fiscal year runs April to March: FY 2025-26 starts 2025-04-01.
    (extract(year FROM i.issue_date - interval '3 months')::int)::text || '-'
        || lpad(((extract(year FROM i.issue_date - interval '3 months')::int + 1) % 100)::text, 2, '0')
        AS fiscal_year,
    date_trunc('month', i.issue_date)::date AS month,
    coalesce(i.place_of_supply, '--') AS place_of_supply,
    CASE WHEN i.igst <> 0 THEN 'inter_state'
         WHEN i.cgst <> 0 OR i.sgst <> 0 THEN 'intra_state'
         ELSE 'no_gst' END AS supply_type,
    count(*) AS invoices,
    sum(i.taxable_amount) AS taxable_amount,
    sum(i.cgst) AS cgst,
    sum(i.sgst) AS sgst,
    sum(i.igst) AS igst,
    sum(i.cess) AS cess,
    sum(i.tax_total) AS tax_total,
    sum(i.total) AS total
FROM accounting.invoices i
WHERE i.status <> 'void' AND i.deleted_at IS NULL AND i.issue_date IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6;
CREATE UNIQUE INDEX gst_sales_summary_key ON accounting.gst_sales_summary
    (tenant_id, system, month, place_of_supply, supply_type);

-- One row per real-world customer of a tenant across its systems: matched on GSTIN where there
-- is one, otherwise on the normalised name.
CREATE MATERIALIZED VIEW accounting.customer_directory AS
SELECT
    c.tenant_id,
    coalesce(c.gstin, 'name:' || lower(regexp_replace(c.name, '\s+', ' ', 'g'))) AS customer_key,
    min(c.name) AS name,
    max(c.gstin) AS gstin,
    max(c.state_code) AS state_code,
    array_agg(DISTINCT c.system ORDER BY c.system) AS systems,
    count(*) AS source_records,
    sum(coalesce(c.outstanding_balance, 0)) AS outstanding_balance
FROM accounting.customers c
WHERE c.deleted_at IS NULL
GROUP BY 1, 2;
CREATE UNIQUE INDEX customer_directory_key ON accounting.customer_directory (tenant_id, customer_key);
