//! The operator's own last writes, for the moments when its watch caches do not show them yet.
//!
//! A reconcile reads the SecretRotation and the synced Secret from watch caches. Right after the operator
//! writes either, another reconcile of the same object (woken by the other watch) can still see the older
//! copy. Acting on it would repeat the write, and for a rotate-now it could rotate twice. So each write's
//! result is kept here until the cache catches up: a SecretRotation older than its last status write is
//! skipped (its newer copy is on the way and wakes the controller again), and a Secret older than the one
//! last applied is replaced by the applied one.
//!
//! Versions are compared as numbers: an etcd-backed apiserver's resourceVersion is the etcd revision,
//! which only grows. When one does not parse, the cached copy is used as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

type Key = (String, String);

fn key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn revision(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last status write per SecretRotation and the last applied synced Secret, until the caches show them.
#[derive(Default)]
pub struct Freshness {
    status: Mutex<HashMap<Key, u64>>,
    secrets: Mutex<HashMap<Key, Arc<Secret>>>,
}

impl Freshness {
    /// Records the SecretRotation a status write returned.
    pub fn status_written(&self, written: &ObjectMeta) {
        if let Some(rv) = revision(written) {
            lock(&self.status).insert(key(written), rv);
        }
    }

    /// Whether this copy predates the operator's last status write (and so must not be acted on).
    pub fn status_is_stale(&self, seen: &ObjectMeta) -> bool {
        let mut map = lock(&self.status);
        let k = key(seen);
        match (map.get(&k), revision(seen)) {
            (Some(&written), Some(seen_rv)) if seen_rv < written => true,
            (Some(_), _) => {
                map.remove(&k);
                false
            }
            (None, _) => false,
        }
    }

    /// Records the Secret a server-side apply returned.
    pub fn secret_applied(&self, mut applied: Secret) {
        super::trim_cached(&mut applied);
        if revision(&applied.metadata).is_some() {
            lock(&self.secrets).insert(key(&applied.metadata), Arc::new(applied));
        }
    }

    /// The newer of the cached Secret and the one last applied.
    pub fn secret_view(
        &self,
        namespace: &str,
        name: &str,
        cached: Option<Arc<Secret>>,
    ) -> Option<Arc<Secret>> {
        let mut map = lock(&self.secrets);
        let k = (namespace.to_owned(), name.to_owned());
        let Some(applied) = map.get(&k).cloned() else {
            return cached;
        };
        let applied_rv = revision(&applied.metadata);
        match cached {
            Some(c) if revision(&c.metadata) >= applied_rv => {
                map.remove(&k);
                Some(c)
            }
            _ => Some(applied),
        }
    }

    /// The watch saw the Secret deleted (or leave the label selection): forget what was applied, so the
    /// reconcile it wakes sees it missing.
    pub fn secret_gone(&self, gone: &ObjectMeta) {
        lock(&self.secrets).remove(&key(gone));
    }

    /// Records kept (for tests and the memory figures).
    pub fn len(&self) -> usize {
        lock(&self.status).len() + lock(&self.secrets).len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(rv: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("ns".into()),
            name: Some("a".into()),
            resource_version: Some(rv.into()),
            ..ObjectMeta::default()
        }
    }

    fn secret(rv: &str) -> Secret {
        Secret {
            metadata: meta(rv),
            ..Secret::default()
        }
    }

    #[test]
    fn a_copy_older_than_the_status_write_is_stale_until_the_cache_catches_up() {
        let f = Freshness::default();
        assert!(!f.status_is_stale(&meta("5")));
        f.status_written(&meta("10"));
        assert!(f.status_is_stale(&meta("9")));
        assert!(!f.status_is_stale(&meta("10")));
        // Caught up: the record is gone, later copies are never stale.
        assert!(f.is_empty());
        assert!(!f.status_is_stale(&meta("3")));
    }

    #[test]
    fn a_newer_copy_written_by_someone_else_is_not_stale() {
        let f = Freshness::default();
        f.status_written(&meta("10"));
        assert!(!f.status_is_stale(&meta("11")));
    }

    #[test]
    fn unparsable_versions_fall_back_to_the_cache() {
        let f = Freshness::default();
        f.status_written(&meta("abc"));
        assert!(!f.status_is_stale(&meta("1")));
        f.status_written(&meta("10"));
        assert!(!f.status_is_stale(&meta("xyz")));
    }

    #[test]
    fn the_applied_secret_stands_in_for_an_older_or_missing_cached_one() {
        let f = Freshness::default();
        assert!(f.secret_view("ns", "a", None).is_none());
        f.secret_applied(secret("20"));
        let v = f.secret_view("ns", "a", None).unwrap();
        assert_eq!(v.metadata.resource_version.as_deref(), Some("20"));
        let v = f
            .secret_view("ns", "a", Some(Arc::new(secret("19"))))
            .unwrap();
        assert_eq!(v.metadata.resource_version.as_deref(), Some("20"));
        // A newer cached copy (someone edited it) wins and ends the record.
        let v = f
            .secret_view("ns", "a", Some(Arc::new(secret("25"))))
            .unwrap();
        assert_eq!(v.metadata.resource_version.as_deref(), Some("25"));
        assert!(f.is_empty());
    }

    #[test]
    fn a_deleted_secret_is_seen_missing() {
        let f = Freshness::default();
        f.secret_applied(secret("20"));
        f.secret_gone(&meta("20"));
        assert!(f.secret_view("ns", "a", None).is_none());
    }
}
