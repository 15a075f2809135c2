//! What every handler shares: read-only after start, so no lock on the hot path.

use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use tokio::sync::Notify;
use url::Url;

use super::assets::AssetUrls;
use super::auth::Auth;
use crate::config::Settings;
use crate::store::{ImageUrls, StoreTarget, Verifier};
use crate::upload::{Clock, Presigner};

pub struct State {
    pub settings: Settings,
    /// The static files' versioned URLs.
    pub assets: AssetUrls,
    /// The site's origin, resolved after binding (`http://127.0.0.1:8080`).
    pub public_url: Url,
    pub presigner: Presigner,
    /// Where signpost's own S3 requests go.
    pub target: Arc<StoreTarget>,
    /// Where browsers reach the bucket.
    pub browser_target: Arc<StoreTarget>,
    /// Where browsers fetch originals and thumbnails.
    pub urls: ImageUrls,
    pub clock: Clock,
    pub csp: HeaderValue,
    /// The page's text and the file input's `accept` for the allowed types and size, built
    /// once.
    pub limits_text: String,
    pub accept: String,
    /// Identity: tokens, keys, the rate limit and quotas.
    pub auth: Auth,
    /// What confirmations check, and how many read and decode at once.
    pub verifier: Verifier,
    /// Wakes the background sweep (after a page saw an upload, say).
    pub sweep: Arc<Notify>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("public_url", &self.public_url.as_str())
            .field("bucket", &self.settings.bucket)
            .finish_non_exhaustive()
    }
}

impl State {
    /// `/uploaded?bucket=&key=&etag=` for a confirmed upload.
    pub fn confirmation_path(&self, key: &str, etag: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("bucket", &self.settings.bucket)
            .append_pair("key", key)
            .append_pair("etag", etag)
            .finish();
        format!("/uploaded?{query}")
    }

    pub fn wake_sweep(&self) {
        self.sweep.notify_one();
    }
}
