-- API keys as governance (per-key models, budgets, rate limits, expiry) and teams (SQLite).
-- Every column added to `api_keys` is NULL on existing keys: they stay unrestricted.

ALTER TABLE api_keys ADD COLUMN name TEXT;
-- A JSON array of model names or globs; NULL allows every model.
ALTER TABLE api_keys ADD COLUMN models TEXT;
ALTER TABLE api_keys ADD COLUMN max_budget_micros INTEGER CHECK (max_budget_micros >= 0);
ALTER TABLE api_keys ADD COLUMN budget_period TEXT
    CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'total'));
ALTER TABLE api_keys ADD COLUMN rpm INTEGER CHECK (rpm > 0);
ALTER TABLE api_keys ADD COLUMN tpm INTEGER CHECK (tpm > 0);
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
-- A team key spends the team's ledger account (`team:<team_id>`).
ALTER TABLE api_keys ADD COLUMN team_id TEXT;
-- Written coarsely (at most once a minute per key and replica), never per request.
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;

-- A key budget's period: what its open holds hold and its settled charges spent. A hold
-- counts here in the same transaction as on the balance.
CREATE TABLE key_spend (
    key_id       TEXT   NOT NULL,
    period_start INTEGER NOT NULL,
    held_micros  INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    spent_micros INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    PRIMARY KEY (key_id, period_start)
) STRICT;

-- Which key budget (and period) a hold counts against; NULL for holds without one.
ALTER TABLE credit_holds ADD COLUMN budget_key TEXT;
ALTER TABLE credit_holds ADD COLUMN budget_period INTEGER;

-- A team: its own ledger account (`team:<team_id>`) with a tier and the tier's monthly grant.
CREATE TABLE teams (
    team_id    TEXT   NOT NULL PRIMARY KEY,
    tier       TEXT   NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE team_members (
    team_id    TEXT   NOT NULL REFERENCES teams (team_id),
    user_id    TEXT   NOT NULL REFERENCES users (user_id),
    role       TEXT   NOT NULL CHECK (role IN ('owner', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
) STRICT;

CREATE INDEX team_members_by_user ON team_members (user_id);
