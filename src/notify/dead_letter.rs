//! Dead letters: events the receiver kept refusing (or never took) for
//! `--notify-dead-letter-after`, parked in the bucket so that they stop being retried and
//! hold nothing back. `signpost events dead-letters` lists them, `signpost events redeliver`
//! sends them again.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Event;
use crate::store::{S3Client, StoreError};

/// Where parked events are: `.signpost/notify/dead-letter/<event id>.json`.
pub const DEAD_LETTER_PREFIX: &str = ".signpost/notify/dead-letter/";
/// Largest parked event read back.
const MAX_PARKED_BYTES: usize = 256 * 1024;

pub fn dead_letter_key(event_id: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}{event_id}.json")
}

/// A parked event, with why it was parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub id: String,
    /// RFC 3339.
    pub parked_at: String,
    pub first_failed_at: String,
    pub attempts: u32,
    pub last_error: String,
    pub event: Event,
}

impl Parked {
    /// The line `signpost events dead-letters` prints: the event's id, type and key, and
    /// its parking.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.event.kind,
            "key": self.event.key,
            "parked_at": self.parked_at,
            "first_failed_at": self.first_failed_at,
            "attempts": self.attempts,
            "last_error": self.last_error,
        })
    }
}

pub async fn park(client: &S3Client, parked: &Parked) -> Result<(), StoreError> {
    // A struct of strings and numbers serializes into memory without failing.
    let body = serde_json::to_vec(parked).unwrap_or_default();
    client
        .put(
            &dead_letter_key(&parked.id),
            Bytes::from(body),
            "application/json",
        )
        .await
}

/// One parked event; `Ok(None)` when there is none with this id (or it is unreadable).
pub async fn get(client: &S3Client, event_id: &str) -> Result<Option<Parked>, StoreError> {
    let Some(bytes) = client
        .get(&dead_letter_key(event_id), MAX_PARKED_BYTES)
        .await?
    else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::warn!(event_id, error = %e, "an unreadable dead letter; left in place");
            Ok(None)
        }
    }
}

/// The ids of every parked event, in key order.
pub async fn ids(client: &S3Client) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client
            .list(DEAD_LETTER_PREFIX, after.as_deref(), 1000)
            .await?;
        after = page.objects.last().map(|o| o.key.clone());
        ids.extend(page.objects.iter().filter_map(|o| {
            o.key
                .strip_prefix(DEAD_LETTER_PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
                .map(str::to_owned)
        }));
        if !page.truncated || after.is_none() {
            return Ok(ids);
        }
    }
}

pub async fn remove(client: &S3Client, event_id: &str) -> Result<(), StoreError> {
    client.delete(&dead_letter_key(event_id)).await
}
