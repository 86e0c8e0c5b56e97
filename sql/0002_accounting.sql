-- Analyst-facing schema `accounting`: one canonical, GST-aware shape for every source system.
-- Money numeric(18,2), quantities numeric(18,4), rates numeric(9,4); never floats.
-- Every row keeps the source record (`raw`) and its bookkeeping columns.

CREATE SCHEMA IF NOT EXISTS accounting;

CREATE TABLE accounting.customers (
    tenant_id           text          NOT NULL,
    system              text          NOT NULL,
    external_id         text          NOT NULL,
    name                text          NOT NULL,
    display_name        text,
    email               text,
    phone               text,
    gstin               text,
    pan                 text,
    gst_treatment       text          NOT NULL DEFAULT 'unknown'
        CHECK (gst_treatment IN ('registered_regular', 'registered_composition', 'unregistered_business',
                                 'consumer', 'overseas', 'sez', 'deemed_export', 'unknown')),
    state_code          char(2),
    place_of_supply     char(2),
    billing_line1       text,
    billing_line2       text,
    billing_city        text,
    billing_state       text,
    billing_postal_code text,
    billing_country     text,
    currency            char(3),
    is_active           boolean       NOT NULL DEFAULT true,
    opening_balance     numeric(18,2),
    outstanding_balance numeric(18,2),
    raw                 jsonb         NOT NULL,
    source_updated_at   timestamptz,
    synced_at           timestamptz   NOT NULL DEFAULT now(),
    sync_run_id         text,
    deleted_at          timestamptz,
    PRIMARY KEY (tenant_id, system, external_id)
);
CREATE INDEX customers_gstin ON accounting.customers (gstin) WHERE gstin IS NOT NULL;

CREATE TABLE accounting.invoices (
    tenant_id             text          NOT NULL,
    system                text          NOT NULL,
    external_id           text          NOT NULL,
    invoice_number        text,
    customer_external_id  text,
    customer_name         text,
    issue_date            date,
    due_date              date,
    status                text          NOT NULL
        CHECK (status IN ('draft', 'open', 'partially_paid', 'paid', 'void')),
    currency              char(3),
    exchange_rate         numeric(18,6),
    subtotal              numeric(18,2) NOT NULL DEFAULT 0,
    discount_total        numeric(18,2) NOT NULL DEFAULT 0,
    taxable_amount        numeric(18,2) NOT NULL DEFAULT 0,
    cgst                  numeric(18,2) NOT NULL DEFAULT 0,
    sgst                  numeric(18,2) NOT NULL DEFAULT 0,
    igst                  numeric(18,2) NOT NULL DEFAULT 0,
    cess                  numeric(18,2) NOT NULL DEFAULT 0,
    tax_total             numeric(18,2) NOT NULL DEFAULT 0,
    round_off             numeric(18,2) NOT NULL DEFAULT 0,
    total                 numeric(18,2) NOT NULL DEFAULT 0,
    balance_due           numeric(18,2) NOT NULL DEFAULT 0,
    place_of_supply       char(2),
    gst_treatment         text,
    irn                   text,
    raw                   jsonb         NOT NULL,
    source_updated_at     timestamptz,
    synced_at             timestamptz   NOT NULL DEFAULT now(),
    sync_run_id           text,
    deleted_at            timestamptz,
    PRIMARY KEY (tenant_id, system, external_id)
);
CREATE INDEX invoices_customer ON accounting.invoices (tenant_id, system, customer_external_id);
CREATE INDEX invoices_issue_date ON accounting.invoices (issue_date);

CREATE TABLE accounting.invoice_lines (
    tenant_id             text          NOT NULL,
    system                text          NOT NULL,
    invoice_external_id   text          NOT NULL,
    line_number           integer       NOT NULL,
    external_id           text,
    item_name             text,
    description           text,
    hsn_sac               text,
    quantity              numeric(18,4),
    unit                  text,
    rate                  numeric(18,4),
    discount              numeric(18,2) NOT NULL DEFAULT 0,
    taxable_amount        numeric(18,2) NOT NULL DEFAULT 0,
    tax_rate              numeric(9,4),
    cgst                  numeric(18,2) NOT NULL DEFAULT 0,
    sgst                  numeric(18,2) NOT NULL DEFAULT 0,
    igst                  numeric(18,2) NOT NULL DEFAULT 0,
    cess                  numeric(18,2) NOT NULL DEFAULT 0,
    line_total            numeric(18,2) NOT NULL DEFAULT 0,
    raw                   jsonb         NOT NULL,
    synced_at             timestamptz   NOT NULL DEFAULT now(),
    sync_run_id           text,
    PRIMARY KEY (tenant_id, system, invoice_external_id, line_number),
    FOREIGN KEY (tenant_id, system, invoice_external_id)
        REFERENCES accounting.invoices (tenant_id, system, external_id) ON DELETE CASCADE
);
