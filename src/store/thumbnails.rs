//! Thumbnails in the bucket: `<thumb prefix><upload key>/<etag>-<size>.<ext>`, written by
//! signpost when it confirms an upload, outside the key prefix so that they are never taken
//! for uploads. The ETag in the name makes each one immutable (a replaced upload gets new
//! ones), so browsers may keep them for a year.

use bytes::Bytes;

use super::{S3Client, StoreError};
use crate::imaging::{Thumbnail, ThumbnailFormat};
use crate::upload::{KeyPrefix, ObjectKey};

/// Sent with every thumbnail, and returned by the store when it is read.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// A stored thumbnail, as the record lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailRef {
    pub key: String,
    /// The longest side it was made for (400 or 800).
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub format: ThumbnailFormat,
}

/// The folder of an upload's thumbnails.
pub fn folder(thumb_prefix: &KeyPrefix, key: &ObjectKey) -> String {
    format!("{}{}/", thumb_prefix.as_str(), key.as_str())
}

pub fn thumbnail_key(
    thumb_prefix: &KeyPrefix,
    key: &ObjectKey,
    etag: &str,
    size: u32,
    format: ThumbnailFormat,
) -> String {
    format!(
        "{}{etag}-{size}.{}",
        folder(thumb_prefix, key),
        format.extension()
    )
}

/// Write the thumbnails of `key` as it is at `etag`.
pub async fn store(
    client: &S3Client,
    thumb_prefix: &KeyPrefix,
    key: &ObjectKey,
    etag: &str,
    thumbnails: Vec<Thumbnail>,
) -> Result<Vec<ThumbnailRef>, StoreError> {
    let mut stored = Vec::with_capacity(thumbnails.len());
    for t in thumbnails {
        let thumb_key = thumbnail_key(thumb_prefix, key, etag, t.size, t.format);
        client
            .put_with_cache_control(
                &thumb_key,
                Bytes::from(t.bytes),
                t.format.mime(),
                CACHE_CONTROL,
            )
            .await?;
        stored.push(ThumbnailRef {
            key: thumb_key,
            size: t.size,
            width: t.width,
            height: t.height,
            format: t.format,
        });
    }
    Ok(stored)
}

/// Remove these thumbnails (those of an upload's earlier version).
pub async fn remove(client: &S3Client, thumbnails: &[ThumbnailRef]) -> Result<(), StoreError> {
    for t in thumbnails {
        client.delete(&t.key).await?;
    }
    Ok(())
}

/// Remove every thumbnail of `key`, whatever its version (the upload is deleted).
pub async fn remove_all(
    client: &S3Client,
    thumb_prefix: &KeyPrefix,
    key: &ObjectKey,
) -> Result<(), StoreError> {
    let folder = folder(thumb_prefix, key);
    loop {
        let listing = client.list(&folder, None, 100).await?;
        for o in &listing.objects {
            client.delete(&o.key).await?;
        }
        if !listing.truncated {
            return Ok(());
        }
    }
}
