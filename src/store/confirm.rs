//! Confirming an upload. The redirect's query and the confirm API are untrusted, so the
//! object is looked up in the store; if it has no record for its current ETag, its bytes are
//! read and verified (type, pixel limit, structure, a bounded decode, off the async workers),
//! its thumbnails are made from the decoded pixels and stored, and only then is its record
//! written. The record comes last: its existence means "verified". The gallery, the sweep
//! and the events all build on it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::records::{self, Confirmed, RecordCache};
use super::{ObjectHead, S3Client, StoreError, strip_quotes, thumbnails};
use crate::config::Settings;
use crate::identity::links::LinkError;
use crate::imaging::{self, DecodeLimits, VerifyError, verify};
use crate::upload::{ImageType, KeyPrefix, Limits, ObjectKey, decode_metadata};

/// What is read of an object too large to verify whole: enough for any image header.
pub const PROBE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    #[error("this upload names another bucket than signpost's")]
    WrongBucket,
    #[error("this key is outside the upload folder")]
    KeyOutsidePrefix,
    #[error("this ETag is not valid")]
    BadEtag,
    #[error(
        "we could not find this upload; it may have expired before it was sent, or been removed"
    )]
    NotFound,
    #[error("the stored file is not the one described (its ETag differs)")]
    EtagMismatch,
    /// Refused for good: why, as a kind (which gives the code and status) and in words.
    #[error("{reason}{}", if *.deleted { "; the file was deleted" } else { "; it will be removed" })]
    Rejected {
        kind: RejectionKind,
        reason: String,
        deleted: bool,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ConfirmError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongBucket => "wrong_bucket",
            Self::KeyOutsidePrefix => "key_outside_prefix",
            Self::BadEtag => "etag_invalid",
            Self::NotFound => "upload_not_found",
            Self::EtagMismatch => "etag_mismatch",
            Self::Rejected { kind, .. } => kind.code(),
            Self::Store(e) => e.code(),
        }
    }
}

/// Why an upload is refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Its bytes are no image signpost accepts (or a broken one, or a pixel bomb).
    NotAnImage,
    /// Larger than the size limit: a multipart upload can outgrow its signature.
    TooLarge,
    /// Past its link's budget, or its link no longer valid.
    Link(LinkError),
}

impl RejectionKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAnImage => "not_an_image",
            Self::TooLarge => "file_too_large",
            Self::Link(e) => e.code(),
        }
    }
}

/// What to do with a file whose bytes are certainly not an allowed image: the background
/// sweep and the API delete it; a page request never deletes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReject {
    Delete,
    Keep,
}

/// What confirmations need, shared by the pages, the API and the sweep: the rules, and a
/// bound on the verifications that read and decode at once (each holds up to
/// `max_decode_bytes` of the file and its decoder's memory).
#[derive(Debug, Clone)]
pub struct Verifier {
    pub prefix: KeyPrefix,
    pub limits: Limits,
    pub decode: DecodeLimits,
    /// Objects up to this size are read whole and decoded; larger ones are checked from
    /// their first bytes.
    pub max_decode_bytes: u64,
    /// Where thumbnails are written.
    pub thumb_prefix: KeyPrefix,
    /// The records read or written lately.
    pub cache: RecordCache,
    /// The canned ACL uploads are signed with, sent again by a copy that corrects a type.
    pub acl: Option<String>,
    permits: Arc<Semaphore>,
    /// Why this process deleted the uploads it deleted lately.
    rejections: Rejections,
    /// One confirmation or deletion per key at a time in this process: a second confirmation
    /// (the sweep and the page at once, say) waits, then finds the record the first one
    /// wrote; a deletion waits, then removes that record too.
    in_flight: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

impl Verifier {
    /// Verifications at once: each may hold a file and its decoded pixels.
    pub const CONCURRENCY: usize = 2;

    pub fn new(
        prefix: KeyPrefix,
        thumb_prefix: KeyPrefix,
        limits: Limits,
        decode: DecodeLimits,
        max_decode_bytes: u64,
    ) -> Self {
        Self {
            prefix,
            limits,
            decode,
            max_decode_bytes,
            thumb_prefix,
            cache: RecordCache::default(),
            acl: None,
            permits: Arc::new(Semaphore::new(Self::CONCURRENCY)),
            rejections: Rejections::default(),
            in_flight: Arc::default(),
        }
    }

    /// Hold `key` against every other confirmation or deletion of it in this process, until
    /// the guard drops.
    pub async fn exclusive(&self, key: &ObjectKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            // A poisoned lock only means another confirmation panicked: the map is still sound.
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key.as_str()).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    map.retain(|_, w| w.strong_count() > 0);
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.as_str().to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// The verifier the settings describe.
    pub fn for_settings(settings: &Settings) -> Self {
        Self {
            acl: settings.acl.clone(),
            ..Self::new(
                settings.prefix.clone(),
                settings.thumb_prefix.clone(),
                settings.limits.clone(),
                settings.decode,
                settings.max_decode_bytes,
            )
        }
    }

    /// The record of `key` at `etag`, from the cache or the bucket.
    pub async fn recorded(
        &self,
        client: &S3Client,
        key: &ObjectKey,
        etag: &str,
    ) -> Result<Option<Confirmed>, StoreError> {
        if let Some(c) = self.cache.get(key.as_str(), etag) {
            return Ok(Some(c));
        }
        let Some(c) = records::read(client, &self.prefix, key).await? else {
            return Ok(None);
        };
        if c.etag != etag {
            return Ok(None);
        }
        // One that predates thumbnails is about to change (here or in another instance).
        if !c.needs_thumbnails() {
            self.cache.put(&c);
        }
        Ok(Some(c))
    }
}

/// The uploads this process deleted lately as not allowed images, with why. The sweep
/// confirms new uploads as they land, so it may delete one before its browser comes back
/// to confirm it: that browser should hear the reason, not "not found".
#[derive(Debug, Clone, Default)]
struct Rejections(Arc<Mutex<VecDeque<Rejection>>>);

#[derive(Debug, Clone)]
struct Rejection {
    key: String,
    kind: RejectionKind,
    reason: String,
}

impl Rejections {
    /// Deletions remembered, newest last: far more than are confirmed at once.
    const KEPT: usize = 256;

    fn remember(&self, key: &str, kind: RejectionKind, reason: &str) {
        // A poisoned lock only means a panic elsewhere: the list is still sound.
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == Self::KEPT {
            list.pop_front();
        }
        list.push_back(Rejection {
            key: key.to_owned(),
            kind,
            reason: reason.to_owned(),
        });
    }

    fn find(&self, key: &str) -> Option<Rejection> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().rev().find(|r| r.key == key).cloned()
    }
}

/// What to answer for an upload that is not in the store: why, when this process deleted it.
fn gone(verifier: &Verifier, key: &ObjectKey) -> ConfirmError {
    match verifier.rejections.find(key.as_str()) {
        Some(Rejection { kind, reason, .. }) => ConfirmError::Rejected {
            kind,
            reason,
            deleted: true,
        },
        None => ConfirmError::NotFound,
    }
}

/// Whether an ETag from a query or a body is plausible (S3 ETags are hex, maybe with `-N`).
pub fn valid_etag(etag: &str) -> bool {
    let e = strip_quotes(etag);
    !e.is_empty() && e.len() <= 128 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
}

/// The upload's original name, as signed into `x-amz-meta-filename`.
fn filename(meta: &BTreeMap<String, String>, key: &ObjectKey) -> String {
    meta.get("filename")
        .map(|v| decode_metadata(v))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| key.file_name().to_owned())
}

/// Confirm `key`: its record when it has one for the object's current ETag, or a fresh
/// verification that writes one. `etag`: what the client says it uploaded, if anything.
pub async fn confirm(
    client: &S3Client,
    verifier: &Verifier,
    key: &ObjectKey,
    etag: Option<&str>,
    on_reject: OnReject,
) -> Result<Confirmed, ConfirmError> {
    let Some(head) = client.head(key.as_str()).await? else {
        return Err(gone(verifier, key));
    };
    if let Some(expected) = etag.map(strip_quotes)
        && expected != head.etag
    {
        // The copy that corrects a type may have given the object another ETag than the one
        // its browser holds (a verification may be making it now): the record knows both.
        let _after_any_verification = verifier.exclusive(key).await;
        return match records::read(client, &verifier.prefix, key).await? {
            Some(r)
                if r.etag == head.etag
                    && r.uploaded_etag.as_deref() == Some(expected)
                    && !r.needs_thumbnails() =>
            {
                verifier.cache.put(&r);
                Ok(r)
            }
            _ => Err(ConfirmError::EtagMismatch),
        };
    }
    if let Some(recorded) = verifier.recorded(client, key, &head.etag).await?
        && !recorded.needs_thumbnails()
    {
        return Ok(recorded);
    }
    // One verification of a key at a time; the one that waited may find it done.
    let _one_at_a_time = verifier.exclusive(key).await;
    let previous = records::read(client, &verifier.prefix, key).await?;
    // Done meanwhile, maybe by a copy that corrected its type (and changed its ETag).
    if let Some(recorded) = &previous
        && recorded.known_as(&head.etag)
        && !recorded.needs_thumbnails()
    {
        verifier.cache.put(recorded);
        return Ok(recorded.clone());
    }
    let confirmed = verify_object(client, verifier, key, &head, on_reject).await?;
    records::write(client, &confirmed).await?;
    // A deletion elsewhere (another instance) may have removed the object while it was
    // verified, and found no record to remove then: a record never outlives its object.
    if client.head(key.as_str()).await?.is_none() {
        records::delete(client, key).await?;
        if let Some(made) = &confirmed.thumbnails {
            thumbnails::remove(client, made).await?;
        }
        return Err(gone(verifier, key));
    }
    verifier.cache.put(&confirmed);
    // The thumbnails of the version this one replaced are no longer shown.
    if let Some(old) = previous
        && old.etag != confirmed.etag
        && let Some(stale) = &old.thumbnails
        && let Err(e) = thumbnails::remove(client, stale).await
    {
        tracing::warn!(key = %key, error = %e, "cannot remove the thumbnails of a replaced upload");
    }
    Ok(confirmed)
}

/// Read and verify the object's bytes.
async fn verify_object(
    client: &S3Client,
    verifier: &Verifier,
    key: &ObjectKey,
    head: &ObjectHead,
    on_reject: OnReject,
) -> Result<Confirmed, ConfirmError> {
    // What it was stored as: a hint, corrected below when the bytes are another allowed type.
    let declared = head
        .content_type
        .as_deref()
        .map(|ct| ct.split(';').next().unwrap_or(ct).trim());
    let declared_type = declared.and_then(ImageType::from_mime);
    // Only a multipart upload can outgrow its signature: a part sent again, larger, after
    // its completion was signed.
    if head.size > verifier.limits.max_bytes {
        let reason = format!(
            "the file is {}, larger than the {} limit",
            crate::upload::human_bytes(head.size),
            crate::upload::human_bytes(verifier.limits.max_bytes)
        );
        return reject(
            client,
            verifier,
            key,
            RejectionKind::TooLarge,
            reason,
            on_reject,
        )
        .await;
    }

    // The permit bounds the files and pixels held at once.
    let permit = verifier
        .permits
        .acquire()
        .await
        .map_err(|_| StoreError::BadResponse("verification is shutting down".into()))?;
    let whole = head.size <= verifier.max_decode_bytes;
    let max = if whole {
        usize::try_from(head.size).unwrap_or(usize::MAX).max(1)
    } else {
        PROBE_BYTES
    };
    let Some(probe) = client.probe(key.as_str(), max).await? else {
        return Err(gone(verifier, key));
    };
    if probe.head.etag != head.etag {
        // Replaced between the two reads: confirm the new one another time.
        return Err(ConfirmError::EtagMismatch);
    }
    let decode = verifier.decode;
    let complete = probe.complete;
    let bytes = probe.bytes;
    let allowed = verifier.limits.clone();
    let verdict = actix_web::rt::task::spawn_blocking(move || {
        // A type signpost does not accept is not decoded.
        if let Some(t) = ImageType::sniff(&bytes).filter(|t| !allowed.allows(*t)) {
            return Err(Refused::TypeNotAllowed(t));
        }
        let mut verified = verify(&bytes, complete, &decode)?;
        // The thumbnails come from the pixels verification decoded: one decode for both.
        let made = verified
            .pixels
            .take()
            .map(|pixels| imaging::thumbnails(pixels, &imaging::SIZES));
        Ok((verified, made))
    })
    .await
    .map_err(|e| StoreError::BadResponse(format!("verification stopped: {e}")))?;
    drop(permit);
    let (verified, made) = match verdict {
        Ok(v) => v,
        Err(e) => {
            return reject(
                client,
                verifier,
                key,
                RejectionKind::NotAnImage,
                e.to_string(),
                on_reject,
            )
            .await;
        }
    };

    let uploaded_at = key
        .id()
        .time()
        .or_else(|| head.last_modified.as_deref().and_then(parse_http_date));
    let owner = head
        .metadata
        .get("owner")
        .map(|v| decode_metadata(v))
        .filter(|o| crate::identity::valid_owner(o))
        .unwrap_or_else(|| crate::identity::ANONYMOUS.to_owned());
    // An upload through a link counts against its budget; one past it is not confirmed.
    let link = head.metadata.get("link").cloned();
    if let Some(id) = &link {
        let signed_at = uploaded_at.map_or(0, |t| t.timestamp_millis());
        if let Err(e) = super::links::claim(client, id, signed_at, &key.id().to_string()).await? {
            return reject(
                client,
                verifier,
                key,
                RejectionKind::Link(e),
                e.to_string(),
                on_reject,
            )
            .await;
        }
    }
    // The type the user picked (or the browser guessed) is a hint: a valid image of another
    // allowed type keeps its bytes and gets the right Content-Type, by a copy inside the
    // store, before the record; the record carries the copy's ETag.
    let mut etag = head.etag.clone();
    let mut corrected_from = None;
    let mut uploaded_etag = None;
    if declared_type != Some(verified.image_type) {
        let was = printable(declared.unwrap_or("no type"));
        let to = verified.image_type.mime();
        match client
            .retype_in_place(key.as_str(), head, to, verifier.acl.as_deref())
            .await?
        {
            Some(copied) => {
                if copied != head.etag {
                    uploaded_etag = Some(head.etag.clone());
                }
                etag = copied;
            }
            // Replaced or removed meanwhile: the next confirmation sees what is there now.
            None => return Err(ConfirmError::EtagMismatch),
        }
        tracing::info!(key = %key, from = %was, to, "corrected the type of an upload");
        corrected_from = Some(was);
    }
    let alt = head.metadata.get("alt").and_then(|v| {
        // Signed without JavaScript before it was typed: checked here.
        crate::upload::parse_alt(&decode_metadata(v))
            .inspect_err(|_| {
                tracing::warn!(key = %key, "a description that is not one short line is ignored");
            })
            .ok()
            .flatten()
    });
    let decoded = made.is_some();
    let made = match made {
        Some(Ok(made)) => made,
        Some(Err(e)) => {
            // The image is sound (it decoded); it is shown without a thumbnail.
            tracing::error!(key = %key, error = %e, "no thumbnails for an upload");
            Vec::new()
        }
        None => Vec::new(),
    };
    let thumbnails = thumbnails::store(client, &verifier.thumb_prefix, key, &etag, made).await?;
    Ok(Confirmed {
        key: key.clone(),
        etag,
        size: head.size,
        image_type: verified.image_type,
        dimensions: verified.dimensions,
        filename: filename(&head.metadata, key),
        uploaded_at,
        decoded,
        owner,
        link,
        thumbnails: Some(thumbnails),
        alt,
        corrected_from,
        uploaded_etag,
    })
}

/// Why verification refused a file.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the file is a {} image, which signpost does not accept here", .0.label())]
    TypeNotAllowed(ImageType),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// An untrusted value, short and printable, for a message.
fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(60).collect()
}

async fn reject(
    client: &S3Client,
    verifier: &Verifier,
    key: &ObjectKey,
    kind: RejectionKind,
    reason: String,
    on_reject: OnReject,
) -> Result<Confirmed, ConfirmError> {
    match on_reject {
        OnReject::Delete => {
            tracing::warn!(key = %key, code = kind.code(), %reason, "deleting a refused upload");
            // Remembered first: from the moment it is gone, a late confirmation hears why.
            verifier.rejections.remember(key.as_str(), kind, &reason);
            client.delete(key.as_str()).await?;
            records::delete(client, key).await?;
            verifier.cache.remove(key.as_str());
            // An earlier version of it may have had thumbnails.
            thumbnails::remove_all(client, &verifier.thumb_prefix, key).await?;
            Err(ConfirmError::Rejected {
                kind,
                reason,
                deleted: true,
            })
        }
        OnReject::Keep => Err(ConfirmError::Rejected {
            kind,
            reason,
            deleted: false,
        }),
    }
}

/// Parse an untrusted key (from a query or a body) under the prefix.
pub fn parse_key(prefix: &KeyPrefix, key: &str) -> Result<ObjectKey, ConfirmError> {
    ObjectKey::parse(prefix, key).ok_or(ConfirmError::KeyOutsidePrefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_keep_the_newest_reason_and_a_bounded_list() {
        let r = Rejections::default();
        let reason = |key| r.find(key).map(|f| f.reason);
        r.remember("a", RejectionKind::NotAnImage, "first");
        r.remember("a", RejectionKind::Link(LinkError::Exhausted), "second");
        assert_eq!(reason("a").as_deref(), Some("second"));
        assert_eq!(r.find("a").unwrap().kind.code(), "link_exhausted");
        assert_eq!(reason("b"), None);
        for i in 0..Rejections::KEPT {
            r.remember(&format!("k{i}"), RejectionKind::NotAnImage, "x");
        }
        assert_eq!(reason("a"), None, "the oldest make room");
        assert_eq!(r.0.lock().unwrap().len(), Rejections::KEPT);
        assert_eq!(reason("k0").as_deref(), Some("x"));
    }
}
