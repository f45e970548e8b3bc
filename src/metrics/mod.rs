//! Metrics: what the shards, the broadcast core and the log measure. A leaf
//! of the crate: recorders and counters only, which any module can feed
//! without pulling in the server; what is shown from them (mntr, the admin
//! commands, the Prometheus page) is `crate::ops`.
//!
//! Latency is recorded into hdrhistograms, one per shard and kind, each
//! written by its own shard only: its lock is uncontended on the hot path
//! (a scrape takes it for the time of one copy). Readers merge the shards'
//! histograms. The log feeds its numbers through [`Metrics::record_fsync`],
//! [`Metrics::record_group_commit`] and [`Metrics::record_snapshot`], the
//! broadcast core through [`Metrics::record_write_batch`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tracing::{info, warn};

/// Kinds of connection end counted: one slot per [`CloseKind`].
pub const CLOSE_KINDS: usize = CloseKind::ALL.len();

/// What `zoocore_connections_closed_total` counts by: the kind of a
/// connection's end (`server::close::CloseReason::kind`). Here, beside the
/// counters, so the shell that names the ends and the page that prints the
/// counts share it without depending on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The client ended it, or its business was done.
    Client,
    /// It sent bytes that are not ZooKeeper's protocol.
    BadInput,
    /// It asked for what this server does not give.
    Refused,
    Auth,
    /// The server ended it: a bound, a stop, the node's decision.
    Server,
}

impl CloseKind {
    pub const ALL: [CloseKind; 5] =
        [CloseKind::Client, CloseKind::BadInput, CloseKind::Refused, CloseKind::Auth, CloseKind::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseKind::Client => "client",
            CloseKind::BadInput => "bad_input",
            CloseKind::Refused => "refused",
            CloseKind::Auth => "auth",
            CloseKind::Server => "server",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Significant figures kept by every histogram (1% resolution).
const SIGNIFICANT_FIGURES: u8 = 2;
/// The largest latency recorded exactly, in microseconds (one hour); longer
/// ones count as this.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Proposals the leader times from append to commit at once; more in
/// flight go untimed until the oldest commit (the figure is a sample, and
/// the bound keeps a leader that cannot commit from growing the queue).
pub const PROPOSALS_TIMED_MAX: usize = 1024;

/// Times the leader's proposals from the round that appended them to the
/// round that saw them committed (ZooKeeper's proposal_latency). It sees
/// only the log's last and commit indexes, once per broadcast round, so a
/// batch of writes appended in one round is one sample. IO-free: the time
/// comes in as an argument.
#[derive(Debug, Default)]
pub struct ProposalClock {
    /// (last index of a round's appends, when that round ended), oldest first.
    pending: VecDeque<(u64, Instant)>,
}

impl ProposalClock {
    /// One broadcast round ended at `now` with the log at `last_index` and
    /// `commit_index`; returns how long each proposal committed since took.
    /// A server that does not lead forgets what it was timing: a deposed
    /// leader's proposals commit under another leader, or never.
    pub fn observe(&mut self, leading: bool, last_index: u64, commit_index: u64, now: Instant) -> Vec<Duration> {
        if !leading {
            self.pending.clear();
            return Vec::new();
        }
        let newest = self.pending.back().map_or(commit_index, |(index, _)| *index);
        if last_index > newest && self.pending.len() < PROPOSALS_TIMED_MAX {
            self.pending.push_back((last_index, now));
        }
        let mut committed = Vec::new();
        while let Some((index, since)) = self.pending.front().copied() {
            if index > commit_index {
                break;
            }
            committed.push(now.saturating_duration_since(since));
            self.pending.pop_front();
        }
        committed
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The stages a write passes through, in order, each timed into its own
/// histogram (`zoocore_write_stage_seconds`) so that where a write's time
/// goes can be read off a loaded server. Per-message stages time every
/// message; per-round ones time the broadcast core's round, which all the
/// writes of a batch share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStage {
    /// From the shard's send to the broadcast core's receipt (per message).
    ToCore,
    /// Waiting in the broadcast core's inbox for a round (per message).
    Queue,
    /// Stepping the round's messages into the node: prep and proposal.
    Prep,
    /// Prepared work waiting for the log's write in flight to finish
    /// before its own write starts (per sync; zero when the log was idle).
    LogWait,
    /// The log's write of a batch (per sync).
    LogWrite,
    /// The log's fdatasync of a batch (per sync).
    Fsync,
    /// The node taking the persisted batch: commit and apply.
    Release,
    /// Publishing the new version and handing shards their replies.
    Publish,
    /// From the broadcast core's send to the shard's receipt (per commit).
    ToShard,
    /// The shard catching up and queuing the replies (per commit).
    ShardApply,
    /// From a reply queued on a connection to the socket taking it (per
    /// socket write).
    SocketWrite,
}

impl WriteStage {
    pub const ALL: [WriteStage; 11] = [
        WriteStage::ToCore,
        WriteStage::Queue,
        WriteStage::Prep,
        WriteStage::LogWait,
        WriteStage::LogWrite,
        WriteStage::Fsync,
        WriteStage::Release,
        WriteStage::Publish,
        WriteStage::ToShard,
        WriteStage::ShardApply,
        WriteStage::SocketWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WriteStage::ToCore => "to_core",
            WriteStage::Queue => "queue",
            WriteStage::Prep => "prep",
            WriteStage::LogWait => "log_wait",
            WriteStage::LogWrite => "log_write",
            WriteStage::Fsync => "fsync",
            WriteStage::Release => "release",
            WriteStage::Publish => "publish",
            WriteStage::ToShard => "to_shard",
            WriteStage::ShardApply => "shard_apply",
            WriteStage::SocketWrite => "socket_write",
        }
    }
}

/// A histogram and the exact sum of what it recorded.
pub struct Recorder {
    inner: Mutex<(Histogram<u64>, u64)>,
}

impl Recorder {
    fn new(max: u64) -> Recorder {
        let histogram = Histogram::new_with_bounds(1, max.max(2), SIGNIFICANT_FIGURES)
            .unwrap_or_else(|_| Histogram::new(SIGNIFICANT_FIGURES).expect("histogram"));
        Recorder { inner: Mutex::new((histogram, 0)) }
    }

    pub fn record(&self, value: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.0.saturating_record(value);
        inner.1 = inner.1.saturating_add(value);
    }

    /// A copy, taken under the lock for as long as the copy takes.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Snapshot { histogram: inner.0.clone(), sum: inner.1 }
    }

    pub fn reset(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.0.reset();
        inner.1 = 0;
    }
}

/// A histogram read out of a [`Recorder`], possibly merged with others.
#[derive(Clone)]
pub struct Snapshot {
    histogram: Histogram<u64>,
    sum: u64,
}

impl Snapshot {
    /// A snapshot of nothing recorded.
    pub fn empty() -> Snapshot {
        Snapshot { histogram: Histogram::new(SIGNIFICANT_FIGURES).expect("histogram"), sum: 0 }
    }

    pub fn merge(&mut self, other: &Snapshot) {
        let _ = self.histogram.add(&other.histogram);
        self.sum = self.sum.saturating_add(other.sum);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    pub fn min(&self) -> u64 {
        if self.count() == 0 {
            0
        } else {
            self.histogram.min()
        }
    }

    pub fn max(&self) -> u64 {
        self.histogram.max()
    }

    pub fn mean(&self) -> f64 {
        if self.count() == 0 {
            0.0
        } else {
            self.sum as f64 / self.count() as f64
        }
    }

    pub fn quantile(&self, quantile: f64) -> u64 {
        if self.count() == 0 {
            0
        } else {
            self.histogram.value_at_quantile(quantile)
        }
    }
}

/// What one shard measures. Written by that shard only, except the two
/// counters the broadcast core keeps (`to_broadcast_received`, `commits_sent`).
/// Aligned to two cache lines, so that neighbours in the shards' `Vec` do
/// not share one.
#[repr(align(128))]
pub struct ShardMetrics {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    /// Microseconds from a request's arrival to its reply.
    pub read_latency_us: Recorder,
    pub write_latency_us: Recorder,
    /// Messages the shard sent the broadcast core, and those the core took.
    pub to_broadcast_sent: AtomicU64,
    pub to_broadcast_received: AtomicU64,
    /// Commits the core sent the shard, and those the shard took.
    pub commits_sent: AtomicU64,
    pub commits_received: AtomicU64,
    /// The write stages timed on this shard (`to_shard`, `shard_apply`,
    /// `socket_write`), indexed by `WriteStage as usize`: per shard, like
    /// the latencies, so the read path's socket writes take no lock another
    /// shard takes.
    stages_us: Vec<Recorder>,
}

impl ShardMetrics {
    fn new() -> ShardMetrics {
        ShardMetrics {
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            read_latency_us: Recorder::new(LATENCY_US_MAX),
            write_latency_us: Recorder::new(LATENCY_US_MAX),
            to_broadcast_sent: AtomicU64::new(0),
            to_broadcast_received: AtomicU64::new(0),
            commits_sent: AtomicU64::new(0),
            commits_received: AtomicU64::new(0),
            stages_us: WriteStage::ALL.iter().map(|_| Recorder::new(LATENCY_US_MAX)).collect(),
        }
    }

    /// One commit or socket write on this shard spent `elapsed` in `stage`.
    pub fn record_stage(&self, stage: WriteStage, elapsed: Duration) {
        self.stages_us[stage as usize].record(elapsed.as_micros() as u64);
    }

    /// One request answered, `micros` after it arrived.
    pub fn record_request(&self, write: bool, micros: u64) {
        if write {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.write_latency_us.record(micros);
        } else {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.read_latency_us.record(micros);
        }
    }

    fn depth(sent: &AtomicU64, received: &AtomicU64) -> u64 {
        sent.load(Ordering::Relaxed).saturating_sub(received.load(Ordering::Relaxed))
    }

    /// Messages waiting between this shard and the broadcast core.
    pub fn to_broadcast_depth(&self) -> u64 {
        Self::depth(&self.to_broadcast_sent, &self.to_broadcast_received)
    }

    pub fn to_shard_depth(&self) -> u64 {
        Self::depth(&self.commits_sent, &self.commits_received)
    }
}

/// The last snapshot the log took.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotInfo {
    pub zxid: i64,
    /// Seconds since the epoch.
    pub timestamp_s: i64,
}

pub struct Metrics {
    pub shards: Vec<ShardMetrics>,
    /// Requests the broadcast core took into one batch.
    pub write_batch_requests: Recorder,
    /// Records and bytes per group commit (one write and one fsync).
    pub group_commit_entries: Recorder,
    pub group_commit_bytes: Recorder,
    pub fsync_us: Recorder,
    pub snapshot_us: Recorder,
    pub fsync_threshold_exceeded: AtomicU64,
    pub fsync_warning_threshold_ms: AtomicU64,
    pub snapshots: AtomicU64,
    last_snapshot: Mutex<Option<SnapshotInfo>>,
    /// Messages in the broadcast core's inbox after its last drain.
    pub broadcast_inbox_depth: AtomicU64,
    /// Connections refused by maxClientCnxns.
    pub connection_rejected: AtomicU64,
    pub auth_failed: AtomicU64,
    /// Client connections ended, by [`CloseKind::index`].
    pub connections_closed: [AtomicU64; CLOSE_KINDS],
    /// Sessions that expired (not closed by their clients).
    pub sessions_expired: AtomicI64,
    /// Milliseconds each election took, from losing the leader to knowing
    /// the next one (ZooKeeper's election_time).
    pub election_time_ms: Recorder,
    /// Microseconds from a leader's append to its commit (ZooKeeper's
    /// proposal_latency), timed by `proposal_clock`.
    pub proposal_latency_us: Recorder,
    proposal_clock: Mutex<ProposalClock>,
    /// Microseconds per stage of a write, indexed by `WriteStage as usize`.
    write_stages_us: Vec<Recorder>,
}

impl Metrics {
    /// Counts a client connection's end, of kind `kind_index`.
    pub fn connection_closed(&self, kind_index: usize) {
        self.connections_closed[kind_index].fetch_add(1, Ordering::Relaxed);
    }

    /// `fsync_warning_threshold_ms`: `fsync.warningthresholdms`, checked by
    /// the config (`config::Tunables`).
    pub fn new(shard_count: usize, fsync_warning_threshold_ms: u64) -> Metrics {
        Metrics {
            shards: (0..shard_count).map(|_| ShardMetrics::new()).collect(),
            write_batch_requests: Recorder::new(1 << 20),
            group_commit_entries: Recorder::new(1 << 20),
            group_commit_bytes: Recorder::new(1 << 36),
            fsync_us: Recorder::new(LATENCY_US_MAX),
            snapshot_us: Recorder::new(LATENCY_US_MAX),
            fsync_threshold_exceeded: AtomicU64::new(0),
            fsync_warning_threshold_ms: AtomicU64::new(fsync_warning_threshold_ms),
            snapshots: AtomicU64::new(0),
            last_snapshot: Mutex::new(None),
            broadcast_inbox_depth: AtomicU64::new(0),
            connection_rejected: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            connections_closed: Default::default(),
            sessions_expired: AtomicI64::new(0),
            election_time_ms: Recorder::new(LATENCY_US_MAX / 1000),
            proposal_latency_us: Recorder::new(LATENCY_US_MAX),
            proposal_clock: Mutex::new(ProposalClock::default()),
            write_stages_us: WriteStage::ALL.iter().map(|_| Recorder::new(LATENCY_US_MAX)).collect(),
        }
    }

    /// One message, round or sync on the broadcast core spent `elapsed` in
    /// `stage` (the shards time theirs in `ShardMetrics::record_stage`).
    pub fn record_stage(&self, stage: WriteStage, elapsed: Duration) {
        self.write_stages_us[stage as usize].record(elapsed.as_micros() as u64);
    }

    /// A stage's histogram: the broadcast core's and every shard's, merged.
    pub fn stage(&self, stage: WriteStage) -> Snapshot {
        let mut merged = self.write_stages_us[stage as usize].snapshot();
        for shard in &self.shards {
            merged.merge(&shard.stages_us[stage as usize].snapshot());
        }
        merged
    }

    /// The broadcast core ended a round at `now` with its log at
    /// `last_index` and `commit_index` (see [`ProposalClock`]). Only the
    /// broadcast core calls this, so the lock is uncontended.
    pub fn observe_log(&self, leading: bool, last_index: u64, commit_index: u64, now: Instant) {
        let mut clock = self.proposal_clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for latency in clock.observe(leading, last_index, commit_index, now) {
            self.proposal_latency_us.record(latency.as_micros() as u64);
        }
    }

    /// The broadcast core took `requests` messages into one batch, leaving
    /// `left` in its inbox.
    pub fn record_write_batch(&self, requests: usize, left: usize) {
        if requests > 0 {
            self.write_batch_requests.record(requests as u64);
        }
        self.broadcast_inbox_depth.store(left as u64, Ordering::Relaxed);
    }

    /// The log wrote `entries` records of `bytes` bytes with one write and
    /// one fsync (group commit).
    pub fn record_group_commit(&self, entries: usize, bytes: usize) {
        self.group_commit_entries.record(entries as u64);
        self.group_commit_bytes.record(bytes as u64);
    }

    /// One fsync of the log took `elapsed`; above fsync.warningthresholdms
    /// it is logged, as ZooKeeper logs it.
    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_us.record(elapsed.as_micros() as u64);
        let threshold_ms = self.fsync_warning_threshold_ms.load(Ordering::Relaxed);
        let elapsed_ms = elapsed.as_millis() as u64;
        if elapsed_ms > threshold_ms {
            self.fsync_threshold_exceeded.fetch_add(1, Ordering::Relaxed);
            warn!(
                elapsed_ms,
                threshold_ms,
                "slow fsync: syncing the transaction log took longer than fsync.warningthresholdms; \
                 writes wait for it (check the disk under dataLogDir)"
            );
        }
    }

    /// The log took a snapshot of the tree at `zxid` in `elapsed`.
    pub fn record_snapshot(&self, zxid: i64, elapsed: Duration) {
        self.snapshot_us.record(elapsed.as_micros() as u64);
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        let timestamp_s = crate::clock::wall_ms() / 1000;
        if let Ok(mut last) = self.last_snapshot.lock() {
            *last = Some(SnapshotInfo { zxid, timestamp_s });
        }
        info!(zxid = format_args!("0x{zxid:x}"), elapsed_ms = elapsed.as_millis() as u64, "snapshot taken");
    }

    pub fn last_snapshot(&self) -> Option<SnapshotInfo> {
        self.last_snapshot.lock().ok().and_then(|last| *last)
    }

    /// Read and write latency of all shards, merged, in microseconds.
    pub fn latency(&self, write: bool) -> Option<Snapshot> {
        let mut merged: Option<Snapshot> = None;
        for shard in &self.shards {
            let snapshot = if write { shard.write_latency_us.snapshot() } else { shard.read_latency_us.snapshot() };
            match &mut merged {
                Some(merged) => merged.merge(&snapshot),
                None => merged = Some(snapshot),
            }
        }
        merged
    }

    /// What srst resets besides the server statistics.
    pub fn reset(&self) {
        for shard in &self.shards {
            shard.read_latency_us.reset();
            shard.write_latency_us.reset();
            for recorder in &shard.stages_us {
                recorder.reset();
            }
        }
        self.write_batch_requests.reset();
        self.group_commit_entries.reset();
        self.group_commit_bytes.reset();
        self.fsync_us.reset();
        self.snapshot_us.reset();
        for recorder in &self.write_stages_us {
            recorder.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_merges_and_scales() {
        let first = Recorder::new(LATENCY_US_MAX);
        let second = Recorder::new(LATENCY_US_MAX);
        first.record(1000);
        second.record(3000);
        let mut merged = first.snapshot();
        merged.merge(&second.snapshot());
        assert_eq!(merged.count(), 2);
        assert_eq!(merged.sum(), 4000);
        assert_eq!(merged.mean(), 2000.0);
        assert!(merged.max() >= 2990 && merged.max() <= 3010);
        first.reset();
        assert_eq!(first.snapshot().count(), 0);
        assert_eq!(first.snapshot().min(), 0);
    }

    #[test]
    fn proposal_clock_times_each_round_of_appends_to_its_commit() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut clock = ProposalClock::default();
        // Round 1 appends up to 5, round 2 up to 8; nothing committed yet.
        assert!(clock.observe(true, 5, 0, at(0)).is_empty());
        assert!(clock.observe(true, 8, 0, at(3)).is_empty());
        // A round without appends adds nothing to time.
        assert!(clock.observe(true, 8, 4, at(4)).is_empty());
        assert_eq!(clock.pending(), 2);
        // 5 commits at 10 ms: one sample, the batch appended at 0.
        assert_eq!(clock.observe(true, 8, 6, at(10)), [Duration::from_millis(10)]);
        // 8 commits at 20 ms, appended at 3.
        assert_eq!(clock.observe(true, 8, 8, at(20)), [Duration::from_millis(17)]);
        assert_eq!(clock.pending(), 0);
        // Deposed: what was timed is forgotten, and nothing is timed.
        clock.observe(true, 12, 8, at(21));
        assert!(clock.observe(false, 12, 12, at(30)).is_empty());
        assert_eq!(clock.pending(), 0);
        // Bounded: appends beyond the bound go untimed.
        for index in 1..=(PROPOSALS_TIMED_MAX as u64 + 10) {
            clock.observe(true, 100 + index, 100, at(40));
        }
        assert_eq!(clock.pending(), PROPOSALS_TIMED_MAX);
        let committed = clock.observe(true, 100 + PROPOSALS_TIMED_MAX as u64 + 10, u64::MAX, at(50));
        assert_eq!(committed.len(), PROPOSALS_TIMED_MAX);
    }
}
