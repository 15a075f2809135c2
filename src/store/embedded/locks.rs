//! One writer or any number of readers per object. s3s-fs 0.14 writes an object in steps:
//! its bytes are renamed into place first, then its type and metadata, then its ETag, each
//! from its own file. A HEAD or GET between the steps found the bytes without the rest: an
//! upload with no owner and no type. Writes take their object's lock for those steps, reads
//! for theirs; nothing is held while a client sends (s3s reads a POSTed file whole before it
//! is written).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

#[derive(Debug, Default)]
pub struct ObjectLocks {
    held: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// A read or write lock on one object, given back (and forgotten when unused) on drop.
pub struct Held<'a, G> {
    guard: Option<G>,
    lock: Arc<RwLock<()>>,
    name: String,
    locks: &'a ObjectLocks,
}

impl ObjectLocks {
    /// Entries kept before the unused ones (left by reads that were given up) are dropped.
    const TIDY_AT: usize = 1024;

    fn lock(&self, bucket: &str, key: &str) -> (String, Arc<RwLock<()>>) {
        let name = format!("{bucket}/{key}");
        // A poisoned map only means a panic elsewhere: its entries are still sound.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() >= Self::TIDY_AT {
            held.retain(|_, l| Arc::strong_count(l) > 1);
        }
        let lock = held.entry(name.clone()).or_default().clone();
        (name, lock)
    }

    pub async fn read(&self, bucket: &str, key: &str) -> Held<'_, OwnedRwLockReadGuard<()>> {
        let (name, lock) = self.lock(bucket, key);
        Held {
            guard: Some(lock.clone().read_owned().await),
            lock,
            name,
            locks: self,
        }
    }

    pub async fn write(&self, bucket: &str, key: &str) -> Held<'_, OwnedRwLockWriteGuard<()>> {
        let (name, lock) = self.lock(bucket, key);
        Held {
            guard: Some(lock.clone().write_owned().await),
            lock,
            name,
            locks: self,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl<G> Drop for Held<'_, G> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's and this one: nobody else holds or waits for it.
        if Arc::strong_count(&self.lock) <= 2 {
            held.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_write_waits_for_reads_and_reads_for_a_write_of_the_same_object_only() {
        let locks = Arc::new(ObjectLocks::default());
        let read = locks.read("b", "k").await;
        let _other = locks.write("b", "other").await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _w = locks.write("b", "k").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a write ran during a read");
        drop(read);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the write goes on once the read ends")
            .unwrap();
    }

    #[tokio::test]
    async fn unused_locks_are_forgotten() {
        let locks = ObjectLocks::default();
        {
            let _a = locks.read("b", "a").await;
            let _b = locks.read("b", "a").await;
            let _c = locks.write("b", "c").await;
            assert_eq!(locks.len(), 2);
        }
        assert_eq!(locks.len(), 0);
        // A read given up while it waited leaves its entry behind: they are tidied away
        // before they reach TIDY_AT.
        let mut most = 0;
        for i in 0..3 * ObjectLocks::TIDY_AT {
            let key = i.to_string();
            let write = locks.write("b", &key).await;
            let mut waiting = Box::pin(locks.read("b", &key));
            assert!((&mut waiting).now_or_never().is_none());
            drop(write);
            drop(waiting);
            most = most.max(locks.len());
        }
        assert_eq!(
            most,
            ObjectLocks::TIDY_AT - 1,
            "entries are left behind, then tidied"
        );
    }
}
