//! The web layer: one module per page or endpoint, the errors they share, and the app
//! factory that main and the tests both use.

pub mod api;
pub mod assets;
pub mod error;
pub mod fragment;
mod gallery;
mod health;
pub mod index;
mod middleware;
mod query;
pub mod ratelimit;
pub mod startup;
mod state;
mod uploaded;

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
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

/// The client's address, for the optional rate limit: the peer, or the first
/// X-Forwarded-For hop when the proxy is trusted.
pub(crate) fn client_ip(req: &HttpRequest, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    req.peer_addr().map(|a| a.ip())
}

/// Apply the signing rate limit, if one is configured.
pub(crate) fn check_rate(state: &State, req: &HttpRequest) -> Result<(), error::Problem> {
    let (Some(limiter), Some(ip)) = (
        &state.rate_limiter,
        client_ip(req, state.settings.trust_proxy),
    ) else {
        return Ok(());
    };
    limiter.check(ip).map_err(error::Problem::rate_limited)
}

fn no_store(resp: &mut HttpResponse) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
