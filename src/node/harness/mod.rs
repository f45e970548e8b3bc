//! A deterministic harness: several nodes in one thread, with a network,
//! disks and clocks in memory, driven from a seed.
//!
//! The network drops, duplicates, reorders and delays messages and can cut
//! links both ways or one way. A disk holds what a node made durable and
//! loses, at a crash, the one sync in flight; a slow disk holds that sync
//! for many steps; a failed sync (EIO, or a full disk) makes the server
//! fail-stop, as the shell does: it cannot know what of the write reached
//! the platter, so it must not go on answering from memory. Each server has
//! its own monotonic clock, which can jump forward in a burst (a VM pause).
//!
//! Simulated clients connect to any server, create unique znodes, and
//! contend on a few shared ones with creates, versioned setData, deletes,
//! multis (a check and a setData) and sync-then-read; they move to another
//! server when theirs closes the connection and start a new session when
//! theirs expired. Every operation on a shared znode goes into a history
//! (invoke, response, values written and read) for the linearizability
//! checker of `crate::sim`. Every choice comes from one xorshift generator
//! seeded by the caller, so a seed replays a run step for step.
//!
//! Checkers run as it goes: committed logs never disagree; each session's
//! replies come in request order with zxids that never go back; only the
//! leader expires a session, and never before its timeout has passed since
//! that leader last heard of it (or took office). After the faults heal: a
//! leader every server follows within `HEAL_LEADER_MS_MAX`; every
//! acknowledged create is in every tree; all servers converge to the same
//! tree at the same index.

mod watches;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use raft::eraftpb::{Entry, HardState};

use super::{ClientInput, ConnectionId, Forwarded, Node, NodeSettings, Now, PeerMessage, ReplyBody};
use crate::limits::LOG_WORK_IN_FLIGHT_MAX;
use crate::prep::PrepSettings;
use crate::proto::codes::op;
use crate::proto::{Acl, CreateRequest, ErrorCode, MultiOp, OpResult, Request, Response};
use crate::replica::{Recovered, ReplicaConfig, SnapshotPoint};
use crate::sim::linearizable::{Event, Op, Outcome, State};
use crate::tree::Tree;

/// A seeded xorshift generator: the harness's only source of choices.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// How hostile the run is, in percent per step or per message.
#[derive(Debug, Clone)]
pub struct Faults {
    pub drop_percent: u64,
    pub duplicate_percent: u64,
    /// Deliver a random in-flight message rather than the oldest.
    pub reorder_percent: u64,
    /// Per step: cut a random link (one way or both) for a while.
    pub partition_percent: u64,
    /// Per step: crash a random server, losing what it had not synced.
    pub crash_percent: u64,
    /// Per step: a crashed server restarts.
    pub restart_percent: u64,
    /// Per step, in tenths of a percent: one server's monotonic clock jumps
    /// forward by up to `CLOCK_JUMP_MS_MAX`.
    pub clock_jump_permille: u64,
    /// Per step, in tenths of a percent: one server's disk turns slow, its
    /// syncs taking up to `SLOW_DISK_MS_MAX`.
    pub slow_disk_permille: u64,
    /// Per step, in tenths of a percent: a server's sync in flight fails
    /// (EIO or a full disk) and the server fail-stops.
    pub disk_error_permille: u64,
    /// At a crash with a sync in flight: the write was torn, and a prefix
    /// of its records (entries first, the hard state last, as the WAL
    /// writes them) is on disk after all, from none to all of them.
    pub torn_write_percent: u64,
    /// Test only: a broken disk that acknowledges a sync before it is
    /// durable (a crash loses acknowledged work). The checkers must notice.
    pub broken_ack_before_durable: bool,
    /// Test only: a shell that writes a step's replies in reverse order.
    pub broken_reverse_replies: bool,
    /// Test only: a leader deaf to sessions' signs of life (touches are
    /// noted as heard, then thrown away).
    pub broken_ignore_touches: bool,
    /// Test only: a shell that writes a step's replies before it fires the
    /// watches of the changes published with them.
    pub broken_late_watches: bool,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            drop_percent: 0,
            duplicate_percent: 0,
            reorder_percent: 0,
            partition_percent: 0,
            crash_percent: 0,
            restart_percent: 0,
            clock_jump_permille: 0,
            slow_disk_permille: 0,
            disk_error_permille: 0,
            torn_write_percent: 0,
            broken_ack_before_durable: false,
            broken_reverse_replies: false,
            broken_ignore_touches: false,
            broken_late_watches: false,
        }
    }

    pub fn hostile() -> Faults {
        Faults {
            drop_percent: 5,
            duplicate_percent: 3,
            reorder_percent: 20,
            partition_percent: 1,
            crash_percent: 1,
            restart_percent: 10,
            clock_jump_permille: 2,
            slow_disk_permille: 3,
            disk_error_permille: 2,
            torn_write_percent: 50,
            broken_ack_before_durable: false,
            broken_reverse_replies: false,
            broken_ignore_touches: false,
            broken_late_watches: false,
        }
    }
}

/// What a node made durable.
#[derive(Debug, Default, Clone)]
struct Disk {
    entries: Vec<Entry>,
    hard_state: HardState,
    snapshot: Option<(Tree, u64, u64)>,
}

impl Disk {
    fn append(&mut self, entries: &[Entry]) {
        if let Some(first) = entries.first() {
            // A later entry for an index replaces it and everything after.
            let kept = self.entries.partition_point(|entry| entry.index < first.index);
            self.entries.truncate(kept);
            self.entries.extend_from_slice(entries);
        }
    }

    /// A piece of work reached the disk whole: its entries, then its hard state.
    fn write(&mut self, entries: &[Entry], hard_state: Option<&HardState>) {
        self.append(entries);
        if let Some(state) = hard_state {
            self.hard_state = state.clone();
        }
    }

    fn recovered(&self, voters: &[u64], learners: &[u64]) -> (Tree, Recovered) {
        let (tree, point) = match &self.snapshot {
            Some((tree, index, term)) => (
                tree.clone(),
                Some(SnapshotPoint {
                    index: *index,
                    term: *term,
                    voters: voters.to_vec(),
                    learners: learners.to_vec(),
                }),
            ),
            None => (Tree::new(), None),
        };
        let after = point.as_ref().map_or(0, |point| point.index);
        let entries = self.entries.iter().filter(|entry| entry.index > after).cloned().collect();
        (tree, Recovered { snapshot: point, hard_state: self.hard_state.clone(), entries })
    }
}

struct Server {
    node: Option<Node>,
    disk: Disk,
    /// Work not yet handed back as durable (its sync is "in flight"), in
    /// the order the node gave it; the node takes input meanwhile, as the
    /// broadcast core does, until `LOG_WORK_IN_FLIGHT_MAX`.
    syncing: VecDeque<super::Work>,
    /// Added to the cluster's time: this server's clock after its jumps.
    clock_offset_ms: i64,
    /// Until this cluster time, a sync in flight does not finish.
    slow_until_ms: i64,
    /// The broken disk's page cache: acknowledged, not durable.
    unflushed: Vec<(Vec<Entry>, Option<HardState>)>,
    /// The local time this server last took office as leader.
    office_since_ms: Option<i64>,
}

struct InFlight {
    from: u64,
    to: u64,
    deliver_at_ms: i64,
    message: PeerMessage,
}

/// What a client waits for on one xid.
#[derive(Debug)]
enum Pending {
    /// A create of the client's own znode, checked for survival.
    Unique(String),
    /// Operations on shared znodes: each key and its event in the history.
    Shared(Vec<(String, usize)>),
    /// A sync, then a read of the key where it was answered.
    SyncRead(String, usize),
}

/// A simulated client with one session.
struct Client {
    id: u64,
    server: u64,
    connection: Option<ConnectionId>,
    session: Option<(i64, [u8; 16])>,
    connecting: bool,
    next_xid: i32,
    /// Requests sent and not yet answered, by xid.
    in_flight: BTreeMap<i32, Pending>,
    written: u64,
    /// The highest zxid a reply to this session carried.
    last_zxid: i64,
    /// The version this client last saw of each shared key.
    versions: BTreeMap<String, i32>,
}

/// A server's committed entries: index -> (term, payload).
type CommittedLog = BTreeMap<u64, (u64, Vec<u8>)>;

/// One znode as the convergence check compares it: path, czxid, mzxid,
/// version, data.
pub type NodeFingerprint = (String, i64, i64, i32, Option<Vec<u8>>);

/// One run of the harness.
pub struct Cluster {
    pub random: Random,
    pub faults: Faults,
    servers: BTreeMap<u64, Server>,
    voters: Vec<u64>,
    network: VecDeque<InFlight>,
    /// Each link's latest delivery time: later sends never arrive before it.
    link_last: BTreeMap<(u64, u64), i64>,
    /// Cut links (from, to) and the step they heal.
    cuts: BTreeMap<(u64, u64), i64>,
    clients: Vec<Client>,
    next_connection: u64,
    now_ms: i64,
    /// Paths whose create was acknowledged, with the zxid the reply carried.
    pub acknowledged: BTreeMap<String, i64>,
    /// Per shared znode: every operation on it, for the linearizability check.
    pub histories: BTreeMap<String, Vec<Event>>,
    /// Orders invocations and responses in the histories.
    history_clock: u64,
    /// (server, session) -> that server's local time when it last heard of
    /// the session (a request, a touch, a handshake, a forwarded item).
    heard: BTreeMap<(u64, i64), i64>,
    /// Violations found so far, each a sentence.
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    writes_paused: bool,
    /// Cluster time of the heal, and of the first leader all followed after it.
    healed_at_ms: Option<i64>,
    pub leader_after_heal_ms: Option<i64>,
    /// Operations sent and answered, for the simulator's statistics.
    pub operations_sent: u64,
    pub operations_answered: u64,
    /// The shards' watch tables and published trees, and what clients watch.
    watches: watches::Watches,
    /// Watch events delivered, for the statistics.
    pub watch_events: u64,
}

/// The cluster's clock when a run starts.
pub const START_MS: i64 = 1_000;
/// A step advances time by this much.
pub const STEP_MS: i64 = 5;
/// In-flight messages at most; beyond it the network drops (a full queue).
const NETWORK_MESSAGES_MAX: usize = 100_000;
/// The session timeout the simulated clients ask for.
pub const SESSION_TIMEOUT_MS: i32 = 4_000;
/// Requests a client has outstanding at most.
const CLIENT_IN_FLIGHT_MAX: usize = 4;
/// The shared znodes clients contend on.
const SHARED_KEYS: u64 = 3;
/// The largest forward jump of one server's monotonic clock.
const CLOCK_JUMP_MS_MAX: u64 = 6_000;
/// The longest a slow disk takes over one sync.
const SLOW_DISK_MS_MAX: u64 = 3_000;
/// After the faults heal, every server follows one leader within this long
/// (a few election timeouts: 10 ticks of 10 ms, with up to 10 of jitter).
pub const HEAL_LEADER_MS_MAX: i64 = 3_000;
/// Lines of trace kept at most (the newest): a bound on a run's memory.
const TRACE_LINES_MAX: usize = 20_000;

fn settings(id: u64, voters: &[u64], seed: u64, now: Now) -> NodeSettings {
    NodeSettings {
        replica: ReplicaConfig {
            id,
            voters: voters.to_vec(),
            learners: Vec::new(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_jitter_ticks: ((seed.wrapping_add(id * 7)) % 10) as usize,
        },
        prep: PrepSettings::default(),
        session_tick_ms: 100,
        raft_tick_ms: 10,
        touch_interval_ms: 50,
        snap_count: 200,
        container_check_interval_ms: 60_000,
        container_deletes_per_minute_max: 10_000,
        // As in production: the server id and the start time, so a
        // restarted server never hands out a session id it gave before its
        // crash (a fixed seed made it reuse them, and the leader then took
        // the second creation for a duplicate of the first).
        session_id_seed: crate::prep::Preparer::session_id_seed(id as u8, now.wall_ms),
        password_secret: [id as u8; 16],
        random_seed: seed ^ id,
        read_only_grace_ms: None,
    }
}

fn shared_key(index: u64) -> String {
    format!("/k{index}")
}

impl Cluster {
    /// A cluster of `size` voters and `clients` clients.
    pub fn new(size: u64, clients: u64, seed: u64, faults: Faults) -> Cluster {
        let voters: Vec<u64> = (1..=size).collect();
        let mut cluster = Cluster {
            random: Random::new(seed),
            faults,
            servers: BTreeMap::new(),
            voters: voters.clone(),
            network: VecDeque::new(),
            link_last: BTreeMap::new(),
            cuts: BTreeMap::new(),
            clients: Vec::new(),
            next_connection: 1,
            now_ms: START_MS,
            acknowledged: BTreeMap::new(),
            histories: (0..SHARED_KEYS).map(|key| (shared_key(key), Vec::new())).collect(),
            history_clock: 0,
            heard: BTreeMap::new(),
            violations: Vec::new(),
            trace: Vec::new(),
            writes_paused: false,
            healed_at_ms: None,
            leader_after_heal_ms: None,
            operations_sent: 0,
            operations_answered: 0,
            watches: watches::Watches::default(),
            watch_events: 0,
        };
        for id in voters {
            cluster.servers.insert(
                id,
                Server {
                    node: None,
                    disk: Disk::default(),
                    syncing: VecDeque::new(),
                    clock_offset_ms: 0,
                    slow_until_ms: 0,
                    unflushed: Vec::new(),
                    office_since_ms: None,
                },
            );
            cluster.start(id);
        }
        for id in 0..clients {
            let server = 1 + id % size;
            cluster.clients.push(Client {
                id,
                server,
                connection: None,
                session: None,
                connecting: false,
                next_xid: 1,
                in_flight: BTreeMap::new(),
                written: 0,
                last_zxid: 0,
                versions: BTreeMap::new(),
            });
        }
        cluster
    }

    /// The cluster's time in ms (every server's clock before its jumps).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Server `id`'s clock.
    fn now_of(&self, id: u64) -> Now {
        let offset = self.servers.get(&id).map_or(0, |server| server.clock_offset_ms);
        let monotonic_ms = self.now_ms + offset;
        Now { monotonic_ms, wall_ms: 1_700_000_000_000 + monotonic_ms }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() >= TRACE_LINES_MAX {
            self.trace.drain(..TRACE_LINES_MAX / 2);
        }
        self.trace.push(line);
    }

    fn violation(&mut self, sentence: String) {
        self.note(format!("t={} VIOLATION {sentence}", self.now_ms));
        self.violations.push(sentence);
    }

    fn tick_history(&mut self) -> u64 {
        self.history_clock += 1;
        self.history_clock
    }

    fn start(&mut self, id: u64) {
        let now = self.now_of(id);
        let seed = self.random.next_u64();
        let voters = self.voters.clone();
        let Some(server) = self.servers.get_mut(&id) else { return };
        // The page cache of a broken disk does not survive the restart.
        server.unflushed.clear();
        server.office_since_ms = None;
        let (tree, recovered) = server.disk.recovered(&voters, &[]);
        match Node::new(settings(id, &voters, seed, now), tree, recovered, now) {
            Ok(node) => server.node = Some(node),
            Err(error) => self.violation(format!("server {id} cannot restart: {error}")),
        }
    }

    fn crash(&mut self, id: u64, why: &str) {
        let torn = self.random.chance(self.faults.torn_write_percent);
        let tear = self.random.next_u64();
        let mut torn_line = None;
        if let Some(server) = self.servers.get_mut(&id) {
            if server.node.take().is_some() {
                let syncing = server.syncing.len() as u64;
                if torn && syncing > 0 {
                    // The pieces of work in flight go to the disk in order
                    // (in one write or one after another): those before
                    // the torn one reached it whole.
                    let torn_at = (tear % syncing) as usize;
                    for work in server.syncing.drain(..torn_at) {
                        server.disk.write(&work.entries, work.hard_state.as_ref());
                    }
                }
                if let (true, Some(work)) = (torn, server.syncing.front()) {
                    // Records 0..kept of the batch reached the disk; the
                    // WAL drops the torn record after them at recovery.
                    // The low bits chose the torn piece; the rest choose where it tore.
                    let tear = tear >> 8;
                    let entries = work.entries.len();
                    let kept = (tear % (entries as u64 + 2)) as usize;
                    server.disk.append(&work.entries[..kept.min(entries)]);
                    let with_hard_state = kept > entries && work.hard_state.is_some();
                    if let (true, Some(state)) = (with_hard_state, &work.hard_state) {
                        server.disk.hard_state = state.clone();
                    }
                    torn_line = Some(format!(
                        "t={} torn write on {id}: {} of {entries} entries kept, hard state {}",
                        self.now_ms,
                        kept.min(entries),
                        if with_hard_state { "kept" } else { "lost" }
                    ));
                }
                // What was not synced is lost.
                server.syncing.clear();
                server.unflushed.clear();
                self.note(format!("t={} crash {id}: {why}", self.now_ms));
            }
        }
        if let Some(line) = torn_line {
            self.note(line);
        }
        self.watches.server_crashed(id);
        // Its links break: what was in flight to or from it is gone, and
        // its peers see their connections to it close, as TCP shows a dead
        // process's peers at once (a partition, by contrast, is silent).
        self.network.retain(|message| message.from != id && message.to != id);
        let peers: Vec<u64> = self.servers.keys().copied().filter(|&peer| peer != id).collect();
        for peer in peers {
            let now = self.now_of(peer);
            if let Some(node) = self.servers.get_mut(&peer).and_then(|server| server.node.as_mut()) {
                node.peer_link_lost(id, now);
            }
        }
        for client in &mut self.clients {
            if client.server == id && client.connection.is_some() {
                client.connection = None;
                client.connecting = false;
                client.in_flight.clear();
            }
        }
    }

    /// Kills server `id` as SIGKILL would: what it had not synced is lost.
    pub fn kill(&mut self, id: u64) {
        self.crash(id, "killed by the test");
    }

    /// The current leader, if exactly one live node says it leads.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .servers
            .iter()
            .filter_map(|(id, server)| {
                server.node.as_ref().filter(|node| node.role() == super::Role::Leader).map(|_| *id)
            })
            .collect();
        // Two leaders of different terms may coexist for a moment; the newest counts.
        leaders.into_iter().max_by_key(|id| self.servers[id].node.as_ref().map_or(0, |node| node.term()))
    }

    /// A leader every server is up and follows, if there is one.
    fn followed_leader(&self) -> Option<u64> {
        let leader = self.leader()?;
        let all =
            self.servers.values().all(|server| server.node.as_ref().is_some_and(|node| node.leader() == Some(leader)));
        all.then_some(leader)
    }

    /// Runs `steps` steps with faults, then heals everything and runs until
    /// quiet, checking as it goes. Returns the violations found.
    pub fn run(&mut self, steps: u64) -> &[String] {
        for _ in 0..steps {
            self.step(true);
        }
        self.heal();
        for _ in 0..1_000 {
            self.step(false);
        }
        // Quiet: no new writes, so every server can catch up.
        self.writes_paused = true;
        for _ in 0..600 {
            self.step(false);
        }
        match self.leader_after_heal_ms {
            Some(elapsed) if elapsed <= HEAL_LEADER_MS_MAX => {}
            Some(elapsed) => self.violation(format!(
                "the servers followed one leader only {elapsed} ms after the faults healed (bound {HEAL_LEADER_MS_MAX} ms)"
            )),
            None => self.violation("no leader every server follows after the faults healed".to_string()),
        }
        self.check_converged();
        self.final_reads();
        &self.violations
    }

    /// Clients stop sending requests (they still keep their sessions alive).
    pub fn pause_writes(&mut self) {
        self.writes_paused = true;
    }

    fn heal(&mut self) {
        self.cuts.clear();
        self.note(format!("t={} heal", self.now_ms));
        self.healed_at_ms = Some(self.now_ms);
        for server in self.servers.values_mut() {
            server.slow_until_ms = 0;
        }
        let down: Vec<u64> =
            self.servers.iter().filter(|(_, server)| server.node.is_none()).map(|(id, _)| *id).collect();
        for id in down {
            self.start(id);
        }
    }

    /// One step: faults, time, deliveries, client work, durability.
    pub fn step(&mut self, faulty: bool) {
        self.now_ms += STEP_MS;
        let ids: Vec<u64> = self.servers.keys().copied().collect();
        if faulty {
            self.inject_faults(&ids);
        }
        let now_ms = self.now_ms;
        self.cuts.retain(|_, heal_at| *heal_at > now_ms);
        self.deliver();
        self.clients_act(faulty);
        for id in ids {
            self.drive(id);
        }
        self.check_logs();
        if let (Some(healed), None) = (self.healed_at_ms, self.leader_after_heal_ms) {
            if self.followed_leader().is_some() {
                self.leader_after_heal_ms = Some(self.now_ms - healed);
            }
        }
    }

    fn inject_faults(&mut self, ids: &[u64]) {
        if self.random.chance(self.faults.crash_percent) {
            let id = ids[self.random.below(ids.len() as u64) as usize];
            let live = self.servers.values().filter(|server| server.node.is_some()).count();
            // Keep a majority up most of the time so progress is possible.
            if live > self.voters.len() / 2 + 1 || self.random.chance(20) {
                self.crash(id, "killed");
            }
        }
        let down: Vec<u64> =
            self.servers.iter().filter(|(_, server)| server.node.is_none()).map(|(id, _)| *id).collect();
        for id in down {
            if self.random.chance(self.faults.restart_percent) {
                self.note(format!("t={} restart {id}", self.now_ms));
                self.start(id);
            }
        }
        if self.random.chance(self.faults.partition_percent) {
            let from = ids[self.random.below(ids.len() as u64) as usize];
            let to = ids[self.random.below(ids.len() as u64) as usize];
            if from != to {
                let heal_at = self.now_ms + 50 + self.random.below(1_000) as i64;
                self.cuts.insert((from, to), heal_at);
                let both = self.random.chance(50);
                if both {
                    self.cuts.insert((to, from), heal_at);
                }
                let arrow = if both { "<->" } else { "->" };
                self.note(format!("t={} cut {from}{arrow}{to} until {heal_at}", self.now_ms));
            }
        }
        if self.random.below(1_000) < self.faults.clock_jump_permille {
            let id = ids[self.random.below(ids.len() as u64) as usize];
            let jump = 1 + self.random.below(CLOCK_JUMP_MS_MAX) as i64;
            if let Some(server) = self.servers.get_mut(&id) {
                server.clock_offset_ms += jump;
            }
            self.note(format!("t={} clock of {id} jumps {jump} ms", self.now_ms));
        }
        if self.random.below(1_000) < self.faults.slow_disk_permille {
            let id = ids[self.random.below(ids.len() as u64) as usize];
            let until = self.now_ms + 1 + self.random.below(SLOW_DISK_MS_MAX) as i64;
            if let Some(server) = self.servers.get_mut(&id) {
                server.slow_until_ms = until;
            }
            self.note(format!("t={} disk of {id} slow until {until}", self.now_ms));
        }
        if self.random.below(1_000) < self.faults.disk_error_permille {
            let id = ids[self.random.below(ids.len() as u64) as usize];
            // A failed fsync: the shell fail-stops; what was in flight may
            // or may not be on disk, and a restart finds what is.
            if self.syncing(id) {
                self.crash(id, "fsync failed (EIO or disk full): fail-stop");
            }
        }
    }

    /// Queues `message` on the link `from -> to`. A link is FIFO, as the
    /// peer transport's TCP links are and as the node assumes (a session's
    /// forwarded writes, a snapshot before the appends after it): delays
    /// vary, but a message never overtakes an earlier one on its link. Only
    /// raft's own messages are duplicated (raft tolerates that; the
    /// transport never delivers a frame twice, and a forwarded write
    /// delivered twice would be proposed twice).
    fn send(&mut self, from: u64, to: u64, message: PeerMessage) {
        if self.cuts.contains_key(&(from, to)) || self.network.len() >= NETWORK_MESSAGES_MAX {
            return;
        }
        if self.random.chance(self.faults.drop_percent) {
            return;
        }
        let delay = 1 + self.random.below(3) as i64 * STEP_MS;
        let link_last = self.link_last.entry((from, to)).or_insert(0);
        let deliver_at_ms = (self.now_ms + delay).max(*link_last);
        *link_last = deliver_at_ms;
        let duplicate = matches!(message, PeerMessage::Raft(_)) && self.random.chance(self.faults.duplicate_percent);
        if duplicate {
            self.network.push_back(InFlight { from, to, deliver_at_ms, message: message.clone() });
        }
        self.network.push_back(InFlight { from, to, deliver_at_ms, message });
    }

    fn deliver(&mut self) {
        let mut due: Vec<InFlight> = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(message) = self.network.pop_front() {
            if message.deliver_at_ms <= self.now_ms {
                due.push(message);
            } else {
                kept.push_back(message);
            }
        }
        // Reordering: interleave the links at random, each link in order.
        if due.len() > 1 && self.random.chance(self.faults.reorder_percent) {
            let mut links: BTreeMap<(u64, u64), VecDeque<InFlight>> = BTreeMap::new();
            for message in due.drain(..) {
                links.entry((message.from, message.to)).or_default().push_back(message);
            }
            while !links.is_empty() {
                let pick = self.random.below(links.len() as u64) as usize;
                let Some(key) = links.keys().nth(pick).copied() else { break };
                if let Some(queue) = links.get_mut(&key) {
                    if let Some(message) = queue.pop_front() {
                        due.push(message);
                    }
                    if queue.is_empty() {
                        links.remove(&key);
                    }
                }
            }
        }
        // Messages for a busy node wait, ahead of the later ones on their link.
        let mut waiting = Vec::new();
        for InFlight { from, to, message, deliver_at_ms } in due {
            if self.cuts.contains_key(&(from, to)) {
                continue;
            }
            if self.busy(to) {
                // A node at its bound of work in flight waits for a sync
                // before it takes more input.
                waiting.push(InFlight { from, to, deliver_at_ms, message });
                continue;
            }
            let now = self.now_of(to);
            if self.servers.get(&to).is_some_and(|server| server.node.is_some()) {
                if let PeerMessage::Forward(items) = &message {
                    for item in items {
                        match item {
                            Forwarded::Write { session_id, .. }
                            | Forwarded::CreateSession { session_id, .. }
                            | Forwarded::Revalidate { session_id, .. } => {
                                self.heard.insert((to, *session_id), now.monotonic_ms);
                            }
                            Forwarded::Touch(sessions) => {
                                for session_id in sessions {
                                    self.heard.insert((to, *session_id), now.monotonic_ms);
                                }
                            }
                        }
                    }
                }
            }
            let message = match message {
                PeerMessage::Forward(items) if self.faults.broken_ignore_touches => PeerMessage::Forward(
                    items.into_iter().filter(|item| !matches!(item, Forwarded::Touch(_))).collect(),
                ),
                message => message,
            };
            let Some(node) = self.servers.get_mut(&to).and_then(|server| server.node.as_mut()) else {
                continue;
            };
            if let Err(error) = node.step_peer(from, message, now) {
                self.violation(format!("server {to} failed on a message from {from}: {error}"));
            }
            self.observe_office(to);
        }
        waiting.extend(kept);
        self.network = waiting.into();
    }

    /// Notes when server `id` took office, as soon as the harness can see
    /// it (after every input), so the expiry check counts from then.
    fn observe_office(&mut self, id: u64) {
        let now = self.now_of(id);
        let Some(server) = self.servers.get_mut(&id) else { return };
        let leading = server.node.as_ref().is_some_and(|node| node.role() == super::Role::Leader);
        if !leading {
            server.office_since_ms = None;
        } else if server.office_since_ms.is_none() {
            server.office_since_ms = Some(now.monotonic_ms);
        }
    }

    /// Whether a node takes no input: its work in flight is at the bound.
    fn busy(&self, id: u64) -> bool {
        self.servers.get(&id).is_some_and(|server| server.syncing.len() >= LOG_WORK_IN_FLIGHT_MAX)
    }

    /// Whether a node has a sync in flight.
    fn syncing(&self, id: u64) -> bool {
        self.servers.get(&id).is_some_and(|server| !server.syncing.is_empty())
    }

    /// Hands `input` about `session_id` to server `id`, noting that it heard of the session.
    fn hand_to(&mut self, id: u64, session_id: i64, input: ClientInput) -> bool {
        let now = self.now_of(id);
        let Some(node) = self.servers.get_mut(&id).and_then(|server| server.node.as_mut()) else {
            return false;
        };
        // The deaf leader: followers still gather and forward touches.
        // Only a touch surely reaches the leader's tracker: a write on a
        // connection the server already closed, or a handshake it refuses,
        // does not, and counting them would blame the leader wrongly.
        let touch = matches!(input, ClientInput::Touch(_));
        let deaf = self.faults.broken_ignore_touches
            && node.role() == super::Role::Leader
            && matches!(input, ClientInput::Touch(_));
        let result = if deaf { Ok(()) } else { node.step_client(input, now) };
        if touch && session_id != 0 {
            self.heard.insert((id, session_id), now.monotonic_ms);
        }
        if let Err(error) = result {
            self.violation(format!("server {id} failed on client input: {error}"));
        }
        self.observe_office(id);
        true
    }

    fn clients_act(&mut self, faulty: bool) {
        let server_ids: Vec<u64> = self.servers.keys().copied().collect();
        for index in 0..self.clients.len() {
            if self.busy(self.clients[index].server) {
                continue;
            }
            let connected = self.clients[index].connection.is_some();
            if !connected {
                if self.clients[index].connecting || !self.random.chance(20) {
                    continue;
                }
                let server = server_ids[self.random.below(server_ids.len() as u64) as usize];
                if self.busy(server) {
                    continue;
                }
                let connection = self.next_connection | (server << 48);
                self.next_connection += 1;
                let client = &mut self.clients[index];
                client.server = server;
                client.connection = Some(connection);
                client.connecting = true;
                let (session_id, password) = client.session.map_or((0, Vec::new()), |(id, pw)| (id, pw.to_vec()));
                let input = ClientInput::Connect {
                    connection,
                    session_id,
                    password,
                    timeout_ms: SESSION_TIMEOUT_MS,
                    read_only: false,
                };
                let client_id = client.id;
                self.note(format!("t={} c{client_id} connects to {server} (session 0x{session_id:x})", self.now_ms));
                if !self.hand_to(server, session_id, input) {
                    self.clients[index].connection = None;
                    self.clients[index].connecting = false;
                }
                continue;
            }
            let client = &self.clients[index];
            let write_now = !self.writes_paused && self.random.chance(if faulty { 30 } else { 5 });
            if client.connecting || client.in_flight.len() >= CLIENT_IN_FLIGHT_MAX || !write_now {
                // Touch to keep the session alive.
                if let (Some((session_id, _)), false) = (client.session, client.connecting) {
                    let server = client.server;
                    self.hand_to(server, session_id, ClientInput::Touch(vec![session_id]));
                }
                continue;
            }
            let (Some((session_id, _)), Some(connection)) = (client.session, client.connection) else { continue };
            let (request, pending, line) = self.choose_operation(index);
            let client = &mut self.clients[index];
            let xid = client.next_xid;
            client.next_xid += 1;
            client.in_flight.insert(xid, pending);
            let server = client.server;
            let client_id = client.id;
            self.operations_sent += 1;
            self.note(format!("t={} c{client_id}@{server} xid {xid}: {line}", self.now_ms));
            let input = ClientInput::Write { connection, session_id, xid, request, auth: Arc::from(Vec::new()) };
            self.hand_to(server, session_id, input);
        }
    }

    /// Picks client `index`'s next operation and records it in the histories.
    fn choose_operation(&mut self, index: usize) -> (Request, Pending, String) {
        let roll = self.random.below(100);
        let key = shared_key(self.random.below(SHARED_KEYS));
        let other = shared_key(self.random.below(SHARED_KEYS));
        let client = &mut self.clients[index];
        let value = format!("c{}-{}", client.id, client.written).into_bytes();
        client.written += 1;
        let client_id = client.id;
        // A known version half the time, any version (-1) otherwise.
        let any_version = self.random.chance(50);
        let version_of = |client: &Client, key: &str| {
            if any_version {
                -1
            } else {
                client.versions.get(key).copied().unwrap_or(0)
            }
        };
        let client = &self.clients[index];
        let create = |path: String, data: Vec<u8>| {
            Request::Create(CreateRequest {
                opcode: op::CREATE,
                path,
                data: Some(data),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms: -1,
            })
        };
        let (request, ops, line) = match roll {
            0..=24 => {
                let path = format!("/c{}-{}", client.id, client.written);
                let line = format!("create {path}");
                return (create(path.clone(), vec![1, 2, 3]), Pending::Unique(path), line);
            }
            25..=39 => {
                let line = format!("create {key} {}", String::from_utf8_lossy(&value));
                (create(key.clone(), value.clone()), vec![(key.clone(), Op::Create { data: value })], line)
            }
            40..=59 => {
                let version = version_of(client, &key);
                let line = format!("setData {key} {} version {version}", String::from_utf8_lossy(&value));
                let request = Request::SetData { path: key.clone(), data: Some(value.clone()), version };
                (request, vec![(key.clone(), Op::SetData { data: value, version })], line)
            }
            60..=69 => {
                let version = version_of(client, &key);
                let request = Request::Delete { path: key.clone(), version };
                (request, vec![(key.clone(), Op::Delete { version })], format!("delete {key} version {version}"))
            }
            70..=79 if key != other => {
                let version = version_of(client, &key);
                let line = format!(
                    "multi(check {key} version {version}, setData {other} {})",
                    String::from_utf8_lossy(&value)
                );
                let request = Request::Multi(vec![
                    MultiOp::Check { path: key.clone(), version },
                    MultiOp::SetData { path: other.clone(), data: Some(value.clone()), version: -1 },
                ]);
                let ops = vec![(key, Op::Check { version }), (other, Op::SetData { data: value, version: -1 })];
                (request, ops, line)
            }
            _ => {
                let invoke = self.tick_history();
                let events = self.histories.entry(key.clone()).or_default();
                events.push(Event { client: client_id, op: Op::Read, outcome: None, invoke, response: None });
                let event = events.len() - 1;
                let line = format!("sync {key}, then read it");
                return (Request::Sync { path: key.clone() }, Pending::SyncRead(key, event), line);
            }
        };
        let invoke = self.tick_history();
        let mut recorded = Vec::new();
        for (key, op) in ops {
            let events = self.histories.entry(key.clone()).or_default();
            events.push(Event { client: client_id, op, outcome: None, invoke, response: None });
            recorded.push((key, events.len() - 1));
        }
        (request, Pending::Shared(recorded), line)
    }

    /// Runs one node's ready loop: some work is made durable now, some later
    /// (a sync in flight that a crash loses).
    fn drive(&mut self, id: u64) {
        let now = self.now_of(id);
        let finish_in_flight = self.random.chance(70);
        let keep_next_in_flight = self.random.chance(30);
        let flush_broken_cache = self.random.chance(50);
        let finish_count = (!self.random.chance(50)).then(|| self.random.next_u64());
        let now_ms = self.now_ms;
        let broken = self.faults.broken_ack_before_durable;
        let Some(server) = self.servers.get_mut(&id) else { return };
        if server.node.is_none() {
            return;
        }
        if flush_broken_cache {
            for (entries, hard_state) in server.unflushed.drain(..) {
                server.disk.write(&entries, hard_state.as_ref());
            }
        }
        // Work in flight becomes durable in the order it was handed out:
        // all of it, or the oldest few. What does not finish this step stays
        // in flight, and a crash loses it (or tears it).
        if !server.syncing.is_empty() && finish_in_flight && server.slow_until_ms <= now_ms {
            let in_flight = server.syncing.len();
            let finished = finish_count.map_or(in_flight, |count| 1 + (count % in_flight as u64) as usize);
            for work in server.syncing.drain(..finished).collect::<Vec<_>>() {
                if let Err(error) = persist(server, work, now, broken) {
                    self.violation(format!("server {id} failed after a sync: {error}"));
                    return;
                }
            }
        }
        let Some(node) = server.node.as_mut() else { return };
        // Only a leader expires sessions: which ones this tick expires (a
        // leader that stays leader of the same term across the tick).
        let office_before = (node.role(), node.term());
        let tracked_before: BTreeSet<i64> =
            node.session_buckets().into_iter().flat_map(|(_, sessions)| sessions).collect();
        if let Err(error) = node.tick(now) {
            self.violation(format!("server {id} failed on a tick: {error}"));
            return;
        }
        let tracked_after: BTreeSet<i64> =
            node.session_buckets().into_iter().flat_map(|(_, sessions)| sessions).collect();
        let is_leader = node.role() == super::Role::Leader;
        let expired: Vec<i64> = if office_before == (super::Role::Leader, node.term()) && is_leader {
            tracked_before.difference(&tracked_after).copied().collect()
        } else {
            Vec::new()
        };
        let mut sends = Vec::new();
        let mut failure = None;
        while let Some(node) = server.node.as_mut() {
            match node.ready(now) {
                Ok(Some(mut work)) => {
                    sends.append(&mut work.messages);
                    if let Some(order) = work.snapshot.take() {
                        // The driver lets the work in flight finish first
                        // (it is older than the snapshot), then makes the
                        // installed snapshot durable before its Ready.
                        for earlier in server.syncing.drain(..).collect::<Vec<_>>() {
                            if let Err(error) = persist(server, earlier, now, broken) {
                                failure = Some(format!("server {id} failed after a sync: {error}"));
                                break;
                            }
                        }
                        if failure.is_some() {
                            break;
                        }
                        server.disk.snapshot = Some(((*order.tree).clone(), order.index, order.term));
                        server.disk.entries.clear();
                        // Its work is made durable at once, as the driver does.
                        if let Err(error) = persist(server, work, now, broken) {
                            failure = Some(format!("server {id} failed after a sync: {error}"));
                            break;
                        }
                        continue;
                    }
                    // Behind work in flight, or kept in flight by chance:
                    // the node goes on meanwhile (pipelined group commit).
                    if keep_next_in_flight || !server.syncing.is_empty() {
                        server.syncing.push_back(work);
                        if server.syncing.len() >= LOG_WORK_IN_FLIGHT_MAX {
                            break;
                        }
                        continue;
                    }
                    if let Err(error) = persist(server, work, now, broken) {
                        failure = Some(format!("server {id} failed after a sync: {error}"));
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    failure = Some(format!("server {id}: {error}"));
                    break;
                }
            }
        }
        if let Some(failure) = failure {
            self.violation(failure);
            return;
        }
        let Some(node) = server.node.as_mut() else { return };
        let role = node.role();
        let output = node.take_output();
        // No disk here is ever emptied on purpose: a server the leader
        // believes holds more than it does lost acknowledged entries.
        let amnesia = output.log_behind_leader.map(|(commit, last)| {
            format!("server {id} lost entries it acknowledged: the leader committed {commit}, its log ends at {last}")
        });
        if let Some(order) = output.snapshot {
            server.disk.snapshot = Some(((*order.tree).clone(), order.index, order.term));
            let _ = node.snapshot_written(order.index);
        }
        // A leader that took office in this tick or ready loop starts now.
        if role != super::Role::Leader {
            server.office_since_ms = None;
        } else if server.office_since_ms.is_none() {
            server.office_since_ms = Some(now.monotonic_ms);
        }
        let office_since = server.office_since_ms;
        if output.sessions_expired > 0 && role != super::Role::Leader && !is_leader {
            self.violation(format!("server {id} expired a session while not the leader"));
        }
        if let Some(amnesia) = amnesia {
            self.violation(amnesia);
        }
        self.check_expiries(id, &expired, office_since, now);
        sends.extend(output.messages);
        for (to, message) in sends {
            self.send(id, to, message);
        }
        let mut replies = output.replies;
        if self.faults.broken_reverse_replies {
            replies.reverse();
        }
        // The node's rule, which the shards keep: publish, then reply.
        let late = self.faults.broken_late_watches;
        let mut publication = output.publication;
        if !late {
            if let Some(publication) = publication.take() {
                self.publish(id, publication);
            }
        }
        for reply in replies {
            self.client_reply(id, reply.connection, reply.body);
        }
        if let Some(publication) = publication {
            self.publish(id, publication);
        }
    }

    /// Server `id`'s shards take a new tree and fire its watches.
    fn publish(&mut self, id: u64, publication: super::Publication) {
        for (connection, event_type, path) in self.watches.publish(id, publication) {
            let Some(client) = self.clients.iter().find(|client| client.connection == Some(connection)) else {
                continue;
            };
            self.watch_events += 1;
            let line = format!("t={} c{} watch event {event_type} on {path} from {id}", self.now_ms, client.id);
            self.note(line);
        }
    }

    /// A leader expired `expired` at `now`: each must have been silent, as
    /// far as this server heard, for its whole timeout since it took office.
    fn check_expiries(&mut self, id: u64, expired: &[i64], office_since: Option<i64>, now: Now) {
        for session_id in expired {
            self.note(format!("t={} leader {id} expires session 0x{session_id:x}", self.now_ms));
            let heard = self.heard.get(&(id, *session_id)).copied().unwrap_or(i64::MIN);
            let since = heard.max(office_since.unwrap_or(i64::MIN));
            let silent = now.monotonic_ms.saturating_sub(since);
            if office_since.is_none() || silent < SESSION_TIMEOUT_MS as i64 {
                self.violation(format!(
                    "server {id} expired session 0x{session_id:x} after {silent} ms of silence (timeout {SESSION_TIMEOUT_MS} ms, leader: {})",
                    office_since.is_some()
                ));
            }
        }
    }

    fn client_reply(&mut self, server: u64, connection: ConnectionId, body: ReplyBody) {
        let Some(index) = self.clients.iter().position(|client| client.connection == Some(connection)) else {
            return;
        };
        let client_id = self.clients[index].id;
        match body {
            ReplyBody::Connected { session_id, password, .. } => {
                let client = &mut self.clients[index];
                if client.session.map(|(id, _)| id) != Some(session_id) {
                    client.last_zxid = 0;
                }
                client.session = Some((session_id, password));
                client.connecting = false;
                self.note(format!("t={} c{client_id} connected to {server}: session 0x{session_id:x}", self.now_ms));
            }
            ReplyBody::Refused => {
                self.watches.connection_closed(server, connection);
                // Expired: start a new session next time.
                let client = &mut self.clients[index];
                client.session = None;
                client.connection = None;
                client.connecting = false;
                client.in_flight.clear();
                self.note(format!("t={} c{client_id} refused by {server}: session expired", self.now_ms));
            }
            ReplyBody::Close { reason } => {
                self.watches.connection_closed(server, connection);
                let client = &mut self.clients[index];
                client.connection = None;
                client.connecting = false;
                client.in_flight.clear();
                if reason == "session expired" {
                    client.session = None;
                }
                self.note(format!("t={} c{client_id} closed by {server}: {reason}", self.now_ms));
            }
            ReplyBody::Response { xid, zxid, err, response } => {
                let applied = self.servers.get(&server).and_then(|server| server.node.as_ref()).map(Node::committed);
                let late = applied.and_then(|tree| self.watches.check_reply(server, tree, connection, zxid));
                if let Some(violation) = late {
                    self.violation(violation);
                }
                self.response(index, server, xid, zxid, err, response)
            }
        }
    }

    fn response(&mut self, index: usize, server: u64, xid: i32, zxid: i64, err: ErrorCode, response: Response) {
        let client = &mut self.clients[index];
        let client_id = client.id;
        let session = client.session.map_or(0, |(id, _)| id);
        // Per-session FIFO: the reply is for the oldest request outstanding.
        let oldest = client.in_flight.keys().next().copied();
        if oldest != Some(xid) {
            let sentence = format!(
                "session 0x{session:x} got the reply to xid {xid} while xid {oldest:?} was the oldest outstanding"
            );
            self.violation(sentence);
            return;
        }
        let last = client.last_zxid;
        client.last_zxid = last.max(zxid);
        let Some(pending) = client.in_flight.remove(&xid) else { return };
        if zxid < last {
            self.violation(format!("session 0x{session:x}: reply to xid {xid} carries zxid {zxid} after {last}"));
        }
        self.operations_answered += 1;
        self.note(format!("t={} c{client_id}@{server} xid {xid} -> {err:?} zxid {zxid}", self.now_ms));
        let response_at = self.tick_history();
        match pending {
            Pending::Unique(path) => {
                if err == ErrorCode::Ok {
                    self.acknowledged.insert(path, zxid);
                }
            }
            Pending::SyncRead(key, event) => {
                if err != ErrorCode::Ok {
                    return;
                }
                let (state, mzxid) = self.read(server, &key);
                self.note(format!("t={} c{client_id} reads {key} at {server}: {}", self.now_ms, show(&state)));
                // getData with a watch, as a client that caches the value does.
                if let (Some(mzxid), Some(connection)) = (mzxid, self.clients[index].connection) {
                    self.watches.arm(server, connection, &key, mzxid);
                }
                if let Some((_, version)) = &state {
                    self.clients[index].versions.insert(key.clone(), *version);
                }
                if let Some(event) = self.histories.get_mut(&key).and_then(|events| events.get_mut(event)) {
                    event.outcome = Some(Outcome::Read(state));
                    event.response = Some(response_at);
                }
            }
            Pending::Shared(events) => {
                let outcomes = outcomes(&events, err, &response);
                for ((key, event), outcome) in events.into_iter().zip(outcomes) {
                    if let Some(Outcome::Version(version)) = &outcome {
                        self.clients[index].versions.insert(key.clone(), *version);
                    }
                    let Some(event) = self.histories.get_mut(&key).and_then(|events| events.get_mut(event)) else {
                        continue;
                    };
                    match outcome {
                        Some(outcome) => {
                            event.outcome = Some(outcome);
                            event.response = Some(response_at);
                        }
                        // Took no effect (a multi rolled back, a session
                        // moved): a read with no answer constrains nothing.
                        None => event.op = Op::Read,
                    }
                }
            }
        }
    }

    /// What server `id`'s shards read at `key` (its published tree, or the
    /// tree it started from), with the znode's mzxid.
    fn read(&self, id: u64, key: &str) -> (State, Option<i64>) {
        let Some(node) = self.servers.get(&id).and_then(|server| server.node.as_ref()) else { return (None, None) };
        let tree = self.watches.published(id).map_or(node.committed(), |tree| &**tree);
        match tree.get(key) {
            Some(znode) => {
                let data = znode.data().map_or_else(Vec::new, |data| data.to_vec());
                (Some((data, znode.version())), Some(znode.mzxid()))
            }
            None => (None, None),
        }
    }

    /// Committed prefixes of every pair of durable logs agree.
    fn check_logs(&mut self) {
        let mut committed: Vec<(u64, CommittedLog)> = Vec::new();
        for (id, server) in &self.servers {
            let commit = server.disk.hard_state.commit;
            let log: BTreeMap<u64, (u64, Vec<u8>)> = server
                .disk
                .entries
                .iter()
                .filter(|entry| entry.index <= commit)
                .map(|entry| (entry.index, (entry.term, entry.data.to_vec())))
                .collect();
            committed.push((*id, log));
        }
        for (position, (a, log_a)) in committed.iter().enumerate() {
            for (b, log_b) in &committed[position + 1..] {
                for (index, entry) in log_a {
                    if let Some(other) = log_b.get(index) {
                        if other != entry {
                            let sentence = format!("committed entry {index} differs between servers {a} and {b}");
                            self.violation(sentence);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// After healing: every server at the same index with the same tree,
    /// and every acknowledged write in it.
    fn check_converged(&mut self) {
        let trees: Vec<(u64, u64, Tree)> = self
            .servers
            .iter()
            .filter_map(|(id, server)| {
                server.node.as_ref().map(|node| (*id, node.applied_index(), node.committed().clone()))
            })
            .collect();
        if trees.len() != self.servers.len() {
            self.violation("a server did not come back after healing".to_string());
            return;
        }
        let (first_id, first_index, first_tree) = &trees[0];
        for (id, index, tree) in &trees[1..] {
            if index != first_index {
                self.violation(format!(
                    "servers {first_id} and {id} did not converge: applied {first_index} vs {index}"
                ));
                continue;
            }
            if fingerprint(tree) != fingerprint(first_tree) {
                self.violation(format!("servers {first_id} and {id} hold different trees at index {index}"));
            }
            // The rolling digest (tree/digest.rs) must agree too, whether a
            // server applied the log or installed a snapshot.
            if tree.digest() != first_tree.digest() {
                self.violation(format!("servers {first_id} and {id} have different tree digests at index {index}"));
            }
        }
        let mut missing = Vec::new();
        for (path, zxid) in &self.acknowledged {
            for (id, _, tree) in &trees {
                if tree.get(path).is_none() {
                    missing.push(format!("acknowledged create {path} (zxid {zxid}) is missing on server {id}"));
                }
            }
        }
        for sentence in missing {
            self.violation(sentence);
        }
    }

    /// Once quiet, every server's value of each shared key is read into its
    /// history: an acknowledged write that was lost shows up there.
    fn final_reads(&mut self) {
        let ids: Vec<u64> = self.servers.keys().copied().collect();
        let keys: Vec<String> = self.histories.keys().cloned().collect();
        for key in keys {
            for id in &ids {
                let (state, _) = self.read(*id, &key);
                let invoke = self.tick_history();
                let response = self.tick_history();
                let event = Event {
                    client: u64::MAX,
                    op: Op::Read,
                    outcome: Some(Outcome::Read(state)),
                    invoke,
                    response: Some(response),
                };
                self.histories.entry(key.clone()).or_default().push(event);
            }
        }
    }

    /// Every live server's applied index.
    pub fn applied(&self) -> BTreeMap<u64, u64> {
        self.servers
            .iter()
            .filter_map(|(id, server)| server.node.as_ref().map(|node| (*id, node.applied_index())))
            .collect()
    }
}

/// Each shared operation's outcome from a reply; None where the operation
/// took no effect and says nothing about the znode.
fn outcomes(events: &[(String, usize)], err: ErrorCode, response: &Response) -> Vec<Option<Outcome>> {
    let simple = |err: ErrorCode| match err {
        ErrorCode::Ok => Some(Outcome::Ok),
        ErrorCode::NodeExists => Some(Outcome::NodeExists),
        ErrorCode::NoNode => Some(Outcome::NoNode),
        ErrorCode::BadVersion => Some(Outcome::BadVersion),
        _ => None,
    };
    match response {
        Response::Multi(results) if err == ErrorCode::Ok => results
            .iter()
            .map(|result| match result {
                OpResult::Check => Some(Outcome::Ok),
                OpResult::SetData(stat) => Some(Outcome::Version(stat.version)),
                OpResult::Delete => Some(Outcome::Ok),
                OpResult::Create(_) | OpResult::Create2(..) => Some(Outcome::Ok),
                // The operation that failed says why; the others were rolled back.
                OpResult::Error(0) => None,
                OpResult::Error(code) => ErrorCode::from_code(*code).and_then(simple),
                _ => None,
            })
            .chain(std::iter::repeat(None))
            .take(events.len())
            .collect(),
        Response::Stat(stat) if err == ErrorCode::Ok => vec![Some(Outcome::Version(stat.version))],
        _ if events.len() == 1 => vec![simple(err)],
        _ => vec![None; events.len()],
    }
}

fn show(state: &State) -> String {
    match state {
        Some((data, version)) => format!("{} (version {version})", String::from_utf8_lossy(data)),
        None => "no node".to_string(),
    }
}

/// Makes `work` durable on the server's disk and hands it back to the node;
/// a broken disk hands it back first and keeps it in a cache a crash loses.
fn persist(server: &mut Server, work: super::Work, now: Now, broken: bool) -> Result<(), super::NodeError> {
    if broken {
        server.unflushed.push((work.entries.clone(), work.hard_state.clone()));
    } else {
        server.disk.write(&work.entries, work.hard_state.as_ref());
    }
    match server.node.as_mut() {
        Some(node) => node.persisted(work, now),
        None => Ok(()),
    }
}

/// What a tree holds, comparable across servers.
pub fn fingerprint(tree: &Tree) -> Vec<NodeFingerprint> {
    let mut nodes: Vec<_> = tree
        .paths()
        .map(|(path, node)| {
            (path.to_string(), node.czxid(), node.mzxid(), node.version(), node.data().map(|data| data.to_vec()))
        })
        .collect();
    nodes.sort();
    let sessions: BTreeSet<i64> = tree.sessions().map(|session| session.id).collect();
    nodes.push(("sessions".to_string(), sessions.len() as i64, tree.last_zxid(), 0, None));
    nodes
}
