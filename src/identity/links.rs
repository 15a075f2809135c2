//! Upload links, the "file request" people share: `signpost link --owner NAME --uploads N
//! --expires 24h` prints `PUBLIC_URL/l/TOKEN`. The token is the link's id, owner, budget and
//! expiry, signed with HMAC-SHA256 under the link key (`--link-key`, or one generated once and
//! kept in the bucket so that every instance shares it). The link's record in the bucket says
//! whether it was revoked; its budget counts confirmed uploads, also kept in the bucket.
//! Pure: tokens, records and their keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Where links live: `.signpost/links/<id>.json`, and their confirmed uploads under
/// `.signpost/links/<id>/confirmed/`.
pub const LINKS_PREFIX: &str = ".signpost/links/";
/// The generated link key, when `--link-key` is not given.
pub const LINK_KEY_OBJECT: &str = ".signpost/link-key";

/// What a link allows, as signed into its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: String,
    pub owner: String,
    /// Confirmed uploads allowed.
    pub uploads: u32,
    pub expires_at: DateTime<Utc>,
}

/// A link's record in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    #[serde(flatten)]
    pub link: Link,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked: bool,
}

pub fn record_key(id: &str) -> String {
    format!("{LINKS_PREFIX}{id}.json")
}

pub fn confirmed_prefix(id: &str) -> String {
    format!("{LINKS_PREFIX}{id}/confirmed/")
}

/// The marker of one confirmed upload: ordered by when its form was signed, so the first
/// `uploads` markers are the ones that count.
pub fn confirmed_key(id: &str, signed_at_ms: i64, upload_id: &str) -> String {
    format!(
        "{}{:015}-{upload_id}",
        confirmed_prefix(id),
        signed_at_ms.max(0)
    )
}

/// A link id: 16 random bytes, base64url.
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Whether a string can be a link id (what [`new_id`] makes).
pub fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn mac(key: &Secret, payload: &str) -> Vec<u8> {
    let mut m = key.hmac_sha256();
    m.update(payload.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The token of a link: its JSON, base64url, a dot, and its MAC.
pub fn sign(key: &Secret, link: &Link) -> String {
    // A struct of strings, a number and a time serializes without failing.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(link).unwrap_or_default());
    let tag = URL_SAFE_NO_PAD.encode(mac(key, &payload));
    format!("{payload}.{tag}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this upload link is not valid")]
    Invalid,
    #[error("this upload link has expired")]
    Expired,
    #[error("this upload link was revoked")]
    Revoked,
    #[error("this upload link has been used for all the uploads it allows")]
    Exhausted,
}

impl LinkError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "link_invalid",
            Self::Expired => "link_expired",
            Self::Revoked => "link_revoked",
            Self::Exhausted => "link_exhausted",
        }
    }
}

/// Check a token's MAC and expiry; the caller checks revocation against the link's record.
pub fn verify(key: &Secret, token: &str, now: DateTime<Utc>) -> Result<Link, LinkError> {
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| LinkError::Invalid)?;
    // Constant-time comparison of the MACs.
    let mut m = key.hmac_sha256();
    m.update(payload.as_bytes());
    m.verify_slice(&tag).map_err(|_| LinkError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| LinkError::Invalid)?;
    let link: Link = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
    if !valid_id(&link.id) || !super::valid_owner(&link.owner) {
        return Err(LinkError::Invalid);
    }
    if now >= link.expires_at {
        return Err(LinkError::Expired);
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_its_link_and_nothing_else_passes() {
        let key = Secret::new("link-key-0123456789");
        let now = Utc::now();
        let link = Link {
            id: new_id(),
            owner: "alice".into(),
            uploads: 3,
            expires_at: now + chrono::Duration::hours(1),
        };
        let token = sign(&key, &link);
        assert_eq!(verify(&key, &token, now), Ok(link.clone()));
        assert_eq!(
            verify(&Secret::new("other"), &token, now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            verify(&key, &token, now + chrono::Duration::hours(2)),
            Err(LinkError::Expired)
        );
        // A changed payload does not match its MAC.
        let (_, tag) = token.split_once('.').unwrap();
        let mut more = link.clone();
        more.uploads = 1000;
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&more).unwrap())
        );
        assert_eq!(verify(&key, &forged, now), Err(LinkError::Invalid));
        assert_eq!(verify(&key, "garbage", now), Err(LinkError::Invalid));
    }

    #[test]
    fn markers_sort_by_signing_time() {
        let a = confirmed_key("L", 1_700_000_000_000, "u1");
        let b = confirmed_key("L", 1_700_000_000_001, "u0");
        assert!(a < b);
        assert!(a.starts_with(&confirmed_prefix("L")));
    }
}
