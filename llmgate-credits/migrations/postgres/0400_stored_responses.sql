-- Stored Responses (PostgreSQL): each answer of `POST /v1/responses` with `store` on, so that
-- `previous_response_id` rebuilds the conversation on any replica. The columns hold the
-- caller's prompts and the model's answers as JSON text; they are deleted after the
-- configured retention (`responses.retention_days`) or on the owner's `DELETE`.

CREATE TABLE stored_responses (
    -- `resp_…`, made by the gateway (random): unique across owners.
    id                   TEXT   NOT NULL PRIMARY KEY,
    -- The caller's user id: every read and the chain walk are filtered by it.
    owner                TEXT   NOT NULL,
    -- Unix seconds.
    created_at           BIGINT NOT NULL,
    model                TEXT   NOT NULL,
    previous_response_id TEXT,
    -- A JSON array: this request's own input items (not the earlier responses' ones).
    input_items          TEXT   NOT NULL,
    -- A JSON object: the whole `response` object as it was answered.
    response             TEXT   NOT NULL
);

-- Pruning deletes by age.
CREATE INDEX stored_responses_by_age ON stored_responses (created_at);
