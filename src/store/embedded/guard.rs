//! What the embedded store refuses before anything is written, whatever a signed request
//! carries: header fields that could not be sent back (CR/LF or other control characters),
//! a Content-Type that is not a media type, and keys that climb out of the bucket.
//!
//! s3s-fs stores a PUT's or POST's Content-Type and other headers as given and answers 500
//! to every later GET of the object when one cannot be a header, which made one bad object
//! break every reader of the bucket. A signed form may still carry such a value (the
//! no-script form signs `starts-with $Content-Type image/`), so the store refuses it: 400,
//! nothing stored.

use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CreateMultipartUploadInput, Metadata, PutObjectInput};
use s3s::path::S3Path;
use s3s::{S3Request, s3_error};

pub struct Guard;

/// A header value S3 could send back: visible ASCII, spaces and tabs (non-ASCII
/// metadata arrives encoded as RFC 2047 words).
fn header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// An RFC 9110 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `type/subtype` with RFC 9110 tokens, and optional parameters.
pub fn is_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let tokens = essence
        .split_once('/')
        .is_some_and(|(t, s)| is_token(t) && is_token(s));
    tokens && header_safe(value) && value.parse::<mime::Mime>().is_ok()
}

/// A key s3s-fs maps onto a file path safely: no `.`/`..` or empty segments, no backslash.
fn key_safe(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\\')
        && header_safe(key)
        && key.split('/').all(|seg| seg != "." && seg != "..")
        && !key.starts_with('/')
}

fn check_key(key: &str) -> S3Result<()> {
    if key_safe(key) {
        Ok(())
    } else {
        Err(s3_error!(InvalidArgument, "The object key is not accepted"))
    }
}

/// Store non-ASCII metadata the way S3 returns it, as an RFC 2047 word: a form typed by a
/// person (a description in the no-script form) may carry any text, and s3s-fs would
/// otherwise keep bytes it cannot send back as a header. Control characters stay refused.
fn encode_metadata_values(metadata: Option<&mut Metadata>) {
    for value in metadata.into_iter().flat_map(|m| m.values_mut()) {
        if !header_safe(value) && !value.chars().any(char::is_control) {
            *value = crate::upload::encode_metadata(value);
        }
    }
}

/// The object's headers and metadata, as they would be stored.
fn check_headers(
    content_type: Option<&str>,
    others: &[(&str, Option<&str>)],
    metadata: Option<&Metadata>,
) -> S3Result<()> {
    if let Some(ct) = content_type
        && !is_media_type(ct)
    {
        return Err(s3_error!(
            InvalidArgument,
            "Content-Type must be a media type such as image/png, without line breaks"
        ));
    }
    for (name, value) in others {
        if value.is_some_and(|v| !header_safe(v)) {
            return Err(s3_error!(
                InvalidArgument,
                "{name} must not contain line breaks or control characters"
            ));
        }
    }
    for (name, value) in metadata.into_iter().flatten() {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok || !header_safe(value) {
            return Err(s3_error!(
                InvalidArgument,
                "Metadata must not contain line breaks or control characters"
            ));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3Access for Guard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // The default check: only signed requests.
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        if let S3Path::Object { key, .. } = cx.s3_path() {
            check_key(key)?;
        }
        Ok(())
    }

    /// Plain PUTs, presigned PUTs and POST Object uploads alike.
    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        encode_metadata_values(req.input.metadata.as_mut());
        let i = &req.input;
        check_key(&i.key)?;
        check_headers(
            i.content_type.as_deref(),
            &[
                ("Content-Disposition", i.content_disposition.as_deref()),
                ("Cache-Control", i.cache_control.as_deref()),
                ("Content-Encoding", i.content_encoding.as_deref()),
                ("Content-Language", i.content_language.as_deref()),
                (
                    "x-amz-website-redirect-location",
                    i.website_redirect_location.as_deref(),
                ),
            ],
            i.metadata.as_ref(),
        )
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let i = &req.input;
        check_key(&i.key)?;
        check_headers(
            i.content_type.as_deref(),
            &[
                ("Content-Disposition", i.content_disposition.as_deref()),
                ("Cache-Control", i.cache_control.as_deref()),
                ("Content-Encoding", i.content_encoding.as_deref()),
                ("Content-Language", i.content_language.as_deref()),
            ],
            i.metadata.as_ref(),
        )
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        check_key(&i.key)?;
        check_headers(
            i.content_type.as_deref(),
            &[
                ("Content-Disposition", i.content_disposition.as_deref()),
                ("Cache-Control", i.cache_control.as_deref()),
                ("Content-Encoding", i.content_encoding.as_deref()),
                ("Content-Language", i.content_language.as_deref()),
            ],
            i.metadata.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_header_values() {
        for ok in [
            "image/png",
            "image/jpeg",
            "text/plain; charset=utf-8",
            "image/svg+xml",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "image/png\r\nX-Evil: 1",
            "image/png\n",
            "png",
            "",
            "image/",
            "/png",
            "image/png\0",
            "imäge/png",
        ] {
            assert!(!is_media_type(bad), "{bad:?}");
        }
        assert!(header_safe("attachment; filename=\"a b.png\""));
        assert!(!header_safe("attachment\r\n"));
    }

    #[test]
    fn keys_stay_in_the_bucket() {
        for ok in ["uploads/x/cat.png", ".signpost/records/uploads/x.json", "a"] {
            assert!(key_safe(ok), "{ok}");
        }
        for bad in [
            "",
            "up/../../other/x",
            "../x",
            "a/./b",
            "a\\b",
            "/abs",
            "a\r\nb",
        ] {
            assert!(!key_safe(bad), "{bad:?}");
        }
    }
}
