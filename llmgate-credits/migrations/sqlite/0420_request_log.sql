-- The request log: one row per request (see docs/request-log.md). Rows are appended in
-- batches by one writer task per replica and deleted by age; nothing updates them.
CREATE TABLE request_log (
    id                 INTEGER PRIMARY KEY,
    request_id         TEXT     NOT NULL,
    -- Unix milliseconds when the request arrived.
    created_at         INTEGER   NOT NULL,
    user_id            TEXT     NOT NULL,
    key_id             TEXT,
    team_id            TEXT,
    endpoint           TEXT     NOT NULL,
    requested_model    TEXT,
    model              TEXT,
    provider           TEXT,
    -- JSON: [{provider, model, status, error?, latency_ms}], one per upstream call.
    attempts           TEXT     NOT NULL,
    status             INTEGER  NOT NULL,
    error_code         TEXT,
    latency_ms         INTEGER   NOT NULL,
    ttfb_ms            INTEGER,
    prompt_tokens      INTEGER   NOT NULL,
    cache_read_tokens  INTEGER   NOT NULL,
    cache_write_tokens INTEGER   NOT NULL,
    completion_tokens  INTEGER   NOT NULL,
    reasoning_tokens   INTEGER   NOT NULL,
    cost_micros        INTEGER   NOT NULL,
    -- JSON: the cost of each token class.
    cost_breakdown     TEXT,
    key_source         TEXT,
    stream             INTEGER  NOT NULL,
    -- Only with logging.store_bodies: the request body and the answer's text, bounded.
    prompt             TEXT,
    answer             TEXT
) STRICT;

-- Listings are newest first (by id) under one equality filter at most; each filter has an
-- index that ends in id, so a page is an index range scan that stops at the page size.
CREATE INDEX request_log_by_user ON request_log (user_id, id);
CREATE INDEX request_log_by_key ON request_log (key_id, id);
CREATE INDEX request_log_by_model ON request_log ((COALESCE(model, requested_model)), id);
-- Time ranges and the retention pruning.
CREATE INDEX request_log_by_time ON request_log (created_at);
