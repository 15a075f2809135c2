//! The ordered form fields of a POST upload and the signer that seals them.
//!
//! A [`PostForm`] pairs every field with the condition that covers it, so a field without a
//! condition cannot be built. [`Signer::sign`] adds the signature fields (and their
//! conditions), serialises the policy and returns the fields in the order a form must post
//! them. The `file` field is never among them: it always comes last, after these.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::document::PostPolicy;
use super::{sigv2, sigv4};
use crate::secret::Credentials;

/// The fields of an upload form before signing, each with its condition. Values borrow
/// where they can (the bucket, the redirect URL, constants): signing allocates only what
/// is new in each form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostForm<'a> {
    expiration: DateTime<Utc>,
    bucket: Option<Cow<'a, str>>,
    /// In form order. Each must carry exactly its value, unless `prefixes` says otherwise.
    /// Kept in the shape a [`SignedForm`] holds them: signing adds to this vector.
    fields: Vec<(&'static str, Cow<'a, str>)>,
    /// `["starts-with", "$field", prefix]` rules: a field's index and its prefix (the form
    /// carries a default the user may change, e.g. a `<select>`).
    prefixes: Vec<(usize, Cow<'static, str>)>,
    length: Option<(u64, u64)>,
    /// Index of the first signature field, once the signer has added them.
    signature_start: Option<usize>,
}

impl<'a> PostForm<'a> {
    pub fn new(expiration: DateTime<Utc>) -> Self {
        Self {
            expiration,
            bucket: None,
            // The most a form carries: seven upload fields (key, ACL, type, completion, name,
            // width, height) and six of the signature's (algorithm, credential, date, token,
            // policy, signature). Signing adds to it without growing it.
            fields: Vec::with_capacity(13),
            prefixes: Vec::new(),
            length: None,
            signature_start: None,
        }
    }

    /// `{"bucket": name}`: not a form field (the form's URL names the bucket), but S3 checks it.
    pub fn bucket(&mut self, name: impl Into<Cow<'a, str>>) -> &mut Self {
        self.bucket = Some(name.into());
        self
    }

    /// A field that must carry exactly this value.
    pub fn field(&mut self, name: &'static str, value: impl Into<Cow<'a, str>>) -> &mut Self {
        self.fields.push((name, value.into()));
        self
    }

    /// A field whose value may be anything that starts with `prefix`; `value` is its default.
    pub fn field_starting_with(
        &mut self,
        name: &'static str,
        value: impl Into<Cow<'a, str>>,
        prefix: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        self.prefixes.push((self.fields.len(), prefix.into()));
        self.fields.push((name, value.into()));
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

    /// The policy for these fields, in field order: bucket first, then each field, then the
    /// length range.
    fn policy(&self) -> PostPolicy<'_> {
        let mut p = PostPolicy::with_capacity(self.expiration, self.fields.len() + 2);
        if let Some(bucket) = &self.bucket {
            p.exact("bucket", bucket.as_ref());
        }
        // The length range goes right after the upload's own fields, before the signature's.
        let split = self.signature_start.unwrap_or(self.fields.len());
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i == split
                && let Some((min, max)) = self.length
            {
                p.content_length_range(min, max);
            }
            match self.prefixes.iter().find(|(at, _)| *at == i) {
                Some((_, prefix)) => p.starts_with(*name, prefix.as_ref()),
                None => p.exact(*name, value.as_ref()),
            };
        }
        if split >= self.fields.len()
            && let Some((min, max)) = self.length
        {
            p.content_length_range(min, max);
        }
        p
    }
}

/// A signed form: the fields to post, in order, before the `file` field. Names are the
/// signing code's own literals, so they never need escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedForm<'a> {
    pub fields: Vec<(&'static str, Cow<'a, str>)>,
    pub expiration: DateTime<Utc>,
    /// When the signature was made (`x-amz-date` for SigV4).
    pub signed_at: DateTime<Utc>,
}

impl SignedForm<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
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
    region: String,
    keys: sigv4::KeyCache,
}

impl Signer {
    pub fn new(version: Version, credentials: Credentials, region: impl Into<String>) -> Self {
        Self {
            version,
            credentials,
            region: region.into(),
            keys: sigv4::KeyCache::default(),
        }
    }

    /// Add the signature fields and their conditions, then sign.
    pub fn sign<'a>(&'a self, mut form: PostForm<'a>, now: DateTime<Utc>) -> SignedForm<'a> {
        let creds = &self.credentials;
        form.signature_start = Some(form.fields.len());
        match self.version {
            Version::V4 => self.keys.with(
                &creds.access_key_id,
                creds.secret_access_key.expose(),
                now,
                &self.region,
                |day| {
                    form.field("x-amz-algorithm", sigv4::ALGORITHM);
                    form.field("x-amz-credential", day.credential.clone());
                    form.field("x-amz-date", sigv4::amz_date(now));
                    if let Some(token) = &creds.session_token {
                        form.field("x-amz-security-token", token.expose());
                    }
                    let policy = encode(&form.policy());
                    let signature = day.key.sign(policy.as_bytes());
                    finish(
                        form,
                        now,
                        [("policy", policy), ("x-amz-signature", signature)],
                    )
                },
            ),
            Version::V2 => {
                if let Some(token) = &creds.session_token {
                    form.field("x-amz-security-token", token.expose());
                }
                let policy = encode(&form.policy());
                let signature = sigv2::sign(creds.secret_access_key.expose(), policy.as_bytes());
                let mut signed = finish(form, now, [("Policy", policy), ("Signature", signature)]);
                // The access key id is exempt from the policy; the tutorial's form lists it
                // just before the policy.
                let at = signed.fields.len() - 2;
                signed.fields.insert(
                    at,
                    (
                        "AWSAccessKeyId",
                        Cow::Borrowed(creds.access_key_id.as_str()),
                    ),
                );
                signed
            }
        }
    }
}

fn encode(policy: &PostPolicy<'_>) -> String {
    // The JSON is only an intermediate: each thread reuses one buffer for it.
    thread_local! {
        static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    JSON.with_borrow_mut(|json| {
        json.clear();
        policy.write_json(json);
        // SIMD base64 (the crate s3s already brings): a third of the cost of a scalar
        // encoder on a policy of ~650 bytes.
        let encoded = base64_simd::STANDARD.encode_to_string(&json[..]);
        // A policy is a few hundred bytes; never keep an outsized one around.
        if json.capacity() > 64 * 1024 {
            *json = Vec::new();
        }
        encoded
    })
}

fn finish<'a>(
    form: PostForm<'a>,
    now: DateTime<Utc>,
    tail: [(&'static str, String); 2],
) -> SignedForm<'a> {
    let mut fields = form.fields;
    fields.extend(tail.into_iter().map(|(n, v)| (n, Cow::Owned(v))));
    SignedForm {
        fields,
        expiration: form.expiration,
        signed_at: now,
    }
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
