//! `GET /gallery[?after=KEY]`: what the bucket holds under the prefix, newest first, 24 a
//! page. S3 is the database: one LIST, then one ranged GET per object (at most
//! `CONCURRENCY` in flight) that yields its metadata and the header bytes the dimensions
//! are read from.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;

use super::assets::AssetUrls;
use super::error::{PageError, Problem};
use super::query::Query;
use super::uploaded::UploadView;
use super::{State, html, no_store};
use crate::store::{ConfirmError, OnLie, S3Client, confirm};
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

    let keys: Vec<ObjectKey> = listing
        .objects
        .iter()
        .filter_map(|o| ObjectKey::parse(prefix, &o.key))
        .collect();
    let limits = &state.presigner.limits;
    let client_ref: &S3Client = &client;
    let results: Vec<_> = futures_util::stream::iter(keys)
        .map(|key| async move { confirm(client_ref, limits, &key, None, OnLie::Keep).await })
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let mut cards = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(c) => cards.push(UploadView::new(&state, &c)),
            // Listed, then gone, or not an image: skipped, not fatal.
            Err(
                ConfirmError::NotFound | ConfirmError::Rejected { .. } | ConfirmError::EtagMismatch,
            ) => {}
            Err(ConfirmError::Store(e)) => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "gallery: skipping an object"),
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
