-- Money in the analyst views is never summed across currencies (issue 6, 2.10).
--
-- Every amount in accounting.invoices and accounting.customers is in the record's own `currency`.
-- The views of 0004 added them up as if they were all rupees. They now keep each currency apart:
-- gst_sales_summary has one row per currency (the invoices' document currency) and
-- customer_directory keeps a customer's outstanding balance per currency.
--
-- No conversion into a base currency: the organisations' base currency is not stored anywhere
-- yet, and the canonical contract does not yet fix what `exchange_rate` means for every source
-- (Zoho Books: units of the organisation's base currency per unit of the document currency;
-- other sources quote their rates their own way), so an "_inr" column would be a guess.
-- A currency the source did not state shows as '--'.
--
-- The views are dropped and created again in this migration's transaction; a view that an
-- analyst built on top of them makes the migration fail (no CASCADE) rather than vanish.

DROP MATERIALIZED VIEW accounting.gst_sales_summary;
DROP MATERIALIZED VIEW accounting.customer_directory;

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
    -- The document currency: every amount of the row is in it.
    coalesce(nullif(upper(btrim(i.currency)), ''), '--') AS currency,
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
GROUP BY 1, 2, 3, 4, 5, 6, 7;
-- REFRESH MATERIALIZED VIEW CONCURRENTLY needs a unique index on plain columns (fiscal_year
-- follows from month).
CREATE UNIQUE INDEX gst_sales_summary_key ON accounting.gst_sales_summary
    (tenant_id, system, month, place_of_supply, supply_type, currency);

-- One row per real-world customer of a tenant across its systems: matched on GSTIN where there
-- is one, otherwise on the normalised name. Outstanding balances are summed per currency, into a
-- JSON object keyed by currency code: {"INR": 1200.50, "USD": 310.00}.
CREATE MATERIALIZED VIEW accounting.customer_directory AS
WITH records AS (
    SELECT
        c.*,
        coalesce(c.gstin, 'name:' || lower(regexp_replace(c.name, '\s+', ' ', 'g'))) AS customer_key,
        coalesce(nullif(upper(btrim(c.currency)), ''), '--') AS currency_code
    FROM accounting.customers c
    WHERE c.deleted_at IS NULL
),
balances AS (
    SELECT tenant_id, customer_key, jsonb_object_agg(currency_code, outstanding) AS by_currency
    FROM (
        SELECT tenant_id, customer_key, currency_code,
               sum(coalesce(outstanding_balance, 0)) AS outstanding
        FROM records
        GROUP BY 1, 2, 3
    ) per_currency
    GROUP BY 1, 2
)
SELECT
    r.tenant_id,
    r.customer_key,
    min(r.name) AS name,
    max(r.gstin) AS gstin,
    max(r.state_code) AS state_code,
    array_agg(DISTINCT r.system ORDER BY r.system) AS systems,
    count(*) AS source_records,
    b.by_currency AS outstanding_balance_by_currency
FROM records r
JOIN balances b USING (tenant_id, customer_key)
GROUP BY r.tenant_id, r.customer_key, b.by_currency;
CREATE UNIQUE INDEX customer_directory_key ON accounting.customer_directory (tenant_id, customer_key);
