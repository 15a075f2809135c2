//! `POST /api/sign-request`: Uppy 6's `signRequest`. Uppy asks for each S3 request of an
//! upload, `{method, key, uploadId?, partNumber?, expiresIn?, contentType?}`, and sends it to
//! the `{url, key, headers?, fields?}` this answers.
//!
//! - The first request of a file (the `PUT` of a single file, or the `POST` that creates a
//!   multipart upload) also carries `filename` and `size` (and `content_type` for a
//!   multipart create, which Uppy sends without a type) from the integrator's code. It is
//!   validated, counted and owned as `POST /api/presign` does, and signpost chooses the key.
//! - A single file gets `fields`: the POST policy `/api/presign` signs, so Uppy uploads it
//!   as a form, with every limit the policy holds.
//! - A multipart create is signed with `headers` that pin the type and the metadata, owner
//!   included. Its key is a tagged one ([`crate::upload::multipart`]): parts, completion,
//!   abort and listing are signed only for such keys, within `--multipart-ttl` of their
//!   signing, and `complete` only once signpost has listed the parts itself and found them
//!   within the declared size and `--max-bytes`.
//! - A plain `DELETE` of an object is never signed: deletion goes through signpost.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, Problem};
use super::{State, auth, no_store, signing};
use crate::store::S3Client;
use crate::store::presigned::{MultipartRequest, presign};
use crate::upload::multipart::{self, part_cap};
use crate::upload::{Completion, ObjectKey, UploadRequest, ValidUpload, human_bytes};

/// Uppy's request, and what the integrator's code adds to the first one of a file. Other
/// fields (a later Uppy's, say) are ignored.
#[derive(Debug, Deserialize)]
pub struct SignRequest {
    pub method: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, rename = "uploadId")]
    pub upload_id: Option<String>,
    #[serde(default, rename = "partNumber")]
    pub part_number: Option<u64>,
    #[serde(default, rename = "expiresIn")]
    pub expires_in: Option<u64>,
    /// Uppy's type for the `PUT` of a single file.
    #[serde(default, rename = "contentType")]
    pub uppy_content_type: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    /// The integrator's type; wins over Uppy's.
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub owner: Option<String>,
    /// A description for screen readers (first request of a file).
    #[serde(default)]
    pub alt: Option<String>,
}

/// `{method, url, key, headers, fields?, expires_at}`.
#[derive(Debug, Serialize)]
struct SignAnswer<'a> {
    method: &'static str,
    url: String,
    key: &'a str,
    headers: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<crate::upload::FormFields<'a>>,
    expires_at: String,
}

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(Problem::new(status, code, message.into()))
}

fn not_issued() -> ApiError {
    refused(
        StatusCode::FORBIDDEN,
        "key_not_issued",
        "This key was not issued by signpost for a multipart upload: start the upload with a POST (create) request.",
    )
}

impl SignRequest {
    fn upload_request(&self) -> UploadRequest {
        UploadRequest {
            filename: self.filename.clone(),
            content_type: self
                .content_type
                .clone()
                .or_else(|| self.uppy_content_type.clone()),
            size: self.size,
            width: self.width,
            height: self.height,
            owner: self.owner.clone(),
            alt: self.alt.clone(),
        }
    }

    /// What the URL lives: the policy TTL, or less if Uppy asks for less.
    fn ttl(&self, state: &State) -> Duration {
        let asked = self.expires_in.map_or(Duration::MAX, Duration::from_secs);
        state
            .settings
            .policy_ttl
            .min(asked)
            .max(Duration::from_secs(1))
    }

    /// The upload id of a request that continues a multipart upload.
    fn upload_id(&self) -> Result<&str, ApiError> {
        let id = self.upload_id.as_deref().unwrap_or_default();
        if id.is_empty() || id.len() > 1024 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "upload_id_invalid",
                "uploadId must be the id S3 gave the multipart upload.",
            ));
        }
        Ok(id)
    }
}

#[tracing::instrument(level = "debug", name = "api_sign_request", skip_all)]
pub async fn sign_request(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    body: web::Json<SignRequest>,
) -> Result<HttpResponse, ApiError> {
    let method = body.method.to_ascii_uppercase();
    let answer = match (method.as_str(), body.upload_id.is_some()) {
        ("PUT", false) => return single_file(&req, &state, &client, &body).await,
        ("POST", false) => return create(&req, &state, &client, &body).await,
        ("DELETE", false) => {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "delete_not_signed",
                "signpost signs no DELETE of an object: delete an upload with POST /api/uploads/delete.",
            ));
        }
        ("PUT" | "POST" | "DELETE" | "GET", true) => {
            continue_upload(&req, &state, &client, &body, &method).await?
        }
        _ => {
            return Err(refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "request_not_signed",
                "signpost signs a single file's PUT, and a multipart upload's create (POST), parts (PUT), complete (POST), abort (DELETE) and list (GET).",
            ));
        }
    };
    Ok(answer)
}

fn respond(answer: &SignAnswer<'_>) -> HttpResponse {
    let mut resp = HttpResponse::Ok().json(answer);
    no_store(&mut resp);
    resp
}

/// Validate and count a first request, as `/api/presign` does.
async fn first_request(
    req: &HttpRequest,
    state: &State,
    client: &S3Client,
    body: &SignRequest,
) -> Result<(ValidUpload, crate::upload::Uploader), ApiError> {
    let identity = auth::identify(req, state, client).await?;
    let asked = body.upload_request();
    let valid = asked
        .validate(&state.presigner.limits, true)
        .map_err(ApiError::validation)?;
    let uploader = signing::uploader(
        &identity,
        state,
        client,
        asked.owner.as_deref(),
        Some((&valid).into()),
    )
    .await?;
    Ok((valid, uploader))
}

/// The `PUT` of a single file: the POST policy of `/api/presign`, as `fields`.
async fn single_file(
    req: &HttpRequest,
    state: &State,
    client: &S3Client,
    body: &SignRequest,
) -> Result<HttpResponse, ApiError> {
    let (valid, uploader) = first_request(req, state, client, body).await?;
    let signed = state
        .presigner
        .presign(&valid, Completion::Created, state.clock, &uploader);
    Ok(respond(&SignAnswer {
        method: "POST",
        url: signed.url.clone(),
        key: signed.key(),
        headers: Map::new(),
        fields: Some(crate::upload::FormFields(&signed.fields)),
        expires_at: crate::policy::time::iso8601_millis(signed.expires_at),
    }))
}

/// The `POST` that creates a multipart upload, under a tagged key, with pinned headers.
async fn create(
    req: &HttpRequest,
    state: &State,
    client: &S3Client,
    body: &SignRequest,
) -> Result<HttpResponse, ApiError> {
    let (valid, uploader) = first_request(req, state, client, body).await?;
    // Validation required the size; a quota's rest may lower what it may be.
    let declared = valid.size.unwrap_or(state.presigner.limits.max_bytes);
    let now = state.clock.now();
    let name = crate::upload::safe_file_name(
        &valid.original_name,
        valid.image_type,
        state.presigner.limits.max_name,
    );
    let key = multipart::issue(
        &state.auth.multipart_key,
        &state.presigner.prefix,
        now,
        declared,
        rand::random(),
        &name,
    );
    let headers = state.presigner.multipart_headers(&valid, &uploader);
    let ttl = body.ttl(state);
    let url = presign(
        &state.browser_target,
        key.as_str(),
        MultipartRequest::Create { headers: &headers },
        now,
        ttl,
    );
    Ok(respond(&SignAnswer {
        method: "POST",
        url: url.into(),
        key: key.as_str(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        fields: None,
        expires_at: expires_at(now, ttl),
    }))
}

fn expires_at(now: chrono::DateTime<chrono::Utc>, ttl: Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    crate::policy::time::iso8601_millis(now + ttl)
}

/// A part, the completion, an abort or a listing of a multipart upload signpost started.
async fn continue_upload(
    req: &HttpRequest,
    state: &State,
    client: &S3Client,
    body: &SignRequest,
    method: &str,
) -> Result<HttpResponse, ApiError> {
    auth::identify(req, state, client).await?;
    let upload_id = body.upload_id()?;
    let key = body
        .key
        .as_deref()
        .and_then(|k| ObjectKey::parse(&state.presigner.prefix, k))
        .ok_or_else(not_issued)?;
    let declared =
        multipart::declared_size(&state.auth.multipart_key, &key).ok_or_else(not_issued)?;
    let now = state.clock.now();
    let started = key.id().time().ok_or_else(not_issued)?;
    let lifetime = chrono::Duration::from_std(state.settings.multipart_ttl)
        .unwrap_or(chrono::Duration::days(1));
    // An abort is always signed: it only cleans up.
    if method != "DELETE" && now > started + lifetime {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "upload_expired",
            format!(
                "This multipart upload started more than {} ago (--multipart-ttl): start it again.",
                humantime(state.settings.multipart_ttl)
            ),
        ));
    }
    let cap = part_cap(declared);
    let request = match method {
        "PUT" => {
            let part = body
                .part_number
                .filter(|n| (1..=u64::from(cap)).contains(n))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    refused(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "part_number_invalid",
                        format!(
                            "partNumber must be from 1 to {cap} for a file of {} (parts are at least 5 MiB).",
                            human_bytes(declared)
                        ),
                    )
                })?;
            MultipartRequest::Part {
                upload_id,
                part_number: part,
            }
        }
        "POST" => {
            check_parts(state, client, &key, upload_id, declared, cap).await?;
            MultipartRequest::Complete { upload_id }
        }
        "DELETE" => MultipartRequest::Abort { upload_id },
        _ => MultipartRequest::ListParts { upload_id },
    };
    let ttl = body.ttl(state);
    let url = presign(&state.browser_target, key.as_str(), request, now, ttl);
    Ok(respond(&SignAnswer {
        method: match method {
            "PUT" => "PUT",
            "POST" => "POST",
            "DELETE" => "DELETE",
            _ => "GET",
        },
        url: url.into(),
        key: key.as_str(),
        headers: Map::new(),
        fields: None,
        expires_at: expires_at(now, ttl),
    }))
}

/// Before `complete` is signed: the parts, as the store lists them, fit the declared size
/// and `--max-bytes`. An upload past them is aborted (its parts deleted).
async fn check_parts(
    state: &State,
    client: &S3Client,
    key: &ObjectKey,
    upload_id: &str,
    declared: u64,
    cap: u32,
) -> Result<(), ApiError> {
    let parts = client
        .list_parts(key.as_str(), upload_id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| {
            refused(
                StatusCode::NOT_FOUND,
                "upload_not_found",
                "There is no such multipart upload of this key: it may have been completed, aborted or expired.",
            )
        })?;
    if parts.is_empty() {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "parts_missing",
            "This multipart upload has no parts yet.",
        ));
    }
    let total: u64 = parts.iter().map(|(_, size)| size).sum();
    let max = declared.min(state.presigner.limits.max_bytes);
    let too_many = parts.iter().any(|(n, _)| *n == 0 || *n > cap);
    if total > max || too_many {
        if let Err(e) = client.abort_multipart(key.as_str(), upload_id).await {
            tracing::warn!(key = %key, error = %e, "cannot abort an oversized multipart upload");
        }
        return Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "parts_too_large",
            format!(
                "The parts add up to {} in {} parts, more than the {} this file was declared with (or the site's limit): the upload was aborted.",
                human_bytes(total),
                parts.len(),
                human_bytes(max)
            ),
        ));
    }
    Ok(())
}

/// "24 h", "90 min", "45 s".
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}
