//! Questions other cores ask a shard or the broadcast core, and the stop
//! signal.
//!
//! Watches live in each shard's own `WatchTable` and the session timers in
//! the broadcast core's `SessionTracker`; neither is behind a lock. A four
//! letter word, an admin command or a metrics scrape that needs them sends
//! a query over a channel to every owner and merges the answers. The owners
//! answer between two of their tasks, so the hot path never takes a lock or
//! publishes anything for these readers. Every query waits a bounded time
//! for its answers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_channel::{Receiver, Sender};

use crate::tree::Path;

pub use crate::ops::{SessionBuckets, WatchReport, WatchSummary};

use crate::limits::QUERIES_QUEUED_MAX;
pub use crate::limits::QUERY_TIMEOUT;

/// What a shard is asked.
pub enum ShardQuery {
    /// Watch counts, for wchs, mntr and the metrics page.
    WatchSummary(Sender<WatchSummary>),
    /// Every data watch with the sessions holding it, for wchc and wchp.
    Watches(Sender<Vec<(Path, Vec<i64>)>>),
}

/// What the broadcast core is asked.
pub enum CoreQuery {
    /// The session expiry buckets, for dump.
    SessionBuckets(Sender<SessionBuckets>),
    /// Nothing to answer: the last shard stopped, so a stopping core may
    /// end now rather than at its next tick.
    Wake,
}

pub struct Control {
    shards: Vec<(Sender<ShardQuery>, Receiver<ShardQuery>)>,
    core: (Sender<CoreQuery>, Receiver<CoreQuery>),
    stop: (Sender<()>, Receiver<()>),
    stopped: AtomicBool,
    shards_running: AtomicUsize,
}

impl Control {
    pub fn new(shard_count: usize) -> Control {
        Control {
            shards: (0..shard_count).map(|_| async_channel::bounded(QUERIES_QUEUED_MAX)).collect(),
            core: async_channel::bounded(QUERIES_QUEUED_MAX),
            stop: async_channel::bounded(1),
            stopped: AtomicBool::new(false),
            shards_running: AtomicUsize::new(0),
        }
    }

    /// A shard started serving; the broadcast core outlives every shard
    /// that did, so the writes they forward while stopping are committed.
    pub fn shard_started(&self) {
        self.shards_running.fetch_add(1, Ordering::SeqCst);
    }

    pub fn shard_stopped(&self) {
        if self.shards_running.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_stopped() {
            let _ = self.core.0.try_send(CoreQuery::Wake);
        }
    }

    pub fn shards_running(&self) -> usize {
        self.shards_running.load(Ordering::SeqCst)
    }

    /// Where shard `id` receives its queries.
    pub fn shard_inbox(&self, id: usize) -> Receiver<ShardQuery> {
        self.shards[id].1.clone()
    }

    /// Where the broadcast core receives its queries.
    pub fn core_inbox(&self) -> Receiver<CoreQuery> {
        self.core.1.clone()
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.0.close();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        // Nothing is ever sent: recv ends when the channel closes.
        let _ = self.stop.1.recv().await;
    }

    /// Asks every shard; answers that do not come within the timeout are
    /// left out.
    async fn ask_shards<T>(&self, make: impl Fn(Sender<T>) -> ShardQuery) -> Vec<T> {
        let mut pending = Vec::with_capacity(self.shards.len());
        for (sender, _) in &self.shards {
            let (reply, answer) = async_channel::bounded(1);
            if sender.try_send(make(reply)).is_ok() {
                pending.push(answer);
            }
        }
        let mut answers = Vec::with_capacity(pending.len());
        for answer in pending {
            if let Some(value) = within(QUERY_TIMEOUT, answer.recv()).await.and_then(Result::ok) {
                answers.push(value);
            }
        }
        answers
    }

    /// Watch counts over all shards.
    pub async fn watch_summary(&self) -> WatchSummary {
        let mut total = WatchSummary::default();
        for summary in self.ask_shards(ShardQuery::WatchSummary).await {
            total.add(summary);
        }
        total
    }

    /// Every data watch on every shard.
    pub async fn watches(&self) -> WatchReport {
        let mut report = WatchReport::default();
        for shard in self.ask_shards(ShardQuery::Watches).await {
            for (path, sessions) in shard {
                for &session in &sessions {
                    report.by_session.entry(session).or_default().push(path.clone());
                }
                report.by_path.entry(path).or_default().extend(sessions);
            }
        }
        for paths in report.by_session.values_mut() {
            paths.sort();
            paths.dedup();
        }
        for sessions in report.by_path.values_mut() {
            sessions.sort_unstable();
            sessions.dedup();
        }
        report
    }

    /// The broadcast core's session buckets, soonest first; empty if the
    /// core does not answer in time.
    pub async fn session_buckets(&self) -> SessionBuckets {
        let (reply, answer) = async_channel::bounded(1);
        if self.core.0.try_send(CoreQuery::SessionBuckets(reply)).is_err() {
            return Vec::new();
        }
        within(QUERY_TIMEOUT, answer.recv()).await.and_then(Result::ok).unwrap_or_default()
    }
}

/// Runs `future` for at most `timeout`.
async fn within<T>(timeout: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        glommio::timer::Timer::new(timeout).await;
        None
    })
    .await
}

/// A shard's answers, computed from its own watch table.
pub fn summarize<C: Copy + Eq + std::hash::Hash>(watches: &crate::watch::WatchTable<C>) -> WatchSummary {
    let mut connections = HashSet::new();
    let mut summary = WatchSummary { watches: watches.watch_count() as u64, ..WatchSummary::default() };
    for (_, watchers) in watches.data_watches() {
        summary.data_paths += 1;
        for connection in watchers {
            summary.data_watches += 1;
            connections.insert(connection);
        }
    }
    summary.data_connections = connections.len() as u64;
    summary
}

/// A shard's data watches, with each connection replaced by its session.
pub fn list_watches<C: Copy + Eq + std::hash::Hash>(
    watches: &crate::watch::WatchTable<C>,
    sessions: &HashMap<C, i64>,
) -> Vec<(Path, Vec<i64>)> {
    watches
        .data_watches()
        .map(|(path, watchers)| {
            let sessions = watchers.filter_map(|connection| sessions.get(&connection).copied()).collect();
            (path.clone(), sessions)
        })
        .collect()
}
