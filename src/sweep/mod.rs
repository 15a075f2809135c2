//! The background sweep: the bucket is the queue. Every `--notify-sweep-secs` (and at once
//! when a page or the API wakes it) it lists the upload prefix newest first down to its
//! checkpoint's watermark and confirms every upload there: the record is written, or a file
//! that is certainly no allowed image is deleted. With events configured it then delivers
//! one event per confirmed upload.
//!
//! One bad object affects only itself: a store error on one object is retried on later
//! sweeps (the watermark does not wait for it) and set aside after
//! [`MAX_ATTEMPTS`]; only a store that cannot be reached at all stops a sweep. A backfill on
//! the first start ([`backfill`]) confirms the uploads stored before records existed.

pub mod backfill;
pub mod checkpoint;
pub mod scan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use scan::{Batch, Candidate, MAX_BATCH, Scanner, horizon_ms};

use crate::config::Settings;
use crate::notify::delivery::{Deliverer, DeliveryError, backoff};
use crate::notify::outbox::OUTBOX_PREFIX;
use crate::notify::{Event, event_id};
use crate::store::records::INTERNAL_PREFIX;
use crate::store::{
    ConfirmError, Confirmed, OnReject, S3Client, StoreError, StoreTarget, Verifier, confirm,
};
use crate::upload::{Clock, ObjectKey};

/// Store errors on one object before it is set aside (logged at error level, with a marker
/// under `.signpost/set-aside/`; it gets no record and no event).
pub const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot read the bucket: {0}")]
    Store(#[from] StoreError),
    #[error("delivery of event {event_id} ({key}) failed: {source}")]
    Delivery {
        event_id: String,
        key: String,
        source: DeliveryError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// Everything found was handled: wait for a wake-up or the interval.
    Idle,
    /// More uploads wait than one sweep takes: sweep again at once.
    More,
}

/// What the sweep needs, owned by its (local, `!Send`) task.
pub struct Sweeper {
    pub client: S3Client,
    /// Set when events are configured.
    pub deliverer: Option<Deliverer>,
    pub store: CheckpointStore,
    pub checkpoint: Option<Checkpoint>,
    pub bucket: String,
    pub verifier: Verifier,
    pub clock: Clock,
    pub window: Duration,
    /// Uploads this sweep confirmed, key → ETag: skipped while their ETag stays the same.
    confirmed: HashMap<String, (String, i64)>,
}

async fn save_logged(store: &CheckpointStore, client: &S3Client, cp: &Checkpoint) {
    if let Err(e) = store.save(client, cp).await {
        // The sweep goes on; a restart before the next good save repeats some of its work.
        tracing::error!(error = %e, "cannot save the sweep checkpoint");
    }
}

/// Where an upload that could not be read is set aside.
pub fn set_aside_key(key: &str) -> String {
    format!("{INTERNAL_PREFIX}set-aside/{key}.json")
}

impl Sweeper {
    pub fn new(
        client: S3Client,
        deliverer: Option<Deliverer>,
        store: CheckpointStore,
        bucket: String,
        verifier: Verifier,
        clock: Clock,
        window: Duration,
    ) -> Self {
        Self {
            client,
            deliverer,
            store,
            checkpoint: None,
            bucket,
            verifier,
            clock,
            window,
            confirmed: HashMap::new(),
        }
    }

    /// Read the checkpoint: once for a private one, before every sweep for a shared one
    /// (merged with ours). With none, start at the horizon and save that at once, so that
    /// a restart does not skip what landed meanwhile.
    async fn load(&mut self, horizon: i64) -> Result<(), CheckpointError> {
        if self.checkpoint.is_some() && !self.store.is_shared() {
            return Ok(());
        }
        let prefix = &self.verifier.prefix;
        let loaded = self.store.load(&self.client).await?.filter(|cp| {
            let ours = cp.is_for(&self.bucket, prefix);
            if !ours {
                tracing::warn!(
                    checkpoint = %self.store.describe(),
                    its_bucket = %cp.bucket,
                    its_prefix = %cp.prefix,
                    "the sweep checkpoint is for another bucket or prefix; starting afresh"
                );
            }
            ours
        });
        match (&mut self.checkpoint, loaded) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (Some(_), None) => {}
            (None, Some(theirs)) => {
                tracing::info!(
                    checkpoint = %self.store.describe(),
                    watermark_ms = theirs.watermark_ms,
                    delivered = theirs.delivered.len(),
                    "resuming the sweep from its checkpoint"
                );
                self.checkpoint = Some(theirs);
            }
            (None, None) => {
                let fresh = Checkpoint::fresh(&self.bucket, prefix, horizon);
                tracing::info!(
                    checkpoint = %self.store.describe(),
                    watermark_ms = horizon,
                    "no sweep checkpoint yet: sweeping uploads signed from now on (and those still in flight)"
                );
                self.store.save(&self.client, &fresh).await?;
                self.checkpoint = Some(fresh);
            }
        }
        Ok(())
    }

    /// One pass. On an error the checkpoint keeps what was done before it.
    pub async fn sweep(&mut self) -> Result<Swept, SweepError> {
        // Taken before listing: anything that lands later was signed after `horizon`.
        let now = self.clock.now();
        let horizon = horizon_ms(now, self.window);
        self.load(horizon).await?;
        let Some(cp) = self.checkpoint.as_mut() else {
            return Ok(Swept::Idle);
        };
        let prefix = self.verifier.prefix.clone();

        let mut batch = Batch::new(MAX_BATCH);
        let mut scanner = Scanner::new(&self.client, &prefix, now, cp.watermark_ms);
        while let Some(page) = scanner.next_page().await? {
            for c in page {
                let etag = c.listed_etag.as_deref();
                let known = etag.is_some_and(|etag| match &self.deliverer {
                    Some(_) => cp.is_delivered(&event_id(c.key.as_str(), etag)),
                    None => self
                        .confirmed
                        .get(c.key.as_str())
                        .is_some_and(|(e, _)| e == etag),
                });
                if !known {
                    batch.push(c);
                }
            }
        }
        // Uploads that failed before are retried, wherever the watermark is.
        let mut retries: Vec<Candidate> = cp
            .failing
            .keys()
            .filter_map(|k| ObjectKey::parse(&prefix, k))
            .filter(|k| !batch.contains(k.as_str()))
            .map(|key| Candidate {
                at_ms: key.id().time().map_or(0, |t| t.timestamp_millis()),
                key,
                listed_etag: None,
            })
            .collect();
        retries.sort_by_key(|c| c.at_ms);

        let mut delivery_failure = None;
        let mut pending = batch.dropped_floor_ms();
        for c in retries.iter().chain(batch.oldest_first()) {
            match confirm(&self.client, &self.verifier, &c.key, None, OnReject::Delete).await {
                Ok(confirmed) => {
                    cp.settle(c.key.as_str());
                    self.confirmed
                        .insert(c.key.as_str().to_owned(), (confirmed.etag.clone(), c.at_ms));
                    let Some(deliverer) = &self.deliverer else {
                        continue;
                    };
                    if delivery_failure.is_some() {
                        // The receiver is failing: the rest waits for the next sweep.
                        pending = Some(pending.map_or(c.at_ms, |p| p.min(c.at_ms)));
                        continue;
                    }
                    if let Err(e) = deliver(deliverer, cp, &self.bucket, &confirmed, c.at_ms).await
                    {
                        pending = Some(pending.map_or(c.at_ms, |p| p.min(c.at_ms)));
                        delivery_failure = Some(e);
                        continue;
                    }
                    save_logged(&self.store, &self.client, cp).await;
                }
                // Gone since the listing: there is nothing to confirm.
                Err(ConfirmError::NotFound) => {
                    cp.settle(c.key.as_str());
                    tracing::debug!(key = %c.key, "listed upload is gone");
                }
                Err(ConfirmError::Rejected { reason, deleted }) => {
                    cp.settle(c.key.as_str());
                    tracing::warn!(key = %c.key, %reason, deleted, "upload failed verification; no event");
                }
                // Replaced while it was read: it is listed again next time.
                Err(ConfirmError::EtagMismatch) => {}
                Err(ConfirmError::Store(e)) if e.is_outage() => {
                    if cp.advance(horizon, Some(pending.map_or(c.at_ms, |p| p.min(c.at_ms)))) {
                        save_logged(&self.store, &self.client, cp).await;
                    }
                    return Err(SweepError::Store(e));
                }
                Err(ConfirmError::Store(e)) => {
                    let attempts = cp.fail(c.key.as_str(), e.to_string());
                    if attempts >= MAX_ATTEMPTS {
                        set_aside(&self.client, cp, &c.key, attempts, &e).await;
                    } else {
                        tracing::warn!(key = %c.key, error = %e, attempts, "cannot read an upload; retrying on the next sweeps");
                    }
                }
                // Only possible with a link's bucket or ETag, which the sweep does not pass.
                Err(other) => {
                    tracing::warn!(key = %c.key, error = %other, "upload not confirmed");
                }
            }
        }

        if delivery_failure.is_none()
            && let Some(deliverer) = &self.deliverer
            && let Err(e) = deliver_outbox(&self.client, deliverer).await
        {
            delivery_failure = Some(e);
        }

        let watermark = cp.watermark_ms;
        if cp.advance(horizon, pending) || !retries.is_empty() {
            save_logged(&self.store, &self.client, cp).await;
        }
        if cp.watermark_ms != watermark {
            let w = cp.watermark_ms;
            self.confirmed.retain(|_, (_, at)| *at >= w);
        }
        match delivery_failure {
            Some(e) => Err(e),
            None if batch.dropped_floor_ms().is_some() => Ok(Swept::More),
            None => Ok(Swept::Idle),
        }
    }
}

/// Deliver the event of a confirmed upload, unless it already was.
async fn deliver(
    deliverer: &Deliverer,
    cp: &mut Checkpoint,
    bucket: &str,
    confirmed: &Confirmed,
    at_ms: i64,
) -> Result<(), SweepError> {
    let event = Event::new(bucket, confirmed);
    if cp.is_delivered(&event.id) {
        return Ok(());
    }
    send(deliverer, &event).await?;
    cp.record(event.id, at_ms);
    Ok(())
}

async fn send(deliverer: &Deliverer, event: &Event) -> Result<(), SweepError> {
    deliverer
        .deliver(event)
        .await
        .map_err(|source| SweepError::Delivery {
            event_id: event.id.clone(),
            key: event.key.clone(),
            source,
        })?;
    tracing::info!(event_id = %event.id, key = %event.key, "event delivered");
    Ok(())
}

/// Deliver the events waiting in the outbox (deletions: the sweep cannot see them in the
/// bucket), and remove each once it is delivered.
async fn deliver_outbox(client: &S3Client, deliverer: &Deliverer) -> Result<(), SweepError> {
    let waiting = client.list(OUTBOX_PREFIX, None, 100).await?;
    for o in waiting.objects {
        let Some(bytes) = client.get(&o.key, 64 * 1024).await? else {
            continue;
        };
        let Ok(event) = serde_json::from_slice::<Event>(&bytes) else {
            tracing::error!(key = %o.key, "an unreadable event in the outbox; removing it");
            client.delete(&o.key).await?;
            continue;
        };
        send(deliverer, &event).await?;
        client.delete(&o.key).await?;
    }
    Ok(())
}

/// Stop retrying an upload the store keeps failing to serve: it is logged, marked under
/// `.signpost/set-aside/`, and shown and announced nowhere.
async fn set_aside(
    client: &S3Client,
    cp: &mut Checkpoint,
    key: &ObjectKey,
    attempts: u32,
    error: &StoreError,
) {
    tracing::error!(key = %key, attempts, error = %error, "an upload keeps failing to be read; it is set aside (no record, no event)");
    let marker = serde_json::json!({
        "key": key.as_str(),
        "attempts": attempts,
        "last_error": error.to_string(),
        "set_aside_at": crate::policy::time::iso8601_millis(chrono::Utc::now()),
    });
    let body = Bytes::from(marker.to_string());
    match client
        .put(&set_aside_key(key.as_str()), body, "application/json")
        .await
    {
        Ok(()) => {
            cp.settle(key.as_str());
        }
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "cannot mark an upload as set aside; it stays on the retry list");
        }
    }
}

/// The sweep's loop: at once, then on every wake-up (a confirmed upload) or `interval`;
/// after a failure, again after an exponential backoff (wake-ups wait for it).
pub async fn run(mut sweeper: Sweeper, wake: Arc<Notify>, interval: Duration) {
    let mut failures: u32 = 0;
    loop {
        match sweeper.sweep().await {
            Ok(Swept::More) => {
                failures = 0;
                tokio::task::yield_now().await;
            }
            Ok(Swept::Idle) => {
                failures = 0;
                tokio::select! {
                    () = wake.notified() => {}
                    () = actix_web::rt::time::sleep(interval) => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures, rand::random::<f64>());
                let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                if failures >= 10 {
                    tracing::error!(error = %e, failures, retry_in_ms, "the sweep keeps failing");
                } else {
                    tracing::warn!(error = %e, failures, retry_in_ms, "sweep failed; retrying");
                }
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

/// Start the sweep (and, on the first start, the backfill) as local tasks (awc is `!Send`)
/// with their own S3 and HTTP clients; `wake` starts a sweep at once. The caller aborts
/// them at shutdown.
pub fn spawn(
    settings: &Settings,
    target: Arc<StoreTarget>,
    verifier: Verifier,
    clock: Clock,
    wake: Arc<Notify>,
) -> Vec<actix_web::rt::task::JoinHandle<()>> {
    let deliverer = settings.notify.as_ref().map(|n| {
        let d = Deliverer::new(n.url.clone(), n.secret.clone());
        tracing::info!(receiver = %d.host(), "delivering upload events");
        d
    });
    let store = CheckpointStore::new(settings, settings.checkpoint);
    let sweeper = Sweeper::new(
        S3Client::new(target.clone()),
        deliverer,
        store,
        settings.bucket.clone(),
        verifier.clone(),
        clock,
        // A multipart upload can complete up to --multipart-ttl after its key was signed.
        scan::window(settings.policy_ttl.max(settings.multipart_ttl)),
    );
    let backfill = backfill::Backfill {
        client: S3Client::new(target),
        verifier,
    };
    vec![
        actix_web::rt::spawn(run(sweeper, wake, settings.sweep_interval)),
        actix_web::rt::spawn(backfill.run()),
    ]
}
