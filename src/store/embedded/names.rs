//! The longest keys the embedded store keeps. s3s-fs names the files that hold an object's
//! type, metadata and ETag after its bucket and key, in unpadded URL-safe base64
//! (`.bucket-B.object-K.metadata.json`; `.bucket-B.object-K.upload-ID.metadata.json` while
//! a multipart upload is open), and a file name has at most 255 bytes. A longer key is
//! refused with a 500 after its bytes are stored, so signpost keeps every key it makes
//! within that limit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;

use crate::imaging::{SIZES, ThumbnailFormat};
use crate::store::{records, thumbnails};
use crate::upload::{KeyPrefix, MAX_SAFE_NAME, ObjectKey, UploadId};

/// The longest file name on Linux file systems (ext4, XFS, Btrfs, tmpfs).
const FILE_NAME_MAX: usize = 255;
/// The longest ETag: a multipart upload's, of up to 10,000 parts.
const LONGEST_ETAG: usize = 32 + "-10000".len();

/// The name of a file s3s-fs 0.14 keeps about an object beside its bytes, under its root:
/// `.bucket-B.object-K.<what>` (B and K in unpadded URL-safe base64).
pub fn side_file(bucket: &str, key: &str, what: &str) -> String {
    format!(
        ".bucket-{}.object-{}.{what}",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    )
}

/// Whether s3s-fs keeps `key` in `bucket`; with `multipart`, also as the key of a multipart
/// upload while it is open.
pub fn keeps(bucket: &str, key: &str, multipart: bool) -> bool {
    let what = if multipart {
        format!("upload-{}.metadata.json", uuid::Uuid::nil())
    } else {
        "metadata.json".to_owned()
    };
    side_file(bucket, key, &what).len() <= FILE_NAME_MAX
}

/// The longest file name an upload's key may end with in the embedded store: the key (which
/// may be a multipart upload's) and every key signpost derives from it (its record, its
/// set-aside marker, its thumbnails) are kept. `None` when not even a one-letter name fits.
pub fn longest_name(bucket: &str, prefix: &KeyPrefix, thumb_prefix: &KeyPrefix) -> Option<usize> {
    let etag = "f".repeat(LONGEST_ETAG);
    let size = SIZES.into_iter().max().unwrap_or(800);
    // Every id has the same length.
    let id = UploadId::new(DateTime::UNIX_EPOCH, [0; 10]);
    (1..=MAX_SAFE_NAME).rev().find(|&n| {
        let key = ObjectKey::new(prefix, id, &"a".repeat(n));
        let derived = [
            records::record_key(key.as_str()),
            records::set_aside_key(key.as_str()),
            thumbnails::thumbnail_key(thumb_prefix, &key, &etag, size, ThumbnailFormat::Webp),
        ];
        keeps(bucket, key.as_str(), true) && derived.iter().all(|k| keeps(bucket, k, false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> KeyPrefix {
        KeyPrefix::parse(p).unwrap()
    }

    #[test]
    fn the_limit_follows_s3s_fs_file_names() {
        // 8 + 11 + 8 + 214 + 14 = 255 for the bucket "signpost".
        assert!(keeps("signpost", &"k".repeat(160), false));
        assert!(!keeps("signpost", &"k".repeat(161), false));
        // A multipart upload's file also carries `.upload-` and its id.
        assert!(keeps("signpost", &"k".repeat(127), true));
        assert!(!keeps("signpost", &"k".repeat(128), true));
    }

    #[test]
    fn thumbnails_bound_the_name_and_long_prefixes_leave_no_room() {
        let (uploads, thumbs) = (prefix("uploads/"), prefix("thumbs/"));
        // `thumbs/uploads/<id>/<name>/<etag>-800.webp` is the longest derived key.
        let n = longest_name("signpost", &uploads, &thumbs).unwrap();
        assert_eq!(n, 60);
        let key = ObjectKey::new(
            &uploads,
            UploadId::random(chrono::Utc::now()),
            &"a".repeat(n),
        );
        let thumb = thumbnails::thumbnail_key(
            &thumbs,
            &key,
            &"f".repeat(LONGEST_ETAG),
            800,
            ThumbnailFormat::Webp,
        );
        assert_eq!(thumb.len(), 160);
        assert!(longest_name("signpost", &prefix(&"p/".repeat(60)), &thumbs).is_none());
    }
}
