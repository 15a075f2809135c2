//! The instances sharing a bucket (with the bucket checkpoint), and which of them delivers
//! what.
//!
//! Each instance writes a heartbeat, `.signpost/instances/<id>.json`, every third of
//! `--instance-ttl-secs`, and then lists the others'. The live instances are those whose
//! heartbeat's `LastModified` is within the TTL of its own: the store's clock judges
//! everyone, so the instances' clocks need not agree. Each upload (and each queued event)
//! belongs to one live instance by rendezvous hashing of its key: the instance with the
//! highest `sha256(id "\n" key)`. When an instance dies, only its share moves, to the
//! others, once its heartbeat lapses; when one joins, it takes a share from each.
//!
//! Nothing here needs an atomic write (s3s-fs 0.14 checks conditional writes but does not
//! make them atomic): two instances that briefly disagree about who is alive can both
//! deliver an event (a duplicate, which receivers drop by id), never neither.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::store::{S3Client, StoreError};

/// Where the heartbeats are.
pub const INSTANCES_PREFIX: &str = ".signpost/instances/";
/// A heartbeat this many TTLs old is removed (its instance is long gone).
const FORGET_AFTER_TTLS: i32 = 10;

pub fn heartbeat_key(id: &str) -> String {
    format!("{INSTANCES_PREFIX}{id}.json")
}

fn score(id: &str, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    h.finalize().into()
}

/// The instance among `live` that handles `key`: the highest score (rendezvous hashing).
pub fn owner<'a>(live: &'a [String], key: &str) -> Option<&'a str> {
    live.iter()
        .map(|id| (score(id, key), id))
        .max()
        .map(|(_, id)| id.as_str())
}

#[derive(Debug, Default)]
struct View {
    /// Sorted; this instance included once it has written a heartbeat.
    live: Vec<String>,
    /// Until when this instance's own last heartbeat keeps it alive in the others' eyes.
    fresh_until: Option<Instant>,
}

/// This instance's view of who shares the bucket. Cheap to clone; local to the sweep's
/// thread.
#[derive(Debug, Clone)]
pub struct Members {
    id: String,
    ttl: Duration,
    view: Rc<RefCell<View>>,
}

fn last_modified(raw: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Members {
    pub fn new(id: String, ttl: Duration) -> Self {
        Self {
            id,
            ttl,
            view: Rc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The live instances, this one included; `None` while this instance's own heartbeat is
    /// not known to be fresh (before the first one, or when the store refused the last
    /// ones): the others may then have taken over its share, so it delivers nothing.
    pub fn live(&self) -> Option<Vec<String>> {
        let view = self.view.borrow();
        let fresh = view.fresh_until.is_some_and(|t| Instant::now() < t);
        fresh.then(|| view.live.clone())
    }

    /// Write this instance's heartbeat and read the others'. Returns whether the live set
    /// changed.
    pub async fn beat(&self, client: &S3Client) -> Result<bool, StoreError> {
        let started = Instant::now();
        let own = heartbeat_key(&self.id);
        let body = serde_json::json!({
            "id": self.id,
            "at": crate::policy::time::iso8601_millis(Utc::now()),
        });
        client
            .put(&own, Bytes::from(body.to_string()), "application/json")
            .await?;
        let listing = client.list(INSTANCES_PREFIX, None, 1000).await?;
        // The store's time of our own heartbeat is "now" on the store's clock.
        let now = listing
            .objects
            .iter()
            .find(|o| o.key == own)
            .and_then(|o| last_modified(o.last_modified.as_deref()))
            .unwrap_or_else(Utc::now);
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let mut live = vec![self.id.clone()];
        for o in &listing.objects {
            let Some(id) = o
                .key
                .strip_prefix(INSTANCES_PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            // A heartbeat without a readable time is taken for dead: at worst its instance's
            // share is delivered twice, never not at all.
            let Some(at) = last_modified(o.last_modified.as_deref()) else {
                continue;
            };
            if at + ttl >= now {
                live.push(id.to_owned());
            } else if at + ttl * FORGET_AFTER_TTLS < now
                && let Err(e) = client.delete(&o.key).await
            {
                tracing::debug!(key = %o.key, error = %e, "cannot remove an old heartbeat");
            }
        }
        live.sort();
        live.dedup();
        let mut view = self.view.borrow_mut();
        view.fresh_until = Some(started + self.ttl);
        let changed = view.live != live;
        if changed {
            tracing::info!(
                instance = %self.id,
                live = %live.join(","),
                count = live.len(),
                "instances sharing this bucket's events"
            );
            view.live = live;
        }
        Ok(changed)
    }

    /// Remove this instance's heartbeat (at shutdown): the others take its share at once.
    pub async fn leave(&self, client: &S3Client) {
        self.view.borrow_mut().fresh_until = None;
        match client.delete(&heartbeat_key(&self.id)).await {
            Ok(()) => tracing::info!(instance = %self.id, "left the instances sharing this bucket"),
            Err(e) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot remove this instance's heartbeat; the others take its share once it lapses");
            }
        }
    }
}

/// Beat every third of the TTL; wake the sweep when the live set changes (a takeover or a
/// new share).
pub async fn run(members: Members, client: S3Client, wake: Arc<Notify>) {
    let period = members.ttl / 3;
    let mut failures: u32 = 0;
    loop {
        match members.beat(&client).await {
            Ok(changed) => {
                failures = 0;
                if changed {
                    wake.notify_one();
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures >= 3 {
                    tracing::error!(instance = %members.id, error = %e, failures, "cannot write this instance's heartbeat; it delivers no events until it can");
                } else {
                    tracing::warn!(instance = %members.id, error = %e, "cannot write this instance's heartbeat");
                }
            }
        }
        actix_web::rt::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("instance-{i}")).collect()
    }

    fn keys() -> impl Iterator<Item = String> {
        (0..3000).map(|i| format!("uploads/{i:08x}/photo.jpg"))
    }

    #[test]
    fn every_key_has_one_owner_and_shares_are_even() {
        let live = ids(3);
        let mut counts = [0usize; 3];
        for k in keys() {
            let o = owner(&live, &k).unwrap();
            counts[live.iter().position(|i| i == o).unwrap()] += 1;
        }
        // 1000 expected each; rendezvous hashing over SHA-256 stays well within ±15%.
        assert!(
            counts.iter().all(|&c| (850..=1150).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(owner(&[], "k"), None);
    }

    #[test]
    fn a_death_moves_only_the_dead_instances_share() {
        let three = ids(3);
        let two: Vec<String> = three
            .iter()
            .filter(|i| *i != "instance-1")
            .cloned()
            .collect();
        for k in keys() {
            let before = owner(&three, &k).unwrap();
            let after = owner(&two, &k).unwrap();
            if before != "instance-1" {
                assert_eq!(before, after, "{k} moved though its owner lives");
            }
        }
        // The order of the list does not matter.
        let mut shuffled = three.clone();
        shuffled.reverse();
        assert!(keys().all(|k| owner(&three, &k) == owner(&shuffled, &k)));
    }

    #[test]
    fn before_its_first_heartbeat_an_instance_delivers_nothing() {
        let m = Members::new("a".into(), Duration::from_secs(30));
        assert_eq!(m.live(), None);
        m.view.borrow_mut().live = vec!["a".into()];
        m.view.borrow_mut().fresh_until = Some(Instant::now() + Duration::from_secs(30));
        assert_eq!(m.live(), Some(vec!["a".to_owned()]));
        m.view.borrow_mut().fresh_until = Some(Instant::now());
        assert_eq!(m.live(), None);
    }
}
