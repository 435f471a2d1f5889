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

-- Listings run newest first by (created_at, id) under at most a few equality filters and an
-- optional time range; each filter has an index that ends in (created_at, id), so a page is
-- one backward index range scan that stops at the page size, whatever the time range.
CREATE INDEX request_log_by_time ON request_log (created_at, id);
CREATE INDEX request_log_by_user ON request_log (user_id, created_at, id);
CREATE INDEX request_log_by_key ON request_log (key_id, created_at, id);
CREATE INDEX request_log_by_model ON request_log ((COALESCE(model, requested_model)), created_at, id);
-- A user's failures, which are rare among many successes.
CREATE INDEX request_log_user_errors ON request_log (user_id, created_at, id)
    WHERE status >= 400 OR error_code IS NOT NULL;
