//! The JSON API for upload widgets: `POST /api/presign` (the fields Uppy's `@uppy/aws-s3`
//! up to version 5 takes from `getUploadParameters`, and boto3's `generate_presigned_post`
//! shape) and `POST /api/uploads/confirm`. Uppy 6's `POST /api/sign-request` is
//! [`super::sign_request`].

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::uploaded::confirm_request;
use super::{State, auth, no_store, signing};
use crate::store::{OnReject, S3Client, ThumbnailLink};
use crate::upload::{Completion, UploadRequest};

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// What a JSON body that cannot be read becomes: the API's stable codes.
fn json_problem(e: &JsonPayloadError) -> Problem {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("The request body is larger than {MAX_JSON_BYTES} bytes."),
            )
        }
        JsonPayloadError::ContentType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the request as JSON, with Content-Type: application/json.",
        ),
        JsonPayloadError::Deserialize(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "json_invalid",
            format!(
                "The request body is not the JSON this endpoint takes: {}",
                bounded(&e.to_string())
            ),
        ),
        _ => Problem::bad_request("body_unreadable", "The request body could not be read."),
    }
}

/// The one reading of JSON bodies, for every API endpoint: at most [`MAX_JSON_BYTES`], a
/// JSON content type required, errors in the API's shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .content_type_required(true)
        .error_handler(|e, _req| ApiError::new(json_problem(&e)).into())
}

#[tracing::instrument(level = "debug", name = "api_presign", skip_all)]
pub async fn presign(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    body: web::Json<UploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let identity = auth::identify(&req, &state, &client).await?;
    let valid = body
        .validate(&state.presigner.limits, true)
        .map_err(ApiError::validation)?;
    let uploader = signing::uploader(
        &identity,
        &state,
        &client,
        body.owner.as_deref(),
        Some((&valid).into()),
    )
    .await?;
    let signed = state
        .presigner
        .presign(&valid, Completion::Created, state.clock, &uploader);
    let mut resp = HttpResponse::Ok().json(signed.answer());
    no_store(&mut resp);
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub key: String,
    /// What the client uploaded; without it, the object as it is now is confirmed.
    pub etag: Option<String>,
    pub bucket: Option<String>,
    /// What Uppy 6's `upload-success` reports beside the key (`{location, key}`), so its
    /// body can be sent as it is; ignored: the key names the upload.
    #[serde(default, rename = "location")]
    pub _location: Option<String>,
}

#[derive(Serialize)]
struct ConfirmResponse<'a> {
    key: &'a str,
    etag: &'a str,
    filename: &'a str,
    /// Its description for screen readers, or the text made from its name.
    alt: String,
    /// What it was sent as, when confirmation corrected its type.
    corrected_from: Option<&'a str>,
    size: u64,
    content_type: &'static str,
    width: u32,
    height: u32,
    owner: &'a str,
    uploaded_at: Option<String>,
    /// The confirmation page.
    url: String,
    image_url: String,
    /// Smallest first; empty when the image was too large to decode.
    thumbnails: Vec<ThumbnailLink>,
}

#[tracing::instrument(name = "api_confirm", skip_all)]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    body: web::Json<ConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    // Anyone who may upload may confirm; the owner comes from the signed form, never from
    // the caller.
    auth::identify(&req, &state, &client).await?;
    let c = confirm_request(
        &state,
        &client,
        body.bucket.as_deref(),
        &body.key,
        body.etag.as_deref(),
        OnReject::Delete,
    )
    .await?;
    let resp = ConfirmResponse {
        key: c.key.as_str(),
        etag: &c.etag,
        filename: &c.filename,
        alt: c.alt_text(),
        corrected_from: c.corrected_from.as_deref(),
        size: c.size,
        content_type: c.image_type.mime(),
        width: c.dimensions.width,
        height: c.dimensions.height,
        owner: &c.owner,
        uploaded_at: c.uploaded_at.map(crate::policy::time::iso8601_millis),
        url: state.confirmation_path(c.key.as_str(), &c.etag),
        image_url: state.urls.original(c.key.as_str(), c.image_type.mime()),
        thumbnails: state.urls.thumbnail_links(&c),
    };
    let mut r = HttpResponse::Ok().json(resp);
    no_store(&mut r);
    Ok(r)
}
