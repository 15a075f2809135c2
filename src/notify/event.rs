//! The event one confirmed upload becomes, and its stable id. Pure.

use chrono::SecondsFormat;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{Confirmed, ThumbnailLink};

/// Hex characters of an event id (128 bits of SHA-256).
pub const EVENT_ID_LEN: usize = 32;

/// The id of the event for the object `key` with this ETag: the same object always gets the
/// same id (so receivers can drop duplicates); a new upload under the same key (a new ETag)
/// gets a new one. `hex(sha256(key "\n" etag))`, first 32 characters.
pub fn event_id(key: &str, etag: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b"\n");
    h.update(crate::store::strip_quotes(etag).as_bytes());
    let mut id = hex::encode(h.finalize());
    id.truncate(EVENT_ID_LEN);
    id
}

/// The id of the event for the deletion of the object `key` with this ETag: its own, so
/// receivers that drop duplicates by id keep it.
pub fn deleted_event_id(key: &str, etag: &str) -> String {
    event_id(&format!("deleted\n{key}"), etag)
}

/// What happened to the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "upload.created")]
    Created,
    #[serde(rename = "upload.deleted")]
    Deleted,
}

/// One confirmed (or deleted) upload, as the receiver gets it (the field order is the JSON's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub bucket: String,
    pub key: String,
    /// Without quotes.
    pub etag: String,
    /// Bytes.
    pub size: u64,
    pub content_type: String,
    /// The original file name, as the browser sent it.
    pub filename: String,
    /// Its description for screen readers, or one made from its name when it has none.
    #[serde(default)]
    pub alt: String,
    /// Read from the image's own header.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Who it belongs to, as signed into its form.
    pub owner: String,
    /// RFC 3339 UTC with milliseconds: the upload id's time (when the form was signed).
    pub uploaded_at: Option<String>,
    /// Smallest first, with URLs signed for this delivery attempt; empty for a deletion and
    /// for an image too large to decode.
    #[serde(default)]
    pub thumbnails: Vec<ThumbnailLink>,
    /// For `upload.deleted`: when it was deleted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deleted_at: Option<String>,
}

impl Event {
    /// `upload.created`, for a confirmed upload, with its thumbnails' links.
    pub fn new(bucket: &str, c: &Confirmed, thumbnails: Vec<ThumbnailLink>) -> Self {
        Self {
            id: event_id(c.key.as_str(), &c.etag),
            kind: EventType::Created,
            bucket: bucket.to_owned(),
            key: c.key.as_str().to_owned(),
            etag: c.etag.clone(),
            size: c.size,
            content_type: c.image_type.mime().to_owned(),
            filename: c.filename.clone(),
            alt: c.alt_text(),
            width: Some(c.dimensions.width),
            height: Some(c.dimensions.height),
            owner: c.owner.clone(),
            uploaded_at: c
                .uploaded_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            deleted_at: None,
            thumbnails,
        }
    }

    /// `upload.deleted`, for an upload deleted through signpost.
    pub fn deleted(bucket: &str, c: &Confirmed, at: chrono::DateTime<chrono::Utc>) -> Self {
        let mut e = Self::new(bucket, c, Vec::new());
        e.id = deleted_event_id(c.key.as_str(), &c.etag);
        e.kind = EventType::Deleted;
        e.deleted_at = Some(at.to_rfc3339_opts(SecondsFormat::Millis, true));
        e
    }

    /// The JSON body, exactly the bytes that are signed and sent.
    pub fn body(&self) -> Vec<u8> {
        // Serializing a struct of strings, numbers and options into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::upload::{Dimensions, ImageType, KeyPrefix, ObjectKey, UploadId};

    #[test]
    fn ids_are_stable_per_key_and_etag() {
        let a = event_id("uploads/x/cat.png", "abc");
        assert_eq!(a.len(), EVENT_ID_LEN);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, event_id("uploads/x/cat.png", "\"abc\""));
        assert_ne!(a, event_id("uploads/x/cat.png", "abd"));
        assert_ne!(a, event_id("uploads/x/cat.pn", "gabc"));
        // Known value (printf 'k\ne' | sha256sum): the id never changes across releases.
        assert_eq!(event_id("k", "e"), "fe033f8461b13d45bfdb86894db9fb5c");
    }

    #[test]
    fn the_body_has_exactly_the_documented_fields() {
        let prefix = KeyPrefix::parse("uploads/").unwrap();
        let at = Utc.timestamp_millis_opt(1_767_225_600_123).unwrap();
        let key = ObjectKey::new(&prefix, UploadId::new(at, [7; 10]), "cat.png");
        let c = Confirmed {
            key: key.clone(),
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            size: 1234,
            image_type: ImageType::Png,
            dimensions: Dimensions {
                width: 64,
                height: 48,
            },
            filename: "Crème \"brûlée\".png".into(),
            uploaded_at: Some(at),
            decoded: true,
            owner: "alice".into(),
            link: None,
            thumbnails: None,
            alt: None,
            corrected_from: None,
            uploaded_etag: None,
        };
        let thumb = ThumbnailLink {
            width: 64,
            height: 48,
            url: "http://127.0.0.1:9000/signpost/thumbs/x?X-Amz-Signature=…".into(),
        };
        let e = Event::new("signpost", &c, vec![thumb.clone()]);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "id",
            "type",
            "owner",
            "bucket",
            "key",
            "etag",
            "size",
            "content_type",
            "filename",
            "alt",
            "width",
            "height",
            "uploaded_at",
            "thumbnails",
        ];
        expected.sort_unstable();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(v["id"], event_id(key.as_str(), &c.etag));
        assert_eq!(v["key"], key.as_str());
        assert_eq!(v["size"], 1234);
        assert_eq!(v["width"], 64);
        assert_eq!(v["content_type"], "image/png");
        assert_eq!(v["filename"], "Crème \"brûlée\".png");
        assert_eq!(v["uploaded_at"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["type"], "upload.created");
        assert_eq!(v["owner"], "alice");
        assert_eq!(v["alt"], "Crème brûlée");
        assert_eq!(v["thumbnails"], serde_json::json!([thumb]));
        // The body starts with the id, so a human reading logs sees it first.
        assert!(String::from_utf8(e.body()).unwrap().starts_with("{\"id\":"));
        // A deletion has its own id, type and time.
        let d = Event::deleted("signpost", &c, at);
        assert_ne!(d.id, e.id);
        assert_eq!(d.id, deleted_event_id(key.as_str(), &c.etag));
        let v: serde_json::Value = serde_json::from_slice(&d.body()).unwrap();
        assert_eq!(v["type"], "upload.deleted");
        assert!(v["deleted_at"].is_string());
        assert_eq!(v["thumbnails"], serde_json::json!([]));
    }
}
