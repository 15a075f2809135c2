//! Serving the embedded store so that no client can starve it: HTTP/1 connections with a
//! header timeout (which also closes idle keep-alive connections), a cap on open
//! connections, a deadline per request, a cap on uploads in flight (s3s keeps a POSTed file
//! in memory), and bodies that are cut when they stall (see [`super::body`]).

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, ORIGIN};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::service::S3Service;
use tokio::sync::{Semaphore, watch};

use super::Limits;
use super::body::GuardedBody;
use super::cors::Cors;

/// Everything a request goes through, shared by every connection.
pub struct Front {
    pub service: S3Service,
    pub cors: Cors,
    pub limits: Limits,
    /// One permit per upload in flight.
    pub uploads: Arc<Semaphore>,
    /// The largest body a PUT (an object or one part of a multipart upload) may carry.
    pub max_bytes: u64,
}

/// An S3 error answer that the store itself gives.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(s3s::Body::from(xml));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn is_form_post<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("multipart/form-data"))
}

/// The `<ETag>` of an S3 XML answer, without quotes.
fn xml_etag(xml: &str) -> Option<&str> {
    let (_, rest) = xml.split_once("<ETag>")?;
    let (etag, _) = rest.split_once("</ETag>")?;
    Some(
        etag.trim_matches('"')
            .trim_start_matches("&quot;")
            .trim_end_matches("&quot;"),
    )
}

/// S3 answers a POST upload's 201 with the ETag in a header as well as in the XML: scripts
/// should not have to parse XML. s3s 0.14 puts it only in the XML.
async fn add_etag_header(resp: &mut Response<s3s::Body>) {
    if resp.headers().contains_key(ETAG) {
        return;
    }
    let Ok(xml) = resp.body_mut().store_all_limited(64 * 1024).await else {
        return;
    };
    if let Some(etag) = xml_etag(&String::from_utf8_lossy(&xml))
        && let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\""))
    {
        resp.headers_mut().insert(ETAG, v);
    }
    *resp.body_mut() = s3s::Body::from(xml);
}

/// A PUT's body must say its length, and be no larger than any upload may be: s3s-fs
/// writes a part as it comes, whatever its size. (signpost checks a multipart upload's
/// total before it signs its completion.)
fn put_too_large<B>(req: &Request<B>, max_bytes: u64) -> Option<Response<s3s::Body>> {
    if req.method() != Method::PUT {
        return None;
    }
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        None => Some(s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        )),
        Some(n) if n > max_bytes => Some(s3_error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size.",
        )),
        Some(_) => None,
    }
}

/// A presigned request (SigV4 in its query) that carries an `x-amz-*` header its signature
/// does not cover: AWS refuses those ("There were headers present in the request which were
/// not signed"); s3s would take them, so a client could add metadata (`x-amz-meta-link`,
/// `x-amz-meta-alt`) or an ACL that nobody signed.
fn unsigned_amz_header<B>(req: &Request<B>) -> Option<Response<s3s::Body>> {
    let query = req.uri().query()?;
    let signed = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Amz-SignedHeaders"))?
        .1;
    let unsigned = req.headers().keys().map(|h| h.as_str()).find(|h| {
        h.starts_with("x-amz-") && !signed.split(';').any(|s| s.eq_ignore_ascii_case(h))
    })?;
    Some(s3_error(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        &format!("There were headers present in the request which were not signed: {unsigned}"),
    ))
}

impl Front {
    pub async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<s3s::Body>, s3s::HttpError> {
        if Cors::is_preflight(&req) {
            return Ok(self.cors.preflight(&req));
        }
        let origin = req.headers().get(ORIGIN).cloned();
        if let Some(mut resp) =
            unsigned_amz_header(&req).or_else(|| put_too_large(&req, self.max_bytes))
        {
            self.cors.allow_response(origin, &mut resp);
            return Ok(resp);
        }
        let form_post = is_form_post(&req);
        // s3s holds a POSTed file in memory: only so many uploads read their bodies at once.
        let _slot = if matches!(*req.method(), Method::POST | Method::PUT) {
            match tokio::time::timeout(
                self.limits.upload_wait,
                self.uploads.clone().acquire_owned(),
            )
            .await
            {
                Ok(Ok(permit)) => Some(permit),
                _ => {
                    let mut resp = s3_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Too many uploads at once; try again in a moment.",
                    );
                    self.cors.allow_response(origin, &mut resp);
                    return Ok(resp);
                }
            }
        } else {
            None
        };
        let (idle, min) = (self.limits.body_idle, self.limits.body_min_bytes);
        let req = req.map(|body| s3s::Body::http_body(GuardedBody::new(body, idle, min)));
        let mut resp = match tokio::time::timeout(
            self.limits.request_deadline,
            self.service.call(req),
        )
        .await
        {
            Ok(resp) => resp?,
            Err(_) => s3_error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "The request took too long.",
            ),
        };
        if form_post && resp.status() == StatusCode::CREATED {
            add_etag_header(&mut resp).await;
        }
        self.cors.allow_response(origin, &mut resp);
        Ok(resp)
    }
}

/// Accept connections until `stop` says so, then give in-flight requests the grace period.
pub async fn serve(listener: StdListener, front: Arc<Front>, stop: &mut watch::Receiver<bool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the embedded store cannot listen");
            return;
        }
    };
    let connections = Arc::new(Semaphore::new(front.limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(front.limits.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // A slot first: at the cap, new connections wait in the kernel's backlog and hold
        // none of the process's file descriptors.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => {
                    // Object bodies are streamed after their headers, as the site's static
                    // files are: no waiting for the client's delayed ACK.
                    let _ = socket.set_nodelay(true);
                    socket
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedded store: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let front = front.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let front = front.clone();
            async move { front.handle(req).await }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(socket), svc));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let grace = front.limits.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "embedded store: in-flight requests did not finish within the grace period");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_read_from_either_xml_form() {
        assert_eq!(
            xml_etag("<PostResponse><ETag>abc</ETag></PostResponse>"),
            Some("abc")
        );
        assert_eq!(xml_etag("<ETag>&quot;abc&quot;</ETag>"), Some("abc"));
        assert_eq!(xml_etag("<ETag>\"abc\"</ETag>"), Some("abc"));
        assert_eq!(xml_etag("<Error/>"), None);
    }
}
