//! `GET /uploaded?bucket=&key=&etag=`: where S3 sends the browser after a form upload. The
//! query is unsigned (anyone can forge it), so the upload is confirmed with the store
//! before anything is shown.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::assets::AssetUrls;
use super::error::{PageError, Problem};
use super::query::Query;
use super::{State, auth, html, no_store};
use crate::identity::{Identity, csrf};
use crate::store::{ConfirmError, Confirmed, OnReject, S3Client, confirm, parse_key, valid_etag};
use crate::upload::human_bytes;

/// What the gallery shows of an upload: its thumbnails, by width.
pub struct ThumbView {
    pub src: String,
    /// `URL 400w, URL 800w`; empty when there is one picture.
    pub srcset: String,
    pub width: u32,
    pub height: u32,
}

impl ThumbView {
    fn new(state: &State, c: &Confirmed) -> Option<Self> {
        match &c.thumbnails {
            Some(thumbs) => {
                let smallest = thumbs.first()?;
                let srcset = if thumbs.len() > 1 {
                    thumbs
                        .iter()
                        .map(|t| format!("{} {}w", state.urls.thumbnail(t), t.width))
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    String::new()
                };
                Some(Self {
                    src: state.urls.thumbnail(smallest),
                    srcset,
                    width: smallest.width,
                    height: smallest.height,
                })
            }
            // Recorded before thumbnails existed: the original, until the backfill makes them.
            None if c.decoded => Some(Self {
                src: state.urls.original(c.key.as_str(), c.image_type.mime()),
                srcset: String::new(),
                width: c.dimensions.width,
                height: c.dimensions.height,
            }),
            None => None,
        }
    }
}

/// A confirmed upload as the pages show it.
pub struct UploadView {
    pub key: String,
    pub owner: String,
    pub filename: String,
    /// Its description, or the text made from its name.
    pub alt: String,
    /// Set when its type was corrected: what it was sent as.
    pub corrected_from: Option<String>,
    pub type_mime: &'static str,
    pub image_url: String,
    /// None: no picture could be made (too large to decode); a placeholder is shown.
    pub thumb: Option<ThumbView>,
    pub size: String,
    pub type_label: &'static str,
    pub dimensions: String,
    pub uploaded_at: String,
    pub confirm_url: String,
}

impl UploadView {
    pub fn new(state: &State, c: &Confirmed) -> Self {
        Self {
            key: c.key.as_str().to_owned(),
            owner: c.owner.clone(),
            filename: c.filename.clone(),
            alt: c.alt_text(),
            corrected_from: c.corrected_from.clone(),
            type_mime: c.image_type.mime(),
            image_url: state.urls.original(c.key.as_str(), c.image_type.mime()),
            thumb: ThumbView::new(state, c),
            size: human_bytes(c.size),
            type_label: c.image_type.label(),
            dimensions: c.dimensions.to_string(),
            uploaded_at: c
                .uploaded_at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            confirm_url: state.confirmation_path(c.key.as_str(), &c.etag),
        }
    }
}

#[derive(Template)]
#[template(path = "uploaded.html")]
struct UploadedPage<'a> {
    assets: &'a AssetUrls,
    upload: UploadView,
    /// For its owner and admins: the Delete button's anti-CSRF token.
    delete_csrf: Option<String>,
}

/// Whether `viewer` may see `c`: a link session sees only what came through its link; with
/// `--gallery own`, others' uploads are for their owners and admins.
pub fn may_see(state: &State, viewer: &Identity, c: &Confirmed) -> bool {
    let identity = &state.settings.identity;
    match viewer {
        Identity::Link { id, .. } => c.link.as_deref() == Some(id.as_str()),
        _ if identity.gallery_own => viewer.may_manage(&c.owner, &identity.admins),
        _ => true,
    }
}

fn missing(what: &str) -> Problem {
    Problem::bad_request(
        "query_missing_parameter",
        format!("This link has no {what}: it does not come from an upload."),
    )
}

/// The checks of `/uploaded` and of the confirm API: bucket, key under the prefix, ETag,
/// then the store (its record, or a verification that writes one). A file that is no
/// allowed image is deleted by the API (`OnReject::Delete`) or, for a page, left to the
/// background sweep, which this wakes.
pub async fn confirm_request(
    state: &State,
    client: &S3Client,
    bucket: Option<&str>,
    key: &str,
    etag: Option<&str>,
    on_reject: OnReject,
) -> Result<Confirmed, Problem> {
    if let Some(bucket) = bucket
        && bucket != state.settings.bucket
    {
        return Err(ConfirmError::WrongBucket.into());
    }
    let key = parse_key(&state.settings.prefix, key)?;
    if etag.is_some_and(|e| !valid_etag(e)) {
        return Err(ConfirmError::BadEtag.into());
    }
    let confirmed = confirm(client, &state.verifier, &key, etag, on_reject).await;
    // The sweep delivers the event, or deletes what a page may not.
    state.wake_sweep();
    Ok(confirmed?)
}

#[tracing::instrument(name = "uploaded", skip_all)]
pub async fn uploaded(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
) -> Result<HttpResponse, PageError> {
    let q = Query::parse(req.query_string())?;
    let bucket = q.get("bucket").ok_or_else(|| missing("bucket"))?;
    let key = q.get("key").ok_or_else(|| missing("key"))?;
    let etag = q.get("etag").ok_or_else(|| missing("ETag"))?;
    let viewer = auth::identify(&req, &state, &client).await?;
    let confirmed = confirm_request(
        &state,
        &client,
        Some(bucket),
        key,
        Some(etag),
        OnReject::Keep,
    )
    .await?;
    if !may_see(&state, &viewer, &confirmed) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "This upload is not yours to see.",
        )
        .into());
    }
    let delete_csrf = viewer
        .may_manage(&confirmed.owner, &state.settings.identity.admins)
        .then(|| {
            csrf::make(
                &state.auth.csrf_key,
                viewer.owner(),
                confirmed.key.as_str(),
                state.clock.now(),
            )
        });
    let mut resp = html(
        StatusCode::OK,
        &UploadedPage {
            assets: &state.assets,
            upload: UploadView::new(&state, &confirmed),
            delete_csrf,
        },
    );
    no_store(&mut resp);
    Ok(resp)
}
