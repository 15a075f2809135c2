//! The ordered form fields of a POST upload and the signer that seals them.
//!
//! A [`PostForm`] pairs every field with the condition that covers it, so a field without a
//! condition cannot be built. [`Signer::sign`] adds the signature fields (and their
//! conditions), serialises the policy and returns the fields in the order a form must post
//! them. The `file` field is never among them: it always comes last, after these. Field names
//! are the signing code's own literals (`&'static str`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::document::PostPolicy;
use super::{Encoded, FieldValue, sigv2, sigv4};
use crate::secret::Credentials;

/// The fields of an upload form before signing, each with its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostForm {
    expiration: DateTime<Utc>,
    bucket: Option<String>,
    /// In form order. Each must carry exactly its value, unless `prefixes` says otherwise.
    fields: Vec<(&'static str, String)>,
    /// `["starts-with", "$field", prefix]` rules: a field's index and its prefix (the form
    /// carries a default the user may change, e.g. a `<select>`).
    prefixes: Vec<(usize, String)>,
    /// Fields the page's user fills in (not among the signed fields): a name and the prefix
    /// its value must start with.
    inputs: Vec<(&'static str, String)>,
    length: Option<(u64, u64)>,
}

impl PostForm {
    pub fn new(expiration: DateTime<Utc>) -> Self {
        Self {
            expiration,
            bucket: None,
            // Room for every field a form carries, the signature's included.
            fields: Vec::with_capacity(16),
            prefixes: Vec::new(),
            inputs: Vec::new(),
            length: None,
        }
    }

    /// `{"bucket": name}`: not a form field (the form's URL names the bucket), but S3 checks it.
    pub fn bucket(&mut self, name: impl Into<String>) -> &mut Self {
        self.bucket = Some(name.into());
        self
    }

    /// A field that must carry exactly this value.
    pub fn field(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.fields.push((name, value.into()));
        self
    }

    /// A field whose value may be anything that starts with `prefix`; `value` is its default.
    pub fn field_starting_with(
        &mut self,
        name: &'static str,
        value: impl Into<String>,
        prefix: impl Into<String>,
    ) -> &mut Self {
        self.prefixes.push((self.fields.len(), prefix.into()));
        self.fields.push((name, value.into()));
        self
    }

    /// A field the page lets its user fill in, so it cannot be among the signed fields: any
    /// value that starts with `prefix` (`""`: any value) is accepted.
    pub fn user_input(&mut self, name: &'static str, prefix: impl Into<String>) -> &mut Self {
        self.inputs.push((name, prefix.into()));
        self
    }

    /// `["content-length-range", min, max]`
    pub fn content_length_range(&mut self, min: u64, max: u64) -> &mut Self {
        self.length = Some((min, max));
        self
    }

    pub fn expiration(&self) -> DateTime<Utc> {
        self.expiration
    }

    /// The policy for these fields and the signature's own (`signature_fields`, which must
    /// equal their values too): bucket first, then each upload field, the length range, then
    /// the signature's fields.
    fn policy<'a>(&'a self, signature_fields: &'a [(&'static str, String)]) -> PostPolicy<'a> {
        let mut p = PostPolicy::new(self.expiration);
        if let Some(bucket) = &self.bucket {
            p.exact("bucket", bucket.as_str());
        }
        for (i, (name, value)) in self.fields.iter().enumerate() {
            match self.prefixes.iter().find(|(at, _)| *at == i) {
                Some((_, prefix)) => p.starts_with(*name, prefix.as_str()),
                None => p.exact(*name, value.as_str()),
            };
        }
        for (name, prefix) in &self.inputs {
            p.starts_with(*name, prefix.as_str());
        }
        if let Some((min, max)) = self.length {
            p.content_length_range(min, max);
        }
        for (name, value) in signature_fields {
            p.exact(*name, value.as_str());
        }
        p
    }
}

/// A signed form: the fields to post, in order, before the `file` field. Names are the
/// signing code's own literals, so they never need escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedForm {
    pub fields: Vec<(&'static str, FieldValue)>,
    pub expiration: DateTime<Utc>,
    /// When the signature was made (`x-amz-date` for SigV4).
    pub signed_at: DateTime<Utc>,
}

impl SignedForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded policy document (for tests and diagnostics).
    pub fn policy_json(&self) -> Option<Vec<u8>> {
        let b64 = self.get("policy")?;
        STANDARD.decode(b64).ok()
    }
}

/// Which signature version seals the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V4,
    V2,
}

/// Signs forms for one set of credentials (and, for SigV4, one region).
#[derive(Debug)]
pub struct Signer {
    version: Version,
    credentials: Credentials,
    /// SigV4's day key, derived once a day.
    keys: sigv4::KeyCache,
}

impl Signer {
    pub fn new(version: Version, credentials: Credentials, region: impl Into<String>) -> Self {
        let keys = sigv4::KeyCache::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            region,
        );
        Self {
            version,
            credentials,
            keys,
        }
    }

    /// Add the signature fields and their conditions, then sign.
    pub fn sign(&self, form: PostForm, now: DateTime<Utc>) -> SignedForm {
        let creds = &self.credentials;
        let mut signature_fields = Vec::new();
        let (policy, signature) = match self.version {
            Version::V4 => {
                let day = self.keys.day(now);
                signature_fields.push(("x-amz-algorithm", sigv4::ALGORITHM.to_owned()));
                signature_fields.push(("x-amz-credential", day.credential.clone()));
                signature_fields.push(("x-amz-date", sigv4::amz_date(now)));
                if let Some(token) = &creds.session_token {
                    signature_fields.push(("x-amz-security-token", token.expose().to_owned()));
                }
                let policy = encode(&form.policy(&signature_fields));
                let signature = day.key.sign(policy.as_str().as_bytes());
                (("policy", policy), ("x-amz-signature", signature))
            }
            Version::V2 => {
                if let Some(token) = &creds.session_token {
                    signature_fields.push(("x-amz-security-token", token.expose().to_owned()));
                }
                let policy = encode(&form.policy(&signature_fields));
                let signature =
                    sigv2::sign(creds.secret_access_key.expose(), policy.as_str().as_bytes());
                // The access key id is exempt from the policy; the tutorial's form lists it
                // just before the policy.
                signature_fields.push(("AWSAccessKeyId", creds.access_key_id.clone()));
                (("Policy", policy), ("Signature", signature))
            }
        };
        let mut fields = Vec::with_capacity(form.fields.len() + signature_fields.len() + 2);
        fields.extend(
            form.fields
                .into_iter()
                .chain(signature_fields)
                .map(|(name, value)| (name, FieldValue::Text(value))),
        );
        fields.push((policy.0, policy.1.into()));
        fields.push((signature.0, signature.1.into()));
        SignedForm {
            fields,
            expiration: form.expiration,
            signed_at: now,
        }
    }
}

/// The base64 policy document: the string both signature versions sign.
fn encode(policy: &PostPolicy<'_>) -> Encoded {
    Encoded::base64(policy.to_json())
}

/// Whether a field name needs no escaping anywhere (`[A-Za-z0-9_-]`): every name a form
/// carries is one, which the renderers rely on.
#[cfg(test)]
pub(crate) fn is_plain_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The fields S3 does not require a condition for.
pub fn is_exempt(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    matches!(
        f.as_str(),
        "file" | "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid"
    ) || f.starts_with("x-ignore-")
}

/// Every non-exempt field is covered by a condition of `policy_json`. Used by tests and by
/// `signpost check`.
pub fn all_fields_covered<V>(fields: &[(&str, V)], policy_json: &[u8]) -> Result<(), String> {
    let doc: serde_json::Value = serde_json::from_slice(policy_json).map_err(|e| e.to_string())?;
    let conditions = doc["conditions"].as_array().ok_or("no conditions")?;
    let names: Vec<String> = conditions
        .iter()
        .filter_map(|c| match c {
            serde_json::Value::Object(m) => m.keys().next().cloned(),
            serde_json::Value::Array(a) => a
                .get(1)
                .and_then(|v| v.as_str())
                .and_then(|s| s.strip_prefix('$'))
                .map(str::to_owned),
            _ => None,
        })
        .collect();
    for (name, _) in fields {
        if !is_exempt(name) && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(format!("field {name} has no condition"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::secret::{Credentials, Secret};

    /// Renderers write field names unescaped: hold every name the signer adds (a session
    /// token included) to `[A-Za-z0-9_-]`, whatever the values hold.
    #[test]
    fn the_signers_field_names_need_no_escaping() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for version in [Version::V4, Version::V2] {
            let signer = Signer::new(
                version,
                Credentials {
                    access_key_id: "AKID<&\"'>".into(),
                    secret_access_key: Secret::new("secret"),
                    session_token: Some(Secret::new("token<&\"'>\\")),
                },
                "us-east-1",
            );
            let mut form = PostForm::new(now + chrono::Duration::minutes(10));
            form.bucket("b<>")
                .field("key", "k\"<&'>\\")
                .field("x-amz-meta-policy", "<script>");
            let signed = signer.sign(form, now);
            assert!(signed.get("x-amz-security-token").is_some(), "{version:?}");
            for (name, _) in &signed.fields {
                assert!(is_plain_name(name), "{version:?}: {name}");
            }
        }
    }
}
