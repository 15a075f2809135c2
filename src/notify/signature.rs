//! The events' signature, the way payment and code-hosting webhooks sign theirs:
//!
//! `Signpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//!
//! The timestamp is inside the signed bytes, so a receiver that refuses old timestamps
//! (five minutes is usual) also refuses replays. Pure.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

pub const SIGNATURE_HEADER: &str = "Signpost-Signature";
pub const EVENT_ID_HEADER: &str = "Signpost-Event-Id";

fn mac(secret: &Secret, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = secret.hmac_sha256();
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed at `t` (Unix seconds).
pub fn sign(secret: &Secret, t: i64, body: &[u8]) -> String {
    let digest = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(digest))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature's timestamp is {age} s away from now (tolerance {tolerance} s)")]
    Stale { age: i64, tolerance: i64 },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// What a receiver does: parse the header, check the timestamp is within `tolerance`
/// seconds of `now`, and compare the HMAC in constant time. Several `v1=` entries are
/// allowed (any may match), for secret rotation.
pub fn verify(
    secret: &Secret,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age = (now - t).abs();
    if age > tolerance {
        return Err(SignatureError::Stale { age, tolerance });
    }
    if candidates
        .iter()
        .any(|c| mac(secret, t, body).verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("whsec-test-0123456789")
    }

    #[test]
    fn the_header_is_t_and_v1_over_t_dot_body() {
        let body = br#"{"id":"x"}"#;
        let h = sign(&secret(), 1_767_225_600, body);
        // Computed independently:
        // printf '1767225600.{"id":"x"}' | openssl dgst -sha256 -hmac whsec-test-0123456789
        assert_eq!(
            h,
            "t=1767225600,v1=12930fbf7baa8cb14a856a4b5979dc9e27e6aac6d9254667385195a0c62d2776"
        );
    }

    #[test]
    fn a_known_vector() {
        // printf '%s' '1700000000.hello' | openssl dgst -sha256 -hmac 'whsec-test-0123456789'
        assert_eq!(
            sign(&secret(), 1_700_000_000, b"hello"),
            "t=1700000000,v1=51fca8963b285f976019dd6909f0351f9367327b581c0663e88a4962e8cdf8aa"
        );
    }

    #[test]
    fn verification_accepts_the_real_thing_and_nothing_else() {
        let body = b"{\"a\":1}";
        let h = sign(&secret(), 1000, body);
        assert_eq!(verify(&secret(), &h, body, 1000, 300), Ok(()));
        assert_eq!(verify(&secret(), &h, body, 1200, 300), Ok(()));
        assert_eq!(
            verify(&secret(), &h, b"{\"a\":2}", 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&Secret::new("another-secret-0000"), &h, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(&secret(), &h, body, 2000, 300),
            Err(SignatureError::Stale { .. })
        ));
        // A changed timestamp breaks the signature.
        let forged = h.replace("t=1000", "t=1001");
        assert_eq!(
            verify(&secret(), &forged, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "",
            "t=1000",
            "v1=00",
            "t=x,v1=00",
            "t=1000,v1=zz",
            "garbage",
        ] {
            assert_eq!(
                verify(&secret(), bad, body, 1000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Rotation: a second v1 entry may be the one that matches.
        let rotated = format!("t=1000,v1={},{}", "00".repeat(32), &h[7..]);
        assert_eq!(verify(&secret(), &rotated, body, 1000, 300), Ok(()));
    }

    #[test]
    fn the_header_never_contains_the_secret() {
        let h = sign(&secret(), 1, b"");
        assert!(!h.contains(secret().expose()));
    }
}
