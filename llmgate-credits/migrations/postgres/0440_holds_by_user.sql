-- What an account may spend is its balance plus what its open leases hold, a sum over its
-- `credit_holds` rows, read with every balance and after every ledger batch that charges a
-- lease (once per account in the batch). Without this index each such sum scanned every open
-- hold and lease of every account: a batch over a thousand accounts read the whole table a
-- thousand times.
CREATE INDEX credit_holds_by_user ON credit_holds (user_id);
