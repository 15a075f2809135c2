//! The JSON API for upload widgets: `POST /api/presign` (the fields Uppy's `@uppy/aws-s3`
//! takes from `getUploadParameters`, and boto3's `generate_presigned_post` shape) and
//! `POST /api/uploads/confirm`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, mime, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::uploaded::confirm_request;
use super::{State, check_rate, no_store};
use crate::store::S3Client;
use crate::upload::{Completion, SignedUpload, UploadRequest};

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// A JSON string: written as it is when it holds nothing to escape (the base64 policy,
/// hex, keys, dates), through serde_json otherwise.
fn push_json_str(out: &mut String, value: &str) {
    if super::needs_json_escape(value) {
        // Serialising a string cannot fail.
        out.push_str(&serde_json::to_string(value).expect("a string serialises"));
    } else {
        out.push('"');
        out.push_str(value);
        out.push('"');
    }
}

/// The one JSON rendering of a signed upload, which the API and `signpost presign` both
/// print: `{"method","url","fields":{…in form order…},"headers","key","expires_at"}`, the
/// shape Uppy's `@uppy/aws-s3` takes from `getUploadParameters` (and boto3's
/// `generate_presigned_post` returns). Written directly: the base64 policy is most of it,
/// and it needs no escaping.
pub fn presign_json(s: &SignedUpload) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str("{\"method\":\"POST\",\"url\":");
    push_json_str(&mut out, s.url);
    out.push_str(",\"fields\":{");
    for (i, (name, value)) in s.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Names are the signing code's literals: nothing to escape.
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        push_json_str(&mut out, value);
    }
    out.push_str("},\"headers\":{},\"key\":");
    push_json_str(&mut out, s.key());
    out.push_str(",\"expires_at\":");
    push_json_str(&mut out, &crate::policy::time::iso8601_millis(s.expires_at));
    out.push('}');
    out
}

fn body_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("The request body is larger than {MAX_JSON_BYTES} bytes."),
    )
}

fn not_json() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the request as JSON, with Content-Type: application/json.",
    )
}

fn json_invalid(e: &serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "json_invalid",
        format!(
            "The request body is not the JSON this endpoint takes: {}",
            bounded(&e.to_string())
        ),
    )
}

/// Read a JSON body. The text is checked for UTF-8 once, as a whole: parsed from `str`,
/// serde_json then borrows each string without checking it again.
fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "json_invalid",
            format!(
                "The request body is not UTF-8 text (at byte {}).",
                e.valid_up_to()
            ),
        )
    })?;
    serde_json::from_str(text).map_err(|e| json_invalid(&e))
}

fn body_unreadable() -> Problem {
    Problem::bad_request("body_unreadable", "The request body could not be read.")
}

/// Whether the request says it is JSON, decided as actix's `Json` extractor decides it:
/// subtype `json` or suffix `+json`, any parameters.
fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(m)) => m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON),
        // None, or not a media type at all.
        _ => false,
    }
}

/// A JSON request body as bytes, for both API endpoints: 415 unless it is JSON, 413 over
/// [`MAX_JSON_BYTES`] (declared or streamed), 400 if it cannot be read. Read this way, the
/// request's strings can borrow from it.
async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, Problem> {
    if !is_json(req) {
        return Err(not_json());
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON_BYTES as u64) {
        return Err(body_too_large());
    }
    // A small body arrives in one chunk: keep it as it is. Only a body in pieces is copied
    // (actix's own collector starts every body with a 32 KiB buffer).
    let mut payload = payload;
    let mut first: Option<web::Bytes> = None;
    let mut joined = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| body_unreadable())?;
        let read = first.as_ref().map_or(0, web::Bytes::len) + joined.len() + chunk.len();
        if read > MAX_JSON_BYTES {
            return Err(body_too_large());
        }
        if let Some(f) = first.take() {
            joined.extend_from_slice(&f);
        }
        if joined.is_empty() {
            first = Some(chunk);
        } else {
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[tracing::instrument(level = "debug", name = "api_presign", skip_all)]
pub async fn presign(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_rate(&state, &req)?;
    let body = json_body(&req, payload).await?;
    let request: UploadRequest<'_> = parse_json(&body)?;
    let valid = request
        .validate(&state.presigner.limits, true)
        .map_err(ApiError::validation)?;
    let signed = state
        .presigner
        .presign(&valid, Completion::Created, state.clock);
    let mut resp = HttpResponse::Ok().body(presign_json(&signed));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    no_store(&mut resp);
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub key: String,
    pub etag: String,
    pub bucket: Option<String>,
}

#[derive(Serialize)]
struct ConfirmResponse<'a> {
    key: &'a str,
    etag: &'a str,
    filename: &'a str,
    size: u64,
    content_type: &'static str,
    width: Option<u32>,
    height: Option<u32>,
    uploaded_at: Option<String>,
    /// The confirmation page.
    url: String,
    image_url: String,
}

#[tracing::instrument(name = "api_confirm", skip_all)]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&req, payload).await?;
    let body: ConfirmRequest = parse_json(&body)?;
    let c = confirm_request(
        &state,
        &client,
        body.bucket.as_deref(),
        Some(&body.key),
        Some(&body.etag),
    )
    .await?;
    let dims = c.shown_dimensions();
    let resp = ConfirmResponse {
        key: c.key.as_str(),
        etag: &c.etag,
        filename: &c.filename,
        size: c.size,
        content_type: c.image_type.mime(),
        width: dims.map(|d| d.width),
        height: dims.map(|d| d.height),
        uploaded_at: c
            .uploaded_at
            .map(|t| crate::policy::time::iso8601_millis(t).into()),
        url: state.confirmation_path(c.key.as_str(), &c.etag),
        image_url: state.image_url(c.key.as_str(), c.image_type.mime()),
    };
    let mut r = HttpResponse::Ok().json(resp);
    no_store(&mut r);
    Ok(r)
}
