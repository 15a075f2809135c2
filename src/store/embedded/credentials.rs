//! The embedded store's credentials: generated on its first start and kept in the data dir
//! (mode 0600), read back by every later start and by the subcommands.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EmbeddedError;
use crate::secret::{Credentials, Secret};

#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    access_key_id: String,
    secret_access_key: String,
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// Where the embedded store's generated credentials are kept.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.json")
}

/// The embedded store's credentials, if it ever ran with this data dir.
pub fn load_credentials(data_dir: &Path) -> Result<Option<Credentials>, EmbeddedError> {
    let path = credentials_path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EmbeddedError::Data { path, source }),
    };
    // Only the position of a mistake: serde's message can quote the values, and one of
    // them is the secret.
    let stored: StoredCredentials = serde_json::from_slice(&bytes).map_err(|e| {
        let msg = format!(
            "not the credentials JSON signpost writes (line {}, column {}): remove the file to generate new credentials",
            e.line(),
            e.column()
        );
        EmbeddedError::Data {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, msg),
        }
    })?;
    // Tighten the mode if someone loosened it.
    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    Ok(Some(Credentials {
        access_key_id: stored.access_key_id,
        secret_access_key: Secret::new(stored.secret_access_key),
        session_token: None,
    }))
}

/// The embedded store's credentials: read from `DATA_DIR/credentials.json`, or generated on
/// first start and written there with mode 0600.
pub fn load_or_create_credentials(data_dir: &Path) -> Result<Credentials, EmbeddedError> {
    if let Some(existing) = load_credentials(data_dir)? {
        return Ok(existing);
    }
    let path = credentials_path(data_dir);
    let data_err = |source| EmbeddedError::Data {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(data_dir).map_err(|source| EmbeddedError::Data {
        path: data_dir.to_owned(),
        source,
    })?;
    let stored = StoredCredentials {
        access_key_id: format!(
            "SP{}",
            random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
        secret_access_key: random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        ),
    };
    let json = serde_json::to_vec_pretty(&stored)
        .map_err(|e| data_err(io::Error::other(e.to_string())))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(data_err)?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(data_err)?;
    Ok(Credentials {
        access_key_id: stored.access_key_id,
        secret_access_key: Secret::new(stored.secret_access_key),
        session_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_credentials(dir.path()).unwrap(), None);
        let made = load_or_create_credentials(dir.path()).unwrap();
        let mode = fs::metadata(credentials_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_credentials(dir.path()).unwrap(), Some(made.clone()));
        assert_eq!(load_or_create_credentials(dir.path()).unwrap(), made);
    }

    #[test]
    fn a_damaged_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            credentials_path(dir.path()),
            // serde_json quotes a value of the wrong type in its message.
            br#"{"access_key_id": "AK", "secret_access_key": 98765432109876}"#,
        )
        .unwrap();
        let e = load_credentials(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(!e.contains("98765432109876"), "{e}");
    }
}
