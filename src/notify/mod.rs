//! Delivery of confirmed uploads to the developer's API (`--notify-url`).
//!
//! The bucket is the queue: a background sweep lists the upload prefix, verifies each new
//! object with the checks of `/uploaded` (a liar is deleted, never announced), and POSTs one
//! signed JSON [`Event`] per upload, at least once, with a durable [`Checkpoint`].
//!
//! - [`event`]: the event body and its stable id (pure);
//! - [`signature`]: the `Signpost-Signature` header, and how a receiver verifies it (pure);
//! - [`checkpoint`]: the watermark + delivered set, and where it is stored;
//! - [`delivery`]: one HTTP attempt, and the backoff between attempts;
//! - [`sweep`]: listing, verifying, delivering, advancing.

pub mod checkpoint;
pub mod delivery;
pub mod event;
pub mod signature;
pub mod sweep;

use std::sync::Arc;

use tokio::sync::Notify;

pub use checkpoint::{Checkpoint, CheckpointStore};
pub use event::{Event, event_id};
pub use signature::{EVENT_ID_HEADER, SIGNATURE_HEADER};

use crate::config::Settings;
use crate::store::{S3Client, StoreTarget};
use crate::upload::Clock;

/// Start the background sweep when notifications are configured. It runs as a local task
/// (awc is `!Send`) with its own S3 and HTTP clients; `wake` starts a sweep at once; the
/// caller aborts it at shutdown.
pub fn spawn(
    settings: &Settings,
    target: Arc<StoreTarget>,
    clock: Clock,
    wake: Arc<Notify>,
) -> Option<actix_web::rt::task::JoinHandle<()>> {
    let notify = settings.notify.as_ref()?;
    let store = CheckpointStore::new(settings, notify.checkpoint);
    let deliverer = delivery::Deliverer::new(notify.url.clone(), notify.secret.clone());
    tracing::info!(
        receiver = %deliverer.host(),
        checkpoint = %store.describe(),
        sweep_secs = notify.sweep.as_secs(),
        "delivering upload events"
    );
    let sweeper = sweep::Sweeper {
        client: S3Client::new(target),
        deliverer,
        store,
        checkpoint: None,
        bucket: settings.bucket.clone(),
        prefix: settings.prefix.clone(),
        limits: settings.limits.clone(),
        clock,
        window: sweep::window(settings.policy_ttl),
    };
    Some(actix_web::rt::spawn(sweep::run(
        sweeper,
        wake,
        notify.sweep,
    )))
}
