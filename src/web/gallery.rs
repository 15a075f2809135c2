//! `GET /gallery[?after=KEY]`: the confirmed uploads under the prefix, newest first, 24 a
//! page, as thumbnails. S3 is the database: one LIST, then each upload's record, from the
//! process's record cache or the bucket (at most `CONCURRENCY` reads in flight), so a warm
//! view costs one request. An upload shows only when its record is for the object's current
//! ETag; one whose record is missing, stale or unreadable is skipped (and logged), never
//! fatal. A page request changes nothing in the bucket.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;

use super::assets::AssetUrls;
use super::error::{PageError, Problem};
use super::query::Query;
use super::uploaded::{UploadView, may_see};
use super::{State, auth, html, no_store};
use crate::identity::Identity;
use crate::store::{Confirmed, ListedObject, S3Client, StoreError, Verifier};
use crate::upload::ObjectKey;

pub const PAGE_SIZE: usize = 24;
/// S3's longest key.
const MAX_KEY_BYTES: usize = 1024;
/// Object reads in flight at once for one page.
pub const CONCURRENCY: usize = 8;

#[derive(Template)]
#[template(path = "gallery.html")]
struct GalleryPage<'a> {
    assets: &'a AssetUrls,
    cards: Vec<UploadView>,
    more_url: Option<String>,
    first_page: bool,
}

#[tracing::instrument(name = "gallery", skip_all)]
pub async fn gallery(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
) -> Result<HttpResponse, PageError> {
    let viewer = auth::identify(&req, &state, &client).await?;
    if matches!(viewer, Identity::Link { .. }) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "link_uploads_only",
            "An upload link lets you upload; the gallery is for the site's users.",
        )
        .into());
    }
    let q = Query::parse(req.query_string())?;
    let prefix = &state.settings.prefix;
    // The cursor is the last key a page listed. It need not be one of signpost's keys
    // (anything else under the prefix is listed too, and skipped), only under the prefix.
    let after = match q.get("after") {
        None | Some("") => None,
        Some(a)
            if a.starts_with(prefix.as_str())
                && a.len() <= MAX_KEY_BYTES
                && !a.chars().any(char::is_control) =>
        {
            Some(a)
        }
        Some(_) => {
            return Err(Problem::bad_request(
                "gallery_cursor_invalid",
                "This gallery link is not valid. Start again from the first page.",
            )
            .into());
        }
    };

    let listing = client.list(prefix.as_str(), after, PAGE_SIZE).await?;
    let last_listed = listing.objects.last().map(|o| o.key.clone());

    let client_ref: &S3Client = &client;
    let verifier = &state.verifier;
    let results: Vec<_> = futures_util::stream::iter(listing.objects.iter())
        .map(|o| async move { (o, shown(client_ref, verifier, o).await) })
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let mut cards = Vec::with_capacity(results.len());
    for (listed, result) in results {
        match result {
            Ok(Some(c)) if may_see(&state, &viewer, &c) => {
                cards.push(UploadView::new(&state, &c));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(key = %listed.key, error = %e, "gallery: skipping an upload that cannot be read");
            }
        }
    }

    let more_url = match (listing.truncated, last_listed) {
        (true, Some(last)) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("after", &last)
                .finish();
            Some(format!("/gallery?{query}"))
        }
        _ => None,
    };
    let mut resp = html(
        StatusCode::OK,
        &GalleryPage {
            assets: &state.assets,
            cards,
            more_url,
            first_page: after.is_none(),
        },
    );
    no_store(&mut resp);
    Ok(resp)
}

/// The listed object's record, when it has one for the object as it is now.
async fn shown(
    client: &S3Client,
    verifier: &Verifier,
    listed: &ListedObject,
) -> Result<Option<Confirmed>, StoreError> {
    let Some(key) = ObjectKey::parse(&verifier.prefix, &listed.key) else {
        return Ok(None);
    };
    let etag = match &listed.etag {
        Some(etag) => etag.clone(),
        // A store that lists no ETags: ask for it.
        None => match client.head(key.as_str()).await? {
            Some(head) => head.etag,
            None => return Ok(None),
        },
    };
    let record = verifier.recorded(client, &key, &etag).await?;
    if record.is_none() {
        tracing::debug!(key = %key, "gallery: not confirmed (or replaced since); waiting for the sweep");
    }
    Ok(record)
}
