//! AWS Signature Version 4 for POST policies (`AWS4-HMAC-SHA256`).
//!
//! The string to sign is the base64 policy itself; the key is derived from the secret, the
//! date, the region and the service. The derived key only changes once a day, so
//! [`KeyCache`] keeps the current one and the hot path is a single HMAC.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Encoded;
use crate::secret::Secret;

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
    format!("{access_key_id}/{date}/{region}/{SERVICE}/aws4_request")
}

/// The derived signing key. Its `Debug` does not show it: it is as good as the secret for
/// one day and one region.
#[derive(Clone)]
pub struct SigningKey {
    bytes: [u8; 32],
    /// HMAC keyed with `bytes`: keying hashes two blocks, done once a day instead of once a
    /// signature.
    mac: Hmac<Sha256>,
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SigningKey {}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        // The seed is as good as the secret: wiped when dropped, as rusty-s3 does.
        let mut seed = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret.as_bytes());
        let k_date = hmac_sha256(&seed, date.as_bytes());
        let k_region = hmac_sha256(&k_date, region.as_bytes());
        let k_service = hmac_sha256(&k_region, service.as_bytes());
        let bytes = hmac_sha256(&k_service, b"aws4_request");
        // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
        let mac = Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes keys of any length");
        Self { bytes, mac }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Lowercase hex HMAC-SHA256 of the string to sign (for POST: the base64 policy).
    pub fn sign(&self, string_to_sign: &[u8]) -> Encoded {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign);
        Encoded::hex(mac.finalize().into_bytes())
    }
}

/// What a day's signatures share: the signing key and the `x-amz-credential` scope.
#[derive(Debug)]
pub struct DayKey {
    /// The UTC day the key is for.
    day: NaiveDate,
    pub key: SigningKey,
    /// `AKID/YYYYMMDD/REGION/s3/aws4_request`
    pub credential: String,
}

/// The current day's key for one access key and region, shared by every request without a
/// lock: readers borrow it, and the first request of a new day swaps in a freshly derived one.
pub struct KeyCache {
    access_key_id: String,
    secret: Secret,
    region: String,
    current: ArcSwapOption<DayKey>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(
        access_key_id: impl Into<String>,
        secret: Secret,
        region: impl Into<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret,
            region: region.into(),
            current: ArcSwapOption::empty(),
        }
    }

    /// The key and credential of `now`'s day.
    pub fn day(&self, now: DateTime<Utc>) -> Arc<DayKey> {
        let day = now.date_naive();
        if let Some(cached) = self.current.load_full()
            && cached.day == day
        {
            return cached;
        }
        let date = scope_date(now);
        let fresh = Arc::new(DayKey {
            day,
            key: SigningKey::derive(self.secret.expose(), &date, &self.region, SERVICE),
            credential: credential(&self.access_key_id, &date, &self.region),
        });
        self.current.store(Some(Arc::clone(&fresh)));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_cache_derives_again_on_a_new_day() {
        let cache = KeyCache::new("AKID", Secret::new("secret"), "us-east-1");
        let d1 = Utc
            .with_ymd_and_hms(2015, 12, 29, 23, 59, 59)
            .single()
            .unwrap();
        let d2 = Utc
            .with_ymd_and_hms(2015, 12, 30, 0, 0, 0)
            .single()
            .unwrap();
        let get = |t| {
            let d = cache.day(t);
            (d.key.clone(), d.credential.clone())
        };
        let (k1, c1) = get(d1);
        assert_eq!(
            k1,
            SigningKey::derive("secret", "20151229", "us-east-1", "s3")
        );
        assert_eq!(c1, "AKID/20151229/us-east-1/s3/aws4_request");
        assert_eq!(get(d1).0, k1);
        let (k2, c2) = get(d2);
        assert_eq!(
            k2,
            SigningKey::derive("secret", "20151230", "us-east-1", "s3")
        );
        assert_eq!(c2, "AKID/20151230/us-east-1/s3/aws4_request");
        assert_ne!(k1, k2);
    }

    #[test]
    fn the_keyed_state_signs_like_a_fresh_hmac() {
        let k = SigningKey::derive("secret", "20151229", "us-east-1", "s3");
        let first = k.sign(b"policy");
        assert_eq!(
            first.as_str(),
            hex::encode(hmac_sha256(k.as_bytes(), b"policy"))
        );
        // Signing must not disturb the kept state.
        assert_eq!(k.sign(b"policy"), first);
        assert_ne!(k.sign(b"other"), first);
    }

    #[test]
    fn debug_hides_the_key() {
        let k = SigningKey::derive("s", "20200101", "r", "s3");
        assert_eq!(format!("{k:?}"), "SigningKey([REDACTED])");
    }
}
