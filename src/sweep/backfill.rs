//! The backfill: uploads stored before records (or before thumbnails) existed are confirmed
//! once, in the background, on the first start that finds no `.signpost/backfill.json` of
//! the current [`VERSION`], so an upgrade never empties the gallery. Every upload under the
//! prefix is confirmed like the sweep confirms one (a record with thumbnails, or a file that
//! is no allowed image deleted); uploads already confirmed cost a HEAD and a record read.
//! Then the marker is written.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::MAX_ATTEMPTS;
use crate::notify::delivery::backoff;
use crate::store::records::INTERNAL_PREFIX;
use crate::store::{ConfirmError, OnReject, S3Client, StoreError, Verifier, confirm};
use crate::upload::ObjectKey;

/// Written when the backfill is done: its presence means "nothing to backfill".
pub fn marker_key() -> String {
    format!("{INTERNAL_PREFIX}backfill.json")
}

const LIST_PAGE: usize = 1000;
/// 1: records; 2: thumbnails.
pub const VERSION: u32 = 2;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Absent in the first markers.
    #[serde(default = "first_version")]
    pub version: u32,
    pub confirmed: u64,
    pub refused: u64,
    pub set_aside: u64,
    pub completed_at: String,
}

fn first_version() -> u32 {
    1
}

pub struct Backfill {
    pub client: S3Client,
    pub verifier: Verifier,
}

impl Backfill {
    /// Run until done, waiting out store outages.
    pub async fn run(self) {
        let mut failures = 0;
        loop {
            match self.once().await {
                Ok(None) => return,
                Ok(Some(summary)) => {
                    tracing::info!(
                        confirmed = summary.confirmed,
                        refused = summary.refused,
                        set_aside = summary.set_aside,
                        "backfill done: every upload has a record and thumbnails"
                    );
                    return;
                }
                Err(e) => {
                    failures += 1;
                    let wait = backoff(failures, rand::random::<f64>());
                    tracing::warn!(error = %e, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "backfill paused: the store cannot be read");
                    actix_web::rt::time::sleep(wait).await;
                }
            }
        }
    }

    /// `Ok(None)`: it was done before.
    pub async fn once(&self) -> Result<Option<Summary>, StoreError> {
        if let Some(marker) = self.client.get(&marker_key(), 64 * 1024).await?
            && serde_json::from_slice::<Summary>(&marker).is_ok_and(|m| m.version >= VERSION)
        {
            return Ok(None);
        }
        let prefix = &self.verifier.prefix;
        let mut summary = Summary {
            version: VERSION,
            ..Summary::default()
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .client
                .list(prefix.as_str(), after.as_deref(), LIST_PAGE)
                .await?;
            for object in &page.objects {
                let Some(key) = ObjectKey::parse(prefix, &object.key) else {
                    continue;
                };
                self.confirm_one(&key, &mut summary).await?;
            }
            match (page.truncated, page.objects.last()) {
                (true, Some(last)) => after = Some(last.key.clone()),
                _ => break,
            }
        }
        summary.completed_at = crate::policy::time::iso8601_millis(chrono::Utc::now());
        // A struct of numbers and a string serializes without failing.
        let json = serde_json::to_vec(&summary).unwrap_or_default();
        self.client
            .put(&marker_key(), Bytes::from(json), "application/json")
            .await?;
        Ok(Some(summary))
    }

    /// Confirm one upload, retrying what the store fails to serve; only an outage stops.
    async fn confirm_one(&self, key: &ObjectKey, summary: &mut Summary) -> Result<(), StoreError> {
        for attempt in 1..=MAX_ATTEMPTS {
            match confirm(&self.client, &self.verifier, key, None, OnReject::Delete).await {
                Ok(_) => {
                    summary.confirmed += 1;
                    return Ok(());
                }
                Err(ConfirmError::Rejected { .. }) => {
                    summary.refused += 1;
                    return Ok(());
                }
                Err(ConfirmError::NotFound | ConfirmError::EtagMismatch) => return Ok(()),
                Err(ConfirmError::Store(e)) if e.is_outage() => return Err(e),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, attempt, "backfill: cannot confirm an upload");
                    if attempt < MAX_ATTEMPTS {
                        actix_web::rt::time::sleep(Duration::from_millis(200 * u64::from(attempt)))
                            .await;
                    }
                }
            }
        }
        tracing::error!(key = %key, "backfill: an upload keeps failing to be read; it is set aside");
        summary.set_aside += 1;
        let marker = serde_json::json!({ "key": key.as_str(), "attempts": MAX_ATTEMPTS });
        let _ = self
            .client
            .put(
                &crate::store::records::set_aside_key(key.as_str()),
                Bytes::from(marker.to_string()),
                "application/json",
            )
            .await;
        Ok(())
    }
}
