//! Records: what signpost verified about an upload, written by the server beside the bucket's
//! uploads once the object's bytes passed every check. A record's existence means "verified";
//! its ETag says for which version of the object. Records live under `.signpost/records/`,
//! outside the key prefix, so they are never taken for uploads.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::thumbnails::ThumbnailRef;
use super::{S3Client, StoreError};
use crate::imaging::ThumbnailFormat;
use crate::upload::{Dimensions, ImageType, KeyPrefix, ObjectKey};

/// Where signpost keeps what it writes itself. Never serve it publicly.
pub const INTERNAL_PREFIX: &str = ".signpost/";
/// Where records live: `.signpost/records/<upload key>.json`.
pub const RECORDS_PREFIX: &str = ".signpost/records/";
/// 2: records list their thumbnails. Version 1 records (before thumbnails) are still read;
/// their uploads are confirmed again, which makes the thumbnails.
pub const RECORD_VERSION: u32 = 2;
/// Largest record read back.
const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A confirmed upload: every check passed for the object with this ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub key: ObjectKey,
    pub etag: String,
    pub size: u64,
    pub image_type: ImageType,
    /// Read from the image's own header.
    pub dimensions: Dimensions,
    /// The original file name, decoded from `x-amz-meta-filename` (the key's name if absent).
    pub filename: String,
    /// The upload id's time, or the store's Last-Modified.
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Whether its pixels were decoded (false: too large to decode within the limits, and
    /// checked from its structure only).
    pub decoded: bool,
    /// Who it belongs to, as signed into its form (`x-amz-meta-owner`).
    pub owner: String,
    /// The upload link it came through, if any.
    pub link: Option<String>,
    /// Its thumbnails, smallest first: none when its pixels were not decoded (or could not
    /// be made smaller); `None` when its record predates thumbnails.
    pub thumbnails: Option<Vec<ThumbnailRef>>,
    /// Its description for screen readers (`x-amz-meta-alt`), if it was given one.
    pub alt: Option<String>,
    /// The type it was stored as before confirmation corrected it to what its bytes are.
    pub corrected_from: Option<String>,
    /// The ETag it was uploaded with, when the copy that corrected its type gave it another
    /// (multipart uploads, encrypted buckets): what its browser still holds.
    pub uploaded_etag: Option<String>,
}

impl Confirmed {
    /// Whether `etag` names this version: its own ETag, or the one it was uploaded with.
    pub fn known_as(&self, etag: &str) -> bool {
        self.etag == etag || self.uploaded_etag.as_deref() == Some(etag)
    }

    /// Its alternative text: the description it was given, or one made from its name.
    pub fn alt_text(&self) -> String {
        self.alt.clone().unwrap_or_else(|| {
            crate::upload::default_alt(&self.filename, self.dimensions, self.image_type)
        })
    }

    /// A record written before thumbnails existed, of an image that can have them.
    pub fn needs_thumbnails(&self) -> bool {
        self.decoded && self.thumbnails.is_none()
    }
}

/// A thumbnail in the record's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ThumbnailJson {
    key: String,
    size: u32,
    width: u32,
    height: u32,
    content_type: String,
}

/// The record's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    version: u32,
    key: String,
    etag: String,
    size: u64,
    content_type: String,
    filename: String,
    width: u32,
    height: u32,
    uploaded_at: Option<String>,
    verified_at: String,
    decoded: bool,
    #[serde(default = "anonymous")]
    owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// Absent in version 1.
    #[serde(default)]
    thumbnails: Option<Vec<ThumbnailJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corrected_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uploaded_etag: Option<String>,
}

fn anonymous() -> String {
    crate::identity::ANONYMOUS.to_owned()
}

/// The record's key for an upload key.
pub fn record_key(key: &str) -> String {
    format!("{RECORDS_PREFIX}{key}.json")
}

/// Where the sweep sets aside an upload it could not read.
pub fn set_aside_key(key: &str) -> String {
    format!("{INTERNAL_PREFIX}set-aside/{key}.json")
}

impl Confirmed {
    fn to_record(&self, now: DateTime<Utc>) -> Record {
        Record {
            version: RECORD_VERSION,
            key: self.key.as_str().to_owned(),
            etag: self.etag.clone(),
            size: self.size,
            content_type: self.image_type.mime().to_owned(),
            filename: self.filename.clone(),
            width: self.dimensions.width,
            height: self.dimensions.height,
            uploaded_at: self.uploaded_at.map(crate::policy::time::iso8601_millis),
            verified_at: crate::policy::time::iso8601_millis(now),
            decoded: self.decoded,
            owner: self.owner.clone(),
            link: self.link.clone(),
            thumbnails: self.thumbnails.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| ThumbnailJson {
                        key: t.key.clone(),
                        size: t.size,
                        width: t.width,
                        height: t.height,
                        content_type: t.format.mime().to_owned(),
                    })
                    .collect()
            }),
            alt: self.alt.clone(),
            corrected_from: self.corrected_from.clone(),
            uploaded_etag: self.uploaded_etag.clone(),
        }
    }

    fn from_record(prefix: &KeyPrefix, r: Record) -> Option<Self> {
        if !(1..=RECORD_VERSION).contains(&r.version) {
            return None;
        }
        let thumbnails = match r.thumbnails {
            Some(ts) => Some(
                ts.into_iter()
                    .map(|t| {
                        Some(ThumbnailRef {
                            format: ThumbnailFormat::from_mime(&t.content_type)?,
                            key: t.key,
                            size: t.size,
                            width: t.width,
                            height: t.height,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            None => None,
        };
        Some(Self {
            key: ObjectKey::parse(prefix, &r.key)?,
            etag: r.etag,
            size: r.size,
            image_type: ImageType::from_mime(&r.content_type)?,
            dimensions: Dimensions {
                width: r.width,
                height: r.height,
            },
            filename: r.filename,
            uploaded_at: r
                .uploaded_at
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            decoded: r.decoded,
            owner: r.owner,
            link: r.link,
            thumbnails,
            alt: r.alt,
            corrected_from: r.corrected_from,
            uploaded_etag: r.uploaded_etag,
        })
    }
}

/// The record of `key`, if there is one that this signpost can read (a damaged or foreign
/// one is as good as none: the object is verified again).
pub async fn read(
    client: &S3Client,
    prefix: &KeyPrefix,
    key: &ObjectKey,
) -> Result<Option<Confirmed>, StoreError> {
    let Some(bytes) = client
        .get(&record_key(key.as_str()), MAX_RECORD_BYTES)
        .await?
    else {
        return Ok(None);
    };
    let record = serde_json::from_slice::<Record>(&bytes)
        .ok()
        .filter(|r| r.key == key.as_str())
        .and_then(|r| Confirmed::from_record(prefix, r));
    if record.is_none() {
        tracing::warn!(key = %key, "unreadable upload record; the upload is verified again");
    }
    Ok(record)
}

/// Write the record: the last step of a confirmation.
pub async fn write(client: &S3Client, c: &Confirmed) -> Result<(), StoreError> {
    // A struct of strings, numbers and booleans serialises without failing.
    let json = serde_json::to_vec(&c.to_record(Utc::now())).unwrap_or_default();
    client
        .put(
            &record_key(c.key.as_str()),
            Bytes::from(json),
            "application/json",
        )
        .await
}

/// Remove the record of an upload that is gone or refused.
pub async fn delete(client: &S3Client, key: &ObjectKey) -> Result<(), StoreError> {
    client.delete(&record_key(key.as_str())).await
}

/// The records signpost read or wrote lately, each for one (key, ETag): an object is
/// immutable per ETag, so a hit needs no request. Bounded; the least recently used go first.
/// Shared by the pages, the API and the sweep of one process.
#[derive(Debug, Clone)]
pub struct RecordCache(Arc<Mutex<LruCache<String, Confirmed>>>);

impl RecordCache {
    /// About a kilobyte each.
    pub const CAPACITY: usize = 10_000;

    pub fn new(capacity: NonZeroUsize) -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(capacity))))
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Confirmed>> {
        // A poisoned lock only means a panic elsewhere mid-update of a plain map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `key` when it is for `etag`.
    pub fn get(&self, key: &str, etag: &str) -> Option<Confirmed> {
        let mut cache = self.lock();
        cache.get(key).filter(|c| c.etag == etag).cloned()
    }

    pub fn put(&self, c: &Confirmed) {
        self.lock().put(c.key.as_str().to_owned(), c.clone());
    }

    pub fn remove(&self, key: &str) {
        self.lock().pop(key);
    }
}

impl Default for RecordCache {
    fn default() -> Self {
        Self::new(NonZeroUsize::new(Self::CAPACITY).expect("the capacity is not zero"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::UploadId;

    #[test]
    fn a_record_round_trips_and_lives_outside_the_prefix() {
        let prefix = KeyPrefix::parse("uploads/").unwrap();
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let key = ObjectKey::new(&prefix, UploadId::new(at, [7; 10]), "cat.png");
        let c = Confirmed {
            key: key.clone(),
            etag: "abc".into(),
            size: 10,
            image_type: ImageType::Png,
            dimensions: Dimensions {
                width: 3,
                height: 2,
            },
            filename: "Crème.png".into(),
            uploaded_at: Some(at),
            decoded: true,
            owner: "alice".into(),
            link: None,
            thumbnails: Some(vec![ThumbnailRef {
                key: "thumbs/uploads/x/cat.png/abc-400.jpg".into(),
                size: 400,
                width: 3,
                height: 2,
                format: ThumbnailFormat::Jpeg,
            }]),
            alt: Some("A cat on a mat".into()),
            corrected_from: Some("image/jpeg".into()),
            uploaded_etag: Some("0cc175b9c0f1b6a831c399e269772661-2".into()),
        };
        let json = serde_json::to_vec(&c.to_record(at)).unwrap();
        let back: Record = serde_json::from_slice(&json).unwrap();
        assert_eq!(Confirmed::from_record(&prefix, back), Some(c));
        let rk = record_key(key.as_str());
        assert!(rk.starts_with(INTERNAL_PREFIX) && !rk.starts_with(prefix.as_str()));
    }
}
