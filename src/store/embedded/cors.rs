//! CORS for the site's scripts: preflights and answers for the site's origin (and
//! `--cors-origins`) only. Uploads are POSTs (forms) and PUTs (multipart parts); an
//! aborted multipart upload is a DELETE; a resumed one lists its parts with a GET.

use http::{HeaderValue, Method, Request, Response, StatusCode};

/// CORS for browser scripts: preflights and responses for the allowed origins only.
pub struct Cors {
    pub origins: Vec<String>,
}

const ALLOWED_METHODS: &str = "POST, PUT, DELETE, GET, HEAD";
const EXPOSED_HEADERS: &str = "ETag, Location, x-amz-request-id";

impl Cors {
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins
            .iter()
            .any(|o| origin.as_bytes() == o.as_bytes())
    }

    pub fn is_preflight<B>(req: &Request<B>) -> bool {
        req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Let the site's scripts read this answer (and its ETag).
    pub fn allow_response<B>(&self, origin: Option<HeaderValue>, resp: &mut Response<B>) {
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            let h = resp.headers_mut();
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
            h.append(http::header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    pub fn preflight<B>(&self, req: &Request<B>) -> Response<s3s::Body> {
        let origin = req.headers().get(http::header::ORIGIN);
        let method_ok = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| {
                matches!(
                    m.as_bytes(),
                    b"POST" | b"PUT" | b"DELETE" | b"GET" | b"HEAD"
                )
            });
        let mut resp = Response::new(s3s::Body::empty());
        resp.headers_mut()
            .insert(http::header::VARY, HeaderValue::from_static("Origin"));
        match origin {
            Some(origin) if self.allows(origin) && method_ok => {
                *resp.status_mut() = StatusCode::OK;
                let h = resp.headers_mut();
                h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                // The signatures decide what a request may carry: any header a signed
                // request sends (Content-Type, x-amz-meta-*) is allowed.
                if let Some(asked) = req
                    .headers()
                    .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
                {
                    h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
                h.insert(
                    http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED_HEADERS),
                );
                h.insert(
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
            _ => {
                // No Access-Control-Allow-Origin: the browser refuses the request.
                *resp.status_mut() = StatusCode::FORBIDDEN;
            }
        }
        resp
    }
}
