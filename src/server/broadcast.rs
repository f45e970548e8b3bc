//! The broadcast core: the glommio driver of the node (`crate::node`).
//!
//! Every decision is the node's; this loop only moves bytes and reads the
//! clock. One round: wait until the shards sent work, a timer fires or a
//! query arrives; hand the node everything waiting (one batch: one log
//! write and one sync); make each `Work` durable, sending its messages
//! first (a leader's appends leave while its own fsync runs); then publish
//! what the node released, send the shards their replies, and start or
//! finish a snapshot.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use glommio::timer::Timer;
use tracing::{debug, error, info, warn};

use super::control::CoreQuery;
use super::log::Log;
use super::memory::IdleCollector;
use super::messages::{shard_of, Commit, Reply, Stamped};
use super::peer::{PeerInbox, PeerLimits, PeerLinks, PeerSecurity};
use super::queue::BatchQueue;
use super::shared::{Shared, Version};
use super::snapshot_stream::SnapshotStreams;
use crate::ensemble::Ensemble;
use crate::limits::LOG_WORK_IN_FLIGHT_MAX;
use crate::metrics::WriteStage;
use crate::node::commit::{Batch, CommitQueue};
use crate::node::wire::Chunk;
use crate::node::{Node, NodeSettings, Now, Output, PeerMessage, Role, SnapshotOrder, READ_ONLY_GRACE_MS_MIN};
use crate::prep::Preparer;
use crate::replica::ReplicaConfig;
use crate::snapshot;

pub use crate::limits::BATCH_REQUESTS_MAX;

/// One raft tick, and the ticks of an election timeout and a heartbeat.
/// A standalone server never elects; an ensemble's failover is bounded by
/// the election timeout (ZooKeeper claims 200 ms for its election).
const RAFT_TICK_MS: i64 = 10;
const ELECTION_TICKS: usize = 20;
const HEARTBEAT_TICKS: usize = 3;
/// Members wait different times before they campaign (a tick apart per id,
/// up to this many), so one usually wins the first round.
const ELECTION_JITTER_TICKS_MAX: u64 = 10;

use crate::limits::PEER_FRAMES_PER_ROUND_MAX;

/// How often the operations view of the ensemble is refreshed.
const VIEW_REFRESH: Duration = Duration::from_millis(500);

/// How often a server behind its leader's commit says so in the log.
const BEHIND_WARNING_INTERVAL: Duration = Duration::from_secs(5);

/// How often the core looks whether it has been idle (to give freed
/// memory back, server/memory.rs).
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// How often followers tell the leader which of their sessions are alive.
const TOUCH_INTERVAL_MS: i64 = 250;

/// Why the broadcast core cannot go on (it then fail-stops: see `run`).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    Log(#[from] super::log::LogError),
    /// A snapshot this server must have (the leader's, installed) could
    /// not be started or written.
    #[error("writing the leader's snapshot failed: {0}")]
    InstallSnapshot(snapshot::SnapshotError),
    #[error("starting a snapshot failed: {0}")]
    StartSnapshot(snapshot::SnapshotError),
    #[error("the snapshot thread panicked")]
    SnapshotPanicked,
    #[error("could not become leader of the single-voter group")]
    NotLeader,
    #[error(transparent)]
    Peers(#[from] super::peer::PeerError),
}

pub struct BroadcastCore {
    shared: Arc<Shared>,
    node: Node,
    /// The log, when no job of it is in flight (see `LogJob`).
    log: Option<Box<Log>>,
    /// The log's job in flight: it owns the log until it finishes.
    log_job: Option<LogJob>,
    /// Whether that job was polled once (its IO queued: `kick_log_job`).
    log_started: bool,
    /// The node's work waiting for the log, and that of its write in flight.
    commits: CommitQueue<Instant>,
    /// A snapshot the thread has written, waiting for the log to mark it.
    written_snapshot: Option<WrittenSnapshot>,
    snapshot_directory: std::path::PathBuf,
    cluster_id: u64,
    started: Instant,
    /// The newest published version, to link the next one to.
    current: Arc<Version>,
    snapshot_task: Option<SnapshotTask>,
    last_purge: Instant,
    /// The voters and learners, for snapshot metadata.
    voters: Vec<u64>,
    learners: Vec<u64>,
    peers: Option<(Rc<PeerLinks>, PeerInbox)>,
    last_view: Instant,
    /// When the server last lost its leader (for the election's duration).
    leaderless_since_ms: Option<i64>,
    streams: SnapshotStreams,
    last_behind_warning: Option<Instant>,
    /// Messages and peer frames taken so far, and when to look at that
    /// count again (see `memory::IdleCollector`).
    idle: IdleCollector,
    activity: u64,
    next_idle_check: Instant,
}

impl BroadcastCore {
    /// Recovers the state from the log, runs the node until it has applied
    /// everything committed, and publishes the recovered tree.
    pub async fn start(
        shared: Arc<Shared>,
        ensemble: Option<Ensemble>,
        settings: crate::prep::PrepSettings,
        secret: [u8; 16],
        quorum_tls: Option<crate::tls::quorum::QuorumTls>,
    ) -> Result<BroadcastCore, CoreError> {
        let started = Instant::now();
        let (mut log, recovered, tree) = Log::open(&shared.config).await?;
        let config = &shared.config;
        let container_check_interval_ms = config.tunables.container_check_interval_ms as i64;
        let container_deletes_per_minute_max = config.tunables.container_deletes_per_minute_max as usize;
        // A standalone server is the one voter of its own group, with id 1
        // in raft (ZooKeeper's serverId 0 in its session ids).
        let (my_id, voters, learners) = match &ensemble {
            Some(ensemble) => (ensemble.my_id, ensemble.voters(), ensemble.learners()),
            None => (1, vec![1], Vec::new()),
        };
        let node_settings = NodeSettings {
            replica: ReplicaConfig {
                id: my_id,
                voters: voters.clone(),
                learners: learners.clone(),
                election_ticks: ELECTION_TICKS,
                heartbeat_ticks: HEARTBEAT_TICKS,
                election_jitter_ticks: (my_id % ELECTION_JITTER_TICKS_MAX) as usize,
            },
            prep: settings,
            session_tick_ms: config.tick_time_ms as i64,
            raft_tick_ms: RAFT_TICK_MS,
            touch_interval_ms: TOUCH_INTERVAL_MS,
            snap_count: config.snap_count as u64,
            container_check_interval_ms,
            container_deletes_per_minute_max,
            session_id_seed: Preparer::session_id_seed(
                if ensemble.is_some() { my_id as u8 } else { 0 },
                crate::clock::wall_ms(),
            ),
            password_secret: secret,
            random_seed: u64::from_le_bytes(secret[..8].try_into().unwrap_or([7; 8])),
            read_only_grace_ms: (ensemble.is_some() && config.read_only_mode_enabled())
                .then(|| (config.tick_time_ms as i64).max(READ_ONLY_GRACE_MS_MIN)),
        };
        let now = Now { monotonic_ms: 0, wall_ms: crate::clock::wall_ms() };
        let mut node = Node::new(node_settings, tree, recovered, now)?;
        while let Some(work) = node.ready(now)? {
            log.append(&work.entries, work.hard_state.as_ref())?;
            log.sync().await?;
            node.persisted(work, now)?;
        }
        // Nothing is waiting for the recovery's replies; its tree is
        // published below as the first version.
        let _ = node.take_output();
        if ensemble.is_none() && node.role() != Role::Leader {
            return Err(CoreError::NotLeader);
        }
        let peers = match &ensemble {
            Some(ensemble) => {
                let hosts = config.servers.values().map(|server| (server.id, server.host.as_str()));
                let security = PeerSecurity::new(quorum_tls, config.ssl_quorum, config.quorum_port_unification, hosts)?;
                Some(PeerLinks::start(ensemble, PeerLimits::default(), security).await?)
            }
            None => None,
        };
        if let Ok(mut view) = shared.ensemble.lock() {
            view.distributed = ensemble.is_some();
            view.my_id = my_id;
            view.role = ensemble.is_some().then_some(node.role());
            view.voters = voters.clone();
            view.learners = learners.clone();
        }
        let tree = node.committed().clone();
        info!(zxid = format_args!("0x{:x}", tree.last_zxid()), nodes = tree.node_count(), "state recovered");
        let version = Arc::new(Version::new(Arc::new(tree), Vec::new()));
        shared.published.store(version.clone());
        Ok(BroadcastCore {
            node,
            snapshot_directory: log.snapshot_directory().to_path_buf(),
            cluster_id: log.cluster_id(),
            log: Some(Box::new(log)),
            log_job: None,
            log_started: false,
            commits: CommitQueue::new(),
            written_snapshot: None,
            started,
            current: version,
            snapshot_task: None,
            last_purge: Instant::now(),
            voters,
            learners,
            peers,
            last_view: Instant::now(),
            leaderless_since_ms: Some(0),
            streams: SnapshotStreams::default(),
            last_behind_warning: None,
            idle: IdleCollector::default(),
            activity: 0,
            next_idle_check: Instant::now() + IDLE_CHECK_INTERVAL,
            shared,
        })
    }

    fn now(&self) -> Now {
        Now { monotonic_ms: self.started.elapsed().as_millis() as i64, wall_ms: crate::clock::wall_ms() }
    }

    /// Runs the core until the server stops.
    pub async fn run(mut self, receivers: Vec<SharedReceiver<Stamped>>, senders: Vec<SharedSender<Commit>>) {
        let inbox = Rc::new(BatchQueue::new(super::messages::TO_BROADCAST_QUEUE_MESSAGES_MAX));
        for (shard, receiver) in receivers.into_iter().enumerate() {
            let inbox = inbox.clone();
            let shared = self.shared.clone();
            glommio::spawn_local(async move {
                let receiver = super::connecting(receiver.connect()).await;
                while let Some(Stamped { message, at }) = receiver.recv().await {
                    shared.metrics.shards[shard].to_broadcast_received.fetch_add(1, Ordering::Relaxed);
                    let received = Instant::now();
                    shared.metrics.record_stage(WriteStage::ToCore, received.saturating_duration_since(at));
                    inbox.push(Stamped { message, at: received }).await;
                }
            })
            .detach();
        }
        let mut shards: Vec<ConnectedSender<Commit>> = Vec::with_capacity(senders.len());
        for sender in senders {
            shards.push(super::connecting(sender.connect()).await);
        }
        let tick = Duration::from_millis(RAFT_TICK_MS as u64);
        let mut messages = Vec::with_capacity(BATCH_REQUESTS_MAX);
        let queries = self.shared.control.core_inbox();
        let mut frames = Vec::with_capacity(PEER_FRAMES_PER_ROUND_MAX);
        loop {
            // At the bound of work in flight, new input waits (in the inbox,
            // and behind it in the shards' bounded queues) for the log.
            let room = self.has_room();
            let peer_ready = async {
                match (&self.peers, room) {
                    (Some((_, peer_inbox)), true) => peer_inbox.ready().await,
                    _ => std::future::pending().await,
                }
            };
            let inbox_ready = async {
                if room {
                    inbox.ready().await
                } else {
                    std::future::pending().await
                }
            };
            let log_job = &mut self.log_job;
            // The log's job is polled first: when it is done, the next
            // write must start before anything else is taken.
            let woken = futures_lite::future::or(
                async {
                    match log_job.as_mut() {
                        Some(job) => {
                            let (log, done) = job.await;
                            Woken::Log(log, done)
                        }
                        None => std::future::pending().await,
                    }
                },
                futures_lite::future::or(
                    async {
                        futures_lite::future::or(futures_lite::future::or(inbox_ready, peer_ready), async {
                            Timer::new(tick).await;
                        })
                        .await;
                        Woken::Input
                    },
                    async { queries.recv().await.map_or(Woken::Input, Woken::Query) },
                ),
            )
            .await;
            let finished = match woken {
                Woken::Query(query) => {
                    self.answer(query);
                    Ok(())
                }
                Woken::Log(log, done) => match self.log_finished(log, done) {
                    Ok(()) => self.kick_log_job().await,
                    Err(error) => Err(error),
                },
                Woken::Input => Ok(()),
            };
            if let Err(error) = finished {
                fail_stop(error);
            }
            if self.has_room() {
                inbox.drain(BATCH_REQUESTS_MAX, &mut messages);
            }
            self.shared.metrics.record_write_batch(messages.len(), inbox.len());
            let drained = Instant::now();
            for stamped in &messages {
                self.shared.metrics.record_stage(WriteStage::Queue, drained.saturating_duration_since(stamped.at));
            }
            if let (Some((_, peer_inbox)), true) = (&self.peers, self.has_room()) {
                peer_inbox.try_recv_batch(&mut frames, PEER_FRAMES_PER_ROUND_MAX);
            }
            self.activity += (messages.len() + frames.len()) as u64;
            // Old versions are freed here, where their blocks were made.
            self.shared.retired.drop_all();
            if drained >= self.next_idle_check {
                self.next_idle_check = drained + IDLE_CHECK_INTERVAL;
                self.idle.check(self.activity);
            }
            let now = self.now();
            if let Some((_, peer_inbox)) = &self.peers {
                for peer in peer_inbox.take_lost() {
                    self.streams.forget(peer);
                    self.node.peer_link_lost(peer, now);
                }
            }
            let mut stepped = Ok(());
            for (from, frame) in frames.drain(..) {
                let decoded = match Chunk::decode(&frame) {
                    None => PeerMessage::decode(&frame),
                    Some(Ok(chunk)) => match self.streams.receive(from, chunk) {
                        Some(whole) => PeerMessage::decode(&whole),
                        None => continue,
                    },
                    Some(Err(error)) => Err(error),
                };
                match decoded {
                    Ok(message) => {
                        stepped = self.node.step_peer(from, message, now);
                        if stepped.is_err() {
                            break;
                        }
                    }
                    // The link checksums frames, so this is a peer speaking
                    // another version or a bug there; the message is dropped
                    // (raft resends what matters).
                    Err(error) => warn!(peer = from, %error, "a peer message does not decode; dropped"),
                }
            }
            let stepped = stepped
                .and_then(|()| messages.drain(..).try_for_each(|stamped| self.node.step_client(stamped.message, now)))
                .and_then(|()| self.node.tick(now));
            self.shared.metrics.record_stage(WriteStage::Prep, drained.elapsed());
            let result = match stepped {
                Ok(()) => self.round(&shards).await,
                Err(error) => Err(CoreError::from(error)),
            };
            if let Err(error) = result {
                fail_stop(error);
            }
            if self.shared.stopping.load(Ordering::Relaxed)
                && inbox.is_empty()
                && self.work_in_flight() == 0
                && self.shared.control.shards_running() == 0
            {
                break;
            }
        }
        if let Some((links, _)) = &self.peers {
            links.stop();
        }
        if let Some(task) = self.snapshot_task.take() {
            let _ = task.handle.join();
        }
        let closed = match self.settle().await {
            Ok(()) => match self.log.take() {
                Some(log) => log.close().await.map_err(CoreError::from),
                None => Ok(()),
            },
            Err(error) => Err(error),
        };
        match closed {
            Ok(()) => info!("log flushed and closed"),
            Err(error) => error!(%error, "closing the log failed"),
        }
    }

    /// Answers another core's question (control.rs).
    fn answer(&self, query: CoreQuery) {
        match query {
            CoreQuery::SessionBuckets(reply) => {
                // Buckets are kept in ms of the monotonic clock; report wall-clock times.
                let now = self.now();
                let offset = now.wall_ms - now.monotonic_ms;
                let buckets = self
                    .node
                    .session_buckets()
                    .into_iter()
                    .map(|(bucket_ms, sessions)| (bucket_ms + offset, sessions))
                    .collect();
                let _ = reply.try_send(buckets);
            }
            CoreQuery::Wake => {}
        }
    }

    /// Work handed out by the node and not yet reported durable.
    fn work_in_flight(&self) -> usize {
        self.commits.in_flight()
    }

    /// Below the bound of work in flight: the core may take new input.
    fn has_room(&self) -> bool {
        self.work_in_flight() < LOG_WORK_IN_FLIGHT_MAX
    }

    /// Takes the node's work, starts the log on it, and delivers what the
    /// node released. The log's write runs on while the core goes on
    /// taking and preparing requests (pipelined group commit): work handed
    /// out meanwhile waits in the `CommitQueue` and goes out in the next write,
    /// which starts the moment this one finishes (`log_finished`).
    async fn round(&mut self, shards: &[ConnectedSender<Commit>]) -> Result<(), CoreError> {
        let now = self.now();
        while self.has_room() {
            let Some(mut work) = self.node.ready(now)? else {
                break;
            };
            // A leader's appends leave now, while its own write runs.
            self.send(std::mem::take(&mut work.messages));
            if let Some(order) = work.snapshot.take() {
                // The snapshot replaces the log up to its index: everything
                // handed out before it is made durable first, and its own
                // work at once, before anything else is stepped (raft-rs
                // counts the snapshot applied only once it is durable, and
                // until then cannot campaign).
                self.settle().await?;
                self.install_snapshot(order).await?;
                self.commits.push(work, Instant::now());
                self.settle().await?;
                continue;
            }
            self.commits.push(work, Instant::now());
            self.start_log_job(now)?;
        }
        self.kick_log_job().await?;
        let mut output = self.node.take_output();
        self.send(std::mem::take(&mut output.messages));
        self.observe_roles(&output);
        let delivered = Instant::now();
        self.deliver(output, shards).await?;
        self.shared.metrics.record_stage(WriteStage::Publish, delivered.elapsed());
        self.finish_snapshot()
    }

    /// If the log is idle: hands it the queued work, and starts a write
    /// when any of it must be durable. raft-rs says when: new entries, a new
    /// term or vote. Work that only moves the commit index (every
    /// follower's, for every write) is buffered and rides with the next
    /// write: losing it loses nothing raft cannot relearn, and a follower
    /// publishes the write at once instead of after a write, which is what
    /// a client reading there next waits on. Such work is reported durable
    /// at once, unless it waits behind work in flight (raft-rs takes
    /// reports in order).
    fn start_log_job(&mut self, now: Now) -> Result<(), CoreError> {
        if self.log.is_some() && self.written_snapshot.is_some() {
            // Before more writes, or a busy log would never mark it (and
            // never compact); once per snapCount/2 writes or more.
            return self.mark_snapshot();
        }
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        debug_assert!(self.log_job.is_none() && !self.commits.writing(), "one log job at a time");
        for work in self.commits.queued() {
            log.append(&work.entries, work.hard_state.as_ref())?;
        }
        let (entries, queued_since) = match self.commits.start() {
            None => return Ok(()),
            Some(Batch::Release(works)) => {
                let released = Instant::now();
                for work in works {
                    self.node.persisted(work, now)?;
                }
                self.shared.metrics.record_stage(WriteStage::Release, released.elapsed());
                return Ok(());
            }
            Some(Batch::Write { entries, queued_since }) => (entries, queued_since),
        };
        let waited = queued_since.elapsed();
        let mut log = self.log.take().expect("the log is idle");
        self.log_started = false;
        self.log_job = Some(Box::pin(async move {
            let result = log.sync().await;
            (log, LogDone::Synced { result, entries, waited })
        }));
        Ok(())
    }

    /// The log's job finished: its work is durable, and the next write
    /// starts at once with what was prepared meanwhile.
    fn log_finished(&mut self, log: Box<Log>, done: LogDone) -> Result<(), CoreError> {
        self.log_job = None;
        let now = self.now();
        match done {
            LogDone::Synced { result, entries, waited } => {
                let bytes = result?;
                if entries > 0 {
                    self.shared.metrics.record_group_commit(entries, bytes);
                    self.shared.metrics.record_fsync(log.last_fsync());
                    let (write, fdatasync) = log.last_write_and_fdatasync();
                    self.shared.metrics.record_stage(WriteStage::LogWait, waited);
                    self.shared.metrics.record_stage(WriteStage::LogWrite, write);
                    if let Some(fdatasync) = fdatasync {
                        self.shared.metrics.record_stage(WriteStage::Fsync, fdatasync);
                    }
                }
                self.log = Some(log);
                let released = Instant::now();
                for work in self.commits.finish() {
                    self.node.persisted(work, now)?;
                }
                self.shared.metrics.record_stage(WriteStage::Release, released.elapsed());
            }
            LogDone::SnapshotMarked { result, snapshot: task } => {
                self.log = Some(log);
                result?;
                self.node.snapshot_written(task.index)?;
                self.shared.metrics.record_snapshot(task.index as i64, task.started.elapsed());
                self.purge_snapshots_if_due();
            }
        }
        // What the node committed with it comes out of its next ready
        // (`round`); the work queued meanwhile goes to the log now.
        self.start_log_job(now)
    }

    /// Gets a log job's IO to the disk now rather than after this round:
    /// glommio queues an IO when the future is first polled and submits
    /// it only when the core's task waits. Polling the job once, then
    /// waiting a microsecond, starts the write while the core goes on
    /// releasing and publishing the one before.
    async fn kick_log_job(&mut self) -> Result<(), CoreError> {
        if self.log_started {
            return Ok(());
        }
        let Some(job) = self.log_job.as_mut() else {
            return Ok(());
        };
        self.log_started = true;
        if let Some((log, done)) = futures_lite::future::poll_once(job).await {
            return self.log_finished(log, done);
        }
        Timer::new(Duration::from_micros(1)).await;
        Ok(())
    }

    /// Waits until the log is idle and everything handed out is durable.
    async fn settle(&mut self) -> Result<(), CoreError> {
        loop {
            if let Some(job) = self.log_job.as_mut() {
                let (log, done) = job.await;
                self.log_finished(log, done)?;
                continue;
            }
            if self.commits.queued().is_empty() {
                return Ok(());
            }
            self.start_log_job(self.now())?;
        }
    }

    /// Encodes and queues messages for peers. A full queue or a link that is
    /// down drops the message (counted by the link): raft resends what it
    /// needs, and a client whose forwarded request is lost is disconnected
    /// by the node when it has waited a session timeout.
    fn send(&self, messages: Vec<(u64, PeerMessage)>) {
        let Some((links, _)) = &self.peers else {
            return;
        };
        for (to, message) in messages {
            if matches!(message, PeerMessage::Snapshot { .. }) {
                self.streams.send(links, to, message);
                continue;
            }
            if self.streams.is_sending(to) {
                // Behind the snapshot stream, or it would overtake it;
                // raft sends again what matters.
                continue;
            }
            let mut frame = Vec::with_capacity(256);
            message.encode(&mut frame);
            links.send(to, frame);
        }
    }

    /// The leader's snapshot replaces this server's state: written durably
    /// (and the log marked and compacted) before the Ready is persisted.
    async fn install_snapshot(&mut self, order: SnapshotOrder) -> Result<(), CoreError> {
        let meta = self.snapshot_meta(order.index, order.term);
        let directory = self.snapshot_directory.clone();
        // Written on a plain thread: the core keeps its timers and links.
        let handle = snapshot::spawn_write(directory, order.tree, meta).map_err(CoreError::InstallSnapshot)?;
        while !handle.is_finished() {
            Timer::new(Duration::from_millis(2)).await;
        }
        match handle.join() {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(CoreError::InstallSnapshot(error)),
            Err(_) => return Err(CoreError::SnapshotPanicked),
        }
        let retain = self.shared.config.autopurge_snap_retain_count as usize;
        self.log
            .as_mut()
            .expect("the log is idle after settle")
            .snapshot_taken(order.index, order.term, retain)
            .await?;
        info!(index = order.index, "the leader's snapshot is durable");
        Ok(())
    }

    /// The group at the snapshot's index (no joint consensus: reconfig is
    /// not supported).
    fn snapshot_meta(&self, index: u64, term: u64) -> snapshot::SnapshotMeta {
        snapshot::SnapshotMeta {
            index,
            term,
            cluster_id: self.cluster_id,
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            ..snapshot::SnapshotMeta::default()
        }
    }

    /// Logs role changes and keeps the operations view current.
    fn observe_roles(&mut self, output: &Output) {
        for change in &output.role_changes {
            let now_ms = change.at_ms;
            let mut election_ms = None;
            match change.leader {
                None => {
                    self.leaderless_since_ms.get_or_insert(now_ms);
                }
                Some(_) => {
                    if let Some(since) = self.leaderless_since_ms.take() {
                        election_ms = Some(now_ms - since);
                    }
                }
            }
            info!(
                role = change.role.mode(self.peers.is_none()),
                leader = ?change.leader,
                term = change.term,
                election_ms = ?election_ms,
                "role changed"
            );
            if let Some(ms) = election_ms {
                self.shared.metrics.election_time_ms.record(ms.max(0) as u64);
            }
            if let Ok(mut view) = self.shared.ensemble.lock() {
                view.role = self.peers.is_some().then_some(change.role);
                view.leader = change.leader;
                view.term = change.term;
                if change.role != Role::Leader {
                    view.leading_since = None;
                } else if view.leading_since.is_none() {
                    view.leading_since = Some(Instant::now());
                }
                if election_ms.is_some() {
                    view.elections += 1;
                    view.last_election_ms = election_ms;
                }
            }
        }
        let leading = self.peers.is_some() && self.node.role() == Role::Leader;
        self.shared.metrics.observe_log(leading, self.node.last_index(), self.node.commit_index(), Instant::now());
        if self.peers.is_some() && self.last_view.elapsed() >= VIEW_REFRESH {
            self.last_view = Instant::now();
            let links = self.peers.as_ref().map(|(links, _)| links.stats()).unwrap_or_default();
            if let Ok(mut view) = self.shared.ensemble.lock() {
                view.matched = self.node.matched();
                view.commit_index = self.node.commit_index();
                view.applied_index = self.node.applied_index();
                view.last_index = self.node.last_index();
                view.pending_syncs = self.node.pending_syncs();
                view.links = links;
            }
        }
    }

    /// Publishes the new committed version, then sends each shard its
    /// replies: every shard hears of a changed tree (to fire its watches),
    /// the others only when they have replies.
    async fn deliver(&mut self, output: Output, shards: &[ConnectedSender<Commit>]) -> Result<(), CoreError> {
        // Every heartbeat says so until the catch-up is in: one line a
        // few seconds is enough.
        let warn_again = self.last_behind_warning.is_none_or(|at| at.elapsed() >= BEHIND_WARNING_INTERVAL);
        if let (Some((commit, last)), true) = (output.log_behind_leader, warn_again) {
            self.last_behind_warning = Some(Instant::now());
            warn!(
                leader_commit = commit,
                last_index = last,
                "this server holds less of the log than it acknowledged to the leader (an emptied data directory, \
                 or a disk that lost synced writes); it catches up from the leader"
            );
        }
        if output.sessions_expired > 0 {
            self.shared.metrics.sessions_expired.fetch_add(output.sessions_expired as i64, Ordering::Relaxed);
        }
        let changed = output.publication.is_some();
        if let Some(publication) = output.publication {
            let version = Arc::new(Version::new(publication.tree, publication.triggers));
            self.current.link(version.clone());
            self.shared.published.store(version.clone());
            self.current = version;
        }
        let mut by_shard: Vec<Vec<Reply>> = (0..shards.len()).map(|_| Vec::new()).collect();
        for reply in output.replies {
            if let Some(replies) = by_shard.get_mut(shard_of(reply.connection)) {
                replies.push(reply);
            }
        }
        // A shard is woken for a change without replies for it only when
        // it may hold watches (`Shard::expect_watch`, which fences the same
        // way); the others catch up on their next read, commit or touch.
        std::sync::atomic::fence(Ordering::SeqCst);
        for (shard, (sender, replies)) in shards.iter().zip(by_shard).enumerate() {
            let watching = self.shared.shard_stats[shard].watching.load(Ordering::SeqCst);
            if replies.is_empty() && !(changed && watching) {
                continue;
            }
            self.shared.metrics.shards[shard].commits_sent.fetch_add(1, Ordering::Relaxed);
            if sender.send(Commit { replies, sent: Instant::now() }).await.is_err() {
                if self.shared.stopping.load(Ordering::Relaxed) {
                    debug!(shard, "shard gone: the server is stopping; its replies are dropped");
                    continue;
                }
                warn!(shard, "shard queue closed; its replies are dropped");
            }
        }
        if let Some(order) = output.snapshot {
            self.start_snapshot(order)?;
        }
        Ok(())
    }

    /// Writes the ordered snapshot on a background thread; neither reads
    /// nor writes wait for it.
    fn start_snapshot(&mut self, order: SnapshotOrder) -> Result<(), CoreError> {
        let meta = self.snapshot_meta(order.index, order.term);
        let directory = self.snapshot_directory.clone();
        let handle = snapshot::spawn_write(directory, order.tree, meta).map_err(CoreError::StartSnapshot)?;
        self.snapshot_task =
            Some(SnapshotTask { handle, index: order.index, term: order.term, started: Instant::now() });
        Ok(())
    }

    /// When the snapshot thread is done: the log marks it and compacts
    /// itself behind the retained snapshots as a job of its own (a write
    /// and segment deletions), so the core goes on preparing meanwhile;
    /// then the node is told (`log_finished`).
    fn finish_snapshot(&mut self) -> Result<(), CoreError> {
        if let Some(task) = self.snapshot_task.take() {
            if !task.handle.is_finished() {
                self.snapshot_task = Some(task);
                return Ok(());
            }
            match task.handle.join() {
                Ok(Ok(_)) => {
                    self.written_snapshot =
                        Some(WrittenSnapshot { index: task.index, term: task.term, started: task.started })
                }
                Ok(Err(error)) => {
                    self.node.snapshot_failed();
                    error!(%error, "snapshot failed; the log is kept and a snapshot is tried again later")
                }
                Err(_) => {
                    self.node.snapshot_failed();
                    error!("the snapshot thread panicked; a snapshot is tried again later")
                }
            }
        }
        self.mark_snapshot()
    }

    /// Starts the log's job of marking the written snapshot, if the log is
    /// idle (otherwise the job that holds it starts this when it ends).
    fn mark_snapshot(&mut self) -> Result<(), CoreError> {
        if self.written_snapshot.is_none() {
            return Ok(());
        }
        let Some(mut log) = self.log.take() else {
            return Ok(());
        };
        let task = self.written_snapshot.take().expect("checked above");
        let retain = self.shared.config.autopurge_snap_retain_count as usize;
        self.log_started = false;
        self.log_job = Some(Box::pin(async move {
            let result = log.snapshot_taken(task.index, task.term, retain).await;
            (log, LogDone::SnapshotMarked { result, snapshot: task })
        }));
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
        match snapshot::purge(&self.snapshot_directory, retain) {
            Ok(purged) => info!(deleted = purged.deleted.len(), "snapshots purged"),
            Err(error) => warn!(%error, "snapshot purge failed"),
        }
    }
}

/// The log's one job in flight. It owns the log while it runs, so
/// nothing else can touch the log meanwhile, and hands it back with what it
/// did. Boxed: a write and a snapshot mark are different futures.
type LogJob = Pin<Box<dyn Future<Output = (Box<Log>, LogDone)>>>;

/// What a log job did.
enum LogDone {
    /// A group commit: `entries` of the work it covered, which waited
    /// `waited` behind the job before it (the `log_wait` stage).
    Synced { result: Result<usize, super::log::LogError>, entries: usize, waited: Duration },
    /// A written snapshot marked in the log, and the log compacted behind it.
    SnapshotMarked { result: Result<(), super::log::LogError>, snapshot: WrittenSnapshot },
}

/// What woke the core.
enum Woken {
    Input,
    Query(CoreQuery),
    Log(Box<Log>, LogDone),
}

/// A snapshot the thread finished writing.
struct WrittenSnapshot {
    index: u64,
    term: u64,
    started: Instant,
}

/// The log (or the node) cannot go on: nothing more may be acknowledged.
/// Fail-stop, as ZooKeeper's SyncRequestProcessor does: exit non-zero at
/// once so a supervisor restarts the server, rather than listen on without
/// being able to write (docs/ARCHITECTURE.md, "A failing log").
fn fail_stop(error: CoreError) -> ! {
    error!(%error, exit_status = super::log::EXIT_STATUS_LOG_FAILED, "the log failed; exiting now");
    std::process::exit(super::log::EXIT_STATUS_LOG_FAILED);
}

/// A snapshot being written on its own thread.
struct SnapshotTask {
    handle: snapshot::WriteHandle,
    index: u64,
    term: u64,
    started: Instant,
}
