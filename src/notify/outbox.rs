//! The outbox: events the sweep cannot find in the bucket (deletions), written there to be
//! delivered with the same guarantees as the others: at least once, retried until the
//! receiver takes them.

use bytes::Bytes;

use super::Event;
use crate::store::{S3Client, StoreError};

/// Where events wait: `.signpost/outbox/<event id>.json`.
pub const OUTBOX_PREFIX: &str = ".signpost/outbox/";

/// Queue `event` for delivery.
pub async fn enqueue(client: &S3Client, event: &Event) -> Result<(), StoreError> {
    client
        .put(
            &format!("{OUTBOX_PREFIX}{}.json", event.id),
            Bytes::from(event.body()),
            "application/json",
        )
        .await
}
