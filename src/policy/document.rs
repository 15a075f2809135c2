//! The policy document: `{"expiration": "...", "conditions": [...]}`.
//!
//! Serialised with serde_json only, so no value (a file name, a content type) can ever
//! close a string and inject a condition of its own.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// One policy condition, in the forms S3 accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition<'a> {
    /// `{"field": "value"}`: the field must equal the value.
    Exact {
        field: Cow<'a, str>,
        value: Cow<'a, str>,
    },
    /// `["eq", "$field", "value"]`: the same rule, array form.
    Eq {
        field: Cow<'a, str>,
        value: Cow<'a, str>,
    },
    /// `["starts-with", "$field", "prefix"]`.
    StartsWith {
        field: Cow<'a, str>,
        prefix: Cow<'a, str>,
    },
    /// `["content-length-range", min, max]`: the only size limit S3 enforces.
    ContentLengthRange { min: u64, max: u64 },
}

impl Condition<'_> {
    /// The form field this condition constrains (`None` for the length range).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Exact { field, .. } | Self::Eq { field, .. } | Self::StartsWith { field, .. } => {
                Some(field)
            }
            Self::ContentLengthRange { .. } => None,
        }
    }
}

impl Serialize for Condition<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Exact { field, value } => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(field.as_ref(), value.as_ref())?;
                map.end()
            }
            Self::Eq { field, value } => {
                let mut seq = s.serialize_seq(Some(3))?;
                seq.serialize_element("eq")?;
                seq.serialize_element(&format!("${field}"))?;
                seq.serialize_element(value.as_ref())?;
                seq.end()
            }
            Self::StartsWith { field, prefix } => {
                let mut seq = s.serialize_seq(Some(3))?;
                seq.serialize_element("starts-with")?;
                seq.serialize_element(&format!("${field}"))?;
                seq.serialize_element(prefix.as_ref())?;
                seq.end()
            }
            Self::ContentLengthRange { min, max } => {
                let mut seq = s.serialize_seq(Some(3))?;
                seq.serialize_element("content-length-range")?;
                seq.serialize_element(min)?;
                seq.serialize_element(max)?;
                seq.end()
            }
        }
    }
}

struct Expiration(DateTime<Utc>);

impl Serialize for Expiration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::time::iso8601_millis(self.0))
    }
}

/// A POST policy: an expiry and the conditions every posted form must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy<'a> {
    expiration: DateTime<Utc>,
    conditions: Vec<Condition<'a>>,
}

impl<'a> PostPolicy<'a> {
    pub fn new(expiration: DateTime<Utc>) -> Self {
        Self {
            expiration,
            conditions: Vec::new(),
        }
    }

    pub fn push(&mut self, condition: Condition<'a>) -> &mut Self {
        self.conditions.push(condition);
        self
    }

    /// `{"field": "value"}`
    pub fn exact(
        &mut self,
        field: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> &mut Self {
        self.push(Condition::Exact {
            field: field.into(),
            value: value.into(),
        })
    }

    /// `["eq", "$field", "value"]`
    pub fn equals(
        &mut self,
        field: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> &mut Self {
        self.push(Condition::Eq {
            field: field.into(),
            value: value.into(),
        })
    }

    /// `["starts-with", "$field", "prefix"]`
    pub fn starts_with(
        &mut self,
        field: impl Into<Cow<'a, str>>,
        prefix: impl Into<Cow<'a, str>>,
    ) -> &mut Self {
        self.push(Condition::StartsWith {
            field: field.into(),
            prefix: prefix.into(),
        })
    }

    /// `["content-length-range", min, max]`
    pub fn content_length_range(&mut self, min: u64, max: u64) -> &mut Self {
        self.push(Condition::ContentLengthRange { min, max })
    }

    /// Whether some condition names this form field (S3 compares names case-insensitively).
    pub fn covers(&self, field: &str) -> bool {
        self.conditions
            .iter()
            .filter_map(Condition::field)
            .any(|f| f.eq_ignore_ascii_case(field))
    }

    /// The compact JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising strings and integers into memory cannot fail.
        serde_json::to_vec(self).expect("policy serialisation into memory is infallible")
    }
}

impl Serialize for PostPolicy<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PostPolicy", 2)?;
        st.serialize_field("expiration", &Expiration(self.expiration))?;
        st.serialize_field("conditions", &self.conditions)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    #[test]
    fn expiration_has_milliseconds_and_z() {
        assert_eq!(
            crate::policy::time::iso8601_millis(at(2026, 1, 1, 12, 0, 0)),
            "2026-01-01T12:00:00.000Z"
        );
    }

    #[test]
    fn serialises_every_condition_form() {
        let mut p = PostPolicy::new(at(2013, 8, 6, 12, 0, 0));
        p.exact("acl", "public-read")
            .equals("Content-Type", "image/png")
            .starts_with("key", "user/")
            .content_length_range(1, 10);
        assert_eq!(
            String::from_utf8(p.to_json()).unwrap(),
            r#"{"expiration":"2013-08-06T12:00:00.000Z","conditions":[{"acl":"public-read"},["eq","$Content-Type","image/png"],["starts-with","$key","user/"],["content-length-range",1,10]]}"#
        );
    }

    #[test]
    fn a_hostile_value_cannot_add_a_condition() {
        let hostile = r#"a"],["starts-with","$key",""#;
        let mut p = PostPolicy::new(at(2026, 1, 1, 0, 0, 0));
        p.equals("x-amz-meta-filename", hostile)
            .equals("key", "uploads/x");
        let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        let conditions = json["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0][2], hostile);
    }

    #[test]
    fn covers_is_case_insensitive_and_ignores_the_length_range() {
        let mut p = PostPolicy::new(at(2026, 1, 1, 0, 0, 0));
        p.equals("Content-Type", "image/png")
            .content_length_range(0, 1);
        assert!(p.covers("content-type"));
        assert!(!p.covers("key"));
    }
}
