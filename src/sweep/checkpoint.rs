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
//!   the watermark, until they are verified or set aside.
//!
//! Every checkpoint written says only true things, so two of them merge by taking the
//! higher watermark and the union of the sets: instances sharing the bucket checkpoint may
//! overwrite each other, which can cause duplicates but never a loss.

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

/// The object that holds a shared checkpoint: outside the upload prefix, one per prefix.
pub fn bucket_key(prefix: &KeyPrefix) -> String {
    format!(".signpost/notify/{prefix}checkpoint.json")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// What the checkpoint is about: a checkpoint of another bucket or prefix is ignored.
    pub bucket: String,
    pub prefix: String,
    /// Uploads whose id time (Unix ms) is below this are done.
    pub watermark_ms: i64,
    /// Event id → upload id time (Unix ms), for events delivered at or above the watermark.
    pub delivered: BTreeMap<String, i64>,
    /// Upload key → its failures so far.
    #[serde(default)]
    pub failing: BTreeMap<String, Failing>,
}

/// An upload the store failed to serve: retried on every sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub attempts: u32,
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

    /// Note a delivered event of an upload made at `at_ms`.
    pub fn record(&mut self, event_id: String, at_ms: i64) {
        if at_ms >= self.watermark_ms {
            self.delivered.insert(event_id, at_ms);
        }
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
        self.delivered.retain(|_, at| *at >= target);
        true
    }

    /// Note a failure of the store to serve `key`; returns the attempts so far.
    pub fn fail(&mut self, key: &str, error: String) -> u32 {
        let f = self.failing.entry(key.to_owned()).or_insert(Failing {
            attempts: 0,
            last_error: String::new(),
        });
        f.attempts = f.attempts.saturating_add(1);
        f.last_error = error;
        f.attempts
    }

    /// `key` needs no more retries (verified, refused, gone or set aside).
    pub fn settle(&mut self, key: &str) -> bool {
        self.failing.remove(key).is_some()
    }

    /// Combine with another true checkpoint of the same bucket and prefix.
    pub fn merge(&mut self, other: &Checkpoint) {
        self.watermark_ms = self.watermark_ms.max(other.watermark_ms);
        for (id, at) in &other.delivered {
            self.delivered.insert(id.clone(), *at);
        }
        for (key, f) in &other.failing {
            let mine = self.failing.entry(key.clone()).or_insert_with(|| f.clone());
            if f.attempts > mine.attempts {
                *mine = f.clone();
            }
        }
        let w = self.watermark_ms;
        self.delivered.retain(|_, at| *at >= w);
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
    /// An object in the bucket, shared by every instance.
    Bucket(String),
}

impl CheckpointStore {
    pub fn new(settings: &Settings, kind: CheckpointArg) -> Self {
        match kind {
            CheckpointArg::File => Self::File(settings.data_dir.join(CHECKPOINT_FILE)),
            CheckpointArg::Bucket => Self::Bucket(bucket_key(&settings.prefix)),
        }
    }

    /// Whether other instances may write it too (then it is re-read before every sweep).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Bucket(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("file {}", p.display()),
            Self::Bucket(k) => format!("bucket object {k}"),
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        serde_json::from_slice(bytes).map_err(|e| CheckpointError::Corrupt {
            place: self.describe(),
            detail: e.to_string(),
        })
    }

    /// `Ok(None)`: there is none yet.
    pub async fn load(&self, client: &S3Client) -> Result<Option<Checkpoint>, CheckpointError> {
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
                    Ok(bytes) => self.parse(&bytes).map(Some),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(CheckpointError::Io {
                        action: "read",
                        path,
                        source,
                    }),
                }
            }
            Self::Bucket(key) => {
                match client
                    .get(key, MAX_CHECKPOINT_BYTES)
                    .await
                    .map_err(|source| CheckpointError::Store {
                        action: "read",
                        key: key.clone(),
                        source,
                    })? {
                    Some(bytes) => self.parse(&bytes).map(Some),
                    None => Ok(None),
                }
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
            Self::Bucket(key) => client
                .put(key, Bytes::from(bytes), "application/json")
                .await
                .map_err(|source| CheckpointError::Store {
                    action: "write",
                    key: key.clone(),
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
    fn it_round_trips_and_knows_what_it_is_about() {
        let mut cp = Checkpoint::fresh("bucket", &prefix(), 42);
        cp.record("abc".into(), 50);
        let back: Checkpoint = serde_json::from_slice(&cp.to_json()).unwrap();
        assert_eq!(back, cp);
        assert!(back.is_for("bucket", &prefix()));
        assert!(!back.is_for("other", &prefix()));
        assert!(!back.is_for("bucket", &KeyPrefix::parse("img/").unwrap()));
        assert_eq!(
            bucket_key(&prefix()),
            ".signpost/notify/uploads/checkpoint.json"
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
