//! A string that must never be shown: `Debug` and `Display` print a placeholder, and it has no
//! `Serialize`. The only way to read it is [`Secret::expose`], so every use is easy to audit.

use std::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// An HMAC-SHA256 keyed by this secret, for the caller to feed: webhook signatures,
    /// link tokens, delete tokens.
    pub fn hmac_sha256(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::new_from_slice(self.expose().as_bytes()).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// For clap: flags and environment variables parse straight into a `Secret`, so even the
/// raw `Config` never prints one.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// Access key, secret key and optional session token: what signs requests for one store.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("hunter2-very-secret"),
            session_token: Some(Secret::new("token-value")),
        };
        let shown = format!("{c:?} {} {:?}", c.secret_access_key, c.secret_access_key);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("token-value"), "{shown}");
        assert!(shown.contains("AKID"));
    }
}
