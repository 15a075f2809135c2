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

/// The path and query, bounded (nothing secret travels in signpost's URLs).
fn shown_uri(req: &ServiceRequest) -> String {
    let uri = req.uri();
    let s = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
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
    let uri = shown_uri(&req);
    let span = tracing::info_span!("request", request_id = %id_str);
    let mut res = next.call(req).instrument(span).await?;
    res.headers_mut().insert(REQUEST_ID, id);
    let status = res.status().as_u16();
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Some(err) = res.response().error() {
        tracing::info!(target: "signpost::http", request_id = %id_str, %method, uri = %uri, status, latency_us, error = %err, "request");
    } else {
        tracing::info!(target: "signpost::http", request_id = %id_str, %method, uri = %uri, status, latency_us, "request");
    }
    Ok(res)
}
