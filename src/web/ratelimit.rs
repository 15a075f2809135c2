//! Limits on signing: new files signed a minute per identity (anonymous clients: per
//! address), with a burst of the same size, and bytes signed a UTC day. Each instance counts
//! alone.
//!
//! The rate limit is governor's keyed limiter; old keys are evicted gradually
//! (`retain_recent`), never all at once. Signing the same file again (the page re-signs
//! before a form expires, and for each new description) is not a new file and is not
//! counted; but every signature is a new key to upload to, so re-signs have a budget of
//! their own, [`RESIGNS_PER_FILE`] times the limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How long a signed file counts as the same file: a form's longest life.
const SAME_FILE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Files remembered per instance before the oldest are forgotten (a forgotten file signed
/// again only counts again).
const MAX_SEEN: usize = 100_000;
/// Checks between two prunes of the limiter's idle keys.
const PRUNE_EVERY: u64 = 1024;
/// Re-signs of files already counted, a minute and per identity, for each new file the
/// limit allows: a page re-signs a file every few minutes, and once per description edited.
pub const RESIGNS_PER_FILE: u32 = 4;

pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    resigns: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// (identity, file fingerprint) → when it was counted.
    seen: Mutex<HashMap<(String, u64), Instant>>,
    seen_for: Duration,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(per_minute: NonZeroU32, policy_ttl: Duration) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(per_minute);
        let resigns =
            per_minute.saturating_mul(NonZeroU32::new(RESIGNS_PER_FILE).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            resigns: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(resigns).allow_burst(resigns),
            ),
            clock: DefaultClock::default(),
            seen: Mutex::new(HashMap::new()),
            seen_for: policy_ttl.min(SAME_FILE),
            checks: AtomicU64::new(0),
        }
    }

    /// Count a new file for `who`: `Ok`, or the seconds to wait. `file`: what identifies the
    /// file (its name, size and type), when the request names one.
    pub fn check(&self, who: &str, file: Option<u64>) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            self.resigns.retain_recent();
            self.resigns.shrink_to_fit();
        }
        let now = Instant::now();
        let key = file.map(|f| (who.to_owned(), f));
        if let Some(key) = &key {
            // A poisoned lock only means another request panicked mid-update.
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .get(key)
                .is_some_and(|at| now.duration_since(*at) < self.seen_for)
            {
                drop(seen);
                return self.wait(self.resigns.check_key(&who.to_owned()));
            }
        }
        match self.limiter.check_key(&who.to_owned()) {
            Ok(()) => {
                if let Some(key) = key {
                    let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.len() >= MAX_SEEN {
                        let keep = self.seen_for;
                        seen.retain(|_, at| now.duration_since(*at) < keep);
                        if seen.len() >= MAX_SEEN
                            && let Some(oldest) = seen
                                .iter()
                                .min_by_key(|(_, at)| **at)
                                .map(|(k, _)| k.clone())
                        {
                            seen.remove(&oldest);
                        }
                    }
                    seen.insert(key, now);
                }
                Ok(())
            }
            Err(not_until) => self.wait(Err(not_until)),
        }
    }

    /// `Ok`, or the whole seconds (at least one) until the limiter allows another.
    fn wait(
        &self,
        checked: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
    ) -> Result<(), u64> {
        checked.map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }
}

/// `--quota-bytes-per-day`: bytes signed per identity and UTC day, in this instance.
#[derive(Debug)]
pub struct Quotas {
    per_day: u64,
    used: Mutex<HashMap<String, (NaiveDate, u64)>>,
}

impl Quotas {
    pub fn new(per_day: u64) -> Self {
        Self {
            per_day,
            used: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_day(&self) -> u64 {
        self.per_day
    }

    /// Take `bytes` of `who`'s day: `Ok`, or when the day's quota resets.
    pub fn take(&self, who: &str, bytes: u64, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let today = now.date_naive();
        // A poisoned lock only means another request panicked mid-update.
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() > 100_000 {
            used.retain(|_, (day, _)| *day == today);
        }
        let entry = used.entry(who.to_owned()).or_insert((today, 0));
        if entry.0 != today {
            *entry = (today, 0);
        }
        if entry.1.saturating_add(bytes) > self.per_day {
            let tomorrow = today.succ_opt().unwrap_or(today);
            return Err(tomorrow.and_time(chrono::NaiveTime::MIN).and_utc());
        }
        entry.1 += bytes;
        Ok(())
    }
}

/// What identifies a file in a signing request: its name, size and type.
pub fn fingerprint(name: &str, size: Option<u64>, content_type: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, size, content_type).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(n: u32) -> RateLimiter {
        RateLimiter::new(NonZeroU32::new(n).unwrap(), Duration::from_secs(600))
    }

    #[test]
    fn the_limit_applies_per_identity_and_resigning_is_free() {
        let rl = limiter(2);
        assert!(rl.check("address 10.0.0.1", None).is_ok());
        assert!(rl.check("address 10.0.0.1", Some(7)).is_ok());
        // The same file again: not counted.
        assert!(rl.check("address 10.0.0.1", Some(7)).is_ok());
        let wait = rl.check("address 10.0.0.1", Some(8)).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(rl.check("address 10.0.0.2", None).is_ok());
    }

    #[test]
    fn resigning_has_a_budget_of_its_own() {
        let rl = limiter(2);
        assert!(rl.check("alice", Some(7)).is_ok());
        // Each signature is a new key to upload to: free, but not without end.
        let free = 2 * RESIGNS_PER_FILE;
        for n in 0..free {
            assert!(rl.check("alice", Some(7)).is_ok(), "re-sign {n}");
        }
        let wait = rl.check("alice", Some(7)).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        // A new file still has its place, and others their own budgets.
        assert!(rl.check("alice", Some(8)).is_ok());
        assert!(rl.check("bob", Some(7)).is_ok());
        assert!(rl.check("bob", Some(7)).is_ok());
    }

    #[test]
    fn a_quota_counts_bytes_per_day_and_resets_at_midnight() {
        let q = Quotas::new(100);
        let day = Utc::now();
        assert!(q.take("alice", 60, day).is_ok());
        let reset = q.take("alice", 41, day).unwrap_err();
        assert!(reset > day && reset - day <= chrono::Duration::days(1));
        assert!(q.take("bob", 100, day).is_ok());
        assert!(
            q.take("alice", 100, day + chrono::Duration::days(1))
                .is_ok()
        );
    }
}
