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

#[derive(Debug, Default)]
pub struct ShardStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding_requests: AtomicI64,
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

/// A follower or observer whose highest replicated index (the leader's
/// `matched`) is at most this many entries behind the leader's last index
/// counts as synced (ZooKeeper's `zk_synced_followers`). ZooKeeper calls a
/// learner synced while it acks within syncLimit ticks; zoocore's leader
/// knows indexes, not ack times, so the bound is in entries: one full
/// broadcast batch of writes in flight is normal, a peer further behind is
/// catching up rather than following the broadcast.
pub const SYNCED_LAG_ENTRIES_MAX: u64 = 1000;

/// What the operations layer shows of the ensemble.
#[derive(Debug, Clone, Default)]
pub struct EnsembleView {
    /// False for a standalone server.
    pub distributed: bool,
    pub my_id: u64,
    pub role: Option<crate::node::Role>,
    pub leader: Option<u64>,
    pub term: u64,
    /// Leader changes seen since start, and when the last one ended (ms of
    /// the broadcast core's clock) and how long it took without a leader.
    pub elections: u64,
    pub last_election_ms: Option<i64>,
    /// The leader's view of each other member: id, highest replicated index.
    pub matched: Vec<(u64, u64)>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The last index in this server's log (on the leader: the newest
    /// proposal), against which `matched` gives each peer's lag.
    pub last_index: u64,
    /// Syncs of this server's clients not answered yet: waiting for the
    /// leader's index or for this server to apply up to it.
    pub pending_syncs: usize,
    /// When this server last became leader (ZooKeeper's leader_uptime).
    pub leading_since: Option<Instant>,
    /// Each peer link, as the transport counts it.
    pub links: Vec<super::peer::PeerStats>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

impl EnsembleView {
    /// ZooKeeper's name of this server's state: standalone, leader,
    /// follower, observer, looking, or read-only.
    pub fn mode(&self) -> &'static str {
        match self.role {
            None => "standalone",
            Some(role) => role.mode(!self.distributed),
        }
    }

    /// Whether this server serves read-only clients now
    /// (`readonlymode.enabled`, no leader): `isro` answers "ro".
    pub fn read_only(&self) -> bool {
        self.role == Some(crate::node::Role::ReadOnly)
    }

    /// Whether this server is an ensemble member that leads.
    pub fn leading(&self) -> bool {
        self.distributed && self.role == Some(crate::node::Role::Leader)
    }

    /// ZooKeeper's zab phase, as the admin `zabstate` names it: zoocore has
    /// no discovery or synchronization phase a client could see (raft
    /// brings a follower up to date while it already follows), so a
    /// server is electing or broadcasting.
    pub fn zab_state(&self) -> &'static str {
        match self.role {
            Some(role) if role.leaderless() => "election",
            _ => "broadcast",
        }
    }

    /// mntr's `zk_peer_state`: the peer state and the zab phase.
    pub fn peer_state(&self) -> String {
        let state = match self.role {
            Some(crate::node::Role::Leader) => "leading",
            Some(crate::node::Role::Follower) => "following",
            Some(crate::node::Role::Observer) => "observing",
            // ZooKeeper's peer stays LOOKING while its read-only server runs.
            Some(crate::node::Role::Looking | crate::node::Role::ReadOnly) | None => "looking",
        };
        format!("{state} - {}", self.zab_state())
    }

    /// Times this server has been without a leader: each election that
    /// ended, and the one under way (ZooKeeper's looking_count).
    pub fn looking_count(&self) -> u64 {
        self.elections + u64::from(self.role.is_some_and(crate::node::Role::leaderless))
    }

    pub fn link(&self, id: u64) -> Option<&super::peer::PeerStats> {
        self.links.iter().find(|link| link.id == id)
    }

    /// On the leader, how many entries member `id` is behind its log.
    pub fn lag(&self, id: u64) -> Option<u64> {
        if !self.leading() {
            return None;
        }
        let matched = self.matched.iter().find(|(member, _)| *member == id)?.1;
        Some(self.last_index.saturating_sub(matched))
    }

    /// On the leader, whether member `id` is connected and within
    /// [`SYNCED_LAG_ENTRIES_MAX`] of the leader's log.
    pub fn synced(&self, id: u64) -> bool {
        let connected = self.link(id).is_some_and(|link| link.connected);
        connected && self.lag(id).is_some_and(|lag| lag <= SYNCED_LAG_ENTRIES_MAX)
    }

    /// The other voting members.
    pub fn followers(&self) -> impl Iterator<Item = u64> + '_ {
        self.voters.iter().copied().filter(move |id| *id != self.my_id)
    }

    /// The non-voting members (observers) other than this server.
    pub fn observers(&self) -> impl Iterator<Item = u64> + '_ {
        self.learners.iter().copied().filter(move |id| *id != self.my_id)
    }

    /// On the leader, the members it has a live link to (ZooKeeper's
    /// learners: every follower and observer with a learner handler).
    pub fn connected_learners(&self) -> usize {
        if !self.leading() {
            return 0;
        }
        self.followers().chain(self.observers()).filter(|id| self.link(*id).is_some_and(|link| link.connected)).count()
    }

    pub fn synced_followers(&self) -> usize {
        self.followers().filter(|id| self.synced(*id)).count()
    }

    pub fn synced_observers(&self) -> usize {
        self.observers().filter(|id| self.synced(*id)).count()
    }
}

impl Shared {
    /// standalone, leader, follower, observer, looking or read-only.
    pub fn mode(&self) -> &'static str {
        self.ensemble.lock().map(|view| view.mode()).unwrap_or("standalone")
    }

    /// Whether this server serves read-only clients now (never standalone).
    pub fn read_only(&self) -> bool {
        self.ensemble.lock().is_ok_and(|view| view.read_only())
    }

    pub fn new(config: Config, tree: Tree, shard_count: usize) -> Arc<Shared> {
        let metrics = crate::metrics::Metrics::new(shard_count, config.tunables.fsync_warning_threshold_ms);
        Arc::new(Shared {
            config,
            published: ArcSwap::from_pointee(Version::new(Arc::new(tree), Vec::new())),
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

    pub fn connection_count(&self) -> usize {
        self.connections.iter().map(|shard| shard.lock().map(|map| map.len()).unwrap_or(0)).sum()
    }

    pub fn sum(&self, field: impl Fn(&ShardStats) -> &AtomicU64) -> u64 {
        self.shard_stats.iter().map(|stats| field(stats).load(Ordering::Relaxed)).sum()
    }

    pub fn outstanding(&self) -> i64 {
        self.shard_stats.iter().map(|stats| stats.outstanding_requests.load(Ordering::Relaxed)).sum()
    }

    /// (min, avg, max) latency in milliseconds, as srvr prints it: from
    /// the same per-shard histograms as mntr and the Prometheus page (the
    /// average from their exact sums).
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let Some(mut all) = self.metrics.latency(false) else { return (0.0, 0.0, 0.0) };
        if let Some(writes) = self.metrics.latency(true) {
            all.merge(&writes);
        }
        if all.count() == 0 {
            return (0.0, 0.0, 0.0);
        }
        (all.min() as f64 / 1000.0, all.mean() / 1000.0, all.max() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Role;
    use crate::server::peer::PeerStats;

    fn leader_view() -> EnsembleView {
        let link = |id, connected| PeerStats { id, connected, ..PeerStats::default() };
        EnsembleView {
            distributed: true,
            my_id: 1,
            role: Some(Role::Leader),
            leader: Some(1),
            voters: vec![1, 2, 3],
            learners: vec![4],
            last_index: 5000,
            matched: vec![(2, 5000), (3, 5000 - SYNCED_LAG_ENTRIES_MAX - 1), (4, 4990)],
            links: vec![link(2, true), link(3, true), link(4, false)],
            ..EnsembleView::default()
        }
    }

    #[test]
    fn the_leader_counts_members_synced_when_linked_and_close_behind() {
        let view = leader_view();
        assert_eq!(view.lag(2), Some(0));
        assert_eq!(view.lag(3), Some(SYNCED_LAG_ENTRIES_MAX + 1));
        // 2 is current; 3 is linked but too far behind; 4 is close but its link is down.
        assert_eq!(view.synced_followers(), 1);
        assert_eq!(view.synced_observers(), 0);
        assert_eq!(view.connected_learners(), 2);
        assert_eq!(view.peer_state(), "leading - broadcast");
        assert_eq!(view.mode(), "leader");
    }

    #[test]
    fn only_a_leader_judges_the_others() {
        let mut view = leader_view();
        view.role = Some(Role::Follower);
        assert_eq!(view.lag(2), None);
        assert_eq!(view.synced_followers(), 0);
        assert_eq!(view.connected_learners(), 0);
        assert_eq!(view.peer_state(), "following - broadcast");
        view.role = Some(Role::Looking);
        view.elections = 1;
        assert_eq!(view.looking_count(), 2);
        assert_eq!((view.peer_state().as_str(), view.zab_state()), ("looking - election", "election"));
        assert!(!view.read_only());
        view.role = Some(Role::ReadOnly);
        assert_eq!(view.looking_count(), 2);
        assert_eq!((view.mode(), view.peer_state().as_str()), ("read-only", "looking - election"));
        assert!(view.read_only());
        let standalone = EnsembleView::default();
        assert_eq!(standalone.mode(), "standalone");
        assert!(!standalone.leading());
    }
}
