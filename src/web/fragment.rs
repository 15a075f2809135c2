//! `GET /fragments/image-meta?filename=&content_type=&size=[&width=&height=][&alt=]`: only the
//! image-meta partial, freshly signed for the file the user chose. htmx-style: the same
//! answer with or without `HX-Request`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::error::{FragmentError, Problem};
use super::index::MetaView;
use super::query::Query;
use super::{State, auth, html, no_store, signing};
use crate::policy::FieldValue;
use crate::store::S3Client;
use crate::upload::{Completion, UploadRequest, ValidationError};

#[derive(Template)]
#[template(path = "partials/image_meta.html")]
pub struct ImageMetaFragment {
    pub meta: MetaView,
}

fn dimensions_problem() -> Problem {
    ValidationError::DimensionsInvalid.into()
}

/// Read the upload request from the query string.
pub fn upload_request(q: &Query) -> Result<UploadRequest, Problem> {
    Ok(UploadRequest {
        filename: q.get("filename").map(str::to_owned),
        content_type: q.get("content_type").map(str::to_owned),
        size: q.number("size", || {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "size_invalid",
                "The file size must be a whole number of bytes.",
            )
        })?,
        width: q.number("width", dimensions_problem)?,
        height: q.number("height", dimensions_problem)?,
        owner: None,
        alt: q.get("alt").map(str::to_owned),
    })
}

#[tracing::instrument(level = "debug", name = "image_meta", skip_all)]
pub async fn image_meta(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
) -> Result<HttpResponse, FragmentError> {
    let identity = auth::identify(&req, &state, &client).await?;
    let query = Query::parse(req.query_string()).map_err(|mut p| {
        // The fragment speaks 422 for every input problem.
        p.status = StatusCode::UNPROCESSABLE_ENTITY;
        p
    })?;
    let request = upload_request(&query)?;
    let valid = request.validate(&state.presigner.limits, true)?;
    let uploader =
        signing::uploader(&identity, &state, &client, None, Some((&valid).into())).await?;
    let signed = state
        .presigner
        .presign(&valid, Completion::Redirect, state.clock, &uploader);
    let mut resp = html(
        StatusCode::OK,
        &ImageMetaFragment {
            meta: MetaView::new(signed, None),
        },
    );
    no_store(&mut resp);
    Ok(resp)
}
