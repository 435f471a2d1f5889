-- A ledger that adds up like a bank statement: the entries of an account sum to its balance,
-- and each entry's balance_after is the running sum of the entries up to it.
--
-- Until now a settle wrote one 'charge' entry of -charge while the balance moved by
-- +(hold - charge), so the entries could not be summed to the balance. A settle now writes the
-- release of its hold (+hold) and then the charge (-charge). This gives every earlier charge
-- its release just before it. Ids are doubled to make room (the order of entries is kept; a
-- client's transactions cursor from before the upgrade points at another page).
DROP TRIGGER credit_ledger_no_update;

-- Through the negatives, so no new id collides with an old one mid-update.
UPDATE credit_ledger SET id = -id;
UPDATE credit_ledger SET id = -id * 2;

-- A charge's reason reads 'hold {id} of {held micros}'.
INSERT INTO credit_ledger (id, user_id, kind, amount_micros, balance_after_micros, request_id,
                           reason, created_at)
SELECT id - 1, user_id, 'release', CAST(substr(reason, instr(reason, ' of ') + 4) AS INTEGER),
       balance_after_micros - amount_micros, request_id,
       substr(reason, 1, instr(reason, ' of ') - 1), created_at
FROM credit_ledger
WHERE kind = 'charge' AND reason LIKE 'hold % of %';

UPDATE sqlite_sequence SET seq = (SELECT MAX(id) FROM credit_ledger)
WHERE name = 'credit_ledger' AND EXISTS (SELECT 1 FROM credit_ledger);

CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;
