//! Reading the bucket newest first: upload ids carry the time their form was signed
//! (inverted, so S3's ascending listing is newest first), so a listing can stop at a floor.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{S3Client, StoreError};
use crate::upload::{KeyPrefix, ObjectKey, UploadId};

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

    /// Whether the batch holds this upload.
    pub fn contains(&self, key: &str) -> bool {
        self.items.iter().any(|c| c.key.as_str() == key)
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
