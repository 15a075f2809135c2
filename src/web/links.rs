//! `GET /l/{token}`: an upload link. A valid, unexpired, unrevoked link starts a session
//! (a signed cookie) that may upload as the link's owner, and opens the upload page.

use actix_session::SessionExt;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::{LinkSession, start_link_session};
use super::error::{PageError, Problem};
use super::{State, no_store};
use crate::identity::links;
use crate::store::S3Client;

#[tracing::instrument(name = "link", skip_all)]
pub async fn open(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let key = state
        .auth
        .link_key(&client, state.settings.identity.link_key.as_ref())
        .await?;
    let now = state.clock.now();
    let refused =
        |e: links::LinkError| Problem::new(StatusCode::FORBIDDEN, e.code(), e.to_string());
    let link = links::verify(key, &token, now).map_err(refused)?;
    let record = state
        .auth
        .link_usable(&client, &link.id, now, true)
        .await?
        .map_err(refused)?;
    // The record is the link; its token only names it. One that says anything else (another
    // owner, budget or expiry) was not made by `signpost link`, whatever its MAC.
    if record.link != link {
        tracing::warn!(link = %link.id, "a link token that does not match its record");
        return Err(refused(links::LinkError::Invalid).into());
    }
    start_link_session(
        &req.get_session(),
        &LinkSession {
            id: record.link.id,
            owner: record.link.owner,
        },
    )?;
    let mut resp = HttpResponse::SeeOther().finish();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    no_store(&mut resp);
    Ok(resp)
}
