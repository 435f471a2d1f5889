//! The sealing keys and AES-256-GCM itself.
//!
//! Each seal uses a fresh random 96-bit nonce from the OS, and binds the owner and provider as
//! associated data (`llmgate-byok-v1|{user}|{provider}`), so a ciphertext copied into another
//! user's or provider's row fails to open. The id of the sealing key is stored beside the
//! ciphertext; several keys may be loaded at once so that rows sealed under an older key still
//! open while they are re-sealed under the newest.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use llmgate_core::{Error, Result, keys::Secret};
use sha2::{Digest, Sha256};

/// AES-GCM's standard nonce size.
pub const NONCE_BYTES: usize = 12;

/// Why a configured key is unusable. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be the base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)")]
pub struct MalformedKey;

/// One AES-256 key and its id.
#[derive(Clone)]
pub struct VaultKey {
    id: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl VaultKey {
    /// A key from its base64 text (standard alphabet, padding optional, surrounding spaces
    /// ignored). Its id is derived from the key: the first 8 hex digits of a SHA-256 over a
    /// domain tag and the key, which tells keys apart without revealing anything usable.
    pub fn from_base64(text: &Secret) -> Result<Self, MalformedKey> {
        let trimmed = text.expose().trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| MalformedKey)?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| MalformedKey)?;
        Ok(Self::from_bytes(&key))
    }

    /// A key from its 32 raw bytes; its id is derived from them (8 hex digits), so the same key always gets the same id.
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"llmgate-byok-key-id\0");
        hasher.update(key);
        let digest = hasher.finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// Give the key an explicit id instead of the derived one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The id stored beside every value this key seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed provider key as stored: which key sealed it, the nonce and the ciphertext (which
/// ends in the 16-byte GCM tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The 12-byte AES-GCM nonce, fresh for every seal.
    pub nonce: Vec<u8>,
    /// The encrypted key, ending in the 16-byte authentication tag.
    pub ciphertext: Vec<u8>,
}

/// The keys a vault knows: the newest seals, all of them open.
#[derive(Clone)]
pub struct Keyring {
    /// Newest first; never empty.
    keys: Vec<VaultKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(VaultKey::id).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

/// The associated data of a seal. User ids never contain `|` (see [`Keyring::seal`]), so the
/// first `|` after the tag ends the user and the binding is unambiguous.
fn associated_data(user_id: &str, provider: &str) -> Vec<u8> {
    format!("llmgate-byok-v1|{user_id}|{provider}").into_bytes()
}

fn check_owner(user_id: &str) -> Result<()> {
    if user_id.is_empty() || user_id.contains('|') {
        return Err(Error::invalid_request(
            "A user id for the key vault must be non-empty and must not contain `|`.",
        ));
    }
    Ok(())
}

impl Keyring {
    /// `newest` seals; `older` keys (and `newest`) open. A key listed twice counts once.
    pub fn new(newest: VaultKey, older: impl IntoIterator<Item = VaultKey>) -> Self {
        let mut keys = vec![newest];
        for key in older {
            if keys.iter().all(|k| k.id != key.id) {
                keys.push(key);
            }
        }
        Self { keys }
    }

    /// The id new seals carry.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// The ids of every loaded key, the newest first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(VaultKey::id).collect()
    }

    fn key(&self, id: &str) -> Option<&VaultKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seal `plaintext` for one user and provider under the newest key, with a fresh nonce.
    pub fn seal(&self, user_id: &str, provider: &str, plaintext: &Secret) -> Result<Sealed> {
        check_owner(user_id)?;
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(user_id, provider);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::internal("Sealing the key failed."))?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Open a sealed key of this user and provider. Fails when the sealing key is not loaded,
    /// the row was tampered with, or it belongs to another user or provider.
    pub fn open(&self, user_id: &str, provider: &str, sealed: &Sealed) -> Result<Secret> {
        check_owner(user_id)?;
        let unreadable = || {
            Error::internal(format!(
                "The stored key for provider `{provider}` cannot be decrypted; store it again."
            ))
            .with_code("byok_key_unreadable")
        };
        let Some(key) = self.key(&sealed.key_id) else {
            tracing::warn!(
                user_id,
                provider,
                key_id = %sealed.key_id,
                "a BYOK key is sealed under a key id this server does not have"
            );
            return Err(unreadable());
        };
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(unreadable());
        }
        let aad = associated_data(user_id, provider);
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                tracing::warn!(user_id, provider, key_id = %sealed.key_id, "a BYOK key failed authentication");
                unreadable()
            })?;
        String::from_utf8(plaintext)
            .map(Secret::from)
            .map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> VaultKey {
        VaultKey::from_bytes(&[byte; 32])
    }

    fn base64_of(bytes: &[u8]) -> Secret {
        Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    #[test]
    fn a_sealed_key_opens_for_its_owner_and_provider() {
        let ring = Keyring::new(key(1), []);
        let secret = Secret::new("sk-user-abcdefghijklmnop");
        let sealed = ring.seal("ann", "openai", &secret).unwrap();
        assert_eq!(sealed.key_id, ring.current_id());
        assert_eq!(sealed.nonce.len(), NONCE_BYTES);
        assert!(
            !sealed
                .ciphertext
                .windows(secret.expose().len())
                .any(|w| w == secret.expose().as_bytes())
        );
        assert_eq!(ring.open("ann", "openai", &sealed).unwrap(), secret);
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let ring = Keyring::new(key(1), []);
        let secret = Secret::new("sk-same-plaintext-twice");
        let a = ring.seal("ann", "openai", &secret).unwrap();
        let b = ring.seal("ann", "openai", &secret).unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn tampered_ciphertext_nonce_or_key_id_fails() {
        let ring = Keyring::new(key(1), []);
        let sealed = ring.seal("ann", "openai", &Secret::new("sk-abc")).unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(ring.open("ann", "openai", &bad).is_err(), "byte {i}");
        }
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 0x80;
        assert!(ring.open("ann", "openai", &bad).is_err());
        let mut bad = sealed.clone();
        bad.nonce.pop();
        assert!(ring.open("ann", "openai", &bad).is_err());
        let mut bad = sealed;
        bad.key_id = "00000000".into();
        let error = ring.open("ann", "openai", &bad).unwrap_err();
        assert_eq!(error.code(), Some("byok_key_unreadable"));
    }

    #[test]
    fn a_row_moved_to_another_user_or_provider_fails() {
        let ring = Keyring::new(key(1), []);
        let sealed = ring.seal("ann", "openai", &Secret::new("sk-abc")).unwrap();
        assert!(ring.open("bob", "openai", &sealed).is_err());
        assert!(ring.open("ann", "groq", &sealed).is_err());
        // The separator cannot be smuggled in through the user id.
        assert!(ring.seal("ann|openai", "x", &Secret::new("k")).is_err());
    }

    #[test]
    fn older_keys_open_and_the_newest_seals() {
        let old = Keyring::new(key(1), []);
        let sealed = old.seal("ann", "openai", &Secret::new("sk-abc")).unwrap();
        let rotated = Keyring::new(key(2), [key(1)]);
        assert_eq!(
            rotated.open("ann", "openai", &sealed).unwrap().expose(),
            "sk-abc"
        );
        let resealed = rotated
            .seal("ann", "openai", &Secret::new("sk-abc"))
            .unwrap();
        assert_eq!(resealed.key_id, key(2).id());
        assert_ne!(resealed.key_id, sealed.key_id);
        // Without the old key the old row no longer opens.
        let new_only = Keyring::new(key(2), []);
        assert!(new_only.open("ann", "openai", &sealed).is_err());
        assert!(new_only.open("ann", "openai", &resealed).is_ok());
    }

    #[test]
    fn only_base64_of_exactly_32_bytes_is_a_key() {
        assert!(VaultKey::from_base64(&base64_of(&[7; 32])).is_ok());
        let padded_with_space = Secret::new(format!(" {} \n", base64_of(&[7; 32]).expose()));
        assert!(VaultKey::from_base64(&padded_with_space).is_ok());
        for bad in [
            base64_of(&[7; 31]),
            base64_of(&[7; 33]),
            base64_of(&[]),
            Secret::new("not base64 at all!"),
            Secret::new("0123456789abcdef0123456789abcdef"),
        ] {
            let error = VaultKey::from_base64(&bad).unwrap_err();
            assert!(!error.to_string().contains(bad.expose()) || bad.expose().is_empty());
        }
    }

    #[test]
    fn ids_are_stable_short_and_distinct_and_debug_hides_keys() {
        assert_eq!(key(1).id(), key(1).id());
        assert_ne!(key(1).id(), key(2).id());
        assert_eq!(key(1).id().len(), 8);
        let ring = Keyring::new(key(2), [key(1), key(2)]);
        assert_eq!(ring.key_ids().len(), 2);
        let printed = format!("{ring:?} {:?}", key(1));
        assert!(printed.contains(key(1).id()));
        assert!(!printed.contains("cipher"));
    }
}
