//! The BYOK key vault: users' own provider keys sealed with AES-256-GCM in the ledger's
//! database ([`SqlKeyVault`]), with key rotation ([`SqlKeyVault::rotate`]).

mod keyring;
mod sql;

pub use keyring::{Keyring, MalformedKey, NONCE_BYTES, Sealed, VaultKey};
pub use sql::{RotationReport, SqlKeyVault, VaultSettings};
