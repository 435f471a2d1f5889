-- Users and their API keys (PostgreSQL). Keys are stored only as their SHA-256 digest.

CREATE TABLE users (
    user_id    TEXT   NOT NULL PRIMARY KEY,
    tier       TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('admin', 'user')),
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT   NOT NULL PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES users (user_id),
    -- SHA-256 of the whole key; looked up on every uncached request.
    key_hash   BYTEA  NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- Masked (`lg-...abcd`), for listings.
    key_hint   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);
