//! Static assets, compiled into the binary: served with a strong ETag, under a fingerprinted
//! name with a one-year immutable cache, and gzip-compressed (once, at first use) for
//! clients that accept it.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use sha2::{Digest, Sha256};

struct Asset {
    /// `upload.js`
    name: &'static str,
    /// `upload.3f2a9c1d.js`
    fingerprinted: String,
    content_type: &'static str,
    etag: String,
    body: Bytes,
    gzip: Bytes,
}

/// The URLs templates link to.
#[derive(Debug)]
pub struct AssetUrls {
    pub js: String,
    pub css: String,
}

struct Assets {
    files: Vec<Asset>,
    urls: AssetUrls,
}

fn asset(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let digest = hex::encode(&Sha256::digest(body)[..8]);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Compressing into memory cannot fail.
    gz.write_all(body).expect("gzip into memory");
    let gzip = gz.finish().expect("gzip into memory");
    Asset {
        name,
        fingerprinted: format!("{stem}.{}.{ext}", &digest[..8]),
        content_type,
        etag: format!("\"{digest}\""),
        body: Bytes::from_static(body),
        gzip: Bytes::from(gzip),
    }
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files = vec![
        asset(
            "upload.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/upload.js"),
        ),
        asset(
            "style.css",
            "text/css; charset=utf-8",
            include_bytes!("../../static/style.css"),
        ),
    ];
    let url = |name: &str| {
        files
            .iter()
            .find(|a| a.name == name)
            .map(|a| format!("/static/{}", a.fingerprinted))
            .unwrap_or_default()
    };
    let urls = AssetUrls {
        js: url("upload.js"),
        css: url("style.css"),
    };
    Assets { files, urls }
});

pub fn urls() -> &'static AssetUrls {
    &ASSETS.urls
}

/// Uncompressed size of the page's own assets (for the page-weight budget).
pub fn total_bytes() -> usize {
    ASSETS.files.iter().map(|a| a.body.len()).sum()
}

fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

/// `GET /static/{name}`
pub async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    let Some((asset, immutable)) = ASSETS.files.iter().find_map(|a| {
        if a.fingerprinted == name {
            Some((a, true))
        } else if a.name == name {
            Some((a, false))
        } else {
            None
        }
    }) else {
        return super::error::PageError(super::error::Problem::not_found()).into_response();
    };

    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut resp = if not_modified {
        HttpResponse::NotModified().finish()
    } else if accepts_gzip(&req) {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(asset.gzip.clone())
    } else {
        HttpResponse::Ok().body(asset.body.clone())
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

trait IntoResponse {
    fn into_response(self) -> HttpResponse;
}

impl IntoResponse for super::error::PageError {
    fn into_response(self) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}
