//! The master key: from the config, else `$LLMGATE_MASTER_KEY`, else generated once and kept in
//! a file (mode 0600) in the data directory, next to the SQLite database. The built-in default
//! keeps its BYOK sealing key the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use llmgate_core::keys::Secret;
use rand::RngCore;

use crate::config::{Config, Env};

/// The name of the key file in the data directory.
pub const KEY_FILE: &str = "llmgate.master_key";
/// The name of the BYOK sealing key's file in the data directory (built-in default only).
pub const BYOK_KEY_FILE: &str = "llmgate.byok_key";

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Config,
    Environment,
    /// Read from the key file a previous start wrote.
    File(PathBuf),
    /// Generated now and written to this file: show it to the operator once.
    Generated(PathBuf),
}

#[derive(Debug, Clone)]
pub struct MasterKey {
    pub key: Secret,
    pub origin: KeyOrigin,
}

/// Why no master (or BYOK) key could be had.
#[derive(Debug, thiserror::Error)]
#[error("key file {path}: {reason}")]
pub struct MasterKeyError {
    pub path: PathBuf,
    pub reason: String,
}

/// The directory that holds the SQLite file (or the working directory).
pub fn data_dir(config: &Config) -> PathBuf {
    config
        .storage
        .sqlite_path()
        .and_then(|file| Path::new(file).parent().map(Path::to_path_buf))
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

impl MasterKey {
    pub fn resolve(config: &Config, env: &Env) -> Result<Self, MasterKeyError> {
        if let Some(key) = &config.server.master_key {
            return Ok(Self {
                key: key.clone(),
                origin: KeyOrigin::Config,
            });
        }
        if let Some(key) = env.get("LLMGATE_MASTER_KEY") {
            return Ok(Self {
                key: Secret::new(key),
                origin: KeyOrigin::Environment,
            });
        }
        Self::from_dir(&data_dir(config))
    }

    /// Read the key file in `dir`, or create it with a fresh key.
    pub fn from_dir(dir: &Path) -> Result<Self, MasterKeyError> {
        let (key, origin) = read_or_create(&dir.join(KEY_FILE), generate)?;
        Ok(Self { key, origin })
    }
}

/// The BYOK sealing key of the built-in default config (`byok.encryption_key` unset): read
/// from [`BYOK_KEY_FILE`] in `dir`, or generated there (mode 0600) on the first start, so
/// users can bring their own provider keys without the operator making one. Like the master
/// key, keep the file with the database: the stored keys cannot be opened without it.
pub fn byok_key_from_dir(dir: &Path) -> Result<(Secret, KeyOrigin), MasterKeyError> {
    read_or_create(&dir.join(BYOK_KEY_FILE), || {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes))
    })
}

/// The key in the file at `path`, or a new one from `generate` written there (created only if
/// absent, mode 0600, synced) and reported as [`KeyOrigin::Generated`].
fn read_or_create(
    path: &Path,
    generate: impl FnOnce() -> Secret,
) -> Result<(Secret, KeyOrigin), MasterKeyError> {
    let fail = |reason: String| MasterKeyError {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok((
                Secret::new(text.trim()),
                KeyOrigin::File(path.to_path_buf()),
            ));
        }
        Ok(_) => return Err(fail("the file is empty".to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(fail(error.to_string())),
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let key = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
    file.write_all(format!("{}\n", key.expose()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(e.to_string()))?;
    Ok((key, KeyOrigin::Generated(path.to_path_buf())))
}

/// `lg-master-` and 192 random bits.
fn generate() -> Secret {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Secret::new(format!("lg-master-{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "llmgate-master-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn assert_private(file: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }

    #[test]
    fn generated_once_then_read_back() {
        let dir = temp_dir("once");
        let first = MasterKey::from_dir(&dir).unwrap();
        assert!(matches!(first.origin, KeyOrigin::Generated(_)));
        assert!(first.key.expose().starts_with("lg-master-"));
        assert!(first.key.expose().len() >= "lg-master-".len() + 22);
        let second = MasterKey::from_dir(&dir).unwrap();
        assert!(matches!(second.origin, KeyOrigin::File(_)));
        assert_eq!(first.key, second.key);
        assert_private(&dir.join(KEY_FILE));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_byok_key_is_32_random_bytes_kept_in_a_private_file() {
        let dir = temp_dir("byok");
        let (first, origin) = byok_key_from_dir(&dir).unwrap();
        assert_eq!(origin, KeyOrigin::Generated(dir.join(BYOK_KEY_FILE)));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(first.expose())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        let (second, origin) = byok_key_from_dir(&dir).unwrap();
        assert_eq!(
            (second, origin),
            (first, KeyOrigin::File(dir.join(BYOK_KEY_FILE)))
        );
        assert_private(&dir.join(BYOK_KEY_FILE));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn config_then_environment_win_over_the_file() {
        let env = Env::from_pairs([("LLMGATE_MASTER_KEY", "from-env-0123456789")]);
        let mut config = Config::builtin(&Env::from_pairs([("X", "y")]));
        let key = MasterKey::resolve(&config, &env).unwrap();
        assert_eq!(
            (key.key.expose(), key.origin),
            ("from-env-0123456789", KeyOrigin::Environment)
        );
        config.server.master_key = Some(Secret::new("from-config-0123456789"));
        let key = MasterKey::resolve(&config, &env).unwrap();
        assert_eq!(key.origin, KeyOrigin::Config);
    }

    #[test]
    fn data_dir_is_the_sqlite_files_directory() {
        let mut config = Config::builtin(&Env::from_pairs([("X", "y")]));
        assert_eq!(data_dir(&config), PathBuf::from("."));
        config.storage.database_url = "sqlite:///var/lib/llmgate/ledger.db".to_owned();
        assert_eq!(data_dir(&config), PathBuf::from("/var/lib/llmgate"));
        config.storage.database_url = "postgres://u@h/db".to_owned();
        assert_eq!(data_dir(&config), PathBuf::from("."));
    }
}
