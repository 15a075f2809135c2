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
pub mod members;
pub mod scan;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use checkpoint::{Checkpoint, CheckpointError, CheckpointStore, Retry};
use members::Members;
use scan::{Batch, Candidate, MAX_BATCH, Scanner, horizon_ms};

use crate::config::Settings;
use crate::notify::dead_letter::{self, Parked};
use crate::notify::delivery::{Deliverer, DeliveryError, backoff};
use crate::notify::outbox::OUTBOX_PREFIX;
use crate::notify::{Event, event_id};
use crate::policy::time::iso8601_millis;
use crate::store::records::set_aside_key;
use crate::store::{
    ConfirmError, ImageUrls, OnReject, S3Client, StoreError, StoreTarget, Verifier, confirm,
};
use crate::upload::{Clock, ObjectKey};

/// Store errors on one object before it is set aside (logged at error level, with a marker
/// under `.signpost/set-aside/`; it gets no record and no event).
pub const MAX_ATTEMPTS: u32 = 5;
/// Deliveries in a row that find no receiver (unreachable, or no answer in time) before a
/// pass stops delivering: the receiver is down, and the sweep backs off.
const DOWN_AFTER: u32 = 3;
/// Outbox events listed in one pass (a page of 1,000 a request); more wait for the next pass.
const MAX_OUTBOX_LISTED: usize = 10_000;

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
    /// Everything found was handled: wait for a wake-up, the interval, or the next retry.
    Idle,
    /// More uploads wait than one sweep takes: sweep again at once.
    More,
}

/// Which uploads (and queued events) this instance handles in a pass.
#[derive(Debug, Clone)]
enum Share {
    /// All of them: a private checkpoint, or no other instance.
    All,
    /// Its share among the live instances (rendezvous hashing).
    Of { me: String, live: Vec<String> },
}

impl Share {
    fn owns(&self, key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Of { me, live } => members::owner(live, key) == Some(me.as_str()),
        }
    }

    fn is_live(&self, instance: &str) -> bool {
        match self {
            Self::All => false,
            Self::Of { live, .. } => live.iter().any(|i| i == instance),
        }
    }
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
    /// With the bucket checkpoint: the instances sharing the bucket, each handling its share.
    pub members: Option<Members>,
    /// How long an event may keep failing before it is parked as a dead letter.
    pub dead_letter_after: Duration,
    /// Checkpoints of instances that are gone, merged into ours: removed once ours is saved.
    absorbed: Vec<String>,
    /// An upload the store failed to serve is read again this long after its first failure,
    /// twice as long after its second, and so on (the sweep interval).
    pub unread_step: Duration,
    /// When the soonest retry of ours (a failed delivery, an upload that could not be read)
    /// is due (Unix ms).
    next_retry_ms: Option<i64>,
}

async fn save_logged(store: &CheckpointStore, client: &S3Client, cp: &Checkpoint) -> bool {
    match store.save(client, cp).await {
        Ok(()) => true,
        Err(e) => {
            // The sweep goes on; a restart before the next good save repeats some of its work.
            tracing::error!(error = %e, "cannot save the sweep checkpoint");
            false
        }
    }
}

fn min_ms(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
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
            members: None,
            dead_letter_after: Duration::from_secs(24 * 3600),
            absorbed: Vec::new(),
            unread_step: Duration::from_secs(30),
            next_retry_ms: None,
        }
    }

    /// How long until the soonest retry of a failed delivery, if one waits.
    pub fn next_retry_in(&self) -> Option<Duration> {
        let at = self.next_retry_ms?;
        let ms = at
            .saturating_sub(self.clock.now().timestamp_millis())
            .max(0);
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Read the checkpoint: once for a private one, before every sweep for a shared one
    /// (every instance's, merged with ours). With none, start at the horizon and save that
    /// at once, so that a restart does not skip what landed meanwhile.
    async fn load(&mut self, horizon: i64, share: &Share) -> Result<(), CheckpointError> {
        if self.checkpoint.is_some() && !self.store.is_shared() {
            return Ok(());
        }
        let prefix = &self.verifier.prefix;
        let mut loaded: Option<Checkpoint> = None;
        self.absorbed.clear();
        for found in self.store.load(&self.client).await? {
            let cp = found.checkpoint;
            if !cp.is_for(&self.bucket, prefix) {
                tracing::warn!(
                    checkpoint = %found.key.as_deref().map_or_else(|| self.store.describe(), str::to_owned),
                    its_bucket = %cp.bucket,
                    its_prefix = %cp.prefix,
                    "a sweep checkpoint is for another bucket or prefix; ignored"
                );
                continue;
            }
            // Another instance's, which is gone (or the single one of earlier versions):
            // ours takes over what it says.
            if let Some(key) = found.key
                && self.store.is_shared()
                && found.instance.as_deref().is_none_or(|i| {
                    !share.is_live(i) && self.members.as_ref().is_none_or(|m| m.id() != i)
                })
            {
                self.absorbed.push(key);
            }
            match &mut loaded {
                Some(all) => all.merge(&cp),
                None => loaded = Some(cp),
            }
        }
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
        let share = match &self.members {
            None => Share::All,
            Some(m) => match m.live() {
                Some(live) => Share::Of {
                    me: m.id().to_owned(),
                    live,
                },
                // Until this instance's heartbeat is known fresh, the others may hold its
                // share: the heartbeat wakes the sweep.
                None => return Ok(Swept::Idle),
            },
        };
        // Taken before listing: anything that lands later was signed after `horizon`.
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let horizon = horizon_ms(now, self.window);
        self.load(horizon, &share).await?;
        let Some(cp) = self.checkpoint.as_mut() else {
            return Ok(Swept::Idle);
        };
        cp.prune(now_ms);
        let prefix = self.verifier.prefix.clone();

        let mut batch = Batch::new(MAX_BATCH);
        // The oldest upload of another instance's share that is not done yet: the watermark
        // may not pass it (if that instance dies, its successor finds it above).
        let mut theirs: Option<i64> = None;
        let mut scanner = Scanner::new(&self.client, &prefix, now, cp.watermark_ms);
        while let Some(page) = scanner.next_page().await? {
            for c in page {
                let done = c
                    .listed_etag
                    .as_deref()
                    .is_some_and(|etag| cp.is_delivered(&event_id(c.key.as_str(), etag)));
                if done {
                    continue;
                }
                if share.owns(c.key.as_str()) {
                    batch.push(c);
                } else if !cp.failing.contains_key(c.key.as_str()) {
                    theirs = min_ms(theirs, c.at_ms);
                }
            }
        }
        // Uploads that failed before are read again once their wait is over, wherever the
        // watermark is; so are those whose event is due again, which may not be listed any
        // more (deleted, or replaced by a newer version).
        let step_ms = i64::try_from(self.unread_step.as_millis()).unwrap_or(i64::MAX);
        let due: BTreeSet<&str> = cp
            .failing
            .iter()
            .filter(|(_, f)| f.next_ms(step_ms) <= now_ms)
            .map(|(k, _)| k.as_str())
            .chain(
                cp.retrying
                    .values()
                    .filter(|r| r.upload_ms.is_some() && r.next_ms <= now_ms)
                    .map(|r| r.key.as_str()),
            )
            .collect();
        let mut retries: Vec<Candidate> = due
            .into_iter()
            .filter(|k| share.owns(k))
            .filter_map(|k| ObjectKey::parse(&prefix, k))
            .filter(|k| !batch.contains(k.as_str()))
            .map(|key| Candidate {
                at_ms: key.id().time().map_or(0, |t| t.timestamp_millis()),
                key,
                listed_etag: None,
            })
            .collect();
        retries.sort_by_key(|c| c.at_ms);

        let mut delivery = self.deliverer.as_ref().map(|d| Delivery {
            deliverer: d,
            client: &self.client,
            dead_letter_after_ms: i64::try_from(self.dead_letter_after.as_millis())
                .unwrap_or(i64::MAX),
            unreachable: 0,
            down: None,
        });
        let mut pending = batch.dropped_floor_ms();
        let mut dirty = !retries.is_empty();
        // Events that failed before and are due again: after the new ones, so that an event
        // the receiver keeps refusing delays no other.
        let mut again: Vec<(Event, i64)> = Vec::new();
        for c in retries.iter().chain(batch.oldest_first()) {
            // Failed to be read lately: read again once its wait is over.
            if cp
                .failing
                .get(c.key.as_str())
                .is_some_and(|f| f.next_ms(step_ms) > now_ms)
            {
                continue;
            }
            // Waiting for its next attempt: no need to read the upload again before then.
            if let Some(etag) = &c.listed_etag
                && cp.is_waiting(&event_id(c.key.as_str(), etag), now_ms)
            {
                pending = min_ms(pending, c.at_ms);
                continue;
            }
            match confirm(&self.client, &self.verifier, &c.key, None, OnReject::Delete).await {
                Ok(confirmed) => {
                    let Some(delivery) = delivery.as_mut() else {
                        cp.settle(c.key.as_str(), now_ms);
                        cp.record(event_id(c.key.as_str(), &confirmed.etag), c.at_ms);
                        dirty = true;
                        continue;
                    };
                    let id = event_id(c.key.as_str(), &confirmed.etag);
                    // An earlier version's event is of no more use.
                    dirty |= cp.forget_retries(c.key.as_str(), Some(&id)) > 0;
                    if cp.is_delivered(&id) {
                        cp.settle(c.key.as_str(), now_ms);
                        continue;
                    }
                    if cp.is_waiting(&id, now_ms) {
                        pending = min_ms(pending, c.at_ms);
                        continue;
                    }
                    // Only an event that is sent gets its thumbnails' URLs signed.
                    let event = Event::new(
                        &self.bucket,
                        &confirmed,
                        delivery.deliverer.thumbnail_links(&confirmed),
                    );
                    if cp.retrying.contains_key(&event.id) {
                        again.push((event, c.at_ms));
                        continue;
                    }
                    if delivery
                        .attempt(cp, &event, &event.key, Some(c.at_ms), now_ms)
                        .await
                    {
                        cp.settle(c.key.as_str(), now_ms);
                        save_logged(&self.store, &self.client, cp).await;
                    } else {
                        pending = min_ms(pending, c.at_ms);
                        dirty = true;
                    }
                }
                // Gone since the listing: there is nothing to confirm.
                Err(ConfirmError::NotFound) => {
                    dirty |= cp.settle(c.key.as_str(), now_ms) | forget_events_of_gone(cp, &c.key);
                    tracing::debug!(key = %c.key, "listed upload is gone");
                }
                Err(ConfirmError::Rejected {
                    kind,
                    reason,
                    deleted,
                }) => {
                    dirty |= cp.settle(c.key.as_str(), now_ms) | forget_events_of_gone(cp, &c.key);
                    tracing::warn!(key = %c.key, code = kind.code(), %reason, deleted, "upload refused; no event");
                }
                // Replaced while it was read: it is listed again next time.
                Err(ConfirmError::EtagMismatch) => {}
                Err(ConfirmError::Store(e)) if e.is_outage() => {
                    let floor = theirs.map_or(c.at_ms, |t| t.min(c.at_ms));
                    if cp.advance(horizon, min_ms(pending, floor)) {
                        save_logged(&self.store, &self.client, cp).await;
                    }
                    return Err(SweepError::Store(e));
                }
                Err(ConfirmError::Store(e)) => {
                    let attempts = cp.fail(c.key.as_str(), e.to_string(), now_ms);
                    if attempts >= MAX_ATTEMPTS {
                        set_aside(&self.client, cp, &c.key, attempts, &e, now_ms).await;
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

        if let Some(delivery) = delivery.as_mut() {
            for (event, at_ms) in &again {
                if delivery
                    .attempt(cp, event, &event.key, Some(*at_ms), now_ms)
                    .await
                {
                    cp.settle(&event.key, now_ms);
                    save_logged(&self.store, &self.client, cp).await;
                } else {
                    pending = min_ms(pending, *at_ms);
                }
            }
            dirty |= !again.is_empty();
            match deliver_outbox(delivery, cp, &share, now_ms).await {
                Ok(changed) => dirty |= changed,
                Err(e) => {
                    save_logged(&self.store, &self.client, cp).await;
                    return Err(SweepError::Store(e));
                }
            }
        }

        let watermark = cp.watermark_ms;
        let floor = theirs.map_or(pending, |t| min_ms(pending, t));
        let saved = if cp.advance(horizon, floor) || dirty || !self.absorbed.is_empty() {
            save_logged(&self.store, &self.client, cp).await
        } else {
            true
        };
        if saved {
            for key in self.absorbed.drain(..) {
                // Its content is in ours now.
                if let Err(e) = self.client.delete(&key).await {
                    tracing::debug!(%key, error = %e, "cannot remove a gone instance's checkpoint");
                }
            }
        }
        if cp.watermark_ms != watermark {
            tracing::debug!(watermark_ms = cp.watermark_ms, "sweep watermark advanced");
        }
        self.next_retry_ms = cp
            .retrying
            .values()
            .filter(|r| share.owns(&r.key))
            .map(|r| r.next_ms)
            .chain(
                cp.failing
                    .iter()
                    .filter(|(k, _)| share.owns(k))
                    .map(|(_, f)| f.next_ms(step_ms)),
            )
            .min();
        match delivery.and_then(|d| d.down) {
            Some(e) => Err(e),
            None if batch.dropped_floor_ms().is_some() => Ok(Swept::More),
            None => Ok(Swept::Idle),
        }
    }
}

/// The upload `key` is gone: the events of it still waiting to be delivered cannot be built
/// any more (its deletion is announced by its own event).
fn forget_events_of_gone(cp: &mut Checkpoint, key: &ObjectKey) -> bool {
    let dropped = cp.forget_retries(key.as_str(), None);
    if dropped > 0 {
        tracing::warn!(key = %key, dropped, "an upload was deleted before its event could be delivered; that event is dropped");
    }
    dropped > 0
}

/// The deliveries of one pass.
struct Delivery<'a> {
    deliverer: &'a Deliverer,
    client: &'a S3Client,
    dead_letter_after_ms: i64,
    /// Deliveries in a row that found no receiver.
    unreachable: u32,
    /// Set once [`DOWN_AFTER`] deliveries in a row found no receiver: the pass delivers no
    /// more, and the sweep backs off.
    down: Option<SweepError>,
}

impl Delivery<'_> {
    /// Attempt `event` (unless the receiver is down); `retry_key` is what its retry state
    /// belongs to (the upload, or its object in the outbox). Returns whether it is done:
    /// delivered, or parked as a dead letter.
    async fn attempt(
        &mut self,
        cp: &mut Checkpoint,
        event: &Event,
        retry_key: &str,
        upload_ms: Option<i64>,
        now_ms: i64,
    ) -> bool {
        if self.down.is_some() {
            return false;
        }
        let error = match self.deliverer.deliver(event).await {
            Ok(()) => {
                self.unreachable = 0;
                tracing::info!(event_id = %event.id, key = %event.key, "event delivered");
                cp.record(event.id.clone(), upload_ms.unwrap_or(now_ms));
                return true;
            }
            Err(e) => e,
        };
        let retry = cp.retry_later(
            &event.id,
            retry_key,
            upload_ms,
            error.to_string(),
            now_ms,
            |attempts| backoff(attempts, rand::random::<f64>()),
        );
        if now_ms.saturating_sub(retry.first_failed_ms) >= self.dead_letter_after_ms {
            match park(self.client, event, &retry, now_ms).await {
                Ok(()) => {
                    cp.record(event.id.clone(), upload_ms.unwrap_or(now_ms));
                    return true;
                }
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "cannot park an event as a dead letter; it is retried");
                }
            }
        } else {
            let retry_in_ms = retry.next_ms.saturating_sub(now_ms);
            tracing::warn!(event_id = %event.id, key = %event.key, error = %error, attempts = retry.attempts, retry_in_ms, "delivery failed; retrying");
        }
        if matches!(
            error,
            DeliveryError::Unreachable { .. } | DeliveryError::Timeout { .. }
        ) {
            self.unreachable += 1;
            if self.unreachable >= DOWN_AFTER {
                self.down = Some(SweepError::Delivery {
                    event_id: event.id.clone(),
                    key: event.key.clone(),
                    source: error,
                });
            }
        } else {
            // The receiver answers: it refuses this event, not every event.
            self.unreachable = 0;
        }
        false
    }
}

/// Park `event` under `.signpost/notify/dead-letter/` and say so at error level.
async fn park(
    client: &S3Client,
    event: &Event,
    retry: &Retry,
    now_ms: i64,
) -> Result<(), StoreError> {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, iso8601_millis)
    };
    let parked = Parked {
        id: event.id.clone(),
        parked_at: at(now_ms),
        first_failed_at: at(retry.first_failed_ms),
        attempts: retry.attempts,
        last_error: retry.last_error.clone(),
        event: event.clone(),
    };
    dead_letter::park(client, &parked).await?;
    tracing::error!(
        event_id = %event.id,
        key = %event.key,
        attempts = retry.attempts,
        first_failed_at = %parked.first_failed_at,
        last_error = %retry.last_error,
        "an event kept failing; it is parked as a dead letter (`signpost events dead-letters`, `signpost events redeliver`)"
    );
    Ok(())
}

/// Deliver this instance's share of the events waiting in the outbox (deletions: the sweep
/// cannot see them in the bucket), and remove each once it is delivered or parked. Returns
/// whether the checkpoint changed.
async fn deliver_outbox(
    delivery: &mut Delivery<'_>,
    cp: &mut Checkpoint,
    share: &Share,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let client = delivery.client;
    // Every page: events waiting for their next attempt must not hide the ones behind them.
    let mut waiting = Vec::new();
    loop {
        let page = client
            .list(OUTBOX_PREFIX, waiting.last().map(String::as_str), 1000)
            .await?;
        waiting.extend(page.objects.into_iter().map(|o| o.key));
        if !page.truncated || waiting.len() >= MAX_OUTBOX_LISTED {
            break;
        }
    }
    let before = cp.retrying.len();
    if waiting.len() < MAX_OUTBOX_LISTED {
        // The retry state of an event that left the outbox is of no more use.
        let listed: HashSet<&str> = waiting.iter().map(String::as_str).collect();
        cp.retrying
            .retain(|_, r| r.upload_ms.is_some() || listed.contains(r.key.as_str()));
    }
    let retry_at: HashMap<&str, i64> = cp
        .retrying
        .values()
        .filter(|r| r.upload_ms.is_none())
        .map(|r| (r.key.as_str(), r.next_ms))
        .collect();
    let due: Vec<String> = waiting
        .into_iter()
        .filter(|key| share.owns(key) && retry_at.get(key.as_str()).is_none_or(|at| *at <= now_ms))
        .collect();
    let mut changed = cp.retrying.len() != before;
    for key in due {
        if delivery.down.is_some() {
            break;
        }
        let Some(bytes) = client.get(&key, 64 * 1024).await? else {
            continue;
        };
        let Ok(event) = serde_json::from_slice::<Event>(&bytes) else {
            tracing::error!(%key, "an unreadable event in the outbox; removing it");
            client.delete(&key).await?;
            continue;
        };
        changed = true;
        if delivery.attempt(cp, &event, &key, None, now_ms).await {
            client.delete(&key).await?;
        }
    }
    Ok(changed)
}

/// Stop retrying an upload the store keeps failing to serve: it is logged, marked under
/// `.signpost/set-aside/`, and shown and announced nowhere.
async fn set_aside(
    client: &S3Client,
    cp: &mut Checkpoint,
    key: &ObjectKey,
    attempts: u32,
    error: &StoreError,
    now_ms: i64,
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
            cp.settle(key.as_str(), now_ms);
        }
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "cannot mark an upload as set aside; it stays on the retry list");
        }
    }
}

/// The sweep's loop: at once, then on every wake-up (a confirmed upload, a change of the
/// instances sharing the bucket), on `interval`, or when a failed delivery is due again;
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
                let wait = sweeper
                    .next_retry_in()
                    .map_or(interval, |d| d.clamp(Duration::from_millis(100), interval));
                tokio::select! {
                    () = wake.notified() => {}
                    () = actix_web::rt::time::sleep(wait) => {}
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

/// The background tasks: the sweep, the first start's backfill, the heartbeat.
pub struct Background {
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
    /// With the bucket checkpoint: this instance's heartbeat, removed at shutdown.
    members: Option<(Members, S3Client)>,
}

impl Background {
    /// Another task to stop at shutdown.
    pub fn push(&mut self, task: actix_web::rt::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stop the tasks, then remove this instance's heartbeat so that the others take over
    /// its share at once rather than when it lapses.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some((members, client)) = self.members {
            members.leave(&client).await;
        }
    }
}

/// Start the sweep (and, on the first start, the backfill; with the bucket checkpoint, the
/// heartbeat) as local tasks (awc is `!Send`) with their own S3 and HTTP clients; `wake`
/// starts a sweep at once. The caller stops them at shutdown.
pub fn spawn(
    settings: &Settings,
    target: Arc<StoreTarget>,
    urls: ImageUrls,
    verifier: Verifier,
    clock: Clock,
    wake: Arc<Notify>,
) -> Background {
    let deliverer = settings.notify.as_ref().map(|n| {
        let d = Deliverer::new(n.url.clone(), n.secret.clone()).with_image_urls(urls);
        tracing::info!(receiver = %d.host(), "delivering upload events");
        d
    });
    let store = CheckpointStore::new(settings, settings.checkpoint);
    let members = store
        .is_shared()
        .then(|| Members::new(settings.instance_id.clone(), settings.instance_ttl));
    let mut sweeper = Sweeper::new(
        S3Client::new(target.clone()),
        deliverer,
        store,
        settings.bucket.clone(),
        verifier.clone(),
        clock,
        // A multipart upload can complete up to --multipart-ttl after its key was signed.
        scan::window(settings.policy_ttl.max(settings.multipart_ttl)),
    );
    sweeper.members = members.clone();
    sweeper.dead_letter_after = settings.dead_letter_after;
    sweeper.unread_step = settings.sweep_interval;
    let backfill = backfill::Backfill {
        client: S3Client::new(target.clone()),
        verifier,
    };
    let mut tasks = vec![
        actix_web::rt::spawn(run(sweeper, wake.clone(), settings.sweep_interval)),
        actix_web::rt::spawn(backfill.run()),
    ];
    let members = members.map(|m| {
        tasks.push(actix_web::rt::spawn(members::run(
            m.clone(),
            S3Client::new(target.clone()),
            wake,
        )));
        (m, S3Client::new(target))
    });
    Background { tasks, members }
}
