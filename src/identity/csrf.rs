//! Anti-CSRF tokens for `POST /uploads/delete`: an HMAC of (user, key, expiry) made when the
//! page is rendered, so they work without cookies (proxy-header users have none). A token is
//! good for one user and one upload, for an hour.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// How long a page's Delete button works.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(1);

fn mac(key: &Secret, user: &str, upload_key: &str, expires: i64) -> Hmac<Sha256> {
    let mut m = key.hmac_sha256();
    m.update(b"delete\n");
    m.update(user.as_bytes());
    m.update(b"\n");
    m.update(upload_key.as_bytes());
    m.update(b"\n");
    m.update(expires.to_string().as_bytes());
    m
}

/// `EXPIRY.HEXMAC`
pub fn make(key: &Secret, user: &str, upload_key: &str, now: DateTime<Utc>) -> String {
    let expires = (now + LIFETIME).timestamp();
    let tag = mac(key, user, upload_key, expires).finalize().into_bytes();
    format!("{expires}.{}", hex::encode(tag))
}

/// Whether `token` was made for this user and upload, and is still good.
pub fn check(key: &Secret, user: &str, upload_key: &str, token: &str, now: DateTime<Utc>) -> bool {
    let Some((expires, tag)) = token.split_once('.') else {
        return false;
    };
    let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
        return false;
    };
    expires > now.timestamp()
        && mac(key, user, upload_key, expires)
            .verify_slice(&tag)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_for_one_user_one_upload_one_hour() {
        let key = Secret::new("csrf-key");
        let now = Utc::now();
        let t = make(&key, "alice", "uploads/a/x.png", now);
        assert!(check(&key, "alice", "uploads/a/x.png", &t, now));
        assert!(!check(&key, "bob", "uploads/a/x.png", &t, now));
        assert!(!check(&key, "alice", "uploads/b/x.png", &t, now));
        assert!(!check(
            &key,
            "alice",
            "uploads/a/x.png",
            &t,
            now + chrono::Duration::hours(2)
        ));
        assert!(!check(
            &Secret::new("other"),
            "alice",
            "uploads/a/x.png",
            &t,
            now
        ));
        assert!(!check(&key, "alice", "uploads/a/x.png", "garbage", now));
    }
}
