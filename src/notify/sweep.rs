//! The sweep: the bucket is the queue. List the prefix newest first down to the checkpoint's
//! watermark, verify each upload not yet delivered (the same checks as `/uploaded`; a liar
//! is deleted), deliver it, and move the checkpoint past what was delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use super::delivery::{Deliverer, DeliveryError, backoff};
use super::event::{Event, event_id};
use crate::store::{ConfirmError, OnLie, S3Client, StoreError, confirm};
use crate::upload::{Clock, KeyPrefix, Limits, ObjectKey, UploadId};

/// Added to the policy TTL: clock differences between the instances that sign, the store
/// and the one that sweeps.
pub const MARGIN: Duration = Duration::from_secs(120);
/// Ids this far in the future (a signer's clock ahead of ours) are still listed; keys
/// sorting before that (older keys with random UUIDs) are not.
pub const FUTURE_SKEW: Duration = Duration::from_secs(3600);
/// Uploads verified and delivered in one sweep, at most (the oldest first); the next sweep
/// follows at once when there were more.
pub const MAX_BATCH: usize = 256;
const LIST_PAGE: usize = 1000;

/// How long after its id's time an upload can still land: the policy TTL plus [`MARGIN`].
pub fn window(policy_ttl: Duration) -> Duration {
    policy_ttl.saturating_add(MARGIN)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now - window` in Unix milliseconds: uploads signed before it have landed or never will.
pub fn horizon_ms(now: DateTime<Utc>, window: Duration) -> i64 {
    now.timestamp_millis().saturating_sub(millis(window))
}

/// Where a newest-first listing starts: just before the ids of `now + FUTURE_SKEW`.
pub fn list_start(prefix: &KeyPrefix, now: DateTime<Utc>) -> String {
    let future = chrono::Duration::from_std(FUTURE_SKEW).unwrap_or(chrono::Duration::hours(1));
    format!("{prefix}{}", UploadId::new(now + future, [0; 10]))
}

/// What a listed key means to a scan whose floor is `floor_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not an upload of signpost's time-ordered shape: not notified.
    Skip,
    /// Older than the floor: so is everything listed after it.
    Stop,
    Take(ObjectKey, i64),
}

pub fn classify(prefix: &KeyPrefix, key: &str, floor_ms: i64) -> Seen {
    let Some(key) = ObjectKey::parse(prefix, key) else {
        return Seen::Skip;
    };
    let Some(at) = key.id().time() else {
        return Seen::Skip;
    };
    let at = at.timestamp_millis();
    if at < floor_ms {
        Seen::Stop
    } else {
        Seen::Take(key, at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: ObjectKey,
    /// The upload id's time, Unix ms.
    pub at_ms: i64,
    pub listed_etag: Option<String>,
}

/// Lists the prefix newest first, page by page, down to a floor.
pub struct Scanner<'a> {
    client: &'a S3Client,
    prefix: &'a KeyPrefix,
    after: String,
    floor_ms: i64,
    done: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(
        client: &'a S3Client,
        prefix: &'a KeyPrefix,
        now: DateTime<Utc>,
        floor_ms: i64,
    ) -> Self {
        Self {
            client,
            prefix,
            after: list_start(prefix, now),
            floor_ms,
            done: false,
        }
    }

    /// The uploads of the next page at or above the floor; `Ok(None)` once past it.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Candidate>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let listing = self
            .client
            .list(self.prefix.as_str(), Some(&self.after), LIST_PAGE)
            .await?;
        if !listing.truncated || listing.objects.is_empty() {
            self.done = true;
        }
        let mut out = Vec::new();
        for obj in listing.objects {
            match classify(self.prefix, &obj.key, self.floor_ms) {
                Seen::Stop => {
                    self.done = true;
                    break;
                }
                Seen::Skip => {}
                Seen::Take(key, at_ms) => out.push(Candidate {
                    key,
                    at_ms,
                    listed_etag: obj.etag,
                }),
            }
            self.after = obj.key;
        }
        Ok(Some(out))
    }
}

/// The oldest `cap` candidates of a newest-first listing, in bounded memory.
#[derive(Debug)]
pub struct Batch {
    /// Newest at the front.
    items: VecDeque<Candidate>,
    cap: usize,
    /// The time of the oldest candidate left out (all left out are at least this new).
    dropped_floor_ms: Option<i64>,
}

impl Batch {
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped_floor_ms: None,
        }
    }

    /// Add the next (older or same-age) candidate of the listing.
    pub fn push(&mut self, c: Candidate) {
        self.items.push_back(c);
        if self.items.len() > self.cap
            && let Some(newest) = self.items.pop_front()
        {
            self.dropped_floor_ms = Some(newest.at_ms);
        }
    }

    pub fn oldest_first(&self) -> impl Iterator<Item = &Candidate> {
        self.items.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether candidates were left for the next sweep; then the watermark may not pass
    /// this time.
    pub fn dropped_floor_ms(&self) -> Option<i64> {
        self.dropped_floor_ms
    }
}

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
    /// Everything found was delivered: wait for a wake-up or the interval.
    Idle,
    /// More uploads wait than one sweep takes: sweep again at once.
    More,
}

/// What the sweep needs, owned by its (local, `!Send`) task.
pub struct Sweeper {
    pub client: S3Client,
    pub deliverer: Deliverer,
    pub store: CheckpointStore,
    pub checkpoint: Option<Checkpoint>,
    pub bucket: String,
    pub prefix: KeyPrefix,
    pub limits: Limits,
    pub clock: Clock,
    pub window: Duration,
}

async fn save_logged(store: &CheckpointStore, client: &S3Client, cp: &Checkpoint) {
    if let Err(e) = store.save(client, cp).await {
        // Delivery goes on; a restart before the next good save re-sends these events.
        tracing::error!(error = %e, "cannot save the notification checkpoint");
    }
}

impl Sweeper {
    /// Read the checkpoint: once for a private one, before every sweep for a shared one
    /// (merged with ours). With none, start at the horizon and save that at once, so that
    /// a restart before the first delivery does not skip what landed meanwhile.
    async fn load(&mut self, horizon: i64) -> Result<(), CheckpointError> {
        if self.checkpoint.is_some() && !self.store.is_shared() {
            return Ok(());
        }
        let loaded = self.store.load(&self.client).await?.filter(|cp| {
            let ours = cp.is_for(&self.bucket, &self.prefix);
            if !ours {
                tracing::warn!(
                    checkpoint = %self.store.describe(),
                    its_bucket = %cp.bucket,
                    its_prefix = %cp.prefix,
                    "the notification checkpoint is for another bucket or prefix; starting afresh"
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
                    "resuming upload events from the checkpoint"
                );
                self.checkpoint = Some(theirs);
            }
            (None, None) => {
                let fresh = Checkpoint::fresh(&self.bucket, &self.prefix, horizon);
                tracing::info!(
                    checkpoint = %self.store.describe(),
                    watermark_ms = horizon,
                    "no notification checkpoint yet: delivering uploads signed from now on (and those still in flight)"
                );
                self.store.save(&self.client, &fresh).await?;
                self.checkpoint = Some(fresh);
            }
        }
        Ok(())
    }

    /// One pass: list down to the watermark, deliver the oldest undelivered uploads, move the
    /// checkpoint. On an error the checkpoint keeps what was delivered before it.
    pub async fn sweep(&mut self) -> Result<Swept, SweepError> {
        // Taken before listing: anything that lands later was signed after `horizon`.
        let now = self.clock.now();
        let horizon = horizon_ms(now, self.window);
        self.load(horizon).await?;
        let Self {
            client,
            deliverer,
            store,
            checkpoint,
            bucket,
            prefix,
            limits,
            ..
        } = self;
        let Some(cp) = checkpoint.as_mut() else {
            return Ok(Swept::Idle);
        };

        let mut batch = Batch::new(MAX_BATCH);
        let mut scanner = Scanner::new(client, prefix, now, cp.watermark_ms);
        while let Some(page) = scanner.next_page().await? {
            for c in page {
                let known = c
                    .listed_etag
                    .as_deref()
                    .is_some_and(|etag| cp.is_delivered(&event_id(c.key.as_str(), etag)));
                if !known {
                    batch.push(c);
                }
            }
        }

        let mut failure = None;
        let mut pending = batch.dropped_floor_ms();
        for c in batch.oldest_first() {
            match confirm(client, limits, &c.key, None, OnLie::Delete).await {
                Ok(confirmed) => {
                    let event = Event::new(bucket, &confirmed);
                    if cp.is_delivered(&event.id) {
                        continue;
                    }
                    if let Err(source) = deliverer.deliver(&event).await {
                        pending = Some(pending.map_or(c.at_ms, |p| p.min(c.at_ms)));
                        failure = Some(SweepError::Delivery {
                            event_id: event.id,
                            key: event.key,
                            source,
                        });
                        break;
                    }
                    tracing::info!(event_id = %event.id, key = %event.key, "upload event delivered");
                    cp.record(event.id, c.at_ms);
                    save_logged(store, client, cp).await;
                }
                // Gone since the listing: there is nothing to announce.
                Err(ConfirmError::NotFound) => {
                    tracing::debug!(key = %c.key, "listed upload is gone; no event");
                }
                Err(ConfirmError::Rejected { reason, deleted }) => {
                    tracing::warn!(key = %c.key, %reason, deleted, "upload failed verification; no event");
                }
                Err(ConfirmError::Store(e)) => {
                    pending = Some(pending.map_or(c.at_ms, |p| p.min(c.at_ms)));
                    failure = Some(SweepError::Store(e));
                    break;
                }
                // Only possible with a link's bucket or ETag, which the sweep does not pass.
                Err(other) => {
                    tracing::warn!(key = %c.key, error = %other, "upload not confirmed; no event");
                }
            }
        }

        if cp.advance(horizon, pending) {
            save_logged(store, client, cp).await;
        }
        match failure {
            Some(e) => Err(e),
            None if batch.dropped_floor_ms().is_some() => Ok(Swept::More),
            None => Ok(Swept::Idle),
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
                if failures >= 10 {
                    tracing::error!(error = %e, failures, retry_in_ms = wait.as_millis() as u64, "upload events are not getting through");
                } else {
                    tracing::warn!(error = %e, failures, retry_in_ms = wait.as_millis() as u64, "upload event sweep failed; retrying");
                }
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("uploads/").unwrap()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    fn key_at(ms: i64, r: u8) -> String {
        format!("uploads/{}/a.png", UploadId::new(at(ms), [r; 10]))
    }

    #[test]
    fn classification_follows_the_key_shape_and_the_floor() {
        let k = key_at(2_000_000, 1);
        assert!(matches!(
            classify(&prefix(), &k, 1_000_000),
            Seen::Take(_, 2_000_000)
        ));
        assert_eq!(classify(&prefix(), &k, 2_000_001), Seen::Stop);
        assert!(matches!(classify(&prefix(), &k, 2_000_000), Seen::Take(..)));
        let v4 = format!("uploads/{}/a.png", uuid::Uuid::new_v4());
        assert_eq!(classify(&prefix(), &v4, 0), Seen::Skip);
        assert_eq!(classify(&prefix(), "uploads/readme.txt", 0), Seen::Skip);
        assert_eq!(
            classify(&prefix(), ".signpost/notify/uploads/checkpoint.json", 0),
            Seen::Skip
        );
    }

    #[test]
    fn the_listing_starts_just_before_the_near_future() {
        let now = at(1_767_225_600_000);
        let start = list_start(&prefix(), now);
        let future = now.timestamp_millis() + millis(FUTURE_SKEW);
        // Keys newer than the skew sort before the start; anything up to it sorts after.
        assert!(key_at(future + 1, 0) < start);
        assert!(key_at(future, 0) > start);
        assert!(key_at(now.timestamp_millis(), 0xff) > start);
        assert!(key_at(0, 0) > start);
    }

    #[test]
    fn the_window_is_the_policy_ttl_plus_the_margin() {
        assert_eq!(window(Duration::from_secs(600)), Duration::from_secs(720));
        assert_eq!(horizon_ms(at(1_000_000), Duration::from_secs(720)), 280_000);
    }

    #[test]
    fn a_batch_keeps_the_oldest_and_remembers_what_it_left() {
        let prefix = prefix();
        let cand = |ms: i64| Candidate {
            key: ObjectKey::parse(&prefix, &key_at(ms, 3)).unwrap(),
            at_ms: ms,
            listed_etag: None,
        };
        let mut b = Batch::new(3);
        // A newest-first listing: 100, 90, ..., 50.
        for ms in (5..=10).rev().map(|x| x * 10) {
            b.push(cand(ms));
        }
        let kept: Vec<i64> = b.oldest_first().map(|c| c.at_ms).collect();
        assert_eq!(kept, vec![50, 60, 70]);
        assert_eq!(b.dropped_floor_ms(), Some(80));
        assert_eq!(b.len(), 3);

        let mut small = Batch::new(3);
        small.push(cand(10));
        assert_eq!(small.dropped_floor_ms(), None);
        assert!(!small.is_empty());
    }
}
