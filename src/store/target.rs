//! Where the bucket is and how to sign for it: shared, read-only, one per process.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials as S3Credentials, UrlStyle};
use url::Url;

use crate::config::{Settings, StoreSettings};
use crate::secret::Credentials;

#[derive(Debug)]
pub struct StoreTarget {
    pub bucket: Bucket,
    pub credentials: S3Credentials,
    /// The endpoint, for messages ("the store at http://… is unreachable").
    pub endpoint: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl StoreTarget {
    /// `endpoint`: the resolved endpoint (the embedded store's bound address, a custom
    /// endpoint, or `None` for AWS).
    pub fn new(
        settings: &Settings,
        endpoint: Option<&Url>,
        credentials: &Credentials,
    ) -> Result<Self, String> {
        let (url, style) = match (&settings.store, endpoint) {
            (StoreSettings::Aws, _) => {
                let url = Url::parse(&format!("https://s3.{}.amazonaws.com", settings.region))
                    .map_err(|e| format!("bad region for an AWS URL: {e}"))?;
                // Dotted names break TLS on virtual hosts: they go path-style.
                let style = if settings.bucket.contains('.') {
                    UrlStyle::Path
                } else {
                    UrlStyle::VirtualHost
                };
                (url, style)
            }
            (_, Some(url)) => (url.clone(), UrlStyle::Path),
            (_, None) => return Err("no endpoint for the store".into()),
        };
        let endpoint = url.as_str().trim_end_matches('/').to_owned();
        let bucket = Bucket::new(url, style, settings.bucket.clone(), settings.region.clone())
            .map_err(|e| format!("cannot build the bucket URL: {e}"))?;
        let credentials = match &credentials.session_token {
            Some(token) => S3Credentials::new_with_token(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.expose(),
                token.expose(),
            ),
            None => S3Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.expose(),
            ),
        };
        Ok(Self {
            bucket,
            credentials,
            endpoint,
            connect_timeout: settings.s3_connect_timeout,
            timeout: settings.s3_timeout,
        })
    }

    /// The form's `action`: the bucket URL, without a trailing slash for path style.
    pub fn form_url(&self) -> String {
        let base = self.bucket.base_url().as_str();
        if base.ends_with(&format!("/{}/", self.bucket.name())) {
            base.trim_end_matches('/').to_owned()
        } else {
            base.to_owned()
        }
    }

    /// The origin of the store (for the Content-Security-Policy).
    pub fn origin(&self) -> String {
        self.bucket.base_url().origin().ascii_serialization()
    }
}
