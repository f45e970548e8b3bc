//! Session expiry, as the leader tracks it (ZooKeeper's
//! ExpiryQueue/SessionTrackerImpl): each session sits in a bucket that ends
//! at the first tick boundary after its deadline, so checking for expired
//! sessions costs one look at the oldest bucket, not a scan. Time comes in
//! as arguments; nothing here reads a clock. Ordered maps and sets, not
//! hashed ones: the order of expiries decides the order (and zxids) of the
//! CloseSession transactions, which must replay identically from a seed.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: i64,
    buckets: BTreeMap<i64, BTreeSet<i64>>,
    sessions: BTreeMap<i64, SessionDeadline>,
}

#[derive(Debug, Clone, Copy)]
struct SessionDeadline {
    timeout_ms: i64,
    bucket_ms: i64,
}

impl SessionTracker {
    pub fn new(tick_ms: i64) -> Self {
        SessionTracker { tick_ms: tick_ms.max(1), buckets: BTreeMap::new(), sessions: BTreeMap::new() }
    }

    fn bucket_for(&self, deadline_ms: i64) -> i64 {
        (deadline_ms / self.tick_ms + 1) * self.tick_ms
    }

    /// Starts tracking a session (or refreshes it, with a new timeout).
    pub fn add(&mut self, session_id: i64, timeout_ms: i64, now_ms: i64) {
        self.remove(session_id);
        let bucket_ms = self.bucket_for(now_ms + timeout_ms);
        self.buckets.entry(bucket_ms).or_default().insert(session_id);
        self.sessions.insert(session_id, SessionDeadline { timeout_ms, bucket_ms });
    }

    /// Pushes a session's deadline out; false if the session is unknown
    /// (expired or closed).
    pub fn touch(&mut self, session_id: i64, now_ms: i64) -> bool {
        let Some(deadline) = self.sessions.get(&session_id).copied() else {
            return false;
        };
        let bucket_ms = self.bucket_for(now_ms + deadline.timeout_ms);
        if bucket_ms != deadline.bucket_ms {
            self.take_from_bucket(session_id, deadline.bucket_ms);
            self.buckets.entry(bucket_ms).or_default().insert(session_id);
            self.sessions.insert(session_id, SessionDeadline { bucket_ms, ..deadline });
        }
        true
    }

    fn take_from_bucket(&mut self, session_id: i64, bucket_ms: i64) {
        if let Some(bucket) = self.buckets.get_mut(&bucket_ms) {
            bucket.remove(&session_id);
            if bucket.is_empty() {
                self.buckets.remove(&bucket_ms);
            }
        }
    }

    pub fn remove(&mut self, session_id: i64) {
        if let Some(deadline) = self.sessions.remove(&session_id) {
            self.take_from_bucket(session_id, deadline.bucket_ms);
        }
    }

    pub fn contains(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The expiry buckets, soonest first: when each ends and its sessions
    /// (sorted), for ZooKeeper's dump.
    pub fn buckets(&self) -> Vec<(i64, Vec<i64>)> {
        self.buckets
            .iter()
            .map(|(&bucket_ms, sessions)| {
                let mut sessions: Vec<i64> = sessions.iter().copied().collect();
                sessions.sort_unstable();
                (bucket_ms, sessions)
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Removes and returns every session whose bucket ended at or before
    /// `now_ms`.
    pub fn expire(&mut self, now_ms: i64) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some((&bucket_ms, _)) = self.buckets.first_key_value() {
            if bucket_ms > now_ms {
                break;
            }
            if let Some(bucket) = self.buckets.remove(&bucket_ms) {
                for session_id in bucket {
                    self.sessions.remove(&session_id);
                    expired.push(session_id);
                }
            }
        }
        expired.sort_unstable();
        expired
    }

    /// The negotiated timeout: the request clamped to [min, max].
    pub fn negotiate_timeout(requested_ms: i32, min_ms: u32, max_ms: u32) -> i32 {
        let requested = requested_ms.max(0) as u32;
        requested.clamp(min_ms, max_ms.max(min_ms)) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_at_the_tick_after_their_deadline() {
        let mut tracker = SessionTracker::new(2000);
        tracker.add(1, 4000, 100);
        tracker.add(2, 10000, 100);
        assert!(tracker.expire(4100).is_empty());
        assert_eq!(tracker.expire(6000), vec![1]);
        assert!(!tracker.touch(1, 6000));
        assert!(tracker.touch(2, 9000));
        assert!(tracker.expire(12000).is_empty());
        assert_eq!(tracker.expire(20000), vec![2]);
        assert!(tracker.is_empty());
    }

    #[test]
    fn removed_sessions_never_expire() {
        let mut tracker = SessionTracker::new(100);
        tracker.add(1, 1000, 0);
        tracker.remove(1);
        assert!(tracker.expire(1_000_000).is_empty());
    }

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(SessionTracker::negotiate_timeout(1000, 4000, 40000), 4000);
        assert_eq!(SessionTracker::negotiate_timeout(100000, 4000, 40000), 40000);
        assert_eq!(SessionTracker::negotiate_timeout(10000, 4000, 40000), 10000);
        assert_eq!(SessionTracker::negotiate_timeout(-5, 4000, 40000), 4000);
    }
}
