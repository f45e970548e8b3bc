//! A deterministic harness: several nodes in one thread, with a network and
//! disks in memory, driven from a seed.
//!
//! The network drops, duplicates, reorders and delays messages and can cut
//! links both ways or one way; a disk holds what a node made durable and
//! loses, at a crash, everything it had not yet synced. Simulated clients
//! connect to any server, write, move to another server when theirs closes
//! the connection, and record every write that was acknowledged. Every
//! choice comes from one xorshift generator seeded by the caller, so a seed
//! replays a run step for step.
//!
//! Checkers: committed logs never disagree; every acknowledged write is in
//! every server's tree once the faults heal; all servers converge to the
//! same tree at the same index.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use raft::eraftpb::{Entry, HardState};

use super::{ClientInput, ConnectionId, Node, NodeSettings, Now, PeerMessage, ReplyBody};
use crate::prep::PrepSettings;
use crate::proto::codes::op;
use crate::proto::{Acl, CreateRequest, ErrorCode, Request};
use crate::replica::{Recovered, ReplicaConfig, SnapshotPoint};
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
    /// Durable work not yet handed back (its sync is "in flight"): one at most.
    syncing: Vec<super::Work>,
}

struct InFlight {
    from: u64,
    to: u64,
    deliver_at_ms: i64,
    message: PeerMessage,
}

/// A simulated client with one session.
struct Client {
    id: u64,
    server: u64,
    connection: Option<ConnectionId>,
    session: Option<(i64, [u8; 16])>,
    connecting: bool,
    next_xid: i32,
    /// Writes sent and not yet answered: xid -> path.
    in_flight: BTreeMap<i32, String>,
    written: u64,
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
    /// Cut links (from, to) and the step they heal.
    cuts: BTreeMap<(u64, u64), i64>,
    clients: Vec<Client>,
    next_connection: u64,
    now_ms: i64,
    /// Paths whose create was acknowledged, with the zxid the reply carried.
    pub acknowledged: BTreeMap<String, i64>,
    /// Violations found so far, each a sentence.
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    writes_paused: bool,
}

/// A step advances time by this much.
const STEP_MS: i64 = 5;
/// In-flight messages at most; beyond it the network drops (a full queue).
const NETWORK_MESSAGES_MAX: usize = 100_000;

fn settings(id: u64, voters: &[u64], seed: u64) -> NodeSettings {
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
        session_id_seed: ((id as i64) << 56) | 1,
        password_secret: [id as u8; 16],
        random_seed: seed ^ id,
    }
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
            cuts: BTreeMap::new(),
            clients: Vec::new(),
            next_connection: 1,
            now_ms: 1_000,
            acknowledged: BTreeMap::new(),
            violations: Vec::new(),
            trace: Vec::new(),
            writes_paused: false,
        };
        for id in voters {
            cluster.servers.insert(id, Server { node: None, disk: Disk::default(), syncing: Vec::new() });
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
            });
        }
        cluster
    }

    fn now(&self) -> Now {
        Now { monotonic_ms: self.now_ms, wall_ms: 1_700_000_000_000 + self.now_ms }
    }

    fn start(&mut self, id: u64) {
        let now = self.now();
        let seed = self.random.next_u64();
        let voters = self.voters.clone();
        let Some(server) = self.servers.get_mut(&id) else { return };
        let (tree, recovered) = server.disk.recovered(&voters, &[]);
        match Node::new(settings(id, &voters, seed), tree, recovered, now) {
            Ok(node) => server.node = Some(node),
            Err(error) => self.violations.push(format!("server {id} cannot restart: {error}")),
        }
    }

    fn crash(&mut self, id: u64) {
        if let Some(server) = self.servers.get_mut(&id) {
            if server.node.take().is_some() {
                // What was not synced is lost.
                server.syncing.clear();
                self.trace.push(format!("t={} crash {id}", self.now_ms));
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
        self.check_converged();
        &self.violations
    }

    fn heal(&mut self) {
        self.cuts.clear();
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
    }

    fn inject_faults(&mut self, ids: &[u64]) {
        if self.random.chance(self.faults.crash_percent) {
            let id = ids[self.random.below(ids.len() as u64) as usize];
            let live = self.servers.values().filter(|server| server.node.is_some()).count();
            // Keep a majority up most of the time so progress is possible.
            if live > self.voters.len() / 2 + 1 || self.random.chance(20) {
                self.crash(id);
            }
        }
        let down: Vec<u64> =
            self.servers.iter().filter(|(_, server)| server.node.is_none()).map(|(id, _)| *id).collect();
        for id in down {
            if self.random.chance(self.faults.restart_percent) {
                self.trace.push(format!("t={} restart {id}", self.now_ms));
                self.start(id);
            }
        }
        if self.random.chance(self.faults.partition_percent) {
            let from = ids[self.random.below(ids.len() as u64) as usize];
            let to = ids[self.random.below(ids.len() as u64) as usize];
            if from != to {
                let heal_at = self.now_ms + 50 + self.random.below(1_000) as i64;
                self.cuts.insert((from, to), heal_at);
                if self.random.chance(50) {
                    self.cuts.insert((to, from), heal_at);
                }
                self.trace.push(format!("t={} cut {from}->{to} until {heal_at}", self.now_ms));
            }
        }
    }

    fn send(&mut self, from: u64, to: u64, message: PeerMessage) {
        if self.cuts.contains_key(&(from, to)) || self.network.len() >= NETWORK_MESSAGES_MAX {
            return;
        }
        if self.random.chance(self.faults.drop_percent) {
            return;
        }
        let delay = 1 + self.random.below(3) as i64 * STEP_MS;
        if self.random.chance(self.faults.duplicate_percent) {
            self.network.push_back(InFlight {
                from,
                to,
                deliver_at_ms: self.now_ms + delay + STEP_MS,
                message: message.clone(),
            });
        }
        self.network.push_back(InFlight { from, to, deliver_at_ms: self.now_ms + delay, message });
    }

    fn deliver(&mut self) {
        let now = self.now();
        let mut due = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(message) = self.network.pop_front() {
            if message.deliver_at_ms <= self.now_ms {
                due.push(message);
            } else {
                kept.push_back(message);
            }
        }
        self.network = kept;
        // Reordering: shuffle part of what is due.
        if due.len() > 1 && self.random.chance(self.faults.reorder_percent) {
            for index in (1..due.len()).rev() {
                let other = self.random.below(index as u64 + 1) as usize;
                due.swap(index, other);
            }
        }
        for InFlight { from, to, message, deliver_at_ms } in due {
            if self.cuts.contains_key(&(from, to)) {
                continue;
            }
            if self.busy(to) {
                // A node waits for its sync before it takes more input
                // (raft-rs hands out one Ready at a time).
                self.network.push_back(InFlight { from, to, deliver_at_ms, message });
                continue;
            }
            let Some(node) = self.servers.get_mut(&to).and_then(|server| server.node.as_mut()) else {
                continue;
            };
            if let Err(error) = node.step_peer(from, message, now) {
                self.violations.push(format!("server {to} failed on a message from {from}: {error}"));
            }
        }
    }

    /// Whether a node has a sync in flight.
    fn busy(&self, id: u64) -> bool {
        self.servers.get(&id).is_some_and(|server| !server.syncing.is_empty())
    }

    fn clients_act(&mut self, faulty: bool) {
        let now = self.now();
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
                let input = ClientInput::Connect { connection, session_id, password, timeout_ms: 4_000 };
                if let Some(node) = self.servers.get_mut(&server).and_then(|server| server.node.as_mut()) {
                    let _ = node.step_client(input, now);
                } else {
                    self.clients[index].connection = None;
                    self.clients[index].connecting = false;
                }
                continue;
            }
            let client = &self.clients[index];
            let write_now = !self.writes_paused && self.random.chance(if faulty { 30 } else { 5 });
            if client.connecting || client.in_flight.len() >= 4 || !write_now {
                // Touch to keep the session alive.
                if let (Some((session_id, _)), false) = (client.session, client.connecting) {
                    let server = client.server;
                    if let Some(node) = self.servers.get_mut(&server).and_then(|server| server.node.as_mut()) {
                        let _ = node.step_client(ClientInput::Touch(vec![session_id]), now);
                    }
                }
                continue;
            }
            let client = &mut self.clients[index];
            let Some((session_id, _)) = client.session else { continue };
            let Some(connection) = client.connection else { continue };
            let xid = client.next_xid;
            client.next_xid += 1;
            let path = format!("/c{}-{}", client.id, client.written);
            client.written += 1;
            client.in_flight.insert(xid, path.clone());
            let request = Request::Create(CreateRequest {
                opcode: op::CREATE,
                path,
                data: Some(vec![1, 2, 3]),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms: -1,
            });
            let server = client.server;
            if let Some(node) = self.servers.get_mut(&server).and_then(|server| server.node.as_mut()) {
                let input = ClientInput::Write { connection, session_id, xid, request, auth: Arc::from(Vec::new()) };
                if let Err(error) = node.step_client(input, now) {
                    self.violations.push(format!("server {server} failed on a client write: {error}"));
                }
            }
        }
    }

    /// Runs one node's ready loop: some work is made durable now, some later
    /// (a sync in flight that a crash loses).
    fn drive(&mut self, id: u64) {
        let now = self.now();
        let finish_in_flight = self.random.chance(70);
        let keep_next_in_flight = self.random.chance(30);
        let Some(server) = self.servers.get_mut(&id) else { return };
        let Some(node) = server.node.as_mut() else { return };
        // raft-rs hands out one Ready at a time: the one in flight must be
        // durable before the node takes any other input. A sync that does
        // not finish this step stays in flight, and a crash loses it.
        if let Some(work) = server.syncing.pop() {
            if !finish_in_flight {
                server.syncing.push(work);
                return;
            }
            if let Err(error) = persist(&mut server.disk, node, work, now) {
                self.violations.push(format!("server {id} failed after a sync: {error}"));
                return;
            }
        }
        if let Err(error) = node.tick(now) {
            self.violations.push(format!("server {id} failed on a tick: {error}"));
            return;
        }
        let mut sends = Vec::new();
        loop {
            match node.ready(now) {
                Ok(Some(mut work)) => {
                    sends.append(&mut work.messages);
                    if let Some(order) = work.snapshot.take() {
                        // An installed snapshot is durable before its Ready is.
                        server.disk.snapshot = Some(((*order.tree).clone(), order.index, order.term));
                        server.disk.entries.clear();
                    }
                    if keep_next_in_flight {
                        server.syncing.push(work);
                        break;
                    }
                    if let Err(error) = persist(&mut server.disk, node, work, now) {
                        self.violations.push(format!("server {id} failed after a sync: {error}"));
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    self.violations.push(format!("server {id}: {error}"));
                    return;
                }
            }
        }
        let output = node.take_output();
        if let Some(order) = output.snapshot {
            server.disk.snapshot = Some(((*order.tree).clone(), order.index, order.term));
            let _ = node.snapshot_written(order.index);
        }
        sends.extend(output.messages);
        for (to, message) in sends {
            self.send(id, to, message);
        }
        for reply in output.replies {
            self.client_reply(reply.connection, reply.body);
        }
    }

    fn client_reply(&mut self, connection: ConnectionId, body: ReplyBody) {
        let Some(client) = self.clients.iter_mut().find(|client| client.connection == Some(connection)) else {
            return;
        };
        match body {
            ReplyBody::Connected { session_id, password, .. } => {
                client.session = Some((session_id, password));
                client.connecting = false;
            }
            ReplyBody::Refused => {
                // Expired: start a new session next time.
                client.session = None;
                client.connection = None;
                client.connecting = false;
                client.in_flight.clear();
            }
            ReplyBody::Close { .. } => {
                client.connection = None;
                client.connecting = false;
                client.in_flight.clear();
            }
            ReplyBody::Response { xid, zxid, err, .. } => {
                if let Some(path) = client.in_flight.remove(&xid) {
                    if err == ErrorCode::Ok {
                        self.acknowledged.insert(path, zxid);
                    }
                }
            }
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
                            self.violations.push(format!(
                                "t={}: committed entry {index} differs between servers {a} and {b}",
                                self.now_ms
                            ));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// After healing: one leader, every server at the same index with the
    /// same tree, and every acknowledged write in it.
    fn check_converged(&mut self) {
        let trees: Vec<(u64, u64, Tree)> = self
            .servers
            .iter()
            .filter_map(|(id, server)| {
                server.node.as_ref().map(|node| (*id, node.applied_index(), node.committed().clone()))
            })
            .collect();
        if trees.len() != self.servers.len() {
            self.violations.push("a server did not come back after healing".to_string());
            return;
        }
        let (first_id, first_index, first_tree) = &trees[0];
        for (id, index, tree) in &trees[1..] {
            if index != first_index {
                self.violations
                    .push(format!("servers {first_id} and {id} did not converge: applied {first_index} vs {index}"));
                continue;
            }
            if fingerprint(tree) != fingerprint(first_tree) {
                self.violations.push(format!("servers {first_id} and {id} hold different trees at index {index}"));
            }
        }
        for (path, zxid) in &self.acknowledged {
            for (id, _, tree) in &trees {
                if tree.get(path).is_none() {
                    self.violations.push(format!("acknowledged create {path} (zxid {zxid}) is missing on server {id}"));
                }
            }
        }
        if self.leader().is_none() {
            self.violations.push("no leader after the faults healed".to_string());
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

/// Makes `work` durable on `disk` and hands it back to the node.
fn persist(disk: &mut Disk, node: &mut Node, work: super::Work, now: Now) -> Result<(), super::NodeError> {
    disk.append(&work.entries);
    if let Some(state) = &work.hard_state {
        disk.hard_state = state.clone();
    }
    node.persisted(work, now)
}

/// What a tree holds, comparable across servers.
pub fn fingerprint(tree: &Tree) -> Vec<NodeFingerprint> {
    let mut nodes: Vec<_> = tree
        .paths()
        .map(|(path, node)| {
            (path.to_string(), node.czxid, node.mzxid, node.version, node.data.as_ref().map(|data| data.to_vec()))
        })
        .collect();
    nodes.sort();
    let sessions: BTreeSet<i64> = tree.sessions().map(|session| session.id).collect();
    nodes.push(("sessions".to_string(), sessions.len() as i64, tree.last_zxid(), 0, None));
    nodes
}
