//! One log line per request, and a request id echoed in `X-Request-Id`.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn incoming_id(req: &ServiceRequest) -> Option<HeaderValue> {
    let v = req.headers().get(REQUEST_ID)?;
    let ok = (1..=64).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| v.clone())
}

fn new_id() -> HeaderValue {
    // Hex digits are always a valid header value.
    HeaderValue::from_str(&format!("{:016x}", rand::random::<u64>()))
        .expect("hex is a valid header value")
}

/// A path or query for the log, bounded to 300 bytes.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s.len() <= 300 {
            return f.write_str(s);
        }
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        f.write_str(&s[..end])?;
        f.write_str("…")
    }
}

pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let id = incoming_id(&req).unwrap_or_else(new_id);
    let id_str = id.to_str().unwrap_or_default().to_owned();
    let method = req.method().clone();
    // The path only: query strings carry what users typed and chose (file names), which
    // have no place in an info-level log. `RUST_LOG=info,signpost::http=debug` adds them.
    // (Cloning a `Uri` shares its bytes.)
    let uri = req.uri().clone();
    let span = tracing::info_span!("request", request_id = %id_str);
    let mut res = next.call(req).instrument(span).await?;
    res.headers_mut().insert(REQUEST_ID, id);
    let status = res.status().as_u16();
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let path = Shown(uri.path());
    if let Some(err) = res.response().error() {
        tracing::info!(target: "signpost::http", request_id = %id_str, %method, %path, status, latency_us, error = %err, "request");
    } else {
        tracing::info!(target: "signpost::http", request_id = %id_str, %method, %path, status, latency_us, "request");
    }
    if let Some(query) = uri.query() {
        tracing::debug!(target: "signpost::http", request_id = %id_str, query = %Shown(query), "request query");
    }
    Ok(res)
}
