-- The credit ledger (PostgreSQL). Amounts are integer micro-credits.

-- The spendable balance of each user, open holds already subtracted.
CREATE TABLE credit_balances (
    user_id        TEXT   NOT NULL PRIMARY KEY,
    balance_micros BIGINT NOT NULL DEFAULT 0 CHECK (balance_micros >= 0)
);

-- Append-only: every change to a balance, with the balance after it.
CREATE TABLE credit_ledger (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              TEXT   NOT NULL REFERENCES credit_balances (user_id),
    kind                 TEXT   NOT NULL
        CHECK (kind IN ('grant', 'top_up', 'hold', 'charge', 'release', 'refund')),
    amount_micros        BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL CHECK (balance_after_micros >= 0),
    model                TEXT,
    provider             TEXT,
    prompt_tokens        BIGINT CHECK (prompt_tokens >= 0),
    completion_tokens    BIGINT CHECK (completion_tokens >= 0),
    key_source           TEXT CHECK (key_source IN ('platform', 'byok')),
    request_id           TEXT,
    idempotency_key      TEXT UNIQUE,
    reason               TEXT,
    created_at           BIGINT NOT NULL,
    -- Credits add, holds and charges take away, releases give a hold back.
    CHECK (
        (kind IN ('grant', 'top_up', 'refund') AND amount_micros > 0)
        OR (kind = 'release' AND amount_micros >= 0)
        OR (kind IN ('hold', 'charge') AND amount_micros <= 0)
    ),
    -- Only credits carry an idempotency key, and every credit has one.
    CHECK ((kind IN ('grant', 'top_up', 'refund')) = (idempotency_key IS NOT NULL))
);

CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id);

CREATE FUNCTION credit_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only';
END;
$$;

CREATE TRIGGER credit_ledger_append_only
BEFORE UPDATE OR DELETE ON credit_ledger
FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();

-- Credits reserved for requests in flight. Identity ids are never reused, so a late settle of
-- an old hold can never hit a newer one.
CREATE TABLE credit_holds (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       TEXT   NOT NULL REFERENCES credit_balances (user_id),
    amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
    request_id    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE INDEX credit_holds_by_expiry ON credit_holds (expires_at);

-- One row per user, model, provider and UTC day (`YYYY-MM-DD`, text so that both backends
-- compare days the same way).
CREATE TABLE usage_daily (
    user_id           TEXT   NOT NULL,
    model             TEXT   NOT NULL,
    provider          TEXT   NOT NULL,
    day               TEXT   NOT NULL,
    requests          BIGINT NOT NULL CHECK (requests >= 0),
    prompt_tokens     BIGINT NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens BIGINT NOT NULL CHECK (completion_tokens >= 0),
    cost_micros       BIGINT NOT NULL CHECK (cost_micros >= 0),
    PRIMARY KEY (user_id, model, provider, day)
);

CREATE INDEX usage_daily_by_day ON usage_daily (day);
