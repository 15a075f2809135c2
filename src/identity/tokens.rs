//! API tokens: `signpost token add NAME` prints a random token once and keeps only its
//! SHA-256 in the tokens file (one JSON object a line), which several instances may share.
//! `Authorization: Bearer TOKEN` then acts as NAME. A delegate token may also sign for other
//! owners (a host application signing for its users), never for an admin.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token looks like: this prefix, then 43 characters of base64url (32 random bytes).
pub const TOKEN_PREFIX: &str = "spt_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    #[serde(default)]
    pub delegate: bool,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot {action} the tokens file {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the tokens file {} is damaged at line {line}: {detail}", .path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Read the entries of a tokens file (none when it does not exist).
pub fn read(path: &Path) -> Result<Vec<TokenEntry>, TokenError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TokenError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            // Only the position: the line holds a hash, not a secret, but stay terse.
            serde_json::from_str(l).map_err(|e| TokenError::Corrupt {
                path: path.to_owned(),
                line: i + 1,
                detail: format!("not a token entry (column {})", e.column()),
            })
        })
        .collect()
}

fn write(path: &Path, entries: &[TokenEntry]) -> Result<(), TokenError> {
    let mut text = String::from(
        "# signpost API tokens: a name and the SHA-256 of its token, one a line. Edit with `signpost token`.\n",
    );
    for e in entries {
        // A struct of strings and a boolean serializes without failing.
        text.push_str(&serde_json::to_string(e).unwrap_or_default());
        text.push('\n');
    }
    let io = |action, source| TokenError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    crate::sweep::checkpoint::write_atomic(path, text.as_bytes()).map_err(|e| io("write", e))?;
    // Hashes only, but no reason for others to read them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("protect", e))?;
    }
    Ok(())
}

/// Add a token for `name`; returns the token, which is shown once and stored nowhere.
pub fn add(path: &Path, name: &str, delegate: bool) -> Result<String, TokenError> {
    if !super::valid_owner(name) || name == super::ANONYMOUS {
        return Err(TokenError::Invalid(format!(
            "{name:?} cannot name a token: use 1 to {} printable characters, not \"{}\"",
            super::MAX_OWNER,
            super::ANONYMOUS
        )));
    }
    let mut entries = read(path)?;
    if entries.iter().any(|e| e.name == name) {
        return Err(TokenError::Invalid(format!(
            "a token named {name:?} exists: revoke it first (`signpost token revoke {name}`)"
        )));
    }
    let token = generate();
    entries.push(TokenEntry {
        name: name.to_owned(),
        delegate,
        sha256: hash(&token),
        created_at: crate::policy::time::iso8601_millis(chrono::Utc::now()),
    });
    write(path, &entries)?;
    Ok(token)
}

/// Revoke the token of `name`; false when there was none.
pub fn revoke(path: &Path, name: &str) -> Result<bool, TokenError> {
    let mut entries = read(path)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    write(path, &entries)?;
    Ok(true)
}

/// The tokens file as the server reads it: read again whenever it changes on disk, so a
/// revocation by any instance (or by hand) takes effect at once.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    cached: Mutex<(Option<SystemTime>, Vec<TokenEntry>)>,
}

impl TokenStore {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new((None, Vec::new())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry a presented token belongs to.
    pub fn find(&self, token: &str) -> Result<Option<TokenEntry>, TokenError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        // A poisoned lock only means another request panicked while reading: reload.
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0 != modified || modified.is_none() {
            *cached = (modified, read(&self.path)?);
        }
        let digest = hash(token);
        Ok(cached.1.iter().find(|e| e.sha256 == digest).cloned())
    }

    /// Whether any token exists (an identity is configured).
    pub fn any(&self) -> bool {
        read(&self.path).is_ok_and(|e| !e.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_added_found_and_revoked_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let store = TokenStore::new(path.clone());
        assert!(!store.any());
        let t = add(&path, "ci", false).unwrap();
        let d = add(&path, "host-app", true).unwrap();
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == TOKEN_PREFIX.len() + 43);
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&t));
        assert_eq!(store.find(&t).unwrap().unwrap().name, "ci");
        assert!(store.find(&d).unwrap().unwrap().delegate);
        assert!(store.find("spt_wrong").unwrap().is_none());
        assert!(add(&path, "ci", false).is_err(), "one token a name");
        assert!(revoke(&path, "ci").unwrap());
        assert!(!revoke(&path, "ci").unwrap());
        // A file changed within the same timestamp granularity is still read again on the
        // next modification; force one.
        std::thread::sleep(std::time::Duration::from_millis(20));
        add(&path, "other", false).unwrap();
        assert!(store.find(&t).unwrap().is_none(), "revoked");
        assert!(add(&path, "bad\nname", false).is_err());
        assert!(add(&path, "anonymous", false).is_err());
    }
}
