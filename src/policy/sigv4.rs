//! AWS Signature Version 4 for POST policies (`AWS4-HMAC-SHA256`).
//!
//! The string to sign is the base64 policy itself; the key is derived from the secret, the
//! date, the region and the service. The derived key only changes once a day, so
//! [`KeyCache`] keeps the current one and the hot path is a single HMAC.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Datelike, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const SERVICE: &str = "s3";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub use super::time::{amz_date, scope_date};

/// `AKID/YYYYMMDD/REGION/s3/aws4_request`
pub fn credential(access_key_id: &str, date: &str, region: &str) -> String {
    let mut s = String::with_capacity(access_key_id.len() + date.len() + region.len() + 20);
    for part in [
        access_key_id,
        "/",
        date,
        "/",
        region,
        "/",
        SERVICE,
        "/aws4_request",
    ] {
        s.push_str(part);
    }
    s
}

/// The derived signing key. Its `Debug` does not show it: it is as good as the secret for
/// one day and one region.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigningKey([u8; 32]);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        let mut seed = Vec::with_capacity(4 + secret.len());
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret.as_bytes());
        let k_date = hmac_sha256(&seed, date.as_bytes());
        let k_region = hmac_sha256(&k_date, region.as_bytes());
        let k_service = hmac_sha256(&k_region, service.as_bytes());
        Self(hmac_sha256(&k_service, b"aws4_request"))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex HMAC-SHA256 of the string to sign (for POST: the base64 policy).
    pub fn sign(&self, string_to_sign: &[u8]) -> String {
        hex::encode(hmac_sha256(&self.0, string_to_sign))
    }
}

/// The signing key of the current day, shared by every request without a lock: readers load
/// an `Arc`, and the first request of a new day swaps in a freshly derived key.
#[derive(Default)]
pub struct KeyCache {
    current: ArcSwapOption<(u32, SigningKey)>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyCache")
    }
}

impl KeyCache {
    pub fn get(&self, secret: &str, now: DateTime<Utc>, region: &str) -> SigningKey {
        let day = now.year().unsigned_abs() * 10_000 + now.month() * 100 + now.day();
        if let Some(cached) = self.current.load().as_ref()
            && cached.0 == day
        {
            return cached.1;
        }
        let key = SigningKey::derive(secret, &scope_date(now), region, SERVICE);
        self.current.store(Some(Arc::new((day, key))));
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_cache_derives_again_on_a_new_day() {
        let cache = KeyCache::default();
        let d1 = Utc
            .with_ymd_and_hms(2015, 12, 29, 23, 59, 59)
            .single()
            .unwrap();
        let d2 = Utc
            .with_ymd_and_hms(2015, 12, 30, 0, 0, 0)
            .single()
            .unwrap();
        let k1 = cache.get("secret", d1, "us-east-1");
        assert_eq!(
            k1,
            SigningKey::derive("secret", "20151229", "us-east-1", "s3")
        );
        assert_eq!(cache.get("secret", d1, "us-east-1"), k1);
        let k2 = cache.get("secret", d2, "us-east-1");
        assert_eq!(
            k2,
            SigningKey::derive("secret", "20151230", "us-east-1", "s3")
        );
        assert_ne!(k1, k2);
    }

    #[test]
    fn debug_hides_the_key() {
        let k = SigningKey::derive("s", "20200101", "r", "s3");
        assert_eq!(format!("{k:?}"), "SigningKey([REDACTED])");
    }
}
