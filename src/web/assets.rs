//! Static files (`static/`), served by actix-files from `--static-dir`: it brings ETag,
//! Last-Modified, ranges and conditional GETs. Pages link each file with `?v=` and a hash of
//! its content, so that a versioned URL can be cached for a year and a changed file gets a
//! new URL; a plain URL is revalidated.

use std::path::{Path, PathBuf};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use sha2::{Digest, Sha256};

use super::error::{Problem, respond_for_path};

/// The files the pages link to.
const FILES: [&str; 2] = ["upload.js", "style.css"];

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read {file} in the static folder {}: {source} (set --static-dir or SIGNPOST_STATIC_DIR to signpost's static/ folder)",
    .dir.display()
)]
pub struct AssetsError {
    dir: PathBuf,
    file: &'static str,
    source: std::io::Error,
}

/// The URLs templates link to, each with its content's version.
#[derive(Debug, Clone)]
pub struct AssetUrls {
    pub js: String,
    pub css: String,
}

impl AssetUrls {
    /// Read the static folder once at start: a missing folder is a start-up error.
    pub fn load(dir: &Path) -> Result<Self, AssetsError> {
        let url = |file: &'static str| {
            let bytes = std::fs::read(dir.join(file)).map_err(|source| AssetsError {
                dir: dir.to_owned(),
                file,
                source,
            })?;
            let digest = hex::encode(&Sha256::digest(&bytes)[..4]);
            Ok(format!("/static/{file}?v={digest}"))
        };
        let [js, css] = FILES;
        Ok(Self {
            js: url(js)?,
            css: url(css)?,
        })
    }

    /// For pages rendered without the application's state (error pages): plain URLs.
    pub fn unversioned() -> Self {
        let [js, css] = FILES;
        Self {
            js: format!("/static/{js}"),
            css: format!("/static/{css}"),
        }
    }
}

/// Headers for `/static`: a versioned URL names fixed content, so it is cached for a year;
/// actix-files' own plain-text errors become the site's error pages.
pub async fn static_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let versioned = req.query_string().split('&').any(|p| p.starts_with("v="));
    let res = next.call(req).await?;
    let status = res.status();
    let mut res = if status.is_client_error() {
        let (req, old) = res.into_parts();
        let problem = match status {
            StatusCode::NOT_FOUND => Problem::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Problem::method_not_allowed(),
            _ => Problem::new(
                status,
                "static_file_refused",
                "This file cannot be served so.",
            ),
        };
        let mut page = respond_for_path(req.path(), &problem);
        for name in [header::CONTENT_RANGE, header::ALLOW] {
            if let Some(v) = old.headers().get(&name) {
                page.headers_mut().insert(name, v.clone());
            }
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            page.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        ServiceResponse::new(req, page)
    } else {
        res.map_into_boxed_body()
    };
    let value = if versioned && status.is_success() {
        "public, max-age=31536000, immutable"
    } else if status.is_success() || status == StatusCode::NOT_MODIFIED {
        "public, no-cache"
    } else {
        "no-store"
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_trees_files_load_and_a_missing_folder_is_named() {
        let urls = AssetUrls::load(Path::new(crate::config::DEFAULTS.static_dir)).unwrap();
        assert!(urls.js.starts_with("/static/upload.js?v="), "{}", urls.js);
        assert!(urls.css.starts_with("/static/style.css?v="), "{}", urls.css);
        let e = AssetUrls::load(Path::new("/nonexistent/static")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/static") && msg.contains("--static-dir"),
            "{msg}"
        );
    }
}
