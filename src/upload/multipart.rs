//! Keys of multipart uploads, checked without state.
//!
//! A multipart upload takes many signed requests after its key is chosen (a part each,
//! then complete), each asked for with nothing but the key and S3's upload id. signpost
//! signs them only for keys it issued itself, and must know the size the file was declared
//! with when it signs `complete`. Both travel in the key: the 74 free bits of the version 8
//! UUID after its 48 bits of time hold the declared size (33 bits), a nonce (9 bits) and a
//! tag (32 bits), the truncated HMAC-SHA256, under a key derived from the store's secret,
//! of the whole key with the tag bits zeroed. Keys keep their `PREFIX/uuid/name` shape and
//! their time order.
//!
//! 32 bits are enough for what the tag guards: a forged key gets signed URLs for an upload
//! that does not exist (S3 binds an upload id to the key it was created for, and creates are
//! only signed for keys signpost chooses), and each guess costs an authenticated request.

use chrono::{DateTime, Utc};
use hmac::Mac;

use super::{KeyPrefix, ObjectKey, UploadId};
use crate::secret::Secret;

/// Largest size a key can declare: 33 bits (S3's largest object is 5 TiB, but its largest
/// multipart upload signpost allows is `--max-bytes`, at most 5 GiB).
pub const MAX_DECLARED: u64 = (1 << 33) - 1;
/// S3's smallest part (all but the last): what bounds the part count of a declared size.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's largest part number.
pub const MAX_PARTS: u32 = 10_000;

const TAG_BITS: u32 = 32;
const NONCE_BITS: u32 = 9;
const SIZE_BITS: u32 = 33;
const TAG_MASK: u128 = (1 << TAG_BITS) - 1;
const NONCE_MASK: u128 = (1 << NONCE_BITS) - 1;
const SIZE_MASK: u128 = (1 << SIZE_BITS) - 1;

/// The 74 free bits of the 10 random bytes of an [`UploadId`]: `Uuid::new_v8` overwrites
/// the high nibble of the first (the version) and the two high bits of the third (the
/// variant).
fn pack(payload: u128) -> [u8; 10] {
    let mut b = [0u8; 10];
    b[0] = ((payload >> 70) & 0x0f) as u8;
    b[1] = ((payload >> 62) & 0xff) as u8;
    b[2] = ((payload >> 56) & 0x3f) as u8;
    for (i, byte) in b[3..].iter_mut().enumerate() {
        *byte = ((payload >> (48 - 8 * i)) & 0xff) as u8;
    }
    b
}

fn unpack(id: UploadId) -> u128 {
    let b = &id.as_bytes()[6..];
    let mut payload = (u128::from(b[0] & 0x0f) << 70)
        | (u128::from(b[1]) << 62)
        | (u128::from(b[2] & 0x3f) << 56);
    for (i, byte) in b[3..].iter().enumerate() {
        payload |= u128::from(*byte) << (48 - 8 * i);
    }
    payload
}

fn tag_of(secret: &Secret, key_without_tag: &str) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = secret.hmac_sha256();
    mac.update(b"signpost multipart key\n");
    mac.update(key_without_tag.as_bytes());
    mac
}

fn key_with(prefix: &KeyPrefix, at: DateTime<Utc>, payload: u128, name: &str) -> ObjectKey {
    ObjectKey::new(prefix, UploadId::new(at, pack(payload)), name)
}

/// A fresh key for a multipart upload of `declared` bytes (at most [`MAX_DECLARED`]),
/// signed at `at`, for a file whose safe name is `name`. `nonce`: random bits, so two
/// files of one name and size signed in the same millisecond get two keys.
pub fn issue(
    secret: &Secret,
    prefix: &KeyPrefix,
    at: DateTime<Utc>,
    declared: u64,
    nonce: u16,
    name: &str,
) -> ObjectKey {
    let payload = (u128::from(declared.min(MAX_DECLARED)) << (TAG_BITS + NONCE_BITS))
        | ((u128::from(nonce) & NONCE_MASK) << TAG_BITS);
    let untagged = key_with(prefix, at, payload, name);
    let tag = tag_of(secret, untagged.as_str()).finalize().into_bytes();
    let tag = u128::from(u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]));
    key_with(prefix, at, payload | tag, name)
}

/// The size `key` was issued for, if signpost issued it (under this secret).
pub fn declared_size(secret: &Secret, key: &ObjectKey) -> Option<u64> {
    let id = key.id();
    let at = id.time()?;
    let payload = unpack(id);
    // The key must be spelled exactly as `issue` spells it (its UUID's version and variant
    // bits included): one upload, one key.
    let id_at = key.as_str().len() - key.file_name().len() - 37;
    let prefix = KeyPrefix::parse(&key.as_str()[..id_at]).ok()?;
    if key_with(&prefix, at, payload, key.file_name()) != *key {
        return None;
    }
    let untagged = key_with(&prefix, at, payload & !TAG_MASK, key.file_name());
    let tag = u32::try_from(payload & TAG_MASK).ok()?.to_be_bytes();
    tag_of(secret, untagged.as_str())
        .verify_truncated_left(&tag)
        .ok()?;
    let size = u64::try_from((payload >> (TAG_BITS + NONCE_BITS)) & SIZE_MASK).ok()?;
    (size > 0).then_some(size)
}

/// How many parts an upload of `declared` bytes can need: every part but the last is at
/// least [`MIN_PART_BYTES`].
pub fn part_cap(declared: u64) -> u32 {
    u32::try_from(declared.div_ceil(MIN_PART_BYTES))
        .unwrap_or(MAX_PARTS)
        .clamp(1, MAX_PARTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secret() -> Secret {
        Secret::new("multipart-key-for-tests")
    }

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("uploads/").unwrap()
    }

    #[test]
    fn an_issued_key_keeps_its_shape_time_and_size() {
        let at = Utc.timestamp_millis_opt(1_767_268_800_123).unwrap();
        let key = issue(&secret(), &prefix(), at, 9_437_184, 77, "photo.png");
        let parsed = ObjectKey::parse(&prefix(), key.as_str()).expect("a signpost key");
        assert_eq!(parsed.id().time(), Some(at));
        assert_eq!(parsed.file_name(), "photo.png");
        assert_eq!(declared_size(&secret(), &parsed), Some(9_437_184));
        let big = issue(&secret(), &prefix(), at, 5 << 30, 511, "a.png");
        assert_eq!(declared_size(&secret(), &big), Some(5 << 30));
    }

    #[test]
    fn keys_signpost_did_not_issue_are_refused() {
        let at = Utc::now();
        let key = issue(&secret(), &prefix(), at, 1000, 1, "cat.png");
        // Another secret, another name, another size, a random id.
        assert_eq!(declared_size(&Secret::new("other"), &key), None);
        let renamed = ObjectKey::new(&prefix(), key.id(), "dog.png");
        assert_eq!(declared_size(&secret(), &renamed), None);
        let random = ObjectKey::new(&prefix(), UploadId::random(at), "cat.png");
        assert_eq!(declared_size(&secret(), &random), None);
        let other_prefix = KeyPrefix::parse("other/").unwrap();
        let moved = ObjectKey::new(&other_prefix, key.id(), "cat.png");
        assert_eq!(declared_size(&secret(), &moved), None);
        // Every bit of the payload counts.
        let payload = unpack(key.id());
        for bit in 0..74 {
            let flipped = key_with(&prefix(), at, payload ^ (1 << bit), "cat.png");
            assert_eq!(declared_size(&secret(), &flipped), None, "bit {bit}");
        }
    }

    #[test]
    fn the_payload_round_trips_through_the_uuid() {
        for payload in [0, 1, (1u128 << 74) - 1, 0x2a5_5555_5555_5555_5555] {
            let id = UploadId::new(Utc::now(), pack(payload));
            assert_eq!(unpack(id), payload & ((1 << 74) - 1));
        }
    }

    #[test]
    fn parts_are_capped_by_the_declared_size() {
        assert_eq!(part_cap(1), 1);
        assert_eq!(part_cap(MIN_PART_BYTES), 1);
        assert_eq!(part_cap(MIN_PART_BYTES + 1), 2);
        assert_eq!(part_cap(12 * 1024 * 1024), 3);
        assert_eq!(part_cap(MAX_DECLARED), 1639);
        assert_eq!(part_cap(u64::MAX), MAX_PARTS);
    }
}
