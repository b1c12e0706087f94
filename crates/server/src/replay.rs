//! Replay bounds for AK/SK-signed requests that change something. A signature carries its X-Sdk-Date, so
//! the clock-skew check already bounds how long a captured request stays valid; within that window, this
//! refuses the same signature a second time on a method other than GET and HEAD. Reads may repeat.
//!
//! The official SDKs sign every attempt again, so their retries carry new signatures — unless two attempts
//! fall within the same second of X-Sdk-Date, in which case the second is refused as a replay (a 401 the
//! caller sees, never a second write).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Signatures kept at most; beyond it the oldest are forgotten first.
pub const CAPACITY: usize = 100_000;

/// Signatures of recent mutating requests, each kept until its X-Sdk-Date leaves the skew window.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    until: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl ReplayGuard {
    /// Records `signature` (valid until `expires`, Unix seconds); false when it was seen and is still valid.
    pub fn first_use(&self, signature: &str, expires: i64, now: i64) -> bool {
        let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((t, _)) = s.order.front() {
            if *t >= now && s.order.len() < CAPACITY {
                break;
            }
            if let Some((_, sig)) = s.order.pop_front() {
                s.until.remove(&sig);
            }
        }
        if s.until.get(signature).is_some_and(|t| *t >= now) {
            return false;
        }
        s.until.insert(signature.to_owned(), expires);
        s.order.push_back((expires, signature.to_owned()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once_until_it_expires() {
        let g = ReplayGuard::default();
        assert!(g.first_use("a", 100, 10));
        assert!(!g.first_use("a", 100, 50));
        assert!(g.first_use("b", 100, 50));
        // Past its expiry the skew check refuses it anyway; the guard forgets it.
        assert!(g.first_use("a", 200, 101));
    }

    #[test]
    fn memory_is_bounded() {
        let g = ReplayGuard::default();
        for i in 0..(CAPACITY + 10) {
            assert!(g.first_use(&i.to_string(), 1_000, 0));
        }
        let s = g.seen.lock().unwrap();
        assert!(s.until.len() <= CAPACITY && s.order.len() <= CAPACITY);
    }
}
