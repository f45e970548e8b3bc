//! The broadcast core: the one place writes are ordered. It drains what the
//! shards sent since its last batch, prepares each request into a
//! transaction against the speculative tree, proposes each to the raft
//! replica (its index is its zxid), makes the batch durable with one log
//! write and one sync, and once the commit index covers the batch publishes
//! its tree and sends the shards their replies.
//!
//! It also keeps the session table's timers (the leader alone decides
//! expiry) and runs ZooKeeper's container manager, both as transactions
//! through the same pipeline.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use glommio::timer::Timer;
use tracing::{debug, error, info, warn};

use super::control::CoreQuery;
use super::log::{self, Log};
use super::messages::{shard_of, Commit, ConnectionId, Reply, ReplyBody, ToBroadcast};
use super::queue::BatchQueue;
use super::shared::{Shared, Version};
use crate::prep::{Prepared, Preparer, WriteContext};
use crate::proto::{ErrorCode, Request};
use crate::replica::{carries_transaction, codec, Replica};
use crate::session::SessionTracker;
use crate::snapshot;
use crate::tree::{Tree, Trigger, Txn, TxnHeader};

/// Requests taken into one batch at most: one log write, one fsync.
pub const BATCH_REQUESTS_MAX: usize = 1000;

fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}

/// Calls to `Replica::tick` before a follower starts an election, and
/// between a leader's heartbeats (raft-rs's defaults).
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 3;

/// A batch whose log entries are written: its tree, watch triggers and
/// replies wait until the commit index reaches `last_zxid`.
struct SealedBatch {
    last_zxid: i64,
    tree: Option<Arc<Tree>>,
    triggers: Vec<Trigger>,
    replies: Vec<Vec<Reply>>,
}

pub struct BroadcastCore {
    shared: Arc<Shared>,
    preparer: Preparer,
    replica: Replica,
    tracker: SessionTracker,
    /// The connection each live session is attached to.
    owners: HashMap<i64, ConnectionId>,
    started: Instant,
    log: Log,
    /// The batch being filled.
    replies: Vec<Vec<Reply>>,
    tree_changed: bool,
    /// Batches waiting for their commit, oldest first.
    sealed: VecDeque<SealedBatch>,
    /// The newest published version, to link the next one to.
    current: Arc<Version>,
    tick_interval: Duration,
    last_tick: Instant,
    snapshot_task: Option<SnapshotTask>,
    last_snapshot_zxid: i64,
    snapshot_every: i64,
    random: u64,
    last_purge: Instant,
    container_check_interval: Duration,
    container_deletes_per_minute_max: usize,
    last_container_check: Instant,
}

impl BroadcastCore {
    /// Recovers the state from the log, becomes leader of the (one-voter)
    /// group and publishes the recovered tree.
    pub async fn start(
        shared: Arc<Shared>,
        settings: crate::prep::PrepSettings,
        secret: [u8; 16],
    ) -> Result<BroadcastCore, String> {
        let shard_count = shared.shard_stats.len();
        let (mut log, recovered, mut tree) = Log::open(&shared.config).await?;
        let mut replica = Replica::new(1, vec![1], recovered, ELECTION_TICKS, HEARTBEAT_TICKS)?;
        replica.campaign()?;
        while let Some(work) = replica.ready() {
            replay(&mut tree, &work.committed)?;
            log.append(&work.entries, work.hard_state.as_ref())?;
            log.sync().await?;
            let after = replica.persisted(work);
            replay(&mut tree, &after.committed)?;
        }
        if !replica.is_leader() {
            return Err("could not become leader of the single-voter group".to_string());
        }
        info!(zxid = format_args!("0x{:x}", tree.last_zxid()), nodes = tree.node_count(), "state recovered");

        let tick_ms = shared.config.tick_time_ms as i64;
        let container_check_interval =
            Duration::from_millis(property_number(&shared, "znode.container.checkIntervalMs").unwrap_or(60_000).max(1));
        let container_deletes_per_minute_max =
            property_number(&shared, "znode.container.maxPerMinute").unwrap_or(10_000) as usize;
        let seed = Preparer::session_id_seed(0, wall_clock_ms());
        // Sessions come back with fresh timers, as in ZooKeeper.
        let mut tracker = SessionTracker::new(tick_ms);
        for session in tree.sessions() {
            tracker.add(session.id, session.timeout_ms as i64, 0);
        }
        let recovered_zxid = tree.last_zxid();
        let mut random = u64::from_le_bytes(secret[..8].try_into().unwrap_or([7; 8])) | 1;
        let snapshot_every = next_snapshot_every(&shared.config, &mut random);
        let version = Arc::new(Version::new(Arc::new(tree.clone()), Vec::new()));
        shared.published.store(version.clone());
        let mut preparer = Preparer::new(tree, settings, seed, secret);
        preparer.set_next_zxid(replica.next_index() as i64);
        Ok(BroadcastCore {
            preparer,
            replica,
            tracker,
            owners: HashMap::new(),
            started: Instant::now(),
            log,
            replies: (0..shard_count).map(|_| Vec::new()).collect(),
            tree_changed: false,
            sealed: VecDeque::new(),
            current: version,
            snapshot_task: None,
            last_snapshot_zxid: recovered_zxid,
            snapshot_every,
            random,
            last_purge: Instant::now(),
            tick_interval: Duration::from_millis((shared.config.tick_time_ms as u64 / 2).clamp(10, 500)),
            last_tick: Instant::now(),
            container_check_interval,
            container_deletes_per_minute_max,
            last_container_check: Instant::now(),
            shared,
        })
    }

    /// Hands a prepared transaction to raft; its index must be its zxid.
    fn propose(&mut self, header: &TxnHeader, txn: &Txn) {
        let mut payload = Vec::with_capacity(128);
        codec::encode(header, txn, &mut payload);
        let index = self.replica.propose(payload).unwrap_or_else(|error| panic!("the leader cannot propose: {error}"));
        assert_eq!(index as i64, header.zxid, "prep and raft disagree on the next zxid");
        self.tree_changed = true;
    }

    fn monotonic_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn reply(&mut self, connection: ConnectionId, body: ReplyBody) {
        if let Some(replies) = self.replies.get_mut(shard_of(connection)) {
            replies.push(Reply { connection, body });
        }
    }

    /// Runs the core until the server stops.
    pub async fn run(mut self, receivers: Vec<SharedReceiver<ToBroadcast>>, senders: Vec<SharedSender<Commit>>) {
        let inbox = Rc::new(BatchQueue::new(super::messages::TO_BROADCAST_QUEUE_MESSAGES_MAX));
        for (shard, receiver) in receivers.into_iter().enumerate() {
            let inbox = inbox.clone();
            let shared = self.shared.clone();
            glommio::spawn_local(async move {
                let receiver = super::connecting(receiver.connect()).await;
                while let Some(message) = receiver.recv().await {
                    shared.metrics.shards[shard].to_broadcast_received.fetch_add(1, Ordering::Relaxed);
                    inbox.push(message).await;
                }
            })
            .detach();
        }
        let mut shards: Vec<ConnectedSender<Commit>> = Vec::with_capacity(senders.len());
        for sender in senders {
            shards.push(super::connecting(sender.connect()).await);
        }
        let tick = self.tick_interval;
        let mut messages = Vec::with_capacity(BATCH_REQUESTS_MAX);
        let queries = self.shared.control.core_inbox();
        loop {
            let woken = futures_lite::future::or(
                async {
                    futures_lite::future::or(inbox.ready(), async {
                        Timer::new(tick).await;
                    })
                    .await;
                    None
                },
                async { queries.recv().await.ok() },
            )
            .await;
            if let Some(query) = woken {
                self.answer(query);
            }
            inbox.drain(BATCH_REQUESTS_MAX, &mut messages);
            self.shared.metrics.record_write_batch(messages.len(), inbox.len());
            let now_ms = wall_clock_ms();
            for message in messages.drain(..) {
                self.handle(message, now_ms);
            }
            self.expire_sessions(now_ms);
            self.check_containers(now_ms);
            if self.last_tick.elapsed() >= self.tick_interval {
                self.last_tick = Instant::now();
                self.replica.tick();
            }
            if let Err(error) = self.commit(&shards).await {
                // The log cannot take writes: nothing more may be acknowledged.
                error!(%error, "the log failed; stopping");
                self.shared.stopping.store(true, Ordering::Relaxed);
                break;
            }
            if self.shared.stopping.load(Ordering::Relaxed)
                && inbox.is_empty()
                && self.shared.control.shards_running() == 0
            {
                break;
            }
        }
        if let Some(task) = self.snapshot_task.take() {
            let _ = task.handle.join();
        }
        match self.log.close().await {
            Ok(()) => info!("log flushed and closed"),
            Err(error) => error!(%error, "closing the log failed"),
        }
    }

    /// Answers another core's question (control.rs).
    fn answer(&self, query: CoreQuery) {
        match query {
            CoreQuery::SessionBuckets(reply) => {
                // Buckets are kept in ms since this core started; report wall-clock times.
                let offset = wall_clock_ms() - self.monotonic_ms();
                let buckets = self
                    .tracker
                    .buckets()
                    .into_iter()
                    .map(|(bucket_ms, sessions)| (bucket_ms + offset, sessions))
                    .collect();
                let _ = reply.try_send(buckets);
            }
            CoreQuery::Wake => {}
        }
    }

    fn handle(&mut self, message: ToBroadcast, now_ms: i64) {
        match message {
            ToBroadcast::Connect { connection, session_id, password, timeout_ms } => {
                self.connect(connection, session_id, &password, timeout_ms, now_ms)
            }
            ToBroadcast::Write { connection, session_id, xid, request, auth } => {
                self.tracker.touch(session_id, self.monotonic_ms());
                let context = WriteContext { session_id, auth: &auth, time_ms: now_ms };
                let closing = matches!(request, Request::CloseSession);
                match self.preparer.prepare(&request, &context) {
                    Prepared::Txn { header, txn, err, response } => {
                        self.propose(&header, &txn);
                        self.reply(connection, ReplyBody::Response { xid, zxid: header.zxid, err, response });
                        if closing && err == ErrorCode::Ok {
                            self.tracker.remove(session_id);
                            self.owners.remove(&session_id);
                            info!(session = format_args!("0x{session_id:x}"), "session closed by its client");
                        }
                    }
                    Prepared::Reply { err, response } => {
                        let zxid = self.preparer.last_zxid();
                        self.reply(connection, ReplyBody::Response { xid, zxid, err, response });
                    }
                }
            }
            ToBroadcast::Touch(sessions) => {
                let now = self.monotonic_ms();
                for session_id in sessions {
                    self.tracker.touch(session_id, now);
                }
            }
            ToBroadcast::Disconnected { connection, session_id } => {
                if self.owners.get(&session_id) == Some(&connection) {
                    self.owners.remove(&session_id);
                }
            }
        }
    }

    fn connect(&mut self, connection: ConnectionId, session_id: i64, password: &[u8], timeout_ms: i32, now_ms: i64) {
        let now = self.monotonic_ms();
        if session_id == 0 {
            let (header, txn) = self.preparer.create_session(timeout_ms, now_ms);
            let crate::tree::Txn::CreateSession { session_id, password, .. } = txn.clone() else {
                return;
            };
            self.propose(&header, &txn);
            self.tracker.add(session_id, timeout_ms as i64, now);
            self.owners.insert(session_id, connection);
            info!(session = format_args!("0x{session_id:x}"), timeout_ms, "session established");
            self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password });
            return;
        }
        let valid = self.tracker.contains(session_id) && self.preparer.password_matches(session_id, password);
        if !valid {
            info!(
                session = format_args!("0x{session_id:x}"),
                "session resume refused: the session expired or is unknown, or the password is wrong"
            );
            self.reply(connection, ReplyBody::Refused);
            return;
        }
        self.tracker.add(session_id, timeout_ms as i64, now);
        if let Some(previous) = self.owners.insert(session_id, connection) {
            if previous != connection {
                self.reply(previous, ReplyBody::Close { reason: "session moved to another connection" });
            }
        }
        let password =
            self.preparer.speculative().session(session_id).map(|session| session.password).unwrap_or([0; 16]);
        self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password });
    }

    fn expire_sessions(&mut self, now_ms: i64) {
        for session_id in self.tracker.expire(self.monotonic_ms()) {
            if let Some((header, txn)) = self.preparer.close_session(session_id, now_ms) {
                self.propose(&header, &txn);
                self.shared.metrics.sessions_expired.fetch_add(1, Ordering::Relaxed);
                info!(
                    session = format_args!("0x{session_id:x}"),
                    "session expired: no request or ping within its timeout"
                );
            }
            if let Some(connection) = self.owners.remove(&session_id) {
                self.reply(connection, ReplyBody::Close { reason: "session expired" });
            }
        }
    }

    /// ZooKeeper's ContainerManager: empty containers that once had a child,
    /// and TTL nodes without children that outlived their TTL, are deleted.
    fn check_containers(&mut self, now_ms: i64) {
        if self.last_container_check.elapsed() < self.container_check_interval {
            return;
        }
        self.last_container_check = Instant::now();
        let tree = self.preparer.speculative();
        let mut doomed = Vec::new();
        for path in tree.containers() {
            if let Some(node) = tree.get(path) {
                if node.cversion > 0 && node.num_children == 0 {
                    doomed.push(path.clone());
                }
            }
        }
        for path in tree.ttl_nodes() {
            if let Some(node) = tree.get(path) {
                let ttl = node.ttl_ms().unwrap_or(i64::MAX);
                if node.num_children == 0 && now_ms - node.mtime_ms > ttl {
                    doomed.push(path.clone());
                }
            }
        }
        let per_check = (self.container_deletes_per_minute_max as u128 * self.container_check_interval.as_millis()
            / 60_000)
            .max(1) as usize;
        for path in doomed.into_iter().take(per_check) {
            if let Some((header, txn)) = self.preparer.delete_container(&path, now_ms) {
                self.propose(&header, &txn);
                debug!(path = &*path, "container or TTL node deleted");
            }
        }
    }

    /// Seals the batch, makes the log durable, and releases every sealed
    /// batch the commit index now covers.
    async fn commit(&mut self, shards: &[ConnectedSender<Commit>]) -> Result<(), String> {
        self.seal();
        while let Some(work) = self.replica.ready() {
            let entries = work.entries.len();
            self.log.append(&work.entries, work.hard_state.as_ref())?;
            let bytes = self.log.sync().await?;
            if entries > 0 {
                self.shared.metrics.record_group_commit(entries, bytes);
                self.shared.metrics.record_fsync(self.log.last_fsync());
            }
            self.replica.persisted(work);
        }
        self.release(shards).await;
        self.snapshot_if_due().await
    }

    /// Every snapCount transactions (ZooKeeper's randomised spread), writes
    /// the newest published tree on a background thread; when it is done,
    /// marks it in the log and compacts the log behind the retained
    /// snapshots. Neither reads nor writes wait for it.
    async fn snapshot_if_due(&mut self) -> Result<(), String> {
        if let Some(task) = self.snapshot_task.take() {
            if !task.handle.is_finished() {
                self.snapshot_task = Some(task);
                return Ok(());
            }
            match task.handle.join() {
                Ok(Ok(_)) => {
                    let retain = self.shared.config.autopurge_snap_retain_count as usize;
                    self.log.snapshot_taken(task.index, task.term, retain).await?;
                    self.replica.compact(task.index)?;
                    self.shared.metrics.record_snapshot(task.index as i64, task.started.elapsed());
                    self.purge_snapshots_if_due();
                }
                Ok(Err(error)) => {
                    error!(%error, "snapshot failed; the log is kept and a snapshot is tried again later")
                }
                Err(_) => error!("the snapshot thread panicked; a snapshot is tried again later"),
            }
        }
        let zxid = self.current.tree.last_zxid();
        if zxid - self.last_snapshot_zxid < self.snapshot_every {
            return Ok(());
        }
        let index = zxid as u64;
        let term = self.replica.term_of(index)?;
        let meta = log::snapshot_meta(index, term, self.log.cluster_id());
        let directory = self.log.snapshot_directory().to_path_buf();
        let handle =
            snapshot::spawn_write(directory, self.current.tree.clone(), meta).map_err(|error| error.to_string())?;
        self.snapshot_task = Some(SnapshotTask { handle, index, term, started: Instant::now() });
        self.last_snapshot_zxid = zxid;
        self.snapshot_every = next_snapshot_every(&self.shared.config, &mut self.random);
        Ok(())
    }

    /// autopurge: every purgeInterval hours (0: never), keep the newest
    /// snapRetainCount snapshots.
    fn purge_snapshots_if_due(&mut self) {
        let hours = self.shared.config.autopurge_purge_interval_hours as u64;
        if hours == 0 || self.last_purge.elapsed() < Duration::from_secs(hours * 3600) {
            return;
        }
        self.last_purge = Instant::now();
        let retain = self.shared.config.autopurge_snap_retain_count as usize;
        match snapshot::purge(self.log.snapshot_directory(), retain) {
            Ok(purged) => info!(deleted = purged.deleted.len(), "snapshots purged"),
            Err(error) => warn!(%error, "snapshot purge failed"),
        }
    }

    fn seal(&mut self) {
        let has_replies = self.replies.iter().any(|replies| !replies.is_empty());
        if !self.tree_changed && !has_replies {
            return;
        }
        let tree = if std::mem::take(&mut self.tree_changed) {
            Some(Arc::new(self.preparer.speculative().clone()))
        } else {
            None
        };
        let replies = self.replies.iter_mut().map(std::mem::take).collect();
        let triggers = self.preparer.take_triggers();
        self.sealed.push_back(SealedBatch { last_zxid: self.preparer.last_zxid(), tree, triggers, replies });
    }

    /// Publishes each committed batch's tree and sends its replies: every
    /// shard hears of a changed tree (to fire its watches), the others only
    /// when they have replies.
    async fn release(&mut self, shards: &[ConnectedSender<Commit>]) {
        let commit_index = self.replica.commit_index() as i64;
        while self.sealed.front().is_some_and(|batch| batch.last_zxid <= commit_index) {
            let Some(batch) = self.sealed.pop_front() else { break };
            let changed = batch.tree.is_some();
            if let Some(tree) = batch.tree {
                let version = Arc::new(Version::new(tree, batch.triggers));
                self.current.link(version.clone());
                self.shared.published.store(version.clone());
                self.current = version;
            }
            for (shard, (sender, replies)) in shards.iter().zip(batch.replies).enumerate() {
                if !changed && replies.is_empty() {
                    continue;
                }
                self.shared.metrics.shards[shard].commits_sent.fetch_add(1, Ordering::Relaxed);
                if sender.send(Commit { replies }).await.is_err() {
                    if self.shared.stopping.load(Ordering::Relaxed) {
                        debug!(shard, "shard gone: the server is stopping; its replies are dropped");
                        continue;
                    }
                    warn!(shard, "shard queue closed; its replies are dropped");
                }
            }
        }
    }
}

/// A snapshot being written on its own thread.
struct SnapshotTask {
    handle: std::thread::JoinHandle<Result<std::path::PathBuf, snapshot::SnapshotError>>,
    index: u64,
    term: u64,
    started: Instant,
}

/// Transactions until the next snapshot: snapCount/2 plus a random part of
/// snapCount/2, so that the servers of an ensemble do not snapshot together.
fn next_snapshot_every(config: &crate::config::Config, random: &mut u64) -> i64 {
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    snapshot::next_snapshot_after(config.snap_count as u64, *random) as i64
}

/// Applies recovered committed entries the tree does not hold yet.
fn replay(tree: &mut Tree, entries: &[raft::eraftpb::Entry]) -> Result<(), String> {
    for entry in entries.iter().filter(|entry| carries_transaction(entry)) {
        let zxid = entry.index as i64;
        if zxid <= tree.last_zxid() {
            continue;
        }
        let (header, txn) = codec::decode(zxid, &entry.data)
            .map_err(|error| format!("log entry {zxid} (term {}) does not decode: {error}", entry.term))?;
        tree.apply(&header, &txn);
    }
    Ok(())
}

fn property_number(shared: &Shared, name: &str) -> Option<u64> {
    shared.config.property(name).and_then(|value| value.trim().parse().ok())
}
