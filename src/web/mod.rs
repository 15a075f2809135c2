//! The web layer: one module per page or endpoint, the errors they share, and the app
//! factory that main and the tests both use.

pub mod api;
pub mod assets;
pub mod auth;
mod delete;
pub mod error;
pub mod fragment;
mod gallery;
mod health;
pub mod index;
mod links;
mod middleware;
mod query;
pub mod ratelimit;
mod sign_request;
mod signing;
pub mod startup;
mod state;
mod uploaded;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

pub use state::State;

/// Render a template into a response. Our templates only print strings and numbers, so
/// rendering cannot fail short of a bug; if it ever does, the client gets a plain 500.
pub(crate) fn html(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => {
            let mut resp = HttpResponse::build(status).body(body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError().body("internal error")
        }
    }
}

/// Base64 and hex hold no character HTML escapes (only `policy::Encoded`'s own encoders
/// make one), so askama writes them as they are: the policy is most of a form's bytes.
impl askama::filters::HtmlSafe for crate::policy::Encoded {}

fn no_store(resp: &mut HttpResponse) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
