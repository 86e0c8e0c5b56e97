-- Invoice amounts as the sources really state them, and invoices awaiting approval (issue 8).
--
-- 1. Taxes that are not GST (VAT, US sales tax) are kept, never refused: `other_tax` on invoices
--    and lines, so that tax_total = cgst + sgst + igst + cess + other_tax.
-- 2. `adjustment` on invoices: what the total holds besides the taxable value, the tax and the
--    round-off (a free adjustment, a charge that is not taxed, a discount after tax), so that
--    total = taxable_amount + tax_total + round_off + adjustment. `round_off` is only the
--    organisation's rounding of the total from now on.
-- 3. Invoice statuses of organisations that use approvals: `pending_approval`, `approved` and
--    `rejected`. Like `draft`, they are not issued invoices.
--
-- Rows loaded before this migration keep their amounts (round_off then held every adjustment);
-- a full refresh maps them again.

ALTER TABLE accounting.invoices
    ADD COLUMN other_tax  numeric(18,2) NOT NULL DEFAULT 0,
    ADD COLUMN adjustment numeric(18,2) NOT NULL DEFAULT 0;
ALTER TABLE accounting.invoice_lines
    ADD COLUMN other_tax  numeric(18,2) NOT NULL DEFAULT 0;

-- The column constraint of 0002 has PostgreSQL's default name.
ALTER TABLE accounting.invoices DROP CONSTRAINT invoices_status_check;
ALTER TABLE accounting.invoices ADD CONSTRAINT invoices_status_check
    CHECK (status IN ('draft', 'pending_approval', 'approved', 'rejected',
                      'open', 'partially_paid', 'paid', 'void'));

-- The GST summary gains the non-GST tax (its tax_total already includes it) and counts issued
-- invoices only (not drafts, not those awaiting approval, not voids). Same shape as 0005
-- otherwise; dropped and created again in this transaction (no CASCADE: a view an analyst built
-- on it makes the migration fail rather than vanish).
DROP MATERIALIZED VIEW accounting.gst_sales_summary;
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
    sum(i.other_tax) AS other_tax,
    sum(i.tax_total) AS tax_total,
    sum(i.total) AS total
FROM accounting.invoices i
-- Issued invoices only: a draft or an invoice awaiting approval is not a supply yet (GSTR-1).
WHERE i.status IN ('open', 'partially_paid', 'paid')
  AND i.deleted_at IS NULL AND i.issue_date IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7;
CREATE UNIQUE INDEX gst_sales_summary_key ON accounting.gst_sales_summary
    (tenant_id, system, month, place_of_supply, supply_type, currency);
