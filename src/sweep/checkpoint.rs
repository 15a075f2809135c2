//! The sweep's checkpoint: how far it has verified (and delivered), stored durably.
//!
//! Upload ids carry the time their form was signed, and a form can be posted until its
//! policy expires (`--policy-ttl-secs` later). So an object whose id is older than another's
//! can land after it, and a plain "last key seen" would miss it. The checkpoint is:
//!
//! - a **watermark** (milliseconds): every upload whose id time is below it has been
//!   verified (recorded, deleted as not an image, or set aside) and, with events on,
//!   delivered or needs no event. It trails the clock by at least the window (`policy TTL
//!   + margin`), so nothing can still land below it;
//! - the **delivered set**: the ids of the events delivered for uploads at or above the
//!   watermark, each with its upload time so that it is pruned when the watermark passes;
//! - the **failing set**: uploads the store failed to serve, retried on every sweep whatever
//!   the watermark, until they are verified or set aside; and the **settled** keys that left
//!   it lately, so that an older copy of the set does not bring them back;
//! - the **retrying set**: events the receiver refused or did not take, each with its own
//!   backoff, so that none waits behind another, until delivered or parked as a dead letter.
//!
//! Every checkpoint written says only true things, so two of them merge by taking the
//! higher watermark and the union of the sets. With the bucket checkpoint each instance
//! writes its own object (`.signpost/notify/<prefix>checkpoints/<instance>.json`) and
//! reads everyone's before each sweep: no instance overwrites another's, and the one that
//! takes over a dead instance's share finds what it delivered.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{CheckpointArg, Settings};
use crate::store::{S3Client, StoreError};
use crate::upload::KeyPrefix;

pub const CHECKPOINT_VERSION: u32 = 2;
/// Checkpoints of this version are read too (they have no failing set).
const READABLE_VERSIONS: [u32; 2] = [1, CHECKPOINT_VERSION];
/// The file in `--data-dir`.
pub const CHECKPOINT_FILE: &str = "notify-checkpoint.json";
/// Largest checkpoint read back (the delivered set holds about one window of uploads).
const MAX_CHECKPOINT_BYTES: usize = 64 * 1024 * 1024;

/// Where the instances sharing the bucket keep their checkpoints: outside the upload
/// prefix, one folder per prefix, one object per instance.
pub fn bucket_dir(prefix: &KeyPrefix) -> String {
    format!(".signpost/notify/{prefix}checkpoints/")
}

/// The checkpoint object of one instance.
pub fn bucket_key(prefix: &KeyPrefix, instance: &str) -> String {
    format!("{}{instance}.json", bucket_dir(prefix))
}

/// The single shared checkpoint of earlier versions: merged, then removed.
fn legacy_key(prefix: &KeyPrefix) -> String {
    format!(".signpost/notify/{prefix}checkpoint.json")
}

/// How long a settled key is remembered (older copies of the failing set are gone by then).
const SETTLED_FOR_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// What the checkpoint is about: a checkpoint of another bucket or prefix is ignored.
    pub bucket: String,
    pub prefix: String,
    /// Uploads whose id time (Unix ms) is below this are done.
    pub watermark_ms: i64,
    /// Event id → upload id time (Unix ms), for events delivered (or parked as dead letters;
    /// with events off, uploads confirmed) at or above the watermark.
    pub delivered: BTreeMap<String, i64>,
    /// Upload key → its failures so far.
    #[serde(default)]
    pub failing: BTreeMap<String, Failing>,
    /// Upload key → when it left the failing set (Unix ms).
    #[serde(default)]
    pub settled: BTreeMap<String, i64>,
    /// Event id → its delivery's retry state.
    #[serde(default)]
    pub retrying: BTreeMap<String, Retry>,
}

/// An upload the store failed to serve: retried on later sweeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub attempts: u32,
    pub last_error: String,
    /// When it last failed (Unix ms).
    #[serde(default)]
    pub at_ms: i64,
}

impl Failing {
    /// When it is read again: `step_ms` after its first failure, two steps after its second,
    /// and so on, so that a store's passing trouble does not use up its attempts at once.
    pub fn next_ms(&self, step_ms: i64) -> i64 {
        self.at_ms
            .saturating_add(step_ms.saturating_mul(i64::from(self.attempts)))
    }
}

/// An event whose delivery failed: attempted again from `next_ms`, parked once it has
/// failed for `--notify-dead-letter-after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// What it belongs to: the upload's key, or its object in the outbox.
    pub key: String,
    /// The upload id's time (Unix ms); none for an event from the outbox.
    pub upload_ms: Option<i64>,
    pub first_failed_ms: i64,
    pub attempts: u32,
    pub next_ms: i64,
    pub last_error: String,
}

impl Checkpoint {
    /// A first start: uploads that may still be in flight (signed within the window) are
    /// delivered; older ones are not (`signpost events --since` backfills them).
    pub fn fresh(bucket: &str, prefix: &KeyPrefix, watermark_ms: i64) -> Self {
        Self {
            version: CHECKPOINT_VERSION,
            bucket: bucket.to_owned(),
            prefix: prefix.as_str().to_owned(),
            watermark_ms,
            delivered: BTreeMap::new(),
            failing: BTreeMap::new(),
            settled: BTreeMap::new(),
            retrying: BTreeMap::new(),
        }
    }

    pub fn is_for(&self, bucket: &str, prefix: &KeyPrefix) -> bool {
        READABLE_VERSIONS.contains(&self.version)
            && self.bucket == bucket
            && self.prefix == prefix.as_str()
    }

    pub fn is_delivered(&self, event_id: &str) -> bool {
        self.delivered.contains_key(event_id)
    }

    /// Note a delivered (or parked) event of an upload made at `at_ms`.
    pub fn record(&mut self, event_id: String, at_ms: i64) {
        self.retrying.remove(&event_id);
        if at_ms >= self.watermark_ms {
            self.delivered.insert(event_id, at_ms);
        }
    }

    /// Note a failed delivery of `event_id` at `now_ms`; the next attempt waits `wait`
    /// (given the attempts so far). Returns the event's retry state.
    pub fn retry_later(
        &mut self,
        event_id: &str,
        key: &str,
        upload_ms: Option<i64>,
        error: String,
        now_ms: i64,
        wait: impl FnOnce(u32) -> std::time::Duration,
    ) -> Retry {
        let r = self
            .retrying
            .entry(event_id.to_owned())
            .or_insert_with(|| Retry {
                key: key.to_owned(),
                upload_ms,
                first_failed_ms: now_ms,
                attempts: 0,
                next_ms: now_ms,
                last_error: String::new(),
            });
        r.attempts = r.attempts.saturating_add(1);
        let wait_ms = i64::try_from(wait(r.attempts).as_millis()).unwrap_or(i64::MAX);
        r.next_ms = now_ms.saturating_add(wait_ms);
        r.last_error = error;
        r.clone()
    }

    /// Whether `event_id` failed before and its next attempt is not due at `now_ms`.
    pub fn is_waiting(&self, event_id: &str, now_ms: i64) -> bool {
        self.retrying
            .get(event_id)
            .is_some_and(|r| r.next_ms > now_ms)
    }

    /// After a sweep that listed everything down to the watermark: move the watermark up to
    /// `min(horizon_ms, oldest_pending_ms)` (never down) and forget the delivered events
    /// below it. `horizon_ms` is `now - window`, taken *before* the listing started;
    /// `oldest_pending_ms` the id time of the oldest upload the sweep did not finish.
    /// Returns whether anything changed.
    pub fn advance(&mut self, horizon_ms: i64, oldest_pending_ms: Option<i64>) -> bool {
        let target = oldest_pending_ms.map_or(horizon_ms, |p| p.min(horizon_ms));
        if target <= self.watermark_ms {
            return false;
        }
        self.watermark_ms = target;
        self.forget_below_watermark();
        true
    }

    fn forget_below_watermark(&mut self) {
        let w = self.watermark_ms;
        self.delivered.retain(|_, at| *at >= w);
        // An upload's event below the watermark was delivered, parked, or its upload is gone.
        self.retrying
            .retain(|_, r| r.upload_ms.is_none_or(|at| at >= w));
    }

    /// Forget the settled keys older than a day (at `now_ms`).
    pub fn prune(&mut self, now_ms: i64) {
        self.settled
            .retain(|_, at| now_ms.saturating_sub(*at) < SETTLED_FOR_MS);
    }

    /// Note a failure of the store to serve `key` at `now_ms`; returns the attempts so far.
    pub fn fail(&mut self, key: &str, error: String, now_ms: i64) -> u32 {
        let f = self.failing.entry(key.to_owned()).or_insert(Failing {
            attempts: 0,
            last_error: String::new(),
            at_ms: now_ms,
        });
        f.attempts = f.attempts.saturating_add(1);
        f.last_error = error;
        f.at_ms = now_ms;
        self.settled.remove(key);
        f.attempts
    }

    /// Stop retrying the events of the upload `key` other than `except`: it is gone, or was
    /// replaced by a version with another event. Returns how many were dropped.
    pub fn forget_retries(&mut self, key: &str, except: Option<&str>) -> usize {
        let before = self.retrying.len();
        self.retrying.retain(|id, r| {
            r.upload_ms.is_none() || r.key != key || except.is_some_and(|e| e == id)
        });
        before - self.retrying.len()
    }

    /// `key` needs no more retries (verified, refused, gone or set aside) as of `now_ms`.
    pub fn settle(&mut self, key: &str, now_ms: i64) -> bool {
        let was = self.failing.remove(key).is_some();
        if was {
            self.settled.insert(key.to_owned(), now_ms);
        }
        was
    }

    /// Combine with another true checkpoint of the same bucket and prefix.
    pub fn merge(&mut self, other: &Checkpoint) {
        self.watermark_ms = self.watermark_ms.max(other.watermark_ms);
        for (id, at) in &other.delivered {
            self.delivered.insert(id.clone(), *at);
        }
        for (key, at) in &other.settled {
            let mine = self.settled.entry(key.clone()).or_insert(*at);
            *mine = (*mine).max(*at);
        }
        for (key, f) in &other.failing {
            let mine = self.failing.entry(key.clone()).or_insert_with(|| f.clone());
            if f.attempts > mine.attempts {
                *mine = f.clone();
            }
        }
        // A key settled after its last failure is not failing any more, whoever still says so.
        let settled = &self.settled;
        self.failing
            .retain(|key, f| settled.get(key).is_none_or(|at| *at < f.at_ms));
        for (id, r) in &other.retrying {
            let mine = self.retrying.entry(id.clone()).or_insert_with(|| r.clone());
            if r.attempts > mine.attempts {
                let first = mine.first_failed_ms.min(r.first_failed_ms);
                *mine = r.clone();
                mine.first_failed_ms = first;
            }
        }
        // A delivered event is done, whoever still retries it.
        let delivered = &self.delivered;
        self.retrying.retain(|id, _| !delivered.contains_key(id));
        self.forget_below_watermark();
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut this = self.clone();
        this.version = CHECKPOINT_VERSION;
        // A struct of strings and integers serializes into memory without failing.
        serde_json::to_vec_pretty(&this).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {action} the sweep checkpoint {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the sweep checkpoint {place} is unreadable ({detail}); fix or delete it (deleting restarts delivery from now; `signpost events --since` backfills)"
    )]
    Corrupt { place: String, detail: String },
    #[error("cannot {action} the sweep checkpoint {key} in the bucket: {source}")]
    Store {
        action: &'static str,
        key: String,
        source: StoreError,
    },
}

/// Where the checkpoint lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStore {
    /// A JSON file, written atomically (temp file, fsync, rename, fsync of the directory).
    File(PathBuf),
    /// Objects in the bucket: this instance's (`own`) among those of every instance in
    /// `dir`, all read before every sweep; `legacy` is the single object of earlier versions.
    Bucket {
        dir: String,
        own: String,
        legacy: String,
    },
}

/// A checkpoint read back, and where from.
#[derive(Debug, Clone)]
pub struct Found {
    pub checkpoint: Checkpoint,
    /// The object (bucket checkpoints only).
    pub key: Option<String>,
    /// The instance that wrote it; `None` for a file or the object of earlier versions.
    pub instance: Option<String>,
}

impl CheckpointStore {
    pub fn new(settings: &Settings, kind: CheckpointArg) -> Self {
        match kind {
            CheckpointArg::File => Self::File(settings.data_dir.join(CHECKPOINT_FILE)),
            CheckpointArg::Bucket => Self::Bucket {
                dir: bucket_dir(&settings.prefix),
                own: bucket_key(&settings.prefix, &settings.instance_id),
                legacy: legacy_key(&settings.prefix),
            },
        }
    }

    /// Whether other instances may write it too (then it is re-read before every sweep).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Bucket { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("file {}", p.display()),
            Self::Bucket { own, .. } => format!("bucket object {own}"),
        }
    }

    fn parse(&self, place: &str, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        serde_json::from_slice(bytes).map_err(|e| CheckpointError::Corrupt {
            place: place.to_owned(),
            detail: e.to_string(),
        })
    }

    async fn get(
        &self,
        client: &S3Client,
        key: &str,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        match client
            .get(key, MAX_CHECKPOINT_BYTES)
            .await
            .map_err(|source| CheckpointError::Store {
                action: "read",
                key: key.to_owned(),
                source,
            })? {
            Some(bytes) => self
                .parse(&format!("bucket object {key}"), &bytes)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Every checkpoint there is: none yet, the file, or each instance's object.
    pub async fn load(&self, client: &S3Client) -> Result<Vec<Found>, CheckpointError> {
        match self {
            Self::File(path) => {
                let path = path.clone();
                let read = actix_web::rt::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read(path)
                })
                .await
                .map_err(|e| CheckpointError::Io {
                    action: "read",
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                match read {
                    Ok(bytes) => Ok(vec![Found {
                        checkpoint: self.parse(&self.describe(), &bytes)?,
                        key: None,
                        instance: None,
                    }]),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                    Err(source) => Err(CheckpointError::Io {
                        action: "read",
                        path,
                        source,
                    }),
                }
            }
            Self::Bucket { dir, legacy, .. } => {
                let listing = client.list(dir, None, 1000).await.map_err(|source| {
                    CheckpointError::Store {
                        action: "list",
                        key: dir.clone(),
                        source,
                    }
                })?;
                let mut found = Vec::new();
                for o in listing.objects {
                    let Some(instance) = o
                        .key
                        .strip_prefix(dir.as_str())
                        .and_then(|k| k.strip_suffix(".json"))
                        .map(str::to_owned)
                    else {
                        continue;
                    };
                    // Gone since the listing: its instance's successor has it.
                    if let Some(checkpoint) = self.get(client, &o.key).await? {
                        found.push(Found {
                            checkpoint,
                            key: Some(o.key),
                            instance: Some(instance),
                        });
                    }
                }
                if let Some(checkpoint) = self.get(client, legacy).await? {
                    found.push(Found {
                        checkpoint,
                        key: Some(legacy.clone()),
                        instance: None,
                    });
                }
                Ok(found)
            }
        }
    }

    pub async fn save(&self, client: &S3Client, cp: &Checkpoint) -> Result<(), CheckpointError> {
        let bytes = cp.to_json();
        match self {
            Self::File(path) => {
                let target = path.clone();
                actix_web::rt::task::spawn_blocking(move || write_atomic(&target, &bytes))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(|source| CheckpointError::Io {
                        action: "write",
                        path: path.clone(),
                        source,
                    })
            }
            Self::Bucket { own, .. } => client
                .put(own, Bytes::from(bytes), "application/json")
                .await
                .map_err(|source| CheckpointError::Store {
                    action: "write",
                    key: own.clone(),
                    source,
                }),
        }
    }
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temporary file beside it, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the directory entry is: fsync the directory (Unix only;
    // other systems cannot open a directory as a file).
    #[cfg(unix)]
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("uploads/").unwrap()
    }

    #[test]
    fn the_watermark_trails_the_horizon_and_stops_at_what_is_pending() {
        let mut cp = Checkpoint::fresh("b", &prefix(), 1_000);
        cp.record("a".into(), 1_500);
        cp.record("b".into(), 3_000);
        cp.record("old".into(), 500); // below the watermark: nothing to remember
        assert!(!cp.is_delivered("old"));

        // Nothing pending: up to the horizon; what it passes is forgotten.
        assert!(cp.advance(2_000, None));
        assert_eq!(cp.watermark_ms, 2_000);
        assert!(!cp.is_delivered("a"));
        assert!(cp.is_delivered("b"));

        // Something pending at 2_500: the watermark may not pass it.
        assert!(cp.advance(4_000, Some(2_500)));
        assert_eq!(cp.watermark_ms, 2_500);
        assert!(cp.is_delivered("b"));

        // Never backwards.
        assert!(!cp.advance(1_000, None));
        assert!(!cp.advance(9_000, Some(2_000)));
        assert_eq!(cp.watermark_ms, 2_500);

        assert!(cp.advance(3_001, None));
        assert!(cp.delivered.is_empty());
    }

    #[test]
    fn merging_keeps_every_true_claim() {
        let mut a = Checkpoint::fresh("b", &prefix(), 1_000);
        a.record("x".into(), 1_200);
        a.record("y".into(), 2_500);
        let mut b = Checkpoint::fresh("b", &prefix(), 2_000);
        b.record("z".into(), 2_100);
        a.merge(&b);
        assert_eq!(a.watermark_ms, 2_000);
        assert!(!a.is_delivered("x"));
        assert!(a.is_delivered("y") && a.is_delivered("z"));
    }

    #[test]
    fn a_settled_key_stays_settled_whoever_still_has_it_failing() {
        let mut owner = Checkpoint::fresh("b", &prefix(), 0);
        owner.fail("uploads/k", "boom".into(), 100);
        // Another instance merged it while it was failing.
        let mut copy = Checkpoint::fresh("b", &prefix(), 0);
        copy.merge(&owner);
        assert!(copy.failing.contains_key("uploads/k"));
        // The owner settles it; the copy does not bring it back...
        assert!(owner.settle("uploads/k", 200));
        owner.merge(&copy);
        assert!(owner.failing.is_empty(), "{owner:?}");
        // ...and learns it is settled.
        copy.merge(&owner);
        assert!(copy.failing.is_empty());
        // A failure after the settlement counts again.
        owner.fail("uploads/k", "again".into(), 300);
        copy.merge(&owner);
        assert_eq!(copy.failing["uploads/k"].last_error, "again");
        // Settled keys are forgotten after a day.
        owner.prune(200 + SETTLED_FOR_MS);
        assert!(owner.settled.is_empty());
    }

    #[test]
    fn retry_states_merge_and_end_with_the_delivery() {
        let mut a = Checkpoint::fresh("b", &prefix(), 1_000);
        let wait = |n: u32| std::time::Duration::from_millis(100 * u64::from(n));
        let r = a.retry_later("e1", "uploads/k", Some(1_500), "400".into(), 10_000, wait);
        assert_eq!(
            (r.attempts, r.first_failed_ms, r.next_ms),
            (1, 10_000, 10_100)
        );
        assert!(a.is_waiting("e1", 10_050));
        assert!(!a.is_waiting("e1", 10_100));
        let r = a.retry_later("e1", "uploads/k", Some(1_500), "500".into(), 10_200, wait);
        assert_eq!(
            (r.attempts, r.first_failed_ms, r.next_ms),
            (2, 10_000, 10_400)
        );

        let mut b = Checkpoint::fresh("b", &prefix(), 1_000);
        b.merge(&a);
        assert_eq!(b.retrying["e1"].attempts, 2);
        // Delivered by b: a's copy of the retry state goes when a merges b's checkpoint.
        b.record("e1".into(), 1_500);
        assert!(b.retrying.is_empty());
        a.merge(&b);
        assert!(a.retrying.is_empty() && a.is_delivered("e1"));

        // An upload's retry state goes when the watermark passes it; an outbox event's stays.
        a.retry_later("e2", "uploads/j", Some(1_200), "x".into(), 1, wait);
        a.retry_later("e3", ".signpost/outbox/e3.json", None, "x".into(), 1, wait);
        assert!(a.advance(1_300, None));
        assert!(!a.retrying.contains_key("e2"));
        assert!(a.retrying.contains_key("e3"));
    }

    #[test]
    fn it_round_trips_and_knows_what_it_is_about() {
        let mut cp = Checkpoint::fresh("bucket", &prefix(), 42);
        cp.record("abc".into(), 50);
        let back: Checkpoint = serde_json::from_slice(&cp.to_json()).unwrap();
        assert_eq!(back, cp);
        assert!(back.is_for("bucket", &prefix()));
        assert!(!back.is_for("other", &prefix()));
        assert!(!back.is_for("bucket", &KeyPrefix::parse("img/").unwrap()));
        assert_eq!(
            bucket_key(&prefix(), "web-1"),
            ".signpost/notify/uploads/checkpoints/web-1.json"
        );
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("cp.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cp.json")]);
    }
}
