-- Token classes: the prompt tokens read from and written to a prompt cache (both part of
-- prompt_tokens) and the output tokens spent reasoning (part of completion_tokens). Each class
-- has its own price, so the ledger and the daily rollups keep them apart.

ALTER TABLE credit_ledger ADD COLUMN cache_read_tokens BIGINT CHECK (cache_read_tokens >= 0);
ALTER TABLE credit_ledger ADD COLUMN cache_write_tokens BIGINT CHECK (cache_write_tokens >= 0);
ALTER TABLE credit_ledger ADD COLUMN reasoning_tokens BIGINT CHECK (reasoning_tokens >= 0);

ALTER TABLE usage_daily
    ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0 CHECK (cache_read_tokens >= 0);
ALTER TABLE usage_daily
    ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0 CHECK (cache_write_tokens >= 0);
ALTER TABLE usage_daily
    ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0);
