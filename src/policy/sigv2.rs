//! AWS Signature Version 2 for POST policies: the original tutorial's
//! `Signature = base64(HMAC-SHA1(secret, base64(policy)))`.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::Encoded;

pub fn sign(secret: &str, base64_policy: &[u8]) -> Encoded {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(base64_policy);
    Encoded::base64(mac.finalize().into_bytes())
}
