//! `GET /`: the upload page. Its first render already carries a signed image-meta partial,
//! so the form uploads without JavaScript.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::assets::AssetUrls;
use super::error::PageError;
use super::{State, auth, html, no_store, signing};
use crate::policy::FieldValue;
use crate::policy::time::rfc3339_seconds;
use crate::store::S3Client;
use crate::upload::{ImageType, SignedUpload};

/// One `<option>` of the no-JavaScript type select.
pub struct TypeOption {
    pub mime: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// What the image-meta partial shows: the signed fields in policy order, and when to sign
/// again.
pub struct MetaView {
    pub fields: Vec<(&'static str, FieldValue)>,
    /// The no-JavaScript type select: the index of the field it stands for, and its options.
    select: Option<(usize, Vec<TypeOption>)>,
    pub resign_at: String,
}

impl MetaView {
    /// `select`: the allowed types, when the Content-Type is the user's choice (no JS yet).
    pub fn new(signed: SignedUpload, select: Option<&[ImageType]>) -> Self {
        let select = select.and_then(|types| {
            let at = signed
                .fields
                .iter()
                .position(|(name, _)| name.eq_ignore_ascii_case("Content-Type"))?;
            let value = &signed.fields[at].1;
            let options = types
                .iter()
                .map(|t| TypeOption {
                    mime: t.mime(),
                    label: t.label(),
                    selected: t.mime() == value.as_str(),
                })
                .collect();
            Some((at, options))
        });
        Self {
            fields: signed.fields,
            select,
            resign_at: rfc3339_seconds(signed.resign_at),
        }
    }

    /// The select's options, when the field at `index` is shown as the type select.
    pub fn options(&self, index: usize) -> Option<&[TypeOption]> {
        match &self.select {
            Some((at, options)) if *at == index => Some(options),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    assets: &'a AssetUrls,
    limits_text: &'a str,
    accept: &'a str,
    max_bytes: u64,
    form_url: &'a str,
    meta: MetaView,
}

#[tracing::instrument(level = "debug", name = "index", skip_all)]
pub async fn index(
    req: HttpRequest,
    state: web::Data<State>,
    client: web::Data<S3Client>,
) -> Result<HttpResponse, PageError> {
    // The first render signs a form (for no file yet): it counts as a new file.
    let identity = auth::identify(&req, &state, &client).await?;
    let uploader = signing::uploader(&identity, &state, &client, None, None).await?;
    let signed = state.presigner.initial(state.clock, &uploader);
    let limits = &state.presigner.limits;
    let select = (limits.allowed.len() > 1).then_some(limits.allowed.as_slice());
    let page = IndexPage {
        assets: &state.assets,
        limits_text: &state.limits_text,
        accept: &state.accept,
        max_bytes: limits.max_bytes,
        form_url: &state.presigner.form_url,
        meta: MetaView::new(signed, select),
    };
    let mut resp = html(StatusCode::OK, &page);
    // Each load carries a fresh signature: never cache it.
    no_store(&mut resp);
    Ok(resp)
}
