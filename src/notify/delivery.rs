//! Sending one event to the receiver, and the backoff between failed attempts.

use std::time::Duration;

use awc::http::header;
use url::Url;

use super::event::Event;
use super::signature::{EVENT_ID_HEADER, SIGNATURE_HEADER, sign};
use crate::secret::Secret;
use crate::store::{Confirmed, ImageUrls, ThumbnailLink};

/// Connect timeout, and total timeout of one delivery (headers and body).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait after a failure; it doubles with each further failure...
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// ...up to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The wait after `failures` consecutive failures (1 or more): exponential from
/// [`BACKOFF_BASE`], capped at [`BACKOFF_CAP`], with "equal jitter": half of it fixed, the
/// other half scaled by `jitter` (0 to 1, random), so instances that failed together do
/// not retry together.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the receiver at {host} is unreachable ({detail})")]
    Unreachable { host: String, detail: String },
    #[error("the receiver at {host} did not answer within {} s", .after.as_secs())]
    Timeout { host: String, after: Duration },
    #[error("the receiver at {host} answered {status}")]
    Status { host: String, status: u16 },
}

/// POSTs signed events to `--notify-url`. Not `Send` (awc): one per sweep task.
pub struct Deliverer {
    http: awc::Client,
    url: Url,
    /// For messages: the receiver's host and port, never its path (which may hold a token).
    host: String,
    secret: Secret,
    /// Where the thumbnails in events are fetched from (none given: events list none).
    urls: Option<ImageUrls>,
}

impl Deliverer {
    pub fn new(url: Url, secret: Secret) -> Self {
        let connector = awc::Connector::new()
            .timeout(DELIVERY_TIMEOUT)
            .handshake_timeout(DELIVERY_TIMEOUT);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(DELIVERY_TIMEOUT)
            .disable_redirects()
            .add_default_header((
                header::USER_AGENT,
                concat!("signpost/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        let host = url.origin().ascii_serialization();
        Self {
            http,
            url,
            host,
            secret,
            urls: None,
        }
    }

    /// Events list thumbnails with URLs from `urls`.
    pub fn with_image_urls(mut self, urls: ImageUrls) -> Self {
        self.urls = Some(urls);
        self
    }

    /// Whether events list thumbnails (their URLs come from here).
    pub fn lists_thumbnails(&self) -> bool {
        self.urls.is_some()
    }

    /// An upload's thumbnails, with URLs signed now.
    pub fn thumbnail_links(&self, c: &Confirmed) -> Vec<ThumbnailLink> {
        self.urls
            .as_ref()
            .map(|u| u.thumbnail_links(c))
            .unwrap_or_default()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// One attempt: 2xx is delivered, anything else (or no answer within
    /// [`DELIVERY_TIMEOUT`]) is a failure to retry. Each attempt is signed afresh, so its
    /// timestamp is the time it was sent.
    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let body = event.body();
        let signature = sign(&self.secret, chrono::Utc::now().timestamp(), &body);
        let attempt = async {
            let mut resp = self
                .http
                .post(self.url.as_str())
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((SIGNATURE_HEADER, signature))
                .insert_header((EVENT_ID_HEADER, event.id.as_str()))
                .send_body(body)
                .await
                .map_err(|e| match e {
                    awc::error::SendRequestError::Timeout
                    | awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout) => {
                        DeliveryError::Timeout {
                            host: self.host.clone(),
                            after: DELIVERY_TIMEOUT,
                        }
                    }
                    other => DeliveryError::Unreachable {
                        host: self.host.clone(),
                        detail: other.to_string(),
                    },
                })?;
            // Read (a bounded amount of) the answer so the connection can be reused.
            let _ = resp.body().limit(64 * 1024).await;
            let status = resp.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status {
                    host: self.host.clone(),
                    status: status.as_u16(),
                })
            }
        };
        match actix_web::rt::time::timeout(DELIVERY_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Timeout {
                host: self.host.clone(),
                after: DELIVERY_TIMEOUT,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(8, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX, 0.0), BACKOFF_CAP / 2);
        // Zero failures is treated as one; a wild jitter is clamped.
        assert_eq!(backoff(0, 5.0), Duration::from_millis(500));
        for f in 1..40 {
            for j in [0.0, 0.3, 0.99] {
                let d = backoff(f, j);
                assert!(d <= BACKOFF_CAP && d >= BACKOFF_BASE / 2, "{f} {j} {d:?}");
                assert!(backoff(f + 1, j) >= d);
            }
        }
    }

    #[actix_web::test]
    async fn messages_name_the_host_only() {
        let d = Deliverer::new(
            Url::parse("https://hooks.example.com/in/tok_SECRETPATH").unwrap(),
            Secret::new("0123456789abcdef"),
        );
        assert_eq!(d.host(), "https://hooks.example.com");
        let e = DeliveryError::Status {
            host: d.host().to_owned(),
            status: 500,
        };
        assert!(!e.to_string().contains("SECRETPATH"));
    }
}
