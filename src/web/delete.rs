//! Deleting an upload, only through signpost: `POST /uploads/delete` (the `/uploaded` page's
//! button: `key` and an anti-CSRF token, from the site's own origin) and
//! `POST /api/uploads/delete` (JSON `key`, for API tokens). Only the owner and `--admins`
//! may delete. The object, its record and what was derived from it go; an `upload.deleted`
//! event is announced through the outbox.

use actix_web::error::UrlencodedError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::error::{ApiError, PageError, Problem};
use super::{State, auth, no_store};
use crate::identity::{Identity, csrf};
use crate::notify::{Event, outbox};
use crate::store::{ConfirmError, S3Client, parse_key, records, thumbnails};

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    pub key: String,
    pub csrf: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub key: String,
}

/// The Delete button's form, read like every body: bounded, its errors on the error page.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(4096)
        .error_handler(|e, _req| {
            let p = match e {
                UrlencodedError::ContentType => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send the Delete button's form as application/x-www-form-urlencoded.",
                ),
                UrlencodedError::Overflow { .. } => Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "The Delete button's form is larger than 4096 bytes.",
                ),
                _ => Problem::bad_request(
                    "form_invalid",
                    "This is not the Delete button's form: it needs the upload's key and its token.",
                ),
            };
            PageError::new(p).into()
        })
}

fn forbidden(code: &'static str, message: &'static str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, code, message)
}

/// A form post from the site's own pages: its `Origin` (or, without one, `Sec-Fetch-Site`)
/// says so.
fn same_origin(req: &HttpRequest, state: &State) -> Result<(), Problem> {
    let site = state.public_url.origin().ascii_serialization();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    let ok = match (origin, fetch_site) {
        (Some(o), _) => o == site,
        (None, Some(s)) => s == "same-origin",
        (None, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(forbidden(
            "cross_site_request",
            "This request does not come from signpost's own pages.",
        ))
    }
}

/// Delete `key` for `who`, after checking they may.
async fn delete_upload(
    state: &State,
    client: &S3Client,
    who: &Identity,
    key: &str,
) -> Result<(), Problem> {
    let key = parse_key(&state.settings.prefix, key)?;
    // A confirmation of this key in progress finishes first: its record is then removed too.
    let _no_confirmation_meanwhile = state.verifier.exclusive(&key).await;
    let record = records::read(client, &state.settings.prefix, &key).await?;
    let owner = match &record {
        Some(r) => r.owner.clone(),
        None => match client.head(key.as_str()).await? {
            Some(head) => head
                .metadata
                .get("owner")
                .map(|o| crate::upload::decode_metadata(o))
                .unwrap_or_else(|| crate::identity::ANONYMOUS.to_owned()),
            None => return Err(ConfirmError::NotFound.into()),
        },
    };
    if !who.may_manage(&owner, &state.settings.identity.admins) {
        return Err(forbidden(
            "not_yours",
            "Only the upload's owner or an admin may delete it.",
        ));
    }
    // The record goes last: until then a failed step can be retried, and the retry still
    // finds the owner and announces the deletion.
    client.delete(key.as_str()).await?;
    thumbnails::remove_all(client, &state.settings.thumb_prefix, &key).await?;
    if let (Some(record), Some(_)) = (&record, &state.settings.notify) {
        let event = Event::deleted(&state.settings.bucket, record, state.clock.now());
        outbox::enqueue(client, &event).await?;
        state.wake_sweep();
    }
    records::delete(client, &key).await?;
    state.verifier.cache.remove(key.as_str());
    tracing::info!(key = %key, by = %who.owner(), "upload deleted");
    Ok(())
}

#[tracing::instrument(name = "delete_page", skip_all)]
pub async fn delete_page(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&req, &state)?;
    let who = auth::identify(&req, &state, &client).await?;
    if !csrf::check(
        &state.auth.csrf_key,
        who.owner(),
        &form.key,
        &form.csrf,
        state.clock.now(),
    ) {
        return Err(forbidden(
            "csrf_invalid",
            "This Delete button has expired or is not yours: open the upload's page again.",
        )
        .into());
    }
    delete_upload(&state, &client, &who, &form.key).await?;
    let mut resp = HttpResponse::SeeOther().finish();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/gallery"));
    no_store(&mut resp);
    Ok(resp)
}

#[tracing::instrument(name = "delete_api", skip_all)]
pub async fn delete_api(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    body: web::Json<DeleteRequest>,
) -> Result<HttpResponse, ApiError> {
    let who = auth::identify(&req, &state, &client).await?;
    delete_upload(&state, &client, &who, &body.key).await?;
    let mut resp = HttpResponse::Ok().json(serde_json::json!({ "deleted": body.key }));
    no_store(&mut resp);
    Ok(resp)
}
