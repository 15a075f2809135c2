//! A form field's value: text, which renderers escape, or encoded text (the policy and its
//! signature), whose alphabet holds nothing HTML would need to escape. The type records
//! which is which, so the templates can skip the scan where it is provably empty (the
//! policy is most of a form's bytes).

use std::fmt;
use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};

/// Standard base64 (`A–Z a–z 0–9 + / =`) or lowercase hex: only [`Encoded::base64`] and
/// [`Encoded::hex`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded(String);

impl Encoded {
    pub fn base64(bytes: impl AsRef<[u8]>) -> Self {
        Self(STANDARD.encode(bytes))
    }

    pub fn hex(bytes: impl AsRef<[u8]>) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Encoded {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A form field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Anything, a file name included: escaped wherever it is shown.
    Text(String),
    Encoded(Encoded),
}

impl FieldValue {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Text(s) => s,
            Self::Encoded(e) => e.as_str(),
        }
    }
}

impl Deref for FieldValue {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<Encoded> for FieldValue {
    fn from(e: Encoded) -> Self {
        Self::Encoded(e)
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_text_keeps_to_its_alphabet() {
        let all: Vec<u8> = (0..=255).collect();
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        };
        assert!(plain(Encoded::base64(&all).as_str()));
        assert!(plain(Encoded::hex(&all).as_str()));
        assert_eq!(Encoded::hex([0xab, 0x01]).as_str(), "ab01");
        assert_eq!(Encoded::base64(b"<a>").as_str(), "PGE+");
    }
}
