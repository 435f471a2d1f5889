//! Issuing API keys and the digest they are stored and looked up by.

use base64::Engine;
use llmgate_core::{Error, Result, keys::Secret};
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// Every user API key starts with this.
pub const API_KEY_PREFIX: &str = "lg-";

/// Random bytes per key: 256 bits.
const KEY_BYTES: usize = 32;

/// A fresh key from the operating system's CSPRNG: `lg-` and 43 URL-safe base64 characters.
pub(crate) fn generate() -> Result<Secret> {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|_| {
        tracing::error!("the operating system's random source failed");
        Error::internal("Could not generate a key.")
    })?;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(Secret::new(format!("{API_KEY_PREFIX}{encoded}")))
}

/// A fresh id for a key row (not secret; names the key in listings and revocations).
pub(crate) fn generate_id() -> String {
    format!("key_{:016x}", rand::random::<u64>())
}

/// The SHA-256 of a key: what is stored and looked up. Keys carry 256 random bits, so a fast
/// hash is enough (there is nothing to brute-force that a slow hash would protect).
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_long_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(a.expose().len(), API_KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert!(a.hint().starts_with("lg-..."));
    }

    #[test]
    fn digest_is_sha256_of_the_key_text() {
        assert_eq!(
            key_digest("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
    }
}
