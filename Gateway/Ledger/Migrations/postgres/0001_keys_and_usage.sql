-- Keys (stored as the SHA-256 of their secret, never the secret) and the usage ledger.
-- Times are Unix milliseconds (UTC) in both dialects, so the gateway's SQL stays the same.
CREATE TABLE api_keys (
    id                   text PRIMARY KEY,
    name                 text NOT NULL,
    tenant               text NOT NULL,
    secret_sha256        text NOT NULL UNIQUE,
    secret_prefix        text NOT NULL,
    allowed_models       text NOT NULL,
    requests_per_minute  integer NOT NULL DEFAULT 0,
    tokens_per_minute    integer NOT NULL DEFAULT 0,
    monthly_token_budget bigint NOT NULL DEFAULT 0,
    expires_at_ms        bigint NULL,
    created_at_ms        bigint NOT NULL,
    updated_at_ms        bigint NOT NULL,
    revoked_at_ms        bigint NULL
);

-- One row per request; request_id makes a replayed spill file bill nothing twice.
CREATE TABLE usage_records (
    request_id        text PRIMARY KEY,
    key_id            text NULL,
    key_name          text NOT NULL,
    tenant            text NOT NULL,
    model             text NOT NULL,
    operation         text NOT NULL,
    gateway           text NOT NULL,
    replica           text NULL,
    status            text NOT NULL CHECK (status IN ('ok', 'cancelled', 'failed', 'refused')),
    reason            text NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    ttft_ms           double precision NULL,
    duration_ms       double precision NOT NULL,
    started_at_ms     bigint NOT NULL
);
CREATE INDEX usage_records_started ON usage_records (started_at_ms);
CREATE INDEX usage_records_key_started ON usage_records (key_id, started_at_ms);

-- Tokens per key and UTC month, kept in the same transaction as the rows: the budget check reads one row.
CREATE TABLE key_month_usage (
    key_id text NOT NULL,
    month  text NOT NULL,
    tokens bigint NOT NULL,
    PRIMARY KEY (key_id, month)
);
