//! Confirming an upload: the redirect's query and the confirm API are untrusted, so the
//! object is looked up in the store, its bytes are checked against its stored type, and a
//! file that lies about what it is gets deleted. The gallery and the notification sweep
//! use the same checks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{S3Client, StoreError, strip_quotes};
use crate::upload::{
    Dimensions, ImageType, KeyPrefix, Limits, ObjectKey, VerifyError, decode_metadata, verify,
};

/// First bytes read to check an image: enough for PNG, GIF, WebP, AVIF and most JPEGs.
pub const PROBE_BYTES: usize = 64 * 1024;
/// Second read for JPEGs whose size marker comes after large metadata.
pub const PROBE_BYTES_LARGE: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    #[error("this link names another bucket")]
    WrongBucket,
    #[error("this link names a file outside the upload folder")]
    KeyOutsidePrefix,
    #[error("this link's ETag is not valid")]
    BadEtag,
    #[error(
        "we could not find this upload; it may have expired before it was sent, or been removed"
    )]
    NotFound,
    #[error("the stored file is not the one this link describes (its ETag differs)")]
    EtagMismatch,
    #[error("{reason}{}", if *.deleted { "; the file was deleted" } else { "" })]
    Rejected { reason: String, deleted: bool },
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
            Self::Rejected { .. } => "not_an_image",
            Self::Store(e) => e.code(),
        }
    }
}

/// A stored upload that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub key: ObjectKey,
    pub etag: String,
    pub size: u64,
    pub image_type: ImageType,
    /// Read from the image's own header (`None` only for a JPEG whose size marker lies
    /// beyond the first megabyte).
    pub dimensions: Option<Dimensions>,
    /// What the browser measured and the policy signed.
    pub signed_dimensions: Option<Dimensions>,
    /// The original file name, decoded from `x-amz-meta-filename` (the key's name if absent).
    pub filename: String,
    /// The upload id's time, or the store's Last-Modified.
    pub uploaded_at: Option<DateTime<Utc>>,
}

impl Confirmed {
    /// The dimensions to show: the server's own reading wins.
    pub fn shown_dimensions(&self) -> Option<Dimensions> {
        self.dimensions.or(self.signed_dimensions)
    }
}

/// Whether an ETag from a query or a body is plausible (S3 ETags are hex, maybe with `-N`).
pub fn valid_etag(etag: &str) -> bool {
    let e = strip_quotes(etag);
    !e.is_empty() && e.len() <= 128 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What to do with a file that is not what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLie {
    Delete,
    Keep,
}

fn parse_dimension(meta: &BTreeMap<String, String>, name: &str) -> Option<u32> {
    meta.get(name)
        .and_then(|v| v.trim().parse().ok())
        .filter(|&v| v > 0)
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

/// Look the object up and verify it. `etag`: what the browser says it uploaded, if anything.
pub async fn confirm(
    client: &S3Client,
    limits: &Limits,
    key: &ObjectKey,
    etag: Option<&str>,
    on_lie: OnLie,
) -> Result<Confirmed, ConfirmError> {
    let mut probe = client
        .probe(key.as_str(), PROBE_BYTES)
        .await?
        .ok_or(ConfirmError::NotFound)?;
    if let Some(expected) = etag
        && strip_quotes(expected) != probe.head.etag
    {
        return Err(ConfirmError::EtagMismatch);
    }

    let declared = probe
        .head
        .content_type
        .as_deref()
        .map(|ct| ct.split(';').next().unwrap_or(ct).trim());
    let image_type = match declared
        .and_then(ImageType::from_mime)
        .filter(|t| limits.allows(*t))
    {
        Some(t) => t,
        None => {
            let reason = format!(
                "the file was stored as {}, which signpost does not accept",
                declared.map_or_else(
                    || "an unknown type".to_owned(),
                    |d| format!("“{}”", d.chars().take(60).collect::<String>())
                )
            );
            return reject(client, key, reason, on_lie).await;
        }
    };

    let mut result = verify(&probe.bytes, image_type, probe.complete);
    if result == Err(VerifyError::Truncated)
        && let Some(bigger) = client.probe(key.as_str(), PROBE_BYTES_LARGE).await?
    {
        probe = bigger;
        result = verify(&probe.bytes, image_type, probe.complete);
    }
    let dimensions = match result {
        Ok(d) => Some(d),
        // A real JPEG with more than a megabyte of metadata before its size: keep it.
        Err(VerifyError::Truncated) => None,
        Err(e) => return reject(client, key, e.to_string(), on_lie).await,
    };

    let meta = &probe.head.metadata;
    let signed_dimensions = match (
        parse_dimension(meta, "width"),
        parse_dimension(meta, "height"),
    ) {
        (Some(width), Some(height)) => Some(Dimensions { width, height }),
        _ => None,
    };
    if let (Some(real), Some(signed)) = (dimensions, signed_dimensions)
        && real != signed
    {
        tracing::warn!(key = %key, %real, browser = %signed, "the browser's dimensions differ from the image header; showing the header's");
    }
    let filename = meta
        .get("filename")
        .map(|v| decode_metadata(v))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| key.file_name().to_owned());
    let uploaded_at = key.id().time().or_else(|| {
        probe
            .head
            .last_modified
            .as_deref()
            .and_then(parse_http_date)
    });

    Ok(Confirmed {
        key: key.clone(),
        etag: probe.head.etag,
        size: probe.head.size,
        image_type,
        dimensions,
        signed_dimensions,
        filename,
        uploaded_at,
    })
}

async fn reject(
    client: &S3Client,
    key: &ObjectKey,
    reason: String,
    on_lie: OnLie,
) -> Result<Confirmed, ConfirmError> {
    match on_lie {
        OnLie::Delete => {
            tracing::warn!(key = %key, %reason, "deleting an upload that is not what it claims");
            client.delete(key.as_str()).await?;
            Err(ConfirmError::Rejected {
                reason,
                deleted: true,
            })
        }
        OnLie::Keep => Err(ConfirmError::Rejected {
            reason,
            deleted: false,
        }),
    }
}

/// Parse an untrusted key (from a query or a body) under the prefix.
pub fn parse_key(prefix: &KeyPrefix, key: &str) -> Result<ObjectKey, ConfirmError> {
    ObjectKey::parse(prefix, key).ok_or(ConfirmError::KeyOutsidePrefix)
}
