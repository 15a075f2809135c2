//! Static assets, compiled into the binary: served with a strong ETag, under a fingerprinted
//! name with a one-year immutable cache, and gzip-compressed (once, when the application is
//! built) for clients that accept it.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub struct Asset {
    /// `upload.js`
    name: &'static str,
    /// `upload.3f2a9c1d.js`
    fingerprinted: String,
    content_type: &'static str,
    identity: Encoded,
    gzip: Encoded,
}

/// One encoding of an asset. A strong ETag names exact bytes, so each encoding has its own.
struct Encoded {
    body: Bytes,
    etag: HeaderValue,
}

impl Encoded {
    fn new(body: Bytes, digest: &str, suffix: &str) -> Self {
        let etag = format!("\"{digest}{suffix}\"");
        Self {
            body,
            // Hex digits and a suffix of letters: always a valid header value.
            etag: HeaderValue::from_str(&etag).expect("a hex ETag is a valid header value"),
        }
    }

    fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.as_bytes() == self.etag.as_bytes())
    }
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
        identity: Encoded::new(Bytes::from_static(body), &digest, ""),
        gzip: Encoded::new(Bytes::from(gzip), &digest, "-gzip"),
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

/// Every asset's paths: `(path, asset, immutable)`, the fingerprinted name (cached for a
/// year) and the plain one (revalidated). Each gets an exact route, matched by comparing
/// strings: a `/static/{name}` pattern ran a regex for every request that reached it.
pub fn routes() -> impl Iterator<Item = (String, &'static Asset, bool)> {
    ASSETS.files.iter().flat_map(|a| {
        [
            (format!("/static/{}", a.fingerprinted), a, true),
            (format!("/static/{}", a.name), a, false),
        ]
    })
}

/// `GET /static/…`: one asset, as routed by [`routes`].
pub async fn serve(req: HttpRequest, asset: &'static Asset, immutable: bool) -> HttpResponse {
    let (encoded, gzip) = if accepts_gzip(&req) {
        (&asset.gzip, true)
    } else {
        (&asset.identity, false)
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| encoded.matches(v));
    let mut resp = if not_modified {
        HttpResponse::NotModified().finish()
    } else {
        let mut ok = HttpResponse::Ok();
        if gzip {
            ok.insert_header((header::CONTENT_ENCODING, "gzip"));
        }
        ok.body(encoded.body.clone())
    };
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::ETAG, encoded.etag.clone());
    resp
}
