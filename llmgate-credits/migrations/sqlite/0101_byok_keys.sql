-- Users' own provider keys (SQLite), sealed with AES-256-GCM. Nothing here is plaintext:
-- the key id names the sealing key, the nonce is random per seal, and the ciphertext carries
-- the GCM tag. The owner and provider are bound into the seal as associated data.

CREATE TABLE byok_keys (
    user_id    TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    nonce      BLOB    NOT NULL CHECK (length(nonce) = 12),
    ciphertext BLOB    NOT NULL CHECK (length(ciphertext) > 16),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, provider)
) STRICT;
