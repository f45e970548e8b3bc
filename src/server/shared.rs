//! State every core can read: the configuration, the newest published tree
//! (an `ArcSwap`, loaded without a lock), and counters. Per-request
//! counters are per-shard atomics written by one core only, so they never
//! bounce a cache line between cores on the hot path.
//!
//! The operations layer reads it only through `crate::ops::ServerView`,
//! implemented at the end of this file, so ops/ does not depend on the
//! shell.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::limits::RETIRED_VERSIONS_MAX;
use crate::metrics::Metrics;
use crate::ops::view::{Answer, SessionBuckets, WatchReport, WatchSummary};
use crate::ops::{ConnectionInfo, EnsembleView, ServerView};
use crate::tree::{Tree, Trigger};

/// One committed state: the tree after a batch and the batch's watch
/// triggers, linked to the next version once that is published. Shards
/// follow the links to catch up, firing each version's triggers before they
/// serve anything from its tree; the link is set before the version is
/// stored in `Shared::published`, so following links always reaches the
/// newest published state. Nothing here takes a lock.
#[derive(Debug)]
pub struct Version {
    pub tree: Arc<Tree>,
    pub triggers: Vec<Trigger>,
    next: std::sync::OnceLock<Arc<Version>>,
}

impl Version {
    pub fn new(tree: Arc<Tree>, triggers: Vec<Trigger>) -> Version {
        Version { tree, triggers, next: std::sync::OnceLock::new() }
    }

    pub fn next(&self) -> Option<&Arc<Version>> {
        self.next.get()
    }

    /// Links the following version; a version is followed by one other
    /// only, and never by an older tree (committed state only grows, and
    /// shards replay the triggers along the links in order).
    pub fn link(&self, next: Arc<Version>) {
        assert!(
            next.tree.last_zxid() >= self.tree.last_zxid(),
            "version at zxid {:#x} linked after one at {:#x}",
            next.tree.last_zxid(),
            self.tree.last_zxid()
        );
        let linked = self.next.set(next).is_ok();
        debug_assert!(linked, "a version is linked once");
    }
}

/// Versions the shards have moved past, on their way back to the broadcast
/// core to be dropped there.
///
/// Why: the broadcast core allocates every tree block and trie branch, and
/// the last reference to a replaced one usually goes with an old version
/// a shard drops when it adopts the next. An allocator hands a block freed
/// by another thread back to its owner lazily, if at all: with mimalloc
/// v3, a 30 s setData rewrite of 1M keys kept the live bytes at 231-242
/// MiB while committed memory grew from 303 to 426 MiB (docs/memory.md,
/// fourth pass; v2, which the binary now uses, reuses them). Dropped on
/// the core that allocated them, the blocks go straight back to its free
/// lists, whatever the allocator does with remote frees. A lock-free
/// bounded queue: pushing costs a shard one atomic operation per adopted
/// version.
pub struct Retired {
    queue: crossbeam::queue::ArrayQueue<Arc<Version>>,
}

impl Retired {
    pub fn new() -> Retired {
        Retired { queue: crossbeam::queue::ArrayQueue::new(RETIRED_VERSIONS_MAX) }
    }

    /// Hands `version` to the broadcast core; if the queue is full, it is
    /// dropped here instead.
    pub fn retire(&self, version: Arc<Version>) {
        if let Err(version) = self.queue.push(version) {
            drop(version);
        }
    }

    /// Drops every retired version, on the calling thread (the broadcast
    /// core's); returns how many there were.
    pub fn drop_all(&self) -> usize {
        let mut dropped = 0;
        while let Some(version) = self.queue.pop() {
            drop(version);
            dropped += 1;
        }
        dropped
    }
}

impl Default for Retired {
    fn default() -> Retired {
        Retired::new()
    }
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Retired").field("len", &self.queue.len()).finish()
    }
}

/// Each shard bumps its own counters on every packet: aligned to two
/// cache lines so that two shards' counters never share one (or a pair the
/// CPU prefetches together), or every request would bounce it between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding_requests: AtomicI64,
    /// Whether the shard may hold a watch: only then does the broadcast
    /// core wake it for a change that carries none of its replies (see
    /// `Shard::expect_watch`).
    pub watching: AtomicBool,
}

impl ShardStats {
    pub fn new() -> Self {
        ShardStats::default()
    }

    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
    }
}

pub struct Shared {
    pub config: Config,
    /// The newest committed version.
    pub published: ArcSwap<Version>,
    /// Versions shards have moved past, dropped by the broadcast core.
    pub retired: Retired,
    pub started: Instant,
    pub shard_stats: Vec<ShardStats>,
    /// Live connections per shard, for cons and srvr. Touched only when a
    /// connection opens or closes, and by the four-letter words.
    pub connections: Vec<Mutex<HashMap<u64, Arc<ConnectionInfo>>>>,
    connections_per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub client_address: Mutex<Option<SocketAddr>>,
    pub stopping: AtomicBool,
    /// Latency histograms, queue counters and what the log reports.
    pub metrics: crate::metrics::Metrics,
    /// Questions to the shards and the broadcast core (wchc, dump), and the
    /// stop signal.
    pub control: super::control::Control,
    /// ZooKeeper's trace mask (gtmk, stmk); zoocore keeps it for the
    /// commands only.
    pub trace_mask: AtomicI64,
    /// This server's place in its ensemble, as the broadcast core last saw
    /// it: written on role changes and about once a second, read by the
    /// four-letter words, the admin server and the metrics page.
    pub ensemble: Mutex<EnsembleView>,
}

impl Shared {
    pub fn new(config: Config, tree: Tree, shard_count: usize) -> Arc<Shared> {
        let metrics = crate::metrics::Metrics::new(shard_count, config.tunables.fsync_warning_threshold_ms);
        Arc::new(Shared {
            config,
            published: ArcSwap::from_pointee(Version::new(Arc::new(tree), Vec::new())),
            retired: Retired::new(),
            started: Instant::now(),
            shard_stats: (0..shard_count).map(|_| ShardStats::new()).collect(),
            connections: (0..shard_count).map(|_| Mutex::new(HashMap::new())).collect(),
            connections_per_ip: Mutex::new(HashMap::new()),
            client_address: Mutex::new(None),
            stopping: AtomicBool::new(false),
            metrics,
            control: super::control::Control::new(shard_count),
            trace_mask: AtomicI64::new(crate::ops::fourletter::DEFAULT_TRACE_MASK),
            ensemble: Mutex::new(EnsembleView::default()),
        })
    }

    /// Starts a clean shutdown: listeners stop accepting, shards finish
    /// what is in flight, the broadcast core drains its inbox and exits.
    pub fn stop(&self, reason: &str) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            tracing::info!(reason, "zoocore stopping");
        }
        self.control.stop();
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        self.control.stopped().await
    }

    /// Counts a new connection from `ip`; false if maxClientCnxns is reached.
    pub fn admit_connection(&self, ip: IpAddr) -> bool {
        let limit = self.config.client_connections_per_host_max;
        let mut counts = self.connections_per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if limit != 0 && *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    pub fn release_connection(&self, ip: IpAddr) {
        let mut counts = self.connections_per_ip.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// The newest committed tree.
    pub fn tree(&self) -> Arc<Tree> {
        self.published.load().tree.clone()
    }
}

/// What the operations layer (crate::ops) reads of the server, answered
/// from the fields above: the one place that knows how ops' questions map
/// onto the shell's state.
impl ServerView for Shared {
    fn config(&self) -> &Config {
        &self.config
    }

    fn started(&self) -> Instant {
        self.started
    }

    fn tree(&self) -> Arc<Tree> {
        Shared::tree(self)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn ensemble(&self) -> EnsembleView {
        self.ensemble.lock().map(|view| view.clone()).unwrap_or_default()
    }

    fn mode(&self) -> &'static str {
        self.ensemble.lock().map(|view| view.mode()).unwrap_or("standalone")
    }

    fn read_only(&self) -> bool {
        self.ensemble.lock().is_ok_and(|view| view.read_only())
    }

    fn client_address(&self) -> Option<SocketAddr> {
        self.client_address.lock().ok().and_then(|address| *address)
    }

    fn shard_count(&self) -> usize {
        self.shard_stats.len()
    }

    fn connection_count(&self) -> usize {
        self.connections.iter().map(|shard| shard.lock().map(|map| map.len()).unwrap_or(0)).sum()
    }

    fn connections(&self) -> Vec<Arc<ConnectionInfo>> {
        let mut infos: Vec<Arc<ConnectionInfo>> = Vec::new();
        for connections in &self.connections {
            if let Ok(connections) = connections.lock() {
                infos.extend(connections.values().cloned());
            }
        }
        infos.sort_by_key(|info| info.peer);
        infos
    }

    fn packets_received(&self) -> u64 {
        self.shard_stats.iter().map(|stats| stats.packets_received.load(Ordering::Relaxed)).sum()
    }

    fn packets_sent(&self) -> u64 {
        self.shard_stats.iter().map(|stats| stats.packets_sent.load(Ordering::Relaxed)).sum()
    }

    fn outstanding(&self) -> i64 {
        self.shard_stats.iter().map(|stats| stats.outstanding_requests.load(Ordering::Relaxed)).sum()
    }

    fn watch_summary(&self) -> Answer<'_, WatchSummary> {
        Box::pin(self.control.watch_summary())
    }

    fn watches(&self) -> Answer<'_, WatchReport> {
        Box::pin(self.control.watches())
    }

    fn session_buckets(&self) -> Answer<'_, SessionBuckets> {
        Box::pin(self.control.session_buckets())
    }

    fn stopped(&self) -> Answer<'_, ()> {
        Box::pin(self.control.stopped())
    }

    fn trace_mask(&self) -> i64 {
        self.trace_mask.load(Ordering::Relaxed)
    }

    fn set_trace_mask(&self, mask: i64) {
        self.trace_mask.store(mask, Ordering::Relaxed);
    }

    fn reset_server_stats(&self) {
        for stats in &self.shard_stats {
            stats.reset();
        }
        self.metrics.reset();
    }

    fn reset_connection_stats(&self) {
        for connections in &self.connections {
            if let Ok(connections) = connections.lock() {
                for info in connections.values() {
                    info.reset();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> Arc<Version> {
        Arc::new(Version::new(Arc::new(Tree::new()), Vec::new()))
    }

    #[test]
    fn a_retired_version_is_dropped_by_the_thread_that_empties_the_queue() {
        let retired = Arc::new(Retired::new());
        let version = version();
        let weak = Arc::downgrade(&version);
        let shard = {
            let retired = retired.clone();
            std::thread::spawn(move || retired.retire(version))
        };
        shard.join().unwrap();
        assert!(weak.upgrade().is_some(), "the shard let go, but the version waits for the core");
        assert_eq!(retired.drop_all(), 1);
        assert!(weak.upgrade().is_none());
        assert_eq!(retired.drop_all(), 0);
    }

    #[test]
    fn a_full_queue_drops_on_the_retiring_thread() {
        let retired = Retired::new();
        let queued: Vec<std::sync::Weak<Version>> = (0..RETIRED_VERSIONS_MAX)
            .map(|_| {
                let version = version();
                let weak = Arc::downgrade(&version);
                retired.retire(version);
                weak
            })
            .collect();
        let extra = version();
        let extra_weak = Arc::downgrade(&extra);
        retired.retire(extra);
        assert!(extra_weak.upgrade().is_none(), "over the bound, the version is dropped at once");
        assert!(queued.iter().all(|weak| weak.upgrade().is_some()));
        assert_eq!(retired.drop_all(), RETIRED_VERSIONS_MAX);
        assert!(queued.iter().all(|weak| weak.upgrade().is_none()));
    }
}
