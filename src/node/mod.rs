//! The node: everything one server decides, free of IO.
//!
//! Every server of an ensemble (and a standalone server, the one-voter case)
//! runs this same state machine; the glommio shell (`server::broadcast`)
//! and the in-memory harness of the tests are two drivers of it. It is
//! shaped like raft-rs's `RawNode`, which it wraps:
//!
//! - inputs go in: client work from the shards (`step_client`), a message
//!   from a peer (`step_peer`), the passing of time (`tick`), a snapshot
//!   written (`snapshot_written`). Time is an argument (`Now`); nothing here
//!   reads a clock, draws an unseeded random number or touches a file;
//! - `ready` hands out what must become durable (log entries, hard state)
//!   with the messages that may be sent before that; the driver makes them
//!   durable and hands the same value back to `persisted`;
//! - `take_output` hands out what was released: messages to peers, the new
//!   committed tree to publish with its watch triggers, replies and closes
//!   for the shards' connections, and a snapshot to write.
//!
//! Two trees: the leader prepares requests against a speculative tree
//! (`Preparer`, which holds every change proposed but not yet committed);
//! every server, the leader included, applies *committed* entries to its
//! committed tree with the one `Tree::apply` and answers its own clients
//! from the request and the applied outcome (`crate::reply`). Only the
//! committed tree is ever published. When the leader changes, the
//! speculative state is thrown away: a new leader starts prep from its
//! committed tree plus its uncommitted log tail, and every server closes
//! its clients' connections, as a ZooKeeper server does when it loses its
//! leader; the clients reconnect and keep their sessions.
//!
//! Sessions are log entries. The server a client connects to chooses the
//! new session's id (its server id in the top byte, ZooKeeper's layout) and
//! password; the leader logs it. The leader alone tracks expiry: the others
//! forward their sessions' liveness, and a resumed session is revalidated
//! with the leader before the client is told it is connected.

pub mod commit;
pub mod harness;
mod local;
mod read_only;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raft::eraftpb::{Entry, HardState, Message};

use crate::prep::{PrepSettings, Prepared, Preparer, WriteContext};
use crate::proto::{ErrorCode, Id, Request, Response};
use crate::replica::{carries_transaction, codec, Recovered, Replica, ReplicaConfig, ToPersist};
use crate::session::SessionTracker;
use crate::tree::{Tree, Trigger, Txn};
use local::{Answered, LocalSessions};
use read_only::ReadOnly;
pub use read_only::READ_ONLY_GRACE_MS_MIN;
pub use wire::{Answer, Forwarded, PeerMessage};

/// Snapshot trees a follower holds at once while raft decides which to
/// install: a leader sends a new one only after the last was answered, so
/// more than two at a time come from old and new leaders crossing.
pub const INCOMING_SNAPSHOTS_MAX: usize = 4;

/// Ticks between the surviving voters' campaigns after their leader's link
/// fell: enough for the first candidate's pre-vote to cross the network and
/// be granted before the next would campaign (a tick is 10 ms in production,
/// a loopback or LAN message well under 1 ms).
pub const LINK_LOSS_CAMPAIGN_SPACING_TICKS: usize = 3;

/// Ticks after which a leader asks again to be confirmed for syncs still
/// waiting (a heartbeat is 3 ticks in production).
pub const READ_INDEX_RETRY_TICKS: usize = 10;

/// A client connection's id, unique on its server (the shell puts the
/// shard in the top 16 bits).
pub type ConnectionId = u64;

/// The time, as the driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock: session expiry and timers.
    pub monotonic_ms: i64,
    /// The wall clock: the times logged in transactions (ctime, mtime).
    pub wall_ms: i64,
}

/// What the shards send: client work, in each connection's order.
#[derive(Debug)]
pub enum ClientInput {
    /// A handshake: session 0 asks for a new session, any other id resumes
    /// one with its password. `read_only`: the client accepts a read-only
    /// session (the ConnectRequest's readOnly flag).
    Connect { connection: ConnectionId, session_id: i64, password: Vec<u8>, timeout_ms: i32, read_only: bool },
    /// A write (or sync, or closeSession), with the identities the
    /// connection had when it sent it.
    Write { connection: ConnectionId, session_id: i64, xid: i32, request: Request, auth: Arc<[Id]> },
    /// Sessions that showed signs of life since the last touch.
    Touch(Vec<i64>),
    /// The connection is gone; its session lives on until it expires.
    Disconnected { connection: ConnectionId, session_id: i64 },
}

#[derive(Debug)]
pub enum ReplyBody {
    Response {
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        response: Response,
    },
    Connected {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
        /// A read-only session (the ConnectResponse's readOnly flag).
        read_only: bool,
    },
    /// The session is unknown, expired or the password is wrong.
    Refused,
    /// Close the connection (the client will reconnect, perhaps elsewhere).
    Close {
        reason: &'static str,
    },
}

#[derive(Debug)]
pub struct Reply {
    pub connection: ConnectionId,
    pub body: ReplyBody,
}

/// The committed tree after what was applied since the last output, and
/// the watch triggers of those changes in order.
#[derive(Debug)]
pub struct Publication {
    pub tree: Arc<Tree>,
    pub triggers: Vec<Trigger>,
}

/// A snapshot the driver should write: the committed tree at `index`.
#[derive(Debug)]
pub struct SnapshotOrder {
    pub tree: Arc<Tree>,
    pub index: u64,
    pub term: u64,
}

/// What the driver must do now that it was released.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<(u64, PeerMessage)>,
    /// Publish before sending `replies`: a reply may show the changes.
    pub publication: Option<Publication>,
    pub replies: Vec<Reply>,
    pub snapshot: Option<SnapshotOrder>,
    /// Role changes since the last output, for logs and metrics.
    pub role_changes: Vec<RoleChange>,
    /// Sessions this leader expired since the last output.
    pub sessions_expired: u64,
    /// The leader committed past this server's log: (its commit index, the
    /// last index here). This server has lost entries it acknowledged (a
    /// disk that lied about a sync, or a data directory emptied by hand).
    pub log_behind_leader: Option<(u64, u64)>,
}

/// This server's role as ZooKeeper names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Without a known leader (ZooKeeper's LOOKING).
    Looking,
    /// Without a known leader, serving read-only clients
    /// (`readonlymode.enabled`, ZooKeeper's ReadOnlyZooKeeperServer).
    ReadOnly,
    Leader,
    Follower,
    Observer,
}

impl Role {
    /// The name in `srvr`'s `Mode:` line and mntr's `zk_server_state`.
    pub fn mode(self, standalone: bool) -> &'static str {
        match self {
            Role::Leader if standalone => "standalone",
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Observer => "observer",
            Role::Looking => "looking",
            Role::ReadOnly => "read-only",
        }
    }

    /// Without a known leader, serving read-only clients or not.
    pub fn leaderless(self) -> bool {
        matches!(self, Role::Looking | Role::ReadOnly)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub role: Role,
    pub leader: Option<u64>,
    pub term: u64,
    pub at_ms: i64,
}

/// Work to make durable; hand it back to `Node::persisted` once it is.
pub struct Work {
    /// Send these now, before the entries are durable (a leader's appends).
    pub messages: Vec<(u64, PeerMessage)>,
    /// A snapshot from the leader, installed: make it durable (it replaces
    /// the log up to its index) before the entries.
    pub snapshot: Option<SnapshotOrder>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub must_sync: bool,
    inner: ToPersist,
}

/// Settings the node needs, decided by the driver from the configuration.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub replica: ReplicaConfig,
    pub prep: PrepSettings,
    /// Session expiry granularity (ZooKeeper's tickTime).
    pub session_tick_ms: i64,
    /// One raft tick, in ms.
    pub raft_tick_ms: i64,
    /// How often followers tell the leader which sessions are alive.
    pub touch_interval_ms: i64,
    /// ZooKeeper's snapCount: a snapshot every snapCount/2 + random(snapCount/2).
    pub snap_count: u64,
    pub container_check_interval_ms: i64,
    pub container_deletes_per_minute_max: usize,
    /// The first session id this server hands out (server id in the top
    /// byte, then time; see `Preparer::session_id_seed`).
    pub session_id_seed: i64,
    /// The key of this server's session passwords.
    pub password_secret: [u8; 16],
    /// Seeds the snapshot spread.
    pub random_seed: u64,
    /// Read-only mode (`readonlymode.enabled`): how long to look for a
    /// leader before serving read-only clients; None when off, as on a
    /// standalone server.
    pub read_only_grace_ms: Option<i64>,
}

impl NodeSettings {
    /// A standalone server's settings with ZooKeeper's defaults (tickTime
    /// 2000, snapCount 100,000) and fixed seeds: for tests and benches
    /// that drive a node without a configuration.
    pub fn single_voter() -> NodeSettings {
        NodeSettings {
            replica: ReplicaConfig {
                id: 1,
                voters: vec![1],
                learners: vec![],
                election_ticks: 10,
                heartbeat_ticks: 2,
                election_jitter_ticks: 0,
            },
            prep: PrepSettings::default(),
            session_tick_ms: 2000,
            raft_tick_ms: 10,
            touch_interval_ms: 50,
            snap_count: 100_000,
            container_check_interval_ms: 60_000,
            container_deletes_per_minute_max: 10_000,
            session_id_seed: 1 << 56,
            password_secret: [5; 16],
            random_seed: 7,
            read_only_grace_ms: None,
        }
    }
}

/// Typed failures at the node's boundary.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("raft: {0}")]
    Raft(#[from] crate::replica::ReplicaError),
    #[error("log entry {index} (term {term}) does not decode: {reason}")]
    Undecodable { index: u64, term: u64, reason: String },
    #[error("raft asked to install the snapshot at index {index} but no tree for it arrived")]
    SnapshotMissing { index: u64 },
}

/// The leader's own state, built when it takes office and dropped when it
/// leaves it.
struct Leading {
    prep: Preparer,
    tracker: SessionTracker,
    /// The server each session is attached to, as last told.
    owners: BTreeMap<i64, u64>,
    last_container_check_ms: i64,
    /// Syncs waiting for a quorum to confirm this leader (ReadIndex), by
    /// context: a deposed leader that does not know it yet must not answer
    /// a sync with its stale view.
    reads: BTreeMap<u64, PendingRead>,
    next_read: u64,
    /// Contexts up to this one were asked for; when last asked.
    read_asked: u64,
    read_asked_ms: i64,
}

/// A handshake waiting for the leader. A follower forwards it again every
/// `HANDSHAKE_REFORWARD_MS` until it is answered: a forward can be lost
/// with a peer link (one sent while the link to a new leader is still
/// coming up is dropped), and the leader takes a repeat as the same
/// request (a session it already created is not created again, a
/// revalidation is answered again), so the client is not left waiting
/// until its connection times out.
struct Connecting {
    connection: ConnectionId,
    timeout_ms: i32,
    /// The password a resuming client presented (None for a new session).
    presented: Option<Vec<u8>>,
    forwarded_ms: i64,
}

/// How long a follower waits for the leader to answer a forwarded
/// handshake before it forwards it again.
pub const HANDSHAKE_REFORWARD_MS: i64 = 500;

/// A sync at the leader: the index its client's server must apply before
/// answering (every write prepared before it).
struct PendingRead {
    origin: u64,
    session_id: i64,
    xid: i32,
    index: u64,
}

pub struct Node {
    settings: NodeSettings,
    id: u64,
    replica: Replica,
    committed: Tree,
    applied_index: u64,
    /// The group is this server alone (standalone): raft's log cache is
    /// compacted as soon as entries are applied.
    single_voter: bool,
    leading: Option<Leading>,
    role: Role,
    leader: Option<u64>,
    term: u64,
    local: LocalSessions,
    /// Read-only mode's state and its sessions, apart from `local`.
    read_only: ReadOnly,
    /// Handshakes waiting for the log (new sessions) or the leader
    /// (resumed ones), by session.
    connecting: BTreeMap<i64, Connecting>,
    /// Local sessions with signs of life since the last touch sent.
    touched: BTreeSet<i64>,
    next_session_id: i64,
    forward: Vec<Forwarded>,
    answers: BTreeMap<u64, Vec<Answer>>,
    output: Output,
    triggers: Vec<Trigger>,
    tree_changed: bool,
    next_raft_tick_ms: i64,
    /// When this follower campaigns after its leader's link fell.
    campaign_at_ms: Option<i64>,
    next_touch_ms: i64,
    last_snapshot_index: u64,
    snapshot_every: u64,
    snapshot_in_flight: bool,
    random: u64,
    /// The trees of snapshots leaders sent, by index, until raft installs
    /// one: raft may take any of them (a later message can replace the
    /// snapshot it holds with another, or be refused while the one before
    /// stands), so none replaces another here. At most
    /// `INCOMING_SNAPSHOTS_MAX`, the oldest dropped first.
    incoming_snapshots: BTreeMap<u64, Arc<Tree>>,
    /// Answered syncs that wait for this server to apply their index:
    /// (index, session). Applying looks here instead of at every session.
    waiting_syncs: BTreeSet<(u64, i64)>,
    next_stall_check_ms: i64,
}

impl Node {
    /// A node resuming from `tree` (the newest snapshot) and `recovered`
    /// (the log after it). A standalone server (one voter) becomes leader
    /// at once; an ensemble member waits for an election. The driver runs
    /// the ready loop before it serves clients: that applies what the log
    /// says is committed (and a single voter commits its own tail).
    pub fn new(settings: NodeSettings, tree: Tree, recovered: Recovered, now: Now) -> Result<Node, NodeError> {
        let applied_index = recovered.snapshot.as_ref().map_or(0, |point| point.index).max(tree.last_zxid() as u64);
        let mut replica = Replica::new(&settings.replica, recovered).map_err(NodeError::Raft)?;
        let single_voter = settings.replica.voters == [settings.replica.id] && settings.replica.learners.is_empty();
        if single_voter {
            replica.campaign().map_err(NodeError::Raft)?;
        }
        let mut random = settings.random_seed | 1;
        let snapshot_every = next_snapshot_every(settings.snap_count, &mut random);
        let mut node = Node {
            id: settings.replica.id,
            next_session_id: settings.session_id_seed,
            next_raft_tick_ms: now.monotonic_ms + settings.raft_tick_ms,
            campaign_at_ms: None,
            next_touch_ms: now.monotonic_ms + settings.touch_interval_ms,
            replica,
            last_snapshot_index: applied_index,
            applied_index,
            committed: tree,
            leading: None,
            role: Role::Looking,
            leader: None,
            term: 0,
            local: LocalSessions::default(),
            read_only: ReadOnly::new(if single_voter { None } else { settings.read_only_grace_ms }, now.monotonic_ms),
            connecting: BTreeMap::new(),
            touched: BTreeSet::new(),
            forward: Vec::new(),
            answers: BTreeMap::new(),
            output: Output::default(),
            triggers: Vec::new(),
            tree_changed: false,
            snapshot_every,
            snapshot_in_flight: false,
            random,
            incoming_snapshots: BTreeMap::new(),
            waiting_syncs: BTreeSet::new(),
            next_stall_check_ms: now.monotonic_ms + settings.touch_interval_ms,
            single_voter,
            settings,
        };
        node.observe_role(now);
        Ok(node)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn leader(&self) -> Option<u64> {
        self.leader
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn committed(&self) -> &Tree {
        &self.committed
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn commit_index(&self) -> u64 {
        self.replica.commit_index()
    }

    pub fn last_index(&self) -> u64 {
        self.replica.last_index()
    }

    /// Syncs of this server's clients not answered yet (read-only, for the
    /// operations view).
    pub fn pending_syncs(&self) -> usize {
        self.local.pending_syncs()
    }

    /// Each other member's highest replicated index (leader only).
    pub fn matched(&self) -> Vec<(u64, u64)> {
        self.replica.matched()
    }

    /// The leader's session expiry buckets (ZooKeeper's dump); empty on
    /// other servers, which do not decide expiry.
    pub fn session_buckets(&self) -> Vec<(i64, Vec<i64>)> {
        self.leading.as_ref().map(|leading| leading.tracker.buckets()).unwrap_or_default()
    }

    /// Sessions attached to this server's connections, read-only ones
    /// included.
    pub fn local_session_count(&self) -> usize {
        self.local.len() + self.read_only.len()
    }

    // ----- inputs -------------------------------------------------------

    /// Client work from a shard.
    pub fn step_client(&mut self, input: ClientInput, now: Now) -> Result<(), NodeError> {
        match input {
            ClientInput::Connect { connection, session_id, password, timeout_ms, read_only } => {
                if read_only && self.role == Role::ReadOnly {
                    self.connect_read_only(connection, session_id, &password, timeout_ms);
                    return Ok(());
                }
                self.connect(connection, session_id, &password, timeout_ms, now)
            }
            ClientInput::Write { connection, session_id, xid, request, .. }
                if self.read_only.holds(session_id, connection) =>
            {
                self.read_only_write(connection, session_id, xid, &request);
                Ok(())
            }
            ClientInput::Write { connection, session_id, xid, request, auth } => {
                if self.local.connection(session_id) != Some(connection) {
                    // The session moved to another connection of this server.
                    self.reply(connection, ReplyBody::Close { reason: "session moved to another connection" });
                    return Ok(());
                }
                self.local.push(session_id, xid, request.clone(), now.monotonic_ms);
                self.touched.insert(session_id);
                match self.leader {
                    Some(leader) if leader == self.id => {
                        self.leader_write(self.id, session_id, xid, &request, &auth, now)?
                    }
                    Some(_) => self.forward.push(Forwarded::Write { session_id, xid, request, auth: auth.to_vec() }),
                    None => self.close_session_connection(session_id, "no leader: the ensemble is electing one"),
                }
                Ok(())
            }
            ClientInput::Touch(sessions) => {
                if let Some(leading) = self.leading.as_mut() {
                    for session_id in sessions {
                        leading.tracker.touch(session_id, now.monotonic_ms);
                    }
                } else {
                    self.touched.extend(sessions.into_iter().filter(|id| self.local.contains(*id)));
                }
                Ok(())
            }
            ClientInput::Disconnected { connection, session_id } => {
                self.local.detach_if(session_id, connection);
                self.read_only.detach(session_id, connection, now.monotonic_ms);
                if self.connecting.get(&session_id).is_some_and(|waiting| waiting.connection == connection) {
                    self.connecting.remove(&session_id);
                }
                Ok(())
            }
        }
    }

    /// A message from peer `from`.
    pub fn step_peer(&mut self, from: u64, message: PeerMessage, now: Now) -> Result<(), NodeError> {
        match message {
            PeerMessage::Raft(messages) => {
                for mut message in messages {
                    // A server that lost its data directory (started empty,
                    // as an operator may do to resync one, as with
                    // ZooKeeper) is behind what the leader believes it
                    // holds; raft-rs would abort on a heartbeat committing
                    // past its log. The commit index is only news: the
                    // appends and the snapshot that follow bring the rest.
                    let last = self.replica.last_index();
                    if message.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat && message.commit > last {
                        let commit = message.commit;
                        self.output.log_behind_leader.get_or_insert((commit, last));
                        message.commit = last;
                        // Tell the leader where this log really ends, as a
                        // refused append says it (raft sends appends only
                        // when there is news, and an idle ensemble has none):
                        // the leader then sends entries or a snapshot
                        // (`Replica::follower_lost_log`).
                        let mut refusal = Message::default();
                        refusal.set_msg_type(raft::eraftpb::MessageType::MsgAppendResponse);
                        refusal.to = from;
                        refusal.from = self.id;
                        refusal.term = message.term;
                        refusal.index = commit;
                        refusal.reject = true;
                        refusal.reject_hint = last;
                        self.output.messages.push((from, PeerMessage::Raft(vec![refusal])));
                    }
                    // The leader's side of the same: a follower answering
                    // that its log ends below what it acknowledged.
                    if message.get_msg_type() == raft::eraftpb::MessageType::MsgAppendResponse
                        && message.reject
                        && self.replica.follower_lost_log(from, message.reject_hint)
                    {
                        tracing::warn!(
                            follower = from,
                            last_index = message.reject_hint,
                            "a follower holds less of the log than it acknowledged (an emptied data directory?); \
                             sending it entries or a snapshot from there"
                        );
                    }
                    // A message for an old term or from an unknown member is
                    // raft's to ignore; an error here is not ours to stop on.
                    let _ = self.replica.step(message);
                }
            }
            PeerMessage::Forward(items) => {
                for item in items {
                    self.forwarded(from, item, now)?;
                }
            }
            PeerMessage::Answer(items) => {
                for item in items {
                    self.answered(item);
                }
            }
            PeerMessage::Snapshot { message, tree } => {
                let index = message.get_snapshot().get_metadata().index;
                if index > self.applied_index {
                    self.incoming_snapshots.insert(index, tree);
                    while self.incoming_snapshots.len() > INCOMING_SNAPSHOTS_MAX {
                        self.incoming_snapshots.pop_first();
                    }
                    let _ = self.replica.step(message);
                }
            }
        }
        self.observe_role(now);
        Ok(())
    }

    /// The shell saw its link to `peer` fall (the connection closed or
    /// failed). When that peer is our leader, we go looking at once instead
    /// of waiting out the election timeout (see
    /// `Replica::leader_link_lost`): a leader killed by a crash is replaced
    /// in a few ticks. The surviving voters campaign in id order,
    /// `LINK_LOSS_CAMPAIGN_SPACING_TICKS` apart, so the first one's pre-vote
    /// is granted by the others before they would campaign themselves (two
    /// candidates at once split the vote and cost a whole election timeout).
    pub fn peer_link_lost(&mut self, peer: u64, now: Now) {
        if self.replica.leader_link_lost(peer) {
            let voters = &self.settings.replica.voters;
            let rank = voters.iter().filter(|&&voter| voter != peer && voter < self.id).count();
            let ticks = 1 + rank * LINK_LOSS_CAMPAIGN_SPACING_TICKS;
            self.campaign_at_ms = Some(now.monotonic_ms + ticks as i64 * self.settings.raft_tick_ms);
            tracing::info!(
                leader = peer,
                campaign_in_ticks = ticks,
                "the link to the leader fell; looking for a new leader"
            );
        }
        self.observe_role(now);
    }

    /// The passing of time: raft ticks, session expiry, containers,
    /// followers' session touches.
    pub fn tick(&mut self, now: Now) -> Result<(), NodeError> {
        while now.monotonic_ms >= self.next_raft_tick_ms {
            self.replica.tick();
            self.next_raft_tick_ms += self.settings.raft_tick_ms;
        }
        if self.campaign_at_ms.is_some_and(|at| now.monotonic_ms >= at) {
            self.campaign_at_ms = None;
            // Someone else may have won meanwhile, or the old leader spoke
            // again: then there is nothing to campaign for.
            if self.replica.may_campaign() {
                self.replica.campaign().map_err(NodeError::Raft)?;
            }
        }
        self.observe_role(now);
        if self.role == Role::Looking && self.read_only.start_if_due(now.monotonic_ms) {
            tracing::info!("no leader within the grace period: serving read-only clients (readonlymode.enabled)");
            self.role = Role::ReadOnly;
            self.output.role_changes.push(RoleChange {
                role: Role::ReadOnly,
                leader: None,
                term: self.term,
                at_ms: now.monotonic_ms,
            });
        }
        self.read_only.expire(now.monotonic_ms);
        // Stalls are judged in seconds: looking at every session once per
        // touch interval is enough, not at every raft tick.
        let stalled = if now.monotonic_ms >= self.next_stall_check_ms {
            self.next_stall_check_ms = now.monotonic_ms + self.settings.touch_interval_ms;
            self.local.stalled(now.monotonic_ms)
        } else {
            Vec::new()
        };
        for session_id in stalled {
            tracing::warn!(
                session = format_args!("0x{session_id:x}"),
                "a request waited longer than its session's timeout; closing the connection so the client retries"
            );
            self.close_session_connection(session_id, "a request waited longer than the session timeout");
        }
        if self.leading.is_some() {
            self.expire_sessions(now)?;
            self.check_containers(now)?;
        } else {
            if now.monotonic_ms >= self.next_touch_ms {
                self.next_touch_ms = now.monotonic_ms + self.settings.touch_interval_ms;
                if !self.touched.is_empty() {
                    let sessions: Vec<i64> = std::mem::take(&mut self.touched).into_iter().collect();
                    self.forward.push(Forwarded::Touch(sessions));
                }
            }
            self.reforward_handshakes(now);
        }
        Ok(())
    }

    /// The snapshot ordered at `index` is durable: the log before it may go.
    pub fn snapshot_written(&mut self, index: u64) -> Result<(), NodeError> {
        self.snapshot_in_flight = false;
        // A follower that needs what is dropped gets a snapshot instead.
        self.replica.compact(index).map_err(NodeError::Raft)
    }

    /// The snapshot failed; another is ordered after the next spread.
    pub fn snapshot_failed(&mut self) {
        self.snapshot_in_flight = false;
    }

    /// The next work to make durable, if any. Committed entries it carries
    /// are applied at once (they were committed before).
    pub fn ready(&mut self, now: Now) -> Result<Option<Work>, NodeError> {
        self.flush_forwarded();
        self.ask_reads(now);
        let Some(mut inner) = self.replica.ready() else {
            self.observe_role(now);
            return Ok(None);
        };
        let snapshot = match &inner.snapshot {
            Some(snapshot) => Some(self.install_snapshot(snapshot)?),
            None => None,
        };
        let committed = std::mem::take(&mut inner.committed);
        self.apply_committed(&committed)?;
        if !committed.is_empty() {
            self.applied_moved()?;
        }
        for (context, index) in std::mem::take(&mut inner.read_states) {
            self.confirmed_reads(context, index);
        }
        let messages = self.group(std::mem::take(&mut inner.messages));
        let entries = std::mem::take(&mut inner.entries);
        let hard_state = inner.hard_state.clone();
        let must_sync = inner.must_sync;
        self.observe_role(now);
        Ok(Some(Work { messages, snapshot, entries, hard_state, must_sync, inner }))
    }

    /// `work`'s entries and hard state are durable (and so is all work
    /// handed out before it: report them in the order `ready` gave them).
    /// What that commits comes out of the next `ready`, so a driver calls
    /// `ready` again before it takes the output.
    pub fn persisted(&mut self, work: Work, now: Now) -> Result<(), NodeError> {
        let after = self.replica.persisted(work.inner);
        let messages = self.group(after.messages);
        self.output.messages.extend(messages);
        self.observe_role(now);
        Ok(())
    }

    /// What follows applying committed entries.
    fn applied_moved(&mut self) -> Result<(), NodeError> {
        self.rebase_prep();
        if self.single_voter {
            // No follower will ever ask for an applied entry, and the WAL
            // holds it durably (only entries this server persisted are
            // handed out as committed): raft's in-memory copy of everything
            // since the last snapshot (up to snapCount entries, 1 MiB each
            // at worst) would only double the data's memory.
            self.replica.compact(self.applied_index).map_err(NodeError::Raft)?;
        }
        self.snapshot_if_due();
        Ok(())
    }

    /// Everything released since the last call.
    pub fn take_output(&mut self) -> Output {
        self.flush_forwarded();
        if std::mem::take(&mut self.tree_changed) {
            self.output.publication = Some(Publication {
                tree: Arc::new(self.committed.clone()),
                triggers: std::mem::take(&mut self.triggers),
            });
        }
        std::mem::take(&mut self.output)
    }

    // ----- clients ------------------------------------------------------

    fn reply(&mut self, connection: ConnectionId, body: ReplyBody) {
        self.output.replies.push(Reply { connection, body });
    }

    fn close_session_connection(&mut self, session_id: i64, reason: &'static str) {
        if let Some(session) = self.local.detach(session_id) {
            self.reply(session.connection, ReplyBody::Close { reason });
        }
    }

    fn connect(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        password: &[u8],
        timeout_ms: i32,
        now: Now,
    ) -> Result<(), NodeError> {
        let Some(leader) = self.leader else {
            self.reply(connection, ReplyBody::Close { reason: "no leader: the ensemble is electing one" });
            return Ok(());
        };
        if session_id == 0 {
            let session_id = self.next_session_id;
            self.next_session_id += 1;
            let password = Preparer::password(&self.settings.password_secret, session_id);
            self.connecting.insert(
                session_id,
                Connecting { connection, timeout_ms, presented: None, forwarded_ms: now.monotonic_ms },
            );
            if leader == self.id {
                self.leader_create_session(self.id, session_id, timeout_ms, password, now)?;
            } else {
                self.forward.push(Forwarded::CreateSession { session_id, timeout_ms, password });
            }
            return Ok(());
        }
        // A session this server has not applied yet (created a moment ago
        // elsewhere) is still the leader's to judge: only a wrong password
        // is refused here at once.
        if self.committed.session(session_id).is_some_and(|session| session.password[..] != *password) {
            self.reply(connection, ReplyBody::Refused);
            return Ok(());
        }
        if leader == self.id {
            let alive = self.leader_revalidate(self.id, session_id, timeout_ms, now);
            self.revalidated(connection, session_id, timeout_ms, password, alive);
        } else {
            self.connecting.insert(
                session_id,
                Connecting {
                    connection,
                    timeout_ms,
                    presented: Some(password.to_vec()),
                    forwarded_ms: now.monotonic_ms,
                },
            );
            self.forward.push(Forwarded::Revalidate { session_id, timeout_ms });
        }
        Ok(())
    }

    /// Forwards again the handshakes the leader has not answered for
    /// `HANDSHAKE_REFORWARD_MS` (see `Connecting`).
    fn reforward_handshakes(&mut self, now: Now) {
        if self.leader.is_none_or(|leader| leader == self.id) {
            return;
        }
        for (&session_id, waiting) in self.connecting.iter_mut() {
            if now.monotonic_ms - waiting.forwarded_ms < HANDSHAKE_REFORWARD_MS {
                continue;
            }
            waiting.forwarded_ms = now.monotonic_ms;
            let timeout_ms = waiting.timeout_ms;
            self.forward.push(match waiting.presented {
                None => Forwarded::CreateSession {
                    session_id,
                    timeout_ms,
                    password: Preparer::password(&self.settings.password_secret, session_id),
                },
                Some(_) => Forwarded::Revalidate { session_id, timeout_ms },
            });
        }
    }

    fn revalidated(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        timeout_ms: i32,
        presented: &[u8],
        alive: bool,
    ) {
        let password = self.committed.session(session_id).map(|session| session.password);
        match (alive, password) {
            (true, Some(password)) if crate::acl::same_secret(&password, presented) => {
                if let Some(previous) = self.local.attach(session_id, connection, timeout_ms) {
                    self.reply(previous, ReplyBody::Close { reason: "session moved to another connection" });
                }
                self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password, read_only: false });
            }
            // Alive at the leader but not applied here yet: as ZooKeeper
            // does with a client ahead of a server, close without an answer
            // so the client tries again, here or elsewhere, rather than
            // telling it its session expired.
            (true, None) => self.reply(
                connection,
                ReplyBody::Close {
                    reason: "this server has not applied the session's creation yet; the client retries",
                },
            ),
            _ => self.reply(connection, ReplyBody::Refused),
        }
    }

    /// Sends what was gathered for the leader as one message.
    fn flush_forwarded(&mut self) {
        if !self.forward.is_empty() {
            match self.leader {
                Some(leader) if leader != self.id => {
                    let items = std::mem::take(&mut self.forward);
                    self.output.messages.push((leader, PeerMessage::Forward(items)));
                }
                _ => self.forward.clear(),
            }
        }
        for (to, items) in std::mem::take(&mut self.answers) {
            self.output.messages.push((to, PeerMessage::Answer(items)));
        }
    }

    fn answer(&mut self, to: u64, answer: Answer) {
        if to == self.id {
            self.answered(answer);
        } else {
            self.answers.entry(to).or_default().push(answer);
        }
    }

    fn answered(&mut self, answer: Answer) {
        match answer {
            Answer::Synced { session_id, xid, index } => {
                if let Some(waiting) = self.local.unanswered(session_id, xid) {
                    let path = match &waiting.request {
                        Request::Sync { path } => path.clone(),
                        _ => String::new(),
                    };
                    waiting.answer =
                        Some(Answered { after_index: index, err: ErrorCode::Ok, response: Response::Path(path) });
                    if index > self.applied_index {
                        self.waiting_syncs.insert((index, session_id));
                    }
                }
                self.release(session_id);
            }
            Answer::Revalidated { session_id, alive } => {
                if let Some(waiting) = self.connecting.remove(&session_id) {
                    let presented = waiting.presented.unwrap_or_default();
                    self.revalidated(waiting.connection, session_id, waiting.timeout_ms, &presented, alive);
                }
            }
            Answer::NotLeader { session_id } => {
                self.close_session_connection(session_id, "the server asked is no longer the leader");
            }
            Answer::Moved { session_id } => {
                // Resumed on another server: ZooKeeper's clients expect the
                // old connection to end (a request still sent on it would get
                // SessionMoved from the leader).
                self.close_session_connection(session_id, "session moved to another server");
            }
        }
    }

    fn release(&mut self, session_id: i64) {
        let applied_zxid = self.committed.last_zxid();
        self.local.release(session_id, self.applied_index, applied_zxid, &mut self.output.replies);
    }

    // ----- the leader ---------------------------------------------------

    fn forwarded(&mut self, from: u64, item: Forwarded, now: Now) -> Result<(), NodeError> {
        if self.leading.is_none() {
            match item {
                Forwarded::Write { session_id, .. } | Forwarded::CreateSession { session_id, .. } => {
                    self.answer(from, Answer::NotLeader { session_id })
                }
                Forwarded::Revalidate { session_id, .. } => self.answer(from, Answer::NotLeader { session_id }),
                Forwarded::Touch(_) => {}
            }
            return Ok(());
        }
        match item {
            Forwarded::Write { session_id, xid, request, auth } => {
                self.leader_write(from, session_id, xid, &request, &auth, now)
            }
            Forwarded::CreateSession { session_id, timeout_ms, password } => {
                self.leader_create_session(from, session_id, timeout_ms, password, now)
            }
            Forwarded::Revalidate { session_id, timeout_ms } => {
                let alive = self.leader_revalidate(from, session_id, timeout_ms, now);
                self.answer(from, Answer::Revalidated { session_id, alive });
                Ok(())
            }
            Forwarded::Touch(sessions) => {
                if let Some(leading) = self.leading.as_mut() {
                    for session_id in sessions {
                        leading.tracker.touch(session_id, now.monotonic_ms);
                        leading.owners.entry(session_id).or_insert(from);
                    }
                }
                Ok(())
            }
        }
    }

    fn leader_revalidate(&mut self, origin: u64, session_id: i64, timeout_ms: i32, now: Now) -> bool {
        let Some(leading) = self.leading.as_mut() else {
            return false;
        };
        if !leading.tracker.contains(session_id) {
            return false;
        }
        leading.tracker.add(session_id, timeout_ms as i64, now.monotonic_ms);
        let previous = leading.owners.insert(session_id, origin);
        if let Some(previous) = previous.filter(|previous| *previous != origin) {
            self.answer(previous, Answer::Moved { session_id });
        }
        true
    }

    fn leader_create_session(
        &mut self,
        origin: u64,
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
        now: Now,
    ) -> Result<(), NodeError> {
        let Some(leading) = self.leading.as_mut() else {
            return Ok(());
        };
        match leading.prep.create_session(session_id, timeout_ms, password, now.wall_ms) {
            Some((header, txn)) => {
                leading.tracker.add(session_id, timeout_ms as i64, now.monotonic_ms);
                leading.owners.insert(session_id, origin);
                self.propose(&header, &txn)
            }
            None => {
                // The session exists: a handshake forwarded again while
                // the first creation was on its way (`HANDSHAKE_REFORWARD_MS`).
                // Its client is still there, which is a sign of life.
                leading.tracker.touch(session_id, now.monotonic_ms);
                Ok(())
            }
        }
    }

    fn leader_write(
        &mut self,
        origin: u64,
        session_id: i64,
        xid: i32,
        request: &Request,
        auth: &[Id],
        now: Now,
    ) -> Result<(), NodeError> {
        let Some(leading) = self.leading.as_mut() else {
            return Ok(());
        };
        leading.tracker.touch(session_id, now.monotonic_ms);
        let context = WriteContext { session_id, xid, auth, time_ms: now.wall_ms };
        let owner = *leading.owners.entry(session_id).or_insert(origin);
        let prepared = if owner != origin {
            // ZooKeeper's SessionMovedException: the session was resumed on
            // another server since this request was sent.
            leading.prep.reject(ErrorCode::SessionMoved, request, &context)
        } else {
            leading.prep.prepare(request, &context)
        };
        match prepared {
            Prepared::Txn { header, txn, err, .. } => {
                if matches!(request, Request::CloseSession) && err == ErrorCode::Ok {
                    leading.tracker.remove(session_id);
                    leading.owners.remove(&session_id);
                }
                self.propose(&header, &txn)?;
            }
            Prepared::Reply { .. } => {
                // A sync: everything prepared before it must be applied
                // where the client is before it is answered, and a quorum
                // must first confirm that this server still leads
                // (`ask_reads`, `confirmed_reads`).
                let index = leading.prep.last_zxid().max(0) as u64;
                let context = leading.next_read;
                leading.next_read += 1;
                leading.reads.insert(context, PendingRead { origin, session_id, xid, index });
            }
        }
        Ok(())
    }

    /// Asks raft to confirm this leader for the syncs waiting, once per
    /// batch: for new ones at once, for ones still unconfirmed again after
    /// `READ_INDEX_RETRY_TICKS` (raft-rs drops a request made before the
    /// leader's first commit in its term, and a lost heartbeat answer
    /// leaves one pending).
    fn ask_reads(&mut self, now: Now) {
        let retry_ms = READ_INDEX_RETRY_TICKS as i64 * self.settings.raft_tick_ms;
        let Some(leading) = self.leading.as_mut() else { return };
        let Some(&newest) = leading.reads.keys().next_back() else { return };
        let fresh = newest > leading.read_asked;
        if !self.replica.committed_in_current_term() || !(fresh || now.monotonic_ms - leading.read_asked_ms >= retry_ms)
        {
            return;
        }
        leading.read_asked = newest;
        leading.read_asked_ms = now.monotonic_ms;
        self.replica.read_index(newest);
    }

    /// A quorum confirmed this leader for `context` and every earlier one:
    /// those syncs are answered with what their clients' servers must
    /// apply first.
    fn confirmed_reads(&mut self, context: u64, commit_index: u64) {
        let Some(leading) = self.leading.as_mut() else { return };
        let later = leading.reads.split_off(&(context + 1));
        let confirmed = std::mem::replace(&mut leading.reads, later);
        for (_, read) in confirmed {
            let index = read.index.max(commit_index);
            self.answer(read.origin, Answer::Synced { session_id: read.session_id, xid: read.xid, index });
        }
    }

    fn propose(&mut self, header: &crate::tree::TxnHeader, txn: &Txn) -> Result<(), NodeError> {
        let mut payload = Vec::with_capacity(128);
        codec::encode(header, txn, &mut payload);
        let index = self.replica.propose(payload).map_err(NodeError::Raft)?;
        assert_eq!(index as i64, header.zxid, "prep and raft disagree on the next zxid");
        Ok(())
    }

    fn expire_sessions(&mut self, now: Now) -> Result<(), NodeError> {
        let Some(leading) = self.leading.as_mut() else {
            return Ok(());
        };
        let mut proposals = Vec::new();
        for session_id in leading.tracker.expire(now.monotonic_ms) {
            leading.owners.remove(&session_id);
            if let Some(proposal) = leading.prep.close_session(session_id, now.wall_ms) {
                self.output.sessions_expired += 1;
                tracing::info!(
                    session = format_args!("0x{session_id:x}"),
                    "session expired: no request or ping within its timeout"
                );
                proposals.push(proposal);
            }
        }
        for (header, txn) in proposals {
            self.propose(&header, &txn)?;
        }
        Ok(())
    }

    /// ZooKeeper's ContainerManager: empty containers that once had a child,
    /// and TTL nodes without children that outlived their TTL, are deleted.
    fn check_containers(&mut self, now: Now) -> Result<(), NodeError> {
        let interval = self.settings.container_check_interval_ms.max(1);
        let Some(leading) = self.leading.as_mut() else {
            return Ok(());
        };
        if now.monotonic_ms - leading.last_container_check_ms < interval {
            return Ok(());
        }
        leading.last_container_check_ms = now.monotonic_ms;
        let tree = leading.prep.speculative();
        let mut doomed = Vec::new();
        for path in tree.containers() {
            if let Some(node) = tree.get(path) {
                if node.cversion() > 0 && node.num_children() == 0 {
                    doomed.push(path.clone());
                }
            }
        }
        for path in tree.ttl_nodes() {
            if let Some(node) = tree.get(path) {
                let ttl = node.ttl_ms().unwrap_or(i64::MAX);
                if node.num_children() == 0 && now.wall_ms - node.mtime_ms() > ttl {
                    doomed.push(path.clone());
                }
            }
        }
        let per_check = ((self.settings.container_deletes_per_minute_max as i64 * interval) / 60_000).max(1) as usize;
        let mut proposals = Vec::new();
        for path in doomed.into_iter().take(per_check) {
            if let Some(proposal) = leading.prep.delete_container(&path, now.wall_ms) {
                proposals.push(proposal);
            }
        }
        for (header, txn) in proposals {
            self.propose(&header, &txn)?;
        }
        Ok(())
    }

    // ----- applying the log ---------------------------------------------

    fn apply_committed(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        for entry in entries {
            if entry.index <= self.applied_index {
                continue;
            }
            assert_eq!(entry.index, self.applied_index + 1, "committed entries are applied in order, without gaps");
            self.applied_index = entry.index;
            if !carries_transaction(entry) {
                continue;
            }
            let zxid = entry.index as i64;
            let (header, txn) = codec::decode(zxid, &entry.data).map_err(|error| NodeError::Undecodable {
                index: entry.index,
                term: entry.term,
                reason: error.to_string(),
            })?;
            assert!(header.zxid > self.committed.last_zxid(), "zxids move forward");
            let mut applied = self.committed.apply(&header, &txn);
            assert_eq!(self.committed.last_zxid(), header.zxid, "the tree is at the applied zxid");
            self.tree_changed = true;
            self.triggers.append(&mut applied.triggers);
            self.answer_applied(&header, &txn, &applied);
        }
        // Syncs waiting for this far (a session gone since is skipped by release).
        let later = self.waiting_syncs.split_off(&(self.applied_index + 1, i64::MIN));
        for (_, session_id) in std::mem::replace(&mut self.waiting_syncs, later) {
            self.release(session_id);
        }
        Ok(())
    }

    /// Answers this server's client for an applied transaction, if the
    /// client is here.
    fn answer_applied(&mut self, header: &crate::tree::TxnHeader, txn: &Txn, applied: &crate::tree::Applied) {
        let session_id = header.session_id;
        match txn {
            Txn::CreateSession { session_id, timeout_ms, password } => {
                if let Some(Connecting { connection, .. }) = self.connecting.remove(session_id) {
                    if let Some(previous) = self.local.attach(*session_id, connection, *timeout_ms) {
                        self.reply(previous, ReplyBody::Close { reason: "session moved to another connection" });
                    }
                    let (session_id, timeout_ms, password) = (*session_id, *timeout_ms, *password);
                    self.reply(connection, ReplyBody::Connected { session_id, timeout_ms, password, read_only: false });
                }
                return;
            }
            Txn::CloseSession { session_id: closed } => {
                let asked = self.local.unanswered(*closed, header.cxid).is_some();
                if !asked {
                    // Expired (or closed by the leader): the client is told by a close.
                    self.touched.remove(closed);
                    self.close_session_connection(*closed, "session expired");
                    return;
                }
            }
            _ => {}
        }
        if let Some(waiting) = self.local.unanswered(session_id, header.cxid) {
            let (err, response) = crate::reply::build(&waiting.request, txn, applied);
            waiting.answer = Some(Answered { after_index: header.zxid as u64, err, response });
            self.release(session_id);
        }
        if let Txn::CloseSession { session_id: closed } = txn {
            // The reply to the client's closeSession is out; the connection
            // closes itself once it is written.
            self.local.detach(*closed);
            self.touched.remove(closed);
        }
    }

    // ----- roles --------------------------------------------------------

    /// Notices a change of leader or term and acts on it.
    fn observe_role(&mut self, now: Now) {
        let leader = self.replica.leader_id();
        let term = self.replica.term();
        if leader == self.leader && term == self.term && (self.leading.is_some() == self.replica.is_leader()) {
            return;
        }
        let had_leader = self.leader.is_some();
        self.leader = leader;
        self.term = term;
        let role = match leader {
            Some(id) if id == self.id && self.replica.is_leader() => Role::Leader,
            Some(_) if self.settings.replica.learners.contains(&self.id) => Role::Observer,
            Some(_) => Role::Follower,
            None if self.read_only.serving() => Role::ReadOnly,
            None => Role::Looking,
        };
        let role_changed = role != self.role;
        self.role = role;
        self.leading = None;
        if had_leader {
            // Whatever was in flight through the old leader has an unknown
            // fate; ZooKeeper's clients see a disconnect and reconnect.
            for connection in self.local.detach_all() {
                self.reply(connection, ReplyBody::Close { reason: "the ensemble's leader changed" });
            }
            for (_, Connecting { connection, .. }) in std::mem::take(&mut self.connecting) {
                self.reply(connection, ReplyBody::Close { reason: "the ensemble's leader changed" });
            }
            self.forward.clear();
            self.touched.clear();
        }
        if leader.is_some() {
            // Read-only sessions end: their clients reconnect for real ones.
            for connection in self.read_only.leave() {
                self.reply(connection, ReplyBody::Close { reason: "a leader is known again: read-only mode ends" });
            }
        } else {
            self.read_only.looking(now.monotonic_ms);
        }
        if role == Role::Leader {
            self.leading = Some(self.take_office(now));
        }
        if role_changed || had_leader || leader.is_some() {
            self.output.role_changes.push(RoleChange { role, leader, term, at_ms: now.monotonic_ms });
        }
    }

    /// Once everything the leader prepared is applied, prep continues from
    /// the committed tree itself (see `Preparer::rebase`): measured 1M
    /// znodes of 100 bytes in 401 MiB of RSS instead of 746 MiB after the fill.
    fn rebase_prep(&mut self) {
        let Some(leading) = self.leading.as_mut() else { return };
        let speculative = leading.prep.speculative();
        if speculative.last_zxid() != self.committed.last_zxid() {
            return;
        }
        if speculative.digest() != self.committed.digest() {
            // The same transactions gave different trees: prep and apply
            // disagree (a bug), or a proposal raft dropped was applied to
            // prep only. The committed tree is what every server holds.
            tracing::warn!(
                zxid = format_args!("0x{:x}", self.committed.last_zxid()),
                "the leader's prepared state differs from its committed state at the same zxid; \
                 prep continues from the committed state"
            );
        }
        leading.prep.rebase(&self.committed);
    }

    /// A new leader's prep starts from its committed tree plus its
    /// uncommitted log tail, and every session gets its full timeout again.
    fn take_office(&mut self, now: Now) -> Leading {
        let mut speculative = self.committed.clone();
        for entry in self.replica.entries_from(self.applied_index + 1) {
            if !carries_transaction(&entry) {
                continue;
            }
            if let Ok((header, txn)) = codec::decode(entry.index as i64, &entry.data) {
                speculative.apply(&header, &txn);
            }
        }
        let mut tracker = SessionTracker::new(self.settings.session_tick_ms);
        for session in speculative.sessions() {
            tracker.add(session.id, session.timeout_ms as i64, now.monotonic_ms);
        }
        let mut prep = Preparer::new(speculative, self.settings.prep.clone());
        prep.set_next_zxid(self.replica.next_index() as i64);
        Leading {
            prep,
            tracker,
            owners: BTreeMap::new(),
            last_container_check_ms: now.monotonic_ms,
            reads: BTreeMap::new(),
            next_read: 1,
            read_asked: 0,
            read_asked_ms: now.monotonic_ms,
        }
    }

    // ----- snapshots ----------------------------------------------------

    fn snapshot_if_due(&mut self) {
        if self.snapshot_in_flight || self.applied_index < self.last_snapshot_index + self.snapshot_every {
            return;
        }
        let Ok(term) = self.replica.term_of(self.applied_index) else {
            return;
        };
        self.snapshot_in_flight = true;
        self.last_snapshot_index = self.applied_index;
        self.snapshot_every = next_snapshot_every(self.settings.snap_count, &mut self.random);
        self.output.snapshot =
            Some(SnapshotOrder { tree: Arc::new(self.committed.clone()), index: self.applied_index, term });
    }
}

impl Node {
    /// Groups raft's messages by destination, one peer message each. A
    /// snapshot raft sends (its storage holds only the metadata) goes with
    /// the committed tree at its index, which is this server's applied tree.
    fn group(&mut self, messages: Vec<Message>) -> Vec<(u64, PeerMessage)> {
        let mut by_peer: BTreeMap<u64, Vec<Message>> = BTreeMap::new();
        let mut snapshots = Vec::new();
        for message in messages {
            if message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                let index = message.get_snapshot().get_metadata().index;
                let to = message.to;
                if index == self.applied_index {
                    let tree = Arc::new(self.committed.clone());
                    snapshots.push((to, PeerMessage::Snapshot { message, tree }));
                    // Links are FIFO: the appends raft sends next arrive
                    // after the snapshot. Had it been lost, they would be
                    // refused and raft would send another.
                    self.replica.report_snapshot(to, true);
                } else {
                    // raft's storage is ahead of what is applied: not now.
                    self.replica.report_snapshot(to, false);
                }
                continue;
            }
            by_peer.entry(message.to).or_default().push(message);
        }
        let mut grouped: Vec<(u64, PeerMessage)> =
            by_peer.into_iter().map(|(to, messages)| (to, PeerMessage::Raft(messages))).collect();
        grouped.extend(snapshots);
        grouped
    }

    /// Replaces the committed tree with the leader's snapshot.
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot) -> Result<SnapshotOrder, NodeError> {
        let index = snapshot.get_metadata().index;
        let term = snapshot.get_metadata().term;
        let tree = match self.incoming_snapshots.remove(&index) {
            Some(tree) => tree,
            None => return Err(NodeError::SnapshotMissing { index }),
        };
        // Those at or below it will never be installed now.
        self.incoming_snapshots.retain(|&held, _| held > index);
        assert!(index > self.applied_index, "a snapshot moves the applied index forward");
        assert!(tree.last_zxid() as u64 <= index, "a snapshot's tree is at or before its index");
        self.committed = (*tree).clone();
        self.applied_index = index;
        self.last_snapshot_index = index;
        // The tree changed without triggers: this server's clients resume
        // elsewhere or here, and setWatches brings their watches back.
        self.tree_changed = true;
        self.triggers.clear();
        for connection in self.local.detach_all() {
            self.reply(connection, ReplyBody::Close { reason: "this server installed a snapshot from the leader" });
        }
        tracing::info!(index, term, nodes = tree.node_count(), "installed the leader's snapshot");
        Ok(SnapshotOrder { tree, index, term })
    }
}

/// Transactions until the next snapshot: snapCount/2 plus a random part of
/// snapCount/2, so that the servers of an ensemble do not snapshot together.
fn next_snapshot_every(snap_count: u64, random: &mut u64) -> u64 {
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    crate::snapshot::next_snapshot_after(snap_count, *random)
}

#[cfg(test)]
mod tests;
