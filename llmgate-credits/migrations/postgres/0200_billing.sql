-- Billing (PostgreSQL): Stripe Checkout purchases and the low-balance alert latch.

-- One row per Checkout Session the gateway created. The credit itself goes through the ledger
-- with the idempotency key `stripe:{session_id}`; this row says what was bought, by whom.
CREATE TABLE billing_purchases (
    session_id     TEXT    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    package        TEXT    NOT NULL,
    credits_micros BIGINT  NOT NULL CHECK (credits_micros > 0),
    amount_cents   BIGINT  NOT NULL CHECK (amount_cents > 0),
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'completed')),
    created_at     BIGINT  NOT NULL,
    completed_at   BIGINT,
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);

CREATE INDEX billing_purchases_by_user ON billing_purchases (user_id, created_at);

-- A row means "the low-balance alert for the current crossing was sent": the user is disarmed.
-- Inserting the row is the atomic test-and-set that lets one replica alone send the alert;
-- a credit that lifts the balance back over the threshold deletes it (re-arms).
CREATE TABLE billing_low_balance_alerts (
    user_id    TEXT    NOT NULL PRIMARY KEY,
    alerted_at BIGINT  NOT NULL
);
