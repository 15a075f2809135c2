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
    // One allocation of the right size: the partials with a signed form are ~2 KiB.
    let mut body = String::with_capacity(4096);
    match template.render_into(&mut body) {
        Ok(()) => {
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

/// Whether a value holds a character HTML escapes (`<>&"'`). Most signed fields (the base64
/// policy, hex signatures, keys, dates) hold none and are written as they are; the rest is
/// escaped as usual. A branch-free fold over the bytes: the policy is a kilobyte, and
/// scanning it is most of what escaping costs.
pub(crate) fn needs_html_escape(value: &str) -> bool {
    any_byte(value, &HTML_SPECIAL, |b| {
        (b == b'<') | (b == b'>') | (b == b'&') | (b == b'"') | (b == b'\'')
    })
}

/// Whether a value holds a character JSON escapes (`"`, `\`, control characters).
pub(crate) fn needs_json_escape(value: &str) -> bool {
    any_byte(value, &JSON_SPECIAL, |b| {
        (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// 1 for each byte in `bytes` and each byte below `below`.
const fn byte_table(bytes: &[u8], below: u8) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = 1;
        i += 1;
    }
    let mut b = 0;
    while b < below {
        t[b as usize] = 1;
        b += 1;
    }
    t
}

static HTML_SPECIAL: [u8; 256] = byte_table(b"<>&\"'", 0);
static JSON_SPECIAL: [u8; 256] = byte_table(b"\"\\", 0x20);

/// Whether any byte matches. Values under 16 bytes (most field names and many values) take
/// a branch-free table fold. Longer ones go through 16-byte blocks of compares, which the
/// compiler vectorizes; the last block is the value's last 16 bytes (overlapping what was
/// seen: a hit is a hit), so no byte loop runs over the tail of the ~900-byte policy and
/// nothing is copied. `table` and `hit` must agree.
#[inline(always)]
fn any_byte(value: &str, table: &[u8; 256], hit: impl Fn(u8) -> bool + Copy) -> bool {
    const BLOCK: usize = 16;
    let bytes = value.as_bytes();
    if bytes.len() < BLOCK {
        return bytes
            .iter()
            .fold(0u8, |acc, &b| acc | table[usize::from(b)])
            != 0;
    }
    let blocks_hit = |bytes: &[u8]| {
        bytes
            .chunks_exact(BLOCK)
            .any(|block| block.iter().fold(0u8, |acc, &b| acc | u8::from(hit(b))) != 0)
    };
    blocks_hit(bytes) || blocks_hit(&bytes[bytes.len() - BLOCK..])
}

fn no_store(resp: &mut HttpResponse) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_skipped_only_for_values_with_nothing_to_escape() {
        for plain in [
            "eyJleHBpcmF0aW9uIjoi+/=",
            "uploads/fe5d-1/a_b.png",
            "http://[::1]:8080/uploaded",
            "",
        ] {
            assert!(!needs_html_escape(plain), "{plain}");
            assert!(!needs_json_escape(plain), "{plain}");
        }
        for html in ["a\"b", "<", ">", "&amp;", "it's"] {
            assert!(needs_html_escape(html), "{html}");
        }
        // The short path's tables and the long path's compares agree on every ASCII byte.
        for c in (0u8..128).map(char::from) {
            let html = "<>&\"'".contains(c);
            let json = c < ' ' || c == '"' || c == '\\';
            for v in [c.to_string(), format!("{c}{}", "x".repeat(20))] {
                assert_eq!(needs_html_escape(&v), html, "{v:?}");
                assert_eq!(needs_json_escape(&v), json, "{v:?}");
            }
        }
        // Every position of a block and of the last one.
        for len in 0..70 {
            for at in 0..len {
                let mut v = "x".repeat(len);
                v.replace_range(at..=at, "<");
                assert!(needs_html_escape(&v), "{len} {at}");
                v.replace_range(at..=at, "\n");
                assert!(needs_json_escape(&v), "{len} {at}");
            }
            assert!(!needs_html_escape(&"x".repeat(len)));
            assert!(!needs_json_escape(&"x".repeat(len)));
        }
        for json in ["a\"b", "back\\slash", "tab\there", "nul\0"] {
            assert!(needs_json_escape(json), "{json:?}");
        }
    }
}
