//! The narrow, read-only view of a running server that the operations
//! layer answers from: [`ServerView`], and the plain data it hands out.
//!
//! ops/ never names `crate::server`. The shell (`server::Shared`) answers
//! this trait, and the four-letter words (on a shard's executor), the admin
//! commands and the Prometheus page (on the admin executor) take a
//! `&dyn ServerView`; so ops/ can be read, and tested, without glommio, and
//! the shell's fields can change without touching what an operator sees.
//! The trait has exactly the questions ops asks; the few things an operator
//! may change (stmk's trace mask, srst's and crst's counters) are named
//! methods, not field access.
//!
//! The data types here are the ones both sides must name: the shell writes
//! [`ConnectionInfo`] per connection and merges [`WatchSummary`] and
//! [`WatchReport`] from its shards' answers; ops reads them.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::tree::{Path, Tree};

use super::EnsembleView;

/// The answer to a question that other cores answer (watches, sessions)
/// or that resolves later (the stop). Not `Send`: it is awaited on the
/// executor that asked, as everything on glommio is.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What the operations layer may ask of a running server. Object-safe, so
/// callers pass `&dyn ServerView`; `Send + Sync`, so the admin executor
/// holds one in an `Arc` beside the shards.
pub trait ServerView: Send + Sync {
    /// The configuration the server started with.
    fn config(&self) -> &Config;
    /// When the server started (uptime, and wall-clock times of figures
    /// kept in ms since the start).
    fn started(&self) -> Instant;
    /// The newest committed (published) tree.
    fn tree(&self) -> Arc<Tree>;
    /// The recorders and counters (crate::metrics).
    fn metrics(&self) -> &Metrics;
    /// A copy of this server's place in its ensemble (default standalone).
    fn ensemble(&self) -> EnsembleView;
    /// standalone, leader, follower, observer, looking or read-only.
    fn mode(&self) -> &'static str;
    /// Whether this server serves read-only clients now (never standalone).
    fn read_only(&self) -> bool;
    /// The bound plain client port's address, once every shard listens.
    fn client_address(&self) -> Option<SocketAddr>;
    /// Shard executors serving clients.
    fn shard_count(&self) -> usize;
    /// Live client connections.
    fn connection_count(&self) -> usize;
    /// Every live connection, sorted by peer address.
    fn connections(&self) -> Vec<Arc<ConnectionInfo>>;
    /// Packets received from clients, over all shards.
    fn packets_received(&self) -> u64;
    /// Packets sent to clients, over all shards.
    fn packets_sent(&self) -> u64;
    /// Requests received and not answered yet, over all shards.
    fn outstanding(&self) -> i64;
    /// Watch counts, asked of every shard.
    fn watch_summary(&self) -> Answer<'_, WatchSummary>;
    /// Every data watch, asked of every shard.
    fn watches(&self) -> Answer<'_, WatchReport>;
    /// The session expiry buckets, asked of the broadcast core.
    fn session_buckets(&self) -> Answer<'_, SessionBuckets>;
    /// Resolves once the server is stopping.
    fn stopped(&self) -> Answer<'_, ()>;
    /// ZooKeeper's trace mask (gtmk).
    fn trace_mask(&self) -> i64;
    /// Sets the trace mask (stmk, set_trace_mask).
    fn set_trace_mask(&self, mask: i64);
    /// Resets the server's packet and latency counters (srst, stat_reset).
    fn reset_server_stats(&self);
    /// Resets every connection's counters (crst, connection_stat_reset).
    fn reset_connection_stats(&self);
}

/// Watch counts of one shard, or of all shards added up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatchSummary {
    /// Data and child watches, as mntr's watch_count counts them.
    pub watches: u64,
    /// What wchs counts: ZooKeeper reports its data watch table there.
    pub data_watches: u64,
    pub data_paths: u64,
    pub data_connections: u64,
}

impl WatchSummary {
    /// Adds another shard's counts.
    pub fn add(&mut self, other: WatchSummary) {
        self.watches += other.watches;
        self.data_watches += other.data_watches;
        self.data_paths += other.data_paths;
        self.data_connections += other.data_connections;
    }
}

/// The session expiry buckets: the wall-clock time (ms since the epoch) at
/// which each bucket expires, and its sessions.
pub type SessionBuckets = Vec<(i64, Vec<i64>)>;

/// The watch tables of every shard merged: by session (wchc) and by path
/// (wchp), both sorted.
#[derive(Debug, Default)]
pub struct WatchReport {
    pub by_session: BTreeMap<i64, Vec<Path>>,
    pub by_path: BTreeMap<Path, Vec<i64>>,
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
    pub last_cxid: AtomicI64,
    /// When the last reply went out, in ms since the server started.
    pub last_response_ms: AtomicI64,
    pub latency: ConnectionLatency,
}

/// A connection's request latencies in ms, as `cons` shows them (llat,
/// minlat, avglat, maxlat). Written by the owning shard only.
#[derive(Debug)]
pub struct ConnectionLatency {
    pub last_ms: AtomicU64,
    pub min_ms: AtomicU64,
    pub max_ms: AtomicU64,
    pub total_ms: AtomicU64,
    pub count: AtomicU64,
}

impl Default for ConnectionLatency {
    fn default() -> Self {
        ConnectionLatency {
            last_ms: AtomicU64::new(0),
            min_ms: AtomicU64::new(u64::MAX),
            max_ms: AtomicU64::new(0),
            total_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl ConnectionLatency {
    pub fn record(&self, ms: u64) {
        self.last_ms.store(ms, Ordering::Relaxed);
        self.count.store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.total_ms.store(self.total_ms.load(Ordering::Relaxed) + ms, Ordering::Relaxed);
        if ms < self.min_ms.load(Ordering::Relaxed) {
            self.min_ms.store(ms, Ordering::Relaxed);
        }
        if ms > self.max_ms.load(Ordering::Relaxed) {
            self.max_ms.store(ms, Ordering::Relaxed);
        }
    }

    pub fn reset(&self) {
        self.last_ms.store(0, Ordering::Relaxed);
        self.min_ms.store(u64::MAX, Ordering::Relaxed);
        self.max_ms.store(0, Ordering::Relaxed);
        self.total_ms.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    /// (last, min, avg, max) as ZooKeeper prints them: 0 when nothing was measured.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return (0, 0, 0, 0);
        }
        (
            self.last_ms.load(Ordering::Relaxed),
            self.min_ms.load(Ordering::Relaxed),
            self.total_ms.load(Ordering::Relaxed) / count,
            self.max_ms.load(Ordering::Relaxed),
        )
    }
}

impl ConnectionInfo {
    /// Resets what `crst` resets (ServerCnxn.resetStats).
    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.last_opcode.store(-1, Ordering::Relaxed);
        self.last_cxid.store(-1, Ordering::Relaxed);
        self.last_zxid.store(-1, Ordering::Relaxed);
        self.last_response_ms.store(0, Ordering::Relaxed);
        self.latency.reset();
    }

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
            last_cxid: AtomicI64::new(-1),
            last_response_ms: AtomicI64::new(0),
            latency: ConnectionLatency::default(),
        }
    }
}
