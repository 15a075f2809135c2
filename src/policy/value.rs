//! A form field's value: text, which renderers escape, or encoded text (the policy and its
//! signature), whose alphabet holds nothing HTML, JSON or a URL would need to escape. The
//! type records which is which, so a renderer can skip the scan where it is provably empty
//! (the policy is most of a form's bytes).

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
        let bytes = bytes.as_ref();
        // Into a buffer of the right size: `hex::encode` collects its digits one char at a time.
        let mut digits = vec![0; bytes.len() * 2];
        hex::encode_to_slice(bytes, &mut digits).expect("two digits a byte");
        Self(String::from_utf8(digits).expect("hex digits are ASCII"))
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

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<Encoded> for FieldValue {
    fn from(e: Encoded) -> Self {
        Self::Encoded(e)
    }
}

impl PartialEq<&str> for FieldValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for FieldValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
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
        assert_eq!(Encoded::hex([0xab, 0x01]), "ab01");
        assert_eq!(Encoded::base64(b"<a>"), "PGE+");
    }
}
