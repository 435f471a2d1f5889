-- Balance leases: a replica takes a slice of an account's balance in one step and serves
-- holds from it in memory. A lease is an open hold row with `lease_seq` set (NULL for the
-- hold of one request), so the reclaim of expired holds and of holds of stopped replicas
-- covers it, and every sum over open holds counts it. `lease_seq` is the number of the last
-- charge or return the lease applied: a write retried after it was applied changes nothing.
ALTER TABLE credit_holds ADD COLUMN lease_seq INTEGER CHECK (lease_seq >= 0);
