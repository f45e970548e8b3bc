//! State every core can read: the configuration, the newest published tree
//! (an `ArcSwap`, loaded without a lock), and counters. Per-request
//! counters are per-shard atomics written by one core only, so they never
//! bounce a cache line between cores on the hot path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::config::Config;
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

    /// Links the following version; a version is followed by one other only.
    pub fn link(&self, next: Arc<Version>) {
        let linked = self.next.set(next).is_ok();
        debug_assert!(linked, "a version is linked once");
    }
}

#[derive(Debug, Default)]
pub struct ShardStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding_requests: AtomicI64,
    pub latency_count: AtomicU64,
    pub latency_total_us: AtomicU64,
    pub latency_min_us: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub watch_count: AtomicU64,
    pub watched_path_count: AtomicU64,
    pub watching_connection_count: AtomicU64,
}

impl ShardStats {
    pub fn new() -> Self {
        ShardStats { latency_min_us: AtomicU64::new(u64::MAX), ..ShardStats::default() }
    }

    pub fn record_latency(&self, micros: u64) {
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_total_us.fetch_add(micros, Ordering::Relaxed);
        self.latency_min_us.fetch_min(micros, Ordering::Relaxed);
        self.latency_max_us.fetch_max(micros, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency_count.store(0, Ordering::Relaxed);
        self.latency_total_us.store(0, Ordering::Relaxed);
        self.latency_min_us.store(u64::MAX, Ordering::Relaxed);
        self.latency_max_us.store(0, Ordering::Relaxed);
    }
}

/// What `cons` shows of one connection. Counters are written by the
/// owning shard only.
#[derive(Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub established: std::time::SystemTime,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding: AtomicI64,
    pub last_zxid: AtomicI64,
    pub last_opcode: AtomicI64,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr) -> Self {
        ConnectionInfo {
            peer,
            established: std::time::SystemTime::now(),
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            last_zxid: AtomicI64::new(-1),
            last_opcode: AtomicI64::new(-1),
        }
    }
}

pub struct Shared {
    pub config: Config,
    /// The newest committed version.
    pub published: ArcSwap<Version>,
    pub started: Instant,
    pub shard_stats: Vec<ShardStats>,
    /// Live connections per shard, for cons and srvr. Touched only when a
    /// connection opens or closes, and by the four-letter words.
    pub connections: Vec<Mutex<HashMap<u64, Arc<ConnectionInfo>>>>,
    connections_per_ip: Mutex<HashMap<IpAddr, u32>>,
    pub client_address: Mutex<Option<SocketAddr>>,
    pub stopping: AtomicBool,
}

impl Shared {
    pub fn new(config: Config, tree: Tree, shard_count: usize) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            published: ArcSwap::from_pointee(Version::new(Arc::new(tree), Vec::new())),
            started: Instant::now(),
            shard_stats: (0..shard_count).map(|_| ShardStats::new()).collect(),
            connections: (0..shard_count).map(|_| Mutex::new(HashMap::new())).collect(),
            connections_per_ip: Mutex::new(HashMap::new()),
            client_address: Mutex::new(None),
            stopping: AtomicBool::new(false),
        })
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

    pub fn connection_count(&self) -> usize {
        self.connections.iter().map(|shard| shard.lock().map(|map| map.len()).unwrap_or(0)).sum()
    }

    pub fn sum(&self, field: impl Fn(&ShardStats) -> &AtomicU64) -> u64 {
        self.shard_stats.iter().map(|stats| field(stats).load(Ordering::Relaxed)).sum()
    }

    pub fn outstanding(&self) -> i64 {
        self.shard_stats.iter().map(|stats| stats.outstanding_requests.load(Ordering::Relaxed)).sum()
    }

    /// (min, avg, max) latency in milliseconds, as srvr prints it.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let count = self.sum(|stats| &stats.latency_count);
        if count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let total = self.sum(|stats| &stats.latency_total_us);
        let min = self.shard_stats.iter().map(|s| s.latency_min_us.load(Ordering::Relaxed)).min().unwrap_or(0);
        let max = self.shard_stats.iter().map(|s| s.latency_max_us.load(Ordering::Relaxed)).max().unwrap_or(0);
        (min as f64 / 1000.0, total as f64 / count as f64 / 1000.0, max as f64 / 1000.0)
    }
}
