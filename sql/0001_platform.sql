-- Platform schema `hub`: tenant configs (credentials encrypted), sync audit trail, cursors.
-- Columns follow the Node deployment guide's tables, plus the Dagster run id and partition key.

CREATE SCHEMA IF NOT EXISTS hub;

CREATE TABLE hub.accounting_configs (
    id                      bigserial PRIMARY KEY,
    tenant_id               text        NOT NULL CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    system                  text        NOT NULL
        CHECK (system IN ('tally', 'busy', 'zoho_books', 'quickbooks', 'xero')),
    is_enabled              boolean     NOT NULL DEFAULT true,
    -- AES-256-GCM envelope (JSON text: key id, nonce, ciphertext); never plaintext.
    connection_config       text        NOT NULL,
    sync_config             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    last_sync_at            timestamptz,
    last_sync_status        text,
    consecutive_failures    integer     NOT NULL DEFAULT 0,
    last_connection_test    timestamptz,
    last_connection_status  text,
    metadata                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);
-- One live config per (tenant, system); soft-deleted rows stay for the audit trail.
CREATE UNIQUE INDEX accounting_configs_live_key
    ON hub.accounting_configs (tenant_id, system) WHERE deleted_at IS NULL;
CREATE INDEX accounting_configs_enabled
    ON hub.accounting_configs (system, tenant_id) WHERE is_enabled AND deleted_at IS NULL;

CREATE TABLE hub.accounting_sync_logs (
    id                  bigserial PRIMARY KEY,
    config_id           bigint REFERENCES hub.accounting_configs (id),
    tenant_id           text        NOT NULL,
    system              text        NOT NULL,
    entity_type         text        NOT NULL,
    sync_type           text        NOT NULL DEFAULT 'incremental'
        CHECK (sync_type IN ('incremental', 'full', 'webhook', 'retry')),
    direction           text        NOT NULL DEFAULT 'import',
    status              text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    duration_ms         integer,
    records_fetched     integer     NOT NULL DEFAULT 0,
    records_inserted    integer     NOT NULL DEFAULT 0,
    records_updated     integer     NOT NULL DEFAULT 0,
    records_unchanged   integer     NOT NULL DEFAULT 0,
    records_deleted     integer     NOT NULL DEFAULT 0,
    records_failed      integer     NOT NULL DEFAULT 0,
    api_calls           integer     NOT NULL DEFAULT 0,
    cursor_before       text,
    cursor_after        text,
    error_message       text,
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    dagster_run_id      text,
    partition_key       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dagster_run_id, entity_type)
);
CREATE INDEX accounting_sync_logs_tenant ON hub.accounting_sync_logs (tenant_id, system, started_at DESC);
CREATE INDEX accounting_sync_logs_status ON hub.accounting_sync_logs (status, started_at DESC);

CREATE TABLE hub.accounting_sync_errors (
    id                  bigserial PRIMARY KEY,
    sync_log_id         bigint REFERENCES hub.accounting_sync_logs (id),
    config_id           bigint REFERENCES hub.accounting_configs (id),
    tenant_id           text        NOT NULL,
    system              text        NOT NULL,
    entity_type         text,
    entity_id           text,
    category            text        NOT NULL
        CHECK (category IN ('AUTH', 'RATE_LIMIT', 'NETWORK', 'SERVER', 'CONFIG', 'SOURCE_DATA', 'MAPPING')),
    error_code          text,
    error_message       text        NOT NULL,
    severity            text        NOT NULL DEFAULT 'error'
        CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    retryable           boolean     NOT NULL DEFAULT false,
    retry_count         integer     NOT NULL DEFAULT 0,
    max_retries         integer     NOT NULL DEFAULT 5,
    next_retry_at       timestamptz,
    suggested_fix       text,
    raw_payload         jsonb,
    stack_trace         text,
    resolved            boolean     NOT NULL DEFAULT false,
    resolved_at         timestamptz,
    resolution_note     text,
    dagster_run_id      text,
    partition_key       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounting_sync_errors_tenant ON hub.accounting_sync_errors (tenant_id, system, created_at DESC);
CREATE INDEX accounting_sync_errors_log ON hub.accounting_sync_errors (sync_log_id);
CREATE INDEX accounting_sync_errors_category ON hub.accounting_sync_errors (category, severity);
-- The retry sensor's work list: open, retryable errors whose time has come.
CREATE INDEX accounting_sync_errors_retry_due
    ON hub.accounting_sync_errors (next_retry_at)
    WHERE retryable AND NOT resolved;

CREATE TABLE hub.sync_state (
    tenant_id   text        NOT NULL,
    system      text        NOT NULL,
    entity      text        NOT NULL,
    cursor      text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, system, entity)
);
